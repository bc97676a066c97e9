r"""Measures training and inference speed, compile time, memory and FLOPs.

    python -m launch.benchmark [--config=occnet_jax/configs/default.py] \
        [--sizes=default,paper] [--quick] --output=bench.json

Prints a table (throughput in cars/s, fraction of this machine's matmul
ceiling, compile times) and the goals met or missed, and writes every
number to the JSON file. See occnet_jax/benchmark.py for what is measured.
"""

import importlib.util

from absl import app
from absl import flags
from ml_collections import config_flags

from occnet_jax import cli
from occnet_jax import benchmark

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'occnet_jax/configs/default.py',
    'Base config: data (views, crop size), losses, optimizer.',
    lock_config=True)
_SIZES = flags.DEFINE_list(
    'sizes', ['default', 'paper'],
    'Config modules under occnet_jax/configs/ whose model sizes are '
    'measured.')
_OUTPUT = flags.DEFINE_string('output', None, 'Path of the JSON results.')
_QUICK = flags.DEFINE_bool('quick', False,
                           'Fewer repeats and a shorter time per measurement.')
flags.mark_flag_as_required('output')
flags.register_validator(
    'sizes', lambda sizes: all(importlib.util.find_spec(
        f'occnet_jax.configs.{size}') for size in sizes),
    message='every size must be a config module under occnet_jax/configs/')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  benchmark.run_and_report(
      _CONFIG.value, _SIZES.value, _OUTPUT.value,
      benchmark.QUICK if _QUICK.value else benchmark.Settings())


if __name__ == '__main__':
  cli.run(main)
