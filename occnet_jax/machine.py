"""What a number was measured on: the machine, its devices and the software.

Benchmarks (`benchmark.py`) and training runs (`train.py`, `run.json`) record
this beside their numbers, so every row of RESULTS.md can say where it ran.
"""

import os
import platform
from typing import Any

import jax


def cpu_model() -> str:
  """The CPU's model name (Linux), else what `platform` knows."""
  try:
    with open('/proc/cpuinfo') as cpuinfo:
      for line in cpuinfo:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
  """The host, its accelerators and the software versions."""
  device = jax.devices()[0]
  return {
      'cpu_model': cpu_model(),
      'cpu_count': os.cpu_count(),
      'usable_cpus': len(os.sched_getaffinity(0)),
      # Other processes on the same cores slow every measurement down.
      'load_average_1min': os.getloadavg()[0],
      'platform': platform.platform(),
      'python': platform.python_version(),
      'jax': jax.__version__,
      'jax_backend': jax.default_backend(),
      'device_kind': device.device_kind,
      'num_devices': jax.device_count(),
      'num_processes': jax.process_count(),
  }


def describe(info: dict[str, Any]) -> str:
  """One line for a results table, e.g. '2-CPU AMD EPYC 7B13' or '8x TPU v4'."""
  if info['jax_backend'] == 'cpu':
    return f'{info["usable_cpus"]}-core {info["cpu_model"]}'
  return f'{info["num_devices"]}x {info["device_kind"]}'
