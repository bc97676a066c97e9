r"""Evaluates a training workdir's checkpoint: metrics.json and plots.

    python -m launch.evaluate --workdir=workdirs/demo [--split=test] \
        [--step=N] [--data_dir=DIR]

Writes <workdir>/eval/<split>/metrics.json and the PNG figures; reads only
complete checkpoints, so it is safe while training is still running.
"""

from absl import app
from absl import flags
import jax

from occnet_jax import cli
from occnet_jax import evaluate
from occnet_jax import train

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir.')
_SPLIT = flags.DEFINE_string('split', None,
                             "Split to evaluate (default: the config's).")
_STEP = flags.DEFINE_integer('step', None,
                             'Checkpoint step (default: the latest).')
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                "TFDS data dir (default: the config's).")
flags.mark_flag_as_required('workdir')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  results = train.evaluate_workdir(_WORKDIR.value, split=_SPLIT.value,
                                   data_dir=_DATA_DIR.value, step=_STEP.value)
  if jax.process_index() == 0:
    print(evaluate.format_summary(results))


if __name__ == '__main__':
  cli.run(main)
