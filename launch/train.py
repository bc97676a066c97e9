r"""Trains Occlusion-Net and evaluates it; resumes a workdir's run.

    python -m launch.train --config=occnet_jax/configs/default.py \
        --workdir=workdirs/demo [--config.train.num_steps=2000]

Running the same command again after an interruption continues from the
last complete checkpoint; SIGTERM saves one at the next step and exits (0).
At the end, prints the evaluation summary and every path the run wrote.
Several processes (one per host, or local ones) each run the command with
--coordinator_address, --num_processes and --process_id, or with
config.distributed = True where JAX detects them (Cloud TPU, Slurm, Open
MPI).
"""

import json
import os

from absl import app
from absl import flags
from etils import epath
import jax
from ml_collections import config_flags

from data_prep import builders
from launch import multihost_flags
from occnet_jax import cli
from occnet_jax import input_pipeline
from occnet_jax import train
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import outputs

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Checkpoints, logs and evaluation results.')
flags.mark_flags_as_required(['config', 'workdir'])
cli.directory_path(_WORKDIR)


def written_paths(workdir: str, split: str) -> list[str]:
  """The workdir's files and folders, the evaluation's files one by one."""
  paths = []
  for path in sorted(epath.Path(workdir).iterdir()):
    if path.name == outputs.EVAL_DIR and split:
      directory = outputs.split_directory(workdir, split)
      paths += [os.fspath(file) for file in sorted(directory.iterdir())]
    else:
      paths.append(os.fspath(path) + ('/' if path.is_dir() else ''))
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  multihost_flags.initialize(config.distributed)
  # A project dataset is built on first use: TFDS needs its builder.
  builders.register(config.data.name)
  state = train.train_and_evaluate(config, _WORKDIR.value)
  if jax.process_index() != 0:
    return
  if int(state.step) < config.train.num_steps:
    return  # Preempted: the log says where it stopped.
  workdir, split = _WORKDIR.value, config.eval.final_split
  if split:
    print(evaluate.format_summary(json.loads(
        epath.Path(outputs.metrics_path(workdir, split)).read_text())))
  dataset = os.path.join(input_pipeline.resolve_data_dir(config, workdir),
                         input_pipeline.dataset_name(config))
  print('\nWritten:\n  ' + '\n  '.join(written_paths(workdir, split)))
  print(f'Dataset: {dataset}\nTensorBoard: tensorboard --logdir={workdir}')


if __name__ == '__main__':
  cli.run(main)
