r"""Hand-labelled occluded points vs the trifocal transfer (paper Fig. 4 left).

    python -m launch.trifocal_labels --dataset=car_render/small \
        --split=test --data_dir=workdirs/tensorflow_datasets \
        --output=workdirs/trifocal_labels [--sigma_visible=0.015] \
        [--sigma_occluded=0.05] [--mirror_swap_rate=0.05] [--seed=0] \
        [--max_cars=0] [--num_views=4] [--batch_size=32]

Samples `num_views` views of every car (as training batches do), simulates
the annotator on the keypoints (`reproduction.label_study` documents the
model; on real CarFusion the noise-free curve is the paper's measurement)
and writes <output>/trifocal_labels.json (keys: `dataset`, `split`,
`num_cars`, `num_points`, `num_occluded`, `alphas`, `fraction_within`,
`fraction_within_noise_free`, `noise_model`, `fraction_at_0.1`, ...; see
`label_study.study`) and <output>/trifocal_labels.png, then prints a
one-line summary.
"""

from absl import app
from absl import flags

from data_prep import annotator
from data_prep import builders
from occnet_jax import cli
from reproduction import label_study

_DEFAULT_NOISE = annotator.AnnotatorNoise()

_DATASET = flags.DEFINE_string(
    'dataset', 'car_render/small',
    'TFDS name with its builder config, e.g. car_render/small or '
    'carfusion/default.')
_CATEGORY = flags.DEFINE_string('category', 'car',
                                'Keypoint category of the dataset.')
_SPLIT = flags.DEFINE_string('split', 'test', 'Split to study.')
_DATA_DIR = flags.DEFINE_string('data_dir', 'workdirs/tensorflow_datasets',
                                'TFDS data dir.')
_OUTPUT = flags.DEFINE_string('output', None, 'Output directory.')
_SIGMA_VISIBLE = flags.DEFINE_float(
    'sigma_visible', _DEFAULT_NOISE.sigma_visible,
    'Per-axis noise of visible labels, in box scales L.')
_SIGMA_OCCLUDED = flags.DEFINE_float(
    'sigma_occluded', _DEFAULT_NOISE.sigma_occluded,
    'Per-axis noise of occluded labels, in box scales L.')
_MIRROR_SWAP_RATE = flags.DEFINE_float(
    'mirror_swap_rate', _DEFAULT_NOISE.mirror_swap_rate,
    'Probability that an occluded label lands on its mirror partner.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seeds view sampling and noise.')
_MAX_CARS = flags.DEFINE_integer('max_cars', 0, 'Study at most this many '
                                 'cars (0 = the whole split).')
_NUM_VIEWS = flags.DEFINE_integer(
    'num_views', 4, 'Views sampled per car (like config.data.num_views; '
    'two support views and a target).', lower_bound=3)
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 32, 'Cars per batch.',
                                   lower_bound=1)
flags.mark_flag_as_required('output')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    noise = annotator.AnnotatorNoise(
        sigma_visible=_SIGMA_VISIBLE.value,
        sigma_occluded=_SIGMA_OCCLUDED.value,
        mirror_swap_rate=_MIRROR_SWAP_RATE.value)
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  # The study builds its dataset on first use: TFDS needs its builder.
  builders.register(_DATASET.value.partition('/')[0])
  result = label_study.run_study(
      dataset=_DATASET.value, category=_CATEGORY.value, split=_SPLIT.value,
      data_dir=_DATA_DIR.value, output=_OUTPUT.value, noise=noise,
      seed=_SEED.value,
      max_cars=_MAX_CARS.value, num_views=_NUM_VIEWS.value,
      batch_size=_BATCH_SIZE.value)
  print(label_study.format_summary(result))


if __name__ == '__main__':
  cli.run(main)
