r"""Trains Occlusion-Net and evaluates it; resumes a workdir's run.

    python -m launch.train --config=occnet_jax/configs/default.py \
        --workdir=workdirs/demo [--config.train.num_steps=2000]

Running the same command again after an interruption continues from the
last complete checkpoint. At the end, prints the evaluation summary.
"""

import json

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from occnet_jax import cli
from occnet_jax import evaluate
from occnet_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Checkpoints, logs and evaluation results.')
flags.mark_flags_as_required(['config', 'workdir'])
cli.directory_path(_WORKDIR)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  train.train_and_evaluate(config, _WORKDIR.value)
  if jax.process_index() == 0 and config.eval.split:
    with open(evaluate.metrics_path(_WORKDIR.value, config.eval.split)) as f:
      print(evaluate.format_summary(json.load(f)))


if __name__ == '__main__':
  cli.run(main)
