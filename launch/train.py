r"""Trains Occlusion-Net and evaluates it; resumes a workdir's run.

    python -m launch.train --config=occnet_jax/configs/default.py \
        --workdir=workdirs/demo [--config.train.num_steps=2000]

Running the same command again after an interruption continues from the
last complete checkpoint. At the end, prints the evaluation summary.
"""

import json

from absl import app
from absl import flags
from etils import epath
import jax
from ml_collections import config_flags

import launch
from occnet_jax import evaluate
from occnet_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Checkpoints, logs and evaluation results.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  launch.quiet_library_logs()
  config = _CONFIG.value
  train.train_and_evaluate(config, _WORKDIR.value)
  if jax.process_index() == 0 and config.eval.split:
    print(evaluate.format_summary(json.loads(epath.Path(evaluate.metrics_path(
        _WORKDIR.value, config.eval.split)).read_text())))


if __name__ == '__main__':
  app.run(main)
