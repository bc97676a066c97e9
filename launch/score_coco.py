r"""Scores anyone's COCO keypoint results on a built split: PCK and more.

    python -m launch.score_coco --results=mmpose_results.json \
        --dataset=car_render/small --split=test \
        --data_dir=workdirs/tensorflow_datasets --method=mmpose \
        [--keypoint_layout=occnet_car_12] [--coordinates=image] \
        [--max_cars=N] [--output=DIR]

The results' image ids are the views of the split as `data_prep.export_coco`
numbers them, their keypoints in the exported images' pixels (or, with
--coordinates=frame, full-frame pixels). Writes DIR/metrics.json (default:
beside the results, in <method>/) with the keys of `launch.evaluate`
(PCK by visibility, occlusion level and kind with 95% intervals over cars,
occlusion AUC when the results carry scores) under the method's name, by
the same code (occnet_jax/evaluation/score_coco.py).
"""

import os

from absl import app
from absl import flags

from data_prep import builders
from occnet_jax import cli
from occnet_jax.categories import coco_layouts
from occnet_jax.configs import default
from occnet_jax.evaluation import score_coco

_RESULTS = flags.DEFINE_string('results', None,
                               'The COCO keypoint results file.')
_DATASET = flags.DEFINE_string(
    'dataset', None, 'The built dataset with its config, e.g. '
    'car_render/small or carfusion/visible_hull.')
_SPLIT = flags.DEFINE_string('split', 'test', 'The split.')
_DATA_DIR = flags.DEFINE_string('data_dir', 'tensorflow_datasets',
                                'The TFDS data dir it is built in.')
_METHOD = flags.DEFINE_string(
    'method', None, 'The name the figures are written under '
    '(pck.<method>.<subset>.<alpha>): letters, digits, _ or -.')
_KEYPOINT_LAYOUT = flags.DEFINE_enum(
    'keypoint_layout', 'occnet_car_12', list(coco_layouts.LAYOUTS),
    "The results' keypoints, mapped onto the category's by name.")
_COORDINATES = flags.DEFINE_enum(
    'coordinates', 'image', list(score_coco.COORDINATES),
    "image: the exported images' pixels; frame: full-frame pixels.")
_MAX_CARS = flags.DEFINE_integer(
    'max_cars', 0, 'Score the first this many cars of the split (0 = all; '
    "a run's eval.max_instances, to compare with it).", lower_bound=0)
_ALPHAS = flags.DEFINE_list(
    'alphas', [str(alpha) for alpha in default.get_config().eval.alphas],
    'PCK thresholds, fractions of max(box width, height).')
_OUTPUT = flags.DEFINE_string('output', None, 'Output folder.')
flags.mark_flags_as_required(['results', 'dataset', 'method'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    alphas = [float(alpha) for alpha in _ALPHAS.value]
  except ValueError:
    raise app.UsageError(f'--alphas must be numbers: {_ALPHAS.value}') from None
  builders.register(_DATASET.value.split('/')[0])
  output = _OUTPUT.value or os.path.join(
      os.path.dirname(os.path.abspath(_RESULTS.value)), _METHOD.value)
  results = score_coco.score_file(
      _RESULTS.value, _DATASET.value, _SPLIT.value, _DATA_DIR.value,
      _METHOD.value, output, alphas=alphas,
      keypoint_layout=_KEYPOINT_LAYOUT.value,
      coordinates=_COORDINATES.value, max_cars=_MAX_CARS.value)
  print(score_coco.format_summary(results, _METHOD.value))
  print(f'Wrote {os.path.join(output, "metrics.json")}')


if __name__ == '__main__':
  cli.run(main)
