r"""Measures training and inference speed, compile time, memory and FLOPs.

    python -m launch.benchmark [--config=occnet_jax/configs/default.py] \
        [--sizes=default,paper] [--pipelines=graph,full] [--quick] \
        [--budget_seconds=20] [--train_batch=64] \
        [--data_dir=workdirs/tensorflow_datasets] \
        --output=bench.json

Prints a table (throughput in cars/s, fraction of this machine's matmul
ceiling, compile times), the input pipeline's cars/s beside the train
steps' (with --data_dir; the base config's dataset is built there if
missing) and the goals met or missed, and writes every number to the JSON
file. See reproduction/benchmark.py for what is measured.
"""

import dataclasses
import importlib.util

from absl import app
from absl import flags
from ml_collections import config_flags

from occnet_jax import cli
from reproduction import benchmark

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'occnet_jax/configs/default.py',
    'Base config: data (views, crop size), losses, optimizer.',
    lock_config=True)
_SIZES = flags.DEFINE_list(
    'sizes', ['default', 'paper'],
    'Config modules under occnet_jax/configs/ whose model sizes are '
    'measured.')
_PIPELINES = flags.DEFINE_list(
    'pipelines', list(benchmark.PIPELINES),
    'Pipelines measured: `graph` (the graph stages alone) and/or `full` '
    '(from ROI crops).')
flags.register_validator(
    'pipelines', lambda names: set(names) <= set(benchmark.PIPELINES),
    f'--pipelines must name some of {benchmark.PIPELINES}.')
_OUTPUT = flags.DEFINE_string('output', None, 'Path of the JSON results.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', '',
    'TFDS data dir whose training split of the base config\'s dataset '
    'times the input pipeline alone; empty: not timed.')
_QUICK = flags.DEFINE_bool('quick', False,
                           'Fewer repeats and a shorter time per measurement.')
_TRAIN_BATCH = flags.DEFINE_integer(
    'train_batch', None,
    'Cars per train step and per timed input batch (default: 64); a '
    'smaller one measures the paper-size full train step on a CPU.')
_BUDGET = flags.DEFINE_float(
    'budget_seconds', None,
    'Seconds of timed calls per measurement (default: 20, 4 with --quick); '
    'a call whose FLOPs at the ceiling need more is not run.')
flags.mark_flag_as_required('output')
flags.register_validator(
    'sizes', lambda sizes: all(importlib.util.find_spec(
        f'occnet_jax.configs.{size}') for size in sizes),
    message='every size must be a config module under occnet_jax/configs/')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  settings = dataclasses.replace(
      benchmark.QUICK if _QUICK.value else benchmark.Settings(),
      pipelines=tuple(_PIPELINES.value))
  if _BUDGET.value is not None:
    settings = dataclasses.replace(settings, budget_seconds=_BUDGET.value)
  if _TRAIN_BATCH.value is not None:
    settings = dataclasses.replace(settings, train_batch=_TRAIN_BATCH.value)
  benchmark.run_and_report(_CONFIG.value, _SIZES.value, _OUTPUT.value,
                           settings, _DATA_DIR.value)


if __name__ == '__main__':
  cli.run(main)
