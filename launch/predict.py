r"""Runs a trained model on a full image with car boxes from any detector.

    python -m launch.predict --workdir=workdirs/demo --image=street.jpg \
        --boxes=boxes.json [--keypoints=keypoints.json] [--step=N] \
        [--score_threshold=0.5] [--image_id=ID] [--output=OUT]

Writes OUT.json (per car: 2D keypoints with visibility score, 3D keypoints,
camera), OUT.coco.json (COCO keypoint results, integer image_id),
OUT.coco_images.json (that image_id's file name and size) and OUT.png
(overlay). OUT defaults to <workdir>/predict/<image name>. See
occnet_jax/predict.py for the JSON formats.
"""

import os

from absl import app
from absl import flags

from occnet_jax import cli
from occnet_jax import predict

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir.')
_IMAGE = flags.DEFINE_string(
    'image', None, 'The full image (any format Pillow reads; it must decode '
    'completely).')
_BOXES = flags.DEFINE_string('boxes', None,
                             f'The car boxes: {predict.BOXES_FORMATS}.')
_KEYPOINTS = flags.DEFINE_string(
    'keypoints', None, 'Optional external keypoints (keypoints-in mode: they '
    f'replace the heatmap head): {predict.KEYPOINTS_FORMAT}.')
_STEP = flags.DEFINE_integer('step', None,
                             'Checkpoint step (default: the latest).')
_SCORE_THRESHOLD = flags.DEFINE_float(
    'score_threshold', 0.0, 'Leave out cars whose occlusion-aware confidence '
    '(the mean visibility score of their keypoints, the COCO "score") is '
    'below this.', lower_bound=0.0, upper_bound=1.0)
_IMAGE_ID = flags.DEFINE_integer(
    'image_id', None, 'COCO image_id (default: the file name\'s number, '
    'else a hash of the file name).')
_OUTPUT = flags.DEFINE_string('output', None, 'Output path prefix.')
flags.mark_flags_as_required(['workdir', 'image', 'boxes'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  output = _OUTPUT.value or os.path.join(
      _WORKDIR.value, 'predict',
      os.path.splitext(os.path.basename(_IMAGE.value))[0])
  cars = predict.predict_files(
      _WORKDIR.value, _IMAGE.value, _BOXES.value, output, _KEYPOINTS.value,
      step=_STEP.value, score_threshold=_SCORE_THRESHOLD.value,
      image_id=_IMAGE_ID.value)
  print(f'{len(cars)} car(s): {", ".join(predict.output_paths(output))}')


if __name__ == '__main__':
  cli.run(main)
