r"""Trains Occlusion-Net and evaluates it; resumes a workdir's run.

    python -m launch.train --config=occnet_jax/configs/default.py \
        --workdir=workdirs/demo [--config.train.num_steps=2000]

Running the same command again after an interruption continues from the
last complete checkpoint. At the end, prints the evaluation summary and
every path the run wrote.
"""

import json
import os

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from occnet_jax import cli
from occnet_jax import evaluate
from occnet_jax import input_pipeline
from occnet_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Checkpoints, logs and evaluation results.')
flags.mark_flags_as_required(['config', 'workdir'])
cli.directory_path(_WORKDIR)


def written_paths(workdir: str, split: str) -> list[str]:
  """The workdir's files and folders, the evaluation's files one by one."""
  paths = []
  for name in sorted(os.listdir(workdir)):
    path = os.path.join(workdir, name)
    if name == 'eval' and split:
      directory = os.path.dirname(evaluate.metrics_path(workdir, split))
      paths += [os.path.join(directory, file)
                for file in sorted(os.listdir(directory))]
    else:
      paths.append(path + os.sep if os.path.isdir(path) else path)
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  train.train_and_evaluate(config, _WORKDIR.value)
  if jax.process_index() != 0:
    return
  workdir, split = _WORKDIR.value, config.eval.split
  if split:
    with open(evaluate.metrics_path(workdir, split)) as f:
      print(evaluate.format_summary(json.load(f)))
  dataset = os.path.join(input_pipeline.resolve_data_dir(config, workdir),
                         input_pipeline.dataset_name(config))
  print('\nWritten:\n  ' + '\n  '.join(written_paths(workdir, split)))
  print(f'Dataset: {dataset}\nTensorBoard: tensorboard --logdir={workdir}')


if __name__ == '__main__':
  cli.run(main)
