r"""What a box rule tells about hidden keypoints: a nearest-neighbour oracle.

    python -m data_prep.box_oracle --data_dir=workdirs/tensorflow_datasets \
        --dataset=carfusion/default --database_split=train --query_split=test

A box sets the crop, the box coordinates the graph networks see and PCK's
scale L, so a box that depends on where occluded keypoints are leaks them.
The oracle measures the leak. Each view's true keypoints are put in the
coordinates of its box (`boxes.to_box_coordinates`); for a query view, the
database view (another split, every keypoint labelled) nearest in the query's
visible keypoints (sum of squared distances in box coordinates) lends its
box coordinates of the query's occluded keypoints, mapped back through the
query's box. The oracle never sees an occluded position of the query: what
it gets right beyond a box-free guess, the box told it.

Box rules compared (`RULES`), all padded by `cropping.BOX_PADDING`:
  - `visible_hull`: the hull of the view's visible keypoints (what the
    carfusion builder falls back to without bb/ files);
  - `record`: the dataset's boxes (for synthetic CarFusion, the builder's
    box from the generator's bb/ files: the visible pixels);
  - `all_labelled_hull`: the hull of every labelled keypoint, occluded ones
    included (the boxes before issue 11: the leak).

Reported: PCK@alpha on the query split's occluded keypoints, all of them and
those hidden by another vehicle or object (`occlusion_kind` 2 or 3), with L
of each rule's own box, and with L of the record's box for every rule (the
scale evaluation uses; it removes the leniency a larger box gets from a
larger L). Positions are `true_keypoints`.
"""

from collections.abc import Iterable, Mapping, Sequence
import json
import os

from absl import app
from absl import flags
import numpy as np
import tensorflow_datasets as tfds

from occnet_jax import boxes as boxes_lib
from occnet_jax import cli
from occnet_jax import cropping
from occnet_jax import labels

FLAGS = flags.FLAGS

RULES = ('visible_hull', 'record', 'all_labelled_hull')
OTHER_OCCLUDERS = (labels.OcclusionKind.OTHER_VEHICLE,
                   labels.OcclusionKind.OTHER_OBJECT)
VISIBLE = labels.Visibility.VISIBLE
OCCLUDED = labels.Visibility.OCCLUDED


def views(examples: Iterable[Mapping[str, np.ndarray]]
          ) -> dict[str, np.ndarray]:
  """Every view of the examples, stacked.

  Returns:
    (N, K, 2) `true_keypoints`, (N, K) `visibility` and `occlusion_kind`,
    (N, 4) `boxes`.
  """
  fields = ('true_keypoints', 'visibility', 'occlusion_kind', 'boxes')
  chunks = {name: [] for name in fields}
  for example in examples:
    for name in fields:
      chunks[name].append(np.asarray(example[name]))
  return {name: np.concatenate(chunk).astype(
      np.float64 if name in ('true_keypoints', 'boxes') else np.int64)
          for name, chunk in chunks.items()}


def rule_boxes(data: Mapping[str, np.ndarray], rule: str) -> np.ndarray:
  """(N, 4) boxes of every view under a rule of `RULES`."""
  if rule == 'record':
    return data['boxes']
  keep = (data['visibility'] == VISIBLE if rule == 'visible_hull'
          else data['visibility'] != labels.Visibility.UNLABELLED)
  return np.stack([
      cropping.padded_box(points[mask]) if mask.any() else boxes_lib.UNIT_BOX
      for points, mask in zip(data['true_keypoints'], keep)]).astype(
          np.float64)


def oracle_predictions(database: Mapping[str, np.ndarray],
                       database_boxes: np.ndarray,
                       queries: Mapping[str, np.ndarray],
                       query_boxes: np.ndarray) -> np.ndarray:
  """(M, K, 2) pixels: each query's keypoints from its nearest database view.

  Args:
    database: `views` of the database split.
    database_boxes: (N, 4) their boxes; only views with every keypoint
      labelled take part.
    queries: `views` of the query split.
    query_boxes: (M, 4) their boxes.

  Returns:
    Every keypoint of each query as its nearest neighbour places it, through
    the query's box; the neighbour is chosen on the query's visible
    keypoints only.
  """
  complete = np.all(database['visibility'] != labels.Visibility.UNLABELLED,
                    axis=1)
  if not complete.any():
    raise ValueError('No database view has every keypoint labelled.')
  reference = np.asarray(boxes_lib.to_box_coordinates(
      database['true_keypoints'][complete], database_boxes[complete]))
  query = np.asarray(boxes_lib.to_box_coordinates(queries['true_keypoints'],
                                                  query_boxes))
  predictions = np.empty_like(query)
  for index, (points, visibility) in enumerate(
      zip(query, queries['visibility'])):
    visible = visibility == VISIBLE
    distance = np.sum((reference[:, visible] - points[visible]) ** 2,
                      axis=(1, 2))
    predictions[index] = reference[np.argmin(distance)]
  return np.asarray(boxes_lib.from_box_coordinates(predictions, query_boxes))


def pck(predictions: np.ndarray, truth: np.ndarray, scale_boxes: np.ndarray,
        mask: np.ndarray, alpha: float) -> tuple[float | None, int]:
  """(PCK@alpha over the masked keypoints, their number); None when empty."""
  scale = np.asarray(cropping.pck_scale(scale_boxes))[:, None]
  correct = np.linalg.norm(predictions - truth, axis=-1) <= alpha * scale
  total = int(mask.sum())
  return (float(correct[mask].mean()) if total else None), total


def study(database: Mapping[str, np.ndarray],
          queries: Mapping[str, np.ndarray], alpha: float = 0.1,
          rules: Sequence[str] = RULES) -> dict[str, object]:
  """The oracle's occluded PCK under each box rule (module docstring).

  Returns:
    A JSON-able dict: per rule, `occluded` and `other_occluder` (kinds 2
    and 3) PCK with its own L, the same with the record's L
    (`..._record_scale`), and the counts `num_occluded`,
    `num_other_occluder`, `num_queries`, `num_database`, `alpha`.
  """
  occluded = queries['visibility'] == OCCLUDED
  other = occluded & np.isin(queries['occlusion_kind'], OTHER_OCCLUDERS)
  result = {'alpha': alpha, 'num_queries': int(len(occluded)),
            'num_database': int(len(database['visibility']))}
  for rule in rules:
    query_boxes = rule_boxes(queries, rule)
    predicted = oracle_predictions(database, rule_boxes(database, rule),
                                   queries, query_boxes)
    entry = {}
    for subset, mask in (('occluded', occluded), ('other_occluder', other)):
      for suffix, scale_boxes in (('', query_boxes),
                                  ('_record_scale', queries['boxes'])):
        entry[subset + suffix], result[f'num_{subset}'] = pck(
            predicted, queries['true_keypoints'], scale_boxes, mask, alpha)
    result[rule] = entry
  return result


def format_study(result: Mapping[str, object]) -> str:
  """A table of `study`'s result, in percent."""

  def percent(value):
    return '   n/a' if value is None else f'{100 * value:6.1f}'

  lines = [f'oracle PCK@{result["alpha"]:g} (%) over {result["num_queries"]} '
           f'query views ({result["num_database"]} database views); '
           'L of the rule\'s box | L of the record\'s box',
           f'{"box rule":<20}{"occluded":>10}{"other":>8}{"occluded":>12}'
           f'{"other":>8}']
  for rule in RULES:
    if rule in result:
      entry = result[rule]
      lines.append(f'{rule:<20}{percent(entry["occluded"]):>10}'
                   f'{percent(entry["other_occluder"]):>8}'
                   f'{percent(entry["occluded_record_scale"]):>12}'
                   f'{percent(entry["other_occluder_record_scale"]):>8}')
  lines.append(f'occluded keypoints: {result["num_occluded"]}; other: '
               f'{result["num_other_occluder"]} hidden by another vehicle or '
               'object')
  return '\n'.join(lines)


def _define_flags():
  """Defines the command's flags (only when run as a command)."""
  flags.DEFINE_string('data_dir', None, 'TFDS data directory.')
  flags.DEFINE_string('dataset', 'carfusion/default',
                      'Dataset name with its builder config.')
  flags.DEFINE_string('database_split', 'train',
                      'Split the nearest neighbours come from.')
  flags.DEFINE_string('query_split', 'test', 'Split whose views are scored.')
  flags.DEFINE_float('alpha', 0.1, 'PCK threshold.')
  flags.DEFINE_string('output', '', 'Optional JSON file for the result.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')

  def split(name):
    return views(tfds.data_source(FLAGS.dataset, split=name,
                                  data_dir=FLAGS.data_dir, download=False))

  result = study(split(FLAGS.database_split), split(FLAGS.query_split),
                 FLAGS.alpha)
  result.update(dataset=FLAGS.dataset, database_split=FLAGS.database_split,
                query_split=FLAGS.query_split)
  print(format_study(result))
  if FLAGS.output:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, 'w') as file:
      json.dump(result, file, indent=1)


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
