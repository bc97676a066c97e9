r"""Trains Occlusion-Net and evaluates it; resumes a workdir's run.

    python -m launch.train --config=occnet_jax/configs/default.py \
        --workdir=workdirs/demo [--config.train.num_steps=2000]

Running the same command again after an interruption continues from the
last complete checkpoint; SIGTERM saves one at the next step and exits (0).
At the end, prints the evaluation summary. Several processes (one per host,
or local ones) each run the command with --coordinator_address,
--num_processes and --process_id, or with config.distributed = True where
JAX detects them (Cloud TPU, Slurm, Open MPI).
"""

import json

from absl import app
from absl import flags
from etils import epath
import jax
from ml_collections import config_flags

import launch
from launch import multihost_flags
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
  multihost_flags.initialize(config.distributed)
  state = train.train_and_evaluate(config, _WORKDIR.value)
  finished = int(state.step) == config.train.num_steps
  if jax.process_index() == 0 and config.eval.split and finished:
    print(evaluate.format_summary(json.loads(epath.Path(evaluate.metrics_path(
        _WORKDIR.value, config.eval.split)).read_text())))


if __name__ == '__main__':
  app.run(main)
