r"""Writes a built split as COCO keypoint JSON and images.

  python -m data_prep.export_coco --dataset=car_render/small --split=train \
      --data_dir=workdirs/tensorflow_datasets --output=workdirs/coco/small \
      [--occluded] [--category=car] [--max_cars=N] [--noimages]

For training a detector elsewhere (MMPose, Detectron2) on the same split.
Each view of each car is one COCO image, its crop (the split's S x S crop of
the view's box, `images/<id>.png`); the car is one annotation on it: its
bbox the whole crop, its keypoints [x, y, v] in the crop's pixels (the
box's edges on the crop's edges, `geometry.crop_transform`). Visible
keypoints are v = 2. Occluded keypoints are left out, [0, 0, 0], as the
paper's detector never sees them; with --occluded they are written, v = 1
(their exact positions where the split knows them). Views are numbered as
evaluation reads them, image id = view + 1 (`evaluation.score_coco`), so a
detector's results on these images are scored by `launch.score_coco`.
Writes OUTPUT/<split>.json and, unless --noimages, OUTPUT/images/. Each
image entry also holds the view's `frame_box` (its box in full-frame
pixels), `frame_size`, `car_id` and `view`.
"""

from collections.abc import Mapping, Sequence
import json
import os
from typing import Any

from absl import app
from absl import flags
import cv2
from etils import epath
import numpy as np

from data_prep import builders
from occnet_jax import categories
from occnet_jax import cli
from occnet_jax import input_pipeline
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import labels
from occnet_jax.evaluation import coco_results
from occnet_jax.evaluation import score_coco

FLAGS = flags.FLAGS
IMAGES = 'images'


def coco_keypoints(points: np.ndarray, visibility: np.ndarray,
                   occluded: bool) -> list[float]:
  """A view's COCO [x, y, v] list (module docstring).

  Args:
    points: (K, 2) positions in the image's pixels.
    visibility: (K,) `labels.Visibility` codes.
    occluded: write occluded keypoints (v = 1); otherwise [0, 0, 0].

  Returns:
    The 3 K numbers.
  """
  flags = np.where(visibility == labels.Visibility.VISIBLE,
                   coco_results.LABELLED_VISIBLE,
                   np.where(occluded & (visibility
                                        == labels.Visibility.OCCLUDED),
                            coco_results.LABELLED_HIDDEN,
                            coco_results.NOT_LABELLED))
  xy = np.where(flags[:, None] > 0, points, 0.0)
  return [float(value) for point, flag in zip(xy, flags)
          for value in (*point, int(flag))]


def coco_category(category: keypoints_lib.Category) -> dict[str, Any]:
  """The COCO `categories` entry: keypoint names, 1-based skeleton."""
  return {'id': category.coco_category_id, 'name': category.name,
          'supercategory': category.name,
          'keypoints': list(category.keypoint_names),
          'skeleton': [[i + 1, j + 1] for i, j in category.skeleton]}


def export_split(source: Sequence[Mapping[str, Any]],
                 category: keypoints_lib.Category, output_dir: str,
                 split: str, *, occluded: bool = False,
                 write_images: bool = True, max_cars: int = 0) -> str:
  """Writes a split as COCO keypoint JSON (module docstring).

  Args:
    source: random-access records of the split.
    category: its keypoint category.
    output_dir: the output folder.
    split: the split's name (the JSON's name).
    occluded: write occluded keypoints with v = 1.
    write_images: write the crops as `images/<id>.png`.
    max_cars: the first this many cars (0 = all).

  Returns:
    The JSON's path.
  """
  views = score_coco.split_views(source, max_cars)
  size = views['crop_size']
  output = epath.Path(output_dir)
  (output / IMAGES if write_images else output).mkdir(parents=True,
                                                      exist_ok=True)
  # The exact positions where known: what evaluation scores against.
  points = score_coco.frame_to_image(views['true_keypoints'], views['boxes'],
                                     size)
  images, annotations = [], []
  for index, image_id in enumerate(views['image_id'].tolist()):
    file_name = os.path.join(IMAGES, f'{image_id:08d}.png')
    if write_images:
      record = source[int(views['record'][index])]
      crop = np.asarray(record['crops'])[int(views['view'][index])]
      cv2.imwrite(str(output / file_name),
                  cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    images.append({
        'id': image_id, 'file_name': file_name, 'width': size,
        'height': size, 'car_id': str(views['car_id'][index]),
        'view': int(views['view'][index]),
        'frame_box': views['boxes'][index].tolist(),
        'frame_size': views['image_size'][index].tolist()})
    keypoints = coco_keypoints(points[index], views['visibility'][index],
                               occluded)
    annotations.append({
        'id': image_id, 'image_id': image_id,
        'category_id': category.coco_category_id, 'iscrowd': 0,
        'bbox': [0.0, 0.0, float(size), float(size)],
        'area': float(size * size), 'keypoints': keypoints,
        'num_keypoints': int(np.count_nonzero(keypoints[2::3]))})
  path = output / f'{split}.json'
  path.write_text(json.dumps({
      'info': {'description': f'{split} of an occnet_jax split, one crop per '
                              'car view',
               'occluded_keypoints': 'v=1' if occluded else 'left out'},
      'images': images, 'annotations': annotations,
      'categories': [coco_category(category)]}))
  return str(path)


def _define_flags():
  """Defines the command's flags.

  Only when run as a command: `export_split` stays importable next to other
  commands that use the same flag names.
  """
  flags.DEFINE_string('dataset', None,
                      'The built dataset, e.g. car_render/small.')
  flags.DEFINE_string('split', 'train', 'The split.')
  flags.DEFINE_string('data_dir', 'tensorflow_datasets',
                      'The TFDS data dir it is built in.')
  flags.DEFINE_string('output', None, 'The output folder.')
  flags.DEFINE_bool(
      'occluded', False, 'Write occluded keypoints with v = 1 (by default '
      'they are left out, as the paper\'s detector never sees them).')
  flags.DEFINE_bool('images', True, 'Write the crops as PNGs.')
  flags.DEFINE_string('category', 'car',
                      'The keypoint category of the dataset.')
  flags.DEFINE_integer('max_cars', 0,
                       'Export the first this many cars (0 = all).',
                       lower_bound=0)
  flags.mark_flags_as_required(['dataset', 'output'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  builders.register(FLAGS.dataset.split('/')[0])
  source = input_pipeline.open_split(FLAGS.dataset, FLAGS.split,
                                     FLAGS.data_dir)
  path = export_split(source, categories.get_category(FLAGS.category),
                      FLAGS.output, FLAGS.split, occluded=FLAGS.occluded,
                      write_images=FLAGS.images, max_cars=FLAGS.max_cars)
  print(f'Wrote {path}' + (f' and {os.path.join(FLAGS.output, IMAGES)}/'
                           if FLAGS.images else ''))


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
