r"""Runs a trained model on a full image with car boxes from any detector.

    python -m launch.predict --workdir=workdirs/demo --image=street.jpg \
        --boxes=boxes.json [--keypoints=keypoints.json] [--output=OUT]

Writes OUT.json (per car: 2D keypoints with visibility score, 3D keypoints,
camera), OUT.coco.json (COCO keypoint results) and OUT.png (overlay). OUT
defaults to <workdir>/predict/<image name>. See occnet_jax/predict.py for
the JSON formats.
"""

import os

from absl import app
from absl import flags

import launch
from occnet_jax import predict

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir.')
_IMAGE = flags.DEFINE_string('image', None, 'The full image.')
_BOXES = flags.DEFINE_string('boxes', None, 'JSON list of car boxes.')
_KEYPOINTS = flags.DEFINE_string(
    'keypoints', None, 'Optional JSON of external keypoints per box '
    '(keypoints-in mode).')
_OUTPUT = flags.DEFINE_string('output', None, 'Output path prefix.')
flags.mark_flags_as_required(['workdir', 'image', 'boxes'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  launch.quiet_library_logs()
  output = _OUTPUT.value or os.path.join(
      _WORKDIR.value, 'predict',
      os.path.splitext(os.path.basename(_IMAGE.value))[0])
  try:
    cars = predict.predict_files(_WORKDIR.value, _IMAGE.value, _BOXES.value,
                                 output, _KEYPOINTS.value)
  except (predict.PredictionInputError, FileNotFoundError) as error:
    raise app.UsageError(str(error)) from None
  print(f'{len(cars)} car(s): {output}.json, {output}.coco.json, '
        f'{output}.png')


if __name__ == '__main__':
  app.run(main)
