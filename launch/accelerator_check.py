r"""One check of a GPU (or TPU) machine, in under ten minutes, into one JSON.

    python -m launch.accelerator_check --workdir=workdirs/accelerator \
        [--shrink] [--dtype=float32|bfloat16]

In order, under `--workdir`:
  1. builds `car_render/small` (the demo's data, 64 px crops) in
     `<workdir>/tensorflow_datasets` unless it is there;
  2. trains the `default` config briefly (a quarter of its schedule) and
     evaluates it on the test split;
  3. trains the `paper` model sizes (512-wide graphs, 512-feature 8-layer
     heatmap head, the release's SGD) for a few hundred steps on the same
     data (the paper config's crops are 64 px too; CarFusion itself is not
     on a fresh machine) and evaluates them;
  4. runs the speed benchmark of `launch.benchmark --sizes=default,paper`
     (quick settings) with the input pipeline timed on that data; its
     records hold the device allocator's memory statistics.
Then it writes `<workdir>/accelerator_check.json`: the machine, each run's
steps, training seconds, steps/s and test-split summary scalars, the
benchmark's results, and the wall time of each part.

`--shrink` is the CPU rehearsal: the `test` config's tiny model on the
`car_render/mini` set for a few steps, and the benchmark of the `test`
size with a few cars, in a few minutes on two cores.
"""

import dataclasses
import json
import os
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections

from data_prep import builders
from occnet_jax import cli
from occnet_jax import configs
from occnet_jax import input_pipeline
from occnet_jax import machine
from occnet_jax import train
from occnet_jax.configs import default
from occnet_jax.configs import paper
from occnet_jax.configs import test as test_config
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import outputs
from reproduction import benchmark

_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Where the runs, data and JSON are written.')
_SHRINK = flags.DEFINE_bool(
    'shrink', False, 'CPU rehearsal: tiny model, mini data, a few steps.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                           'config.model.dtype of the training runs.')
flags.mark_flag_as_required('workdir')
cli.directory_path(_WORKDIR)

OUTPUT_FILE = 'accelerator_check.json'
# Steps of each run: the default schedule / 4, and the paper sizes'
# "few hundred"; shrunk, the test config's own 8 steps.
_DEFAULT_STEPS = 1000
_PAPER_STEPS = 300
# Test-split cars evaluated per run (the full split's baselines fit a
# camera per view on the host, minutes on their own).
_EVAL_CARS = 256
# The benchmark: quick repeats, and batches of a few cars when shrunk.
_BENCHMARK = dataclasses.replace(benchmark.QUICK, budget_seconds=10.0)
_SHRUNK_BENCHMARK = benchmark.Settings(
    warmup=1, repeats=2, budget_seconds=1.0, train_batch=4,
    inference_batches=(1, 4), ceiling_size=256)


def scaled_schedule(config: ml_collections.ConfigDict,
                    num_steps: int) -> ml_collections.ConfigDict:
  """The config with its staged schedule scaled to `num_steps` steps.

  Args:
    config: an experiment config.
    num_steps: the new `train.num_steps`.

  Returns:
    A copy whose stage lengths, logging, checkpoint and evaluation periods
    keep their fractions of the run (at least one step each).
  """
  scaled = ml_collections.ConfigDict(config.to_dict())
  ratio = num_steps / config.train.num_steps
  scaled.train.num_steps = num_steps
  for key in ('heatmap_steps', 'graph_steps'):
    scaled.train[key] = int(config.train[key] * ratio)
  for key in ('log_every_steps', 'checkpoint_every_steps',
              'eval_every_steps'):
    scaled.train[key] = max(1, int(config.train[key] * ratio))
  return scaled


def run_configs(shrink: bool, dtype: str,
                data_dir: str) -> dict[str, ml_collections.ConfigDict]:
  """The configs of the training runs, by name, on the same dataset."""
  if shrink:
    sized = {'test': test_config.get_config()}
  else:
    base = default.get_config()
    paper_sized = ml_collections.ConfigDict(base.to_dict())
    paper_config = paper.get_config()
    paper_sized.model = paper_config.model
    paper_sized.optimizer = paper_config.optimizer
    sized = {'default': scaled_schedule(base, _DEFAULT_STEPS),
             'paper': scaled_schedule(paper_sized, _PAPER_STEPS)}
  for config in sized.values():
    config.model.dtype = dtype
    config.data.data_dir = data_dir
    config.eval.max_instances = min(config.eval.max_instances or _EVAL_CARS,
                                    _EVAL_CARS)
    configs.validate(config, num_devices=jax.device_count())
  return sized


def train_and_summarize(config: ml_collections.ConfigDict,
                        workdir: str) -> dict[str, Any]:
  """Trains and evaluates one config; its speed and test-split scalars."""
  start = time.perf_counter()
  train.train_and_evaluate(config, workdir)
  seconds = time.perf_counter() - start
  with open(outputs.metrics_path(workdir, config.eval.final_split)) as file:
    results = json.load(file)
  return {'num_steps': config.train.num_steps,
          'seconds_with_compile_and_eval': seconds,
          'steps_per_second_with_compile_and_eval':
              config.train.num_steps / seconds,
          'model': config.model.to_dict(),
          'eval': evaluate.summary_scalars(results)}


def check(workdir: str, shrink: bool, dtype: str) -> dict[str, Any]:
  """Every part of the check; the JSON-ready results."""
  start = time.perf_counter()
  data_dir = os.path.join(workdir, 'tensorflow_datasets')
  sized = run_configs(shrink, dtype, data_dir)
  results = {'machine': machine.machine_info(), 'shrink': shrink,
             'dtype': dtype, 'devices': [str(device)
                                         for device in jax.devices()],
             'runs': {}, 'part_seconds': {}}
  base = next(iter(sized.values()))
  builders.register(base.data.name)
  input_pipeline.prepare_dataset(base, data_dir)
  results['part_seconds']['dataset'] = time.perf_counter() - start
  for name, config in sized.items():
    part_start = time.perf_counter()
    logging.info('Training %s for %d steps.', name, config.train.num_steps)
    results['runs'][name] = train_and_summarize(
        config, os.path.join(workdir, name))
    results['part_seconds'][name] = time.perf_counter() - part_start
  part_start = time.perf_counter()
  sizes = ['test'] if shrink else ['default', 'paper']
  results['benchmark'] = benchmark.run_and_report(
      base if shrink else default.get_config(), sizes,
      os.path.join(workdir, 'bench.json'),
      _SHRUNK_BENCHMARK if shrink else _BENCHMARK, data_dir)
  results['part_seconds']['benchmark'] = time.perf_counter() - part_start
  results['wall_seconds'] = time.perf_counter() - start
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  results = check(_WORKDIR.value, _SHRINK.value, _DTYPE.value)
  output = os.path.join(_WORKDIR.value, OUTPUT_FILE)
  with open(output, 'w') as file:
    json.dump(results, file, indent=2)
  print(f'Wrote {output} ({results["wall_seconds"]:.0f} s).')


if __name__ == '__main__':
  cli.run(main)
