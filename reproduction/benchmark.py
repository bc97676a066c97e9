"""Speed benchmark: throughput, compile time, memory and FLOP efficiency.

For every model size (a config module under `occnet_jax/configs/` whose
`model` block replaces the base config's), two pipelines are measured:

  - `graph`: the graph stages alone (2D-KGNN encoder and decoder, 3D-KGNN)
    in keypoints-in mode, fed box-normalised keypoints and confidences;
  - `full`: the whole model from ROI crops (heatmap head + graph stages).

Each pipeline is timed at inference (`model.apply(train=False)`, one view
per car, as `predict` runs on detector boxes) and as a training step
(`train.make_train_step`: forward, losses, backward, optimizer update, the
state donated) on a batch of cars with `config.data.num_views` views each,
the batch format of the input pipeline. Training runs the end-to-end stage
of the schedule, so every loss term and parameter group is active.

The inputs are synthetic but geometrically consistent (cars of the
category's mean shape seen by `data_prep.viewpoints` cameras), so the
trifocal loss does its normal work; compiled XLA code has no
data-dependent control flow, so the values do not change the timings.

Every measurement is the median, min and max over repeated calls after a
warm-up, with `block_until_ready` around each call. Its FLOPs come from
XLA's cost analysis of the compiled program and are compared with this
machine's matrix-multiply ceiling, measured in the same run (a large jitted
float32 matmul): once at the start, and again beside every timed call (one
matmul, timed on its own, before each call and after the last), so that on
a shared machine whose load drifts the ratio `fraction_of_ceiling_beside`
compares each call with the matmuls that bracket it, under the same load,
and takes the median over the calls. Everything runs on one
device: on a CPU host XLA already spreads each operation over all cores,
and fake CPU devices would only split the same cores.

A call whose FLOPs alone, at the ceiling, would need more than the
measurement's time budget is not run: its record says `timed: false` and
gives the throughput at the ceiling, an upper bound.

Given a TFDS data dir, the input pipeline is timed alone as well: cars per
second from the built training split (the base config's dataset, built on
first use) through grain (decoding, view sampling, batching, with the
config's read threads) to a batch placed on the device, the batches of the
train steps. Beside the train steps' rates it tells which of the two limits
training. Every size reads the base config's data, so one measurement
serves them all.
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import functools
import importlib
import json
import os
import resource
import time
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from data_prep import builders
from data_prep import viewpoints
from occnet_jax import boxes as boxes_lib
from occnet_jax import categories
from occnet_jax import configs
from occnet_jax import cropping
from occnet_jax import geometry
from occnet_jax import input_pipeline
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import labels
from occnet_jax import machine
from occnet_jax import models
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax import train
from reproduction import cells
from reproduction import speed_table

PIPELINES = ('graph', 'full')
MODES = ('inference', 'train')
# Fraction of keypoints labelled occluded in the synthetic batches.
_OCCLUDED_FRACTION = 0.3
# Icosphere level of the synthetic cameras' viewpoint directions.
_VIEWPOINT_LEVEL = 2


@dataclasses.dataclass(frozen=True)
class Settings:
  """How much to measure.

  Attributes:
    warmup: untimed calls after compilation (first-call allocations).
    repeats: timed calls per measurement, at most.
    budget_seconds: timed calls stop once they have taken this long (after
      at least one); a call estimated (FLOPs at the ceiling) to need more,
      with its warm-up, is not run at all.
    train_batch: cars per training step.
    inference_batches: cars per inference call, one view each.
    ceiling_size: n of the n x n float32 matmul that measures the ceiling.
    pipelines: which of `PIPELINES` to measure (the paper-size `full`
      pipeline needs far more memory than the graph stages).
  """

  warmup: int = 1
  repeats: int = 10
  budget_seconds: float = 20.0
  train_batch: int = 64
  inference_batches: tuple[int, ...] = (1, 64)
  ceiling_size: int = 2048
  pipelines: tuple[str, ...] = PIPELINES


QUICK = Settings(repeats=3, budget_seconds=4.0)


def summarize(values: Sequence[float]) -> dict[str, float]:
  """Median, min and max of repeated measurements."""
  return {'median': float(np.median(values)), 'min': float(np.min(values)),
          'max': float(np.max(values))}


def peak_rss_bytes() -> int:
  """The process's resident-set high-water mark (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def device_memory(device: jax.Device) -> dict[str, int] | None:
  """The device's allocator statistics, None where the backend has none."""
  stats = device.memory_stats()
  if not stats:
    return None
  return {key: int(stats[key]) for key in ('bytes_in_use',
                                           'peak_bytes_in_use', 'bytes_limit')
          if key in stats}


def machine_info() -> dict[str, Any]:
  """The machine and software the numbers were measured on."""
  # Every measurement runs on one device (XLA still uses all host cores).
  return {**machine.machine_info(), 'benchmark_devices': 1}


def compile_timed(jitted: Any, *args: Any) -> tuple[Any, float]:
  """Traces, lowers and compiles a jitted function for `args`.

  Returns:
    (compiled executable, seconds taken).
  """
  start = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - start


def compiled_flops(compiled: Any) -> float:
  """FLOPs of one call of a compiled executable (XLA's cost analysis)."""
  analysis = compiled.cost_analysis()
  # Older jax versions return one dict per program.
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis['flops'])


def compiled_memory(compiled: Any) -> dict[str, int]:
  """Argument, output and temporary buffer sizes of a compiled executable."""
  analysis = compiled.memory_analysis()
  return {name: int(getattr(analysis, f'{name}_size_in_bytes'))
          for name in ('argument', 'output', 'temp', 'alias')}


def time_calls(step: Callable[[Any], Any], carry: Any, *, warmup: int,
               repeats: int, budget_seconds: float,
               before: Callable[[], Any] = lambda: None) -> list[float]:
  """Seconds of each timed call of `carry = step(carry)`.

  Args:
    step: one call; its result, blocked on, is the next call's argument
      (a train state, or ignored outputs at inference).
    carry: the first argument.
    warmup: untimed calls first.
    repeats: timed calls, at most.
    budget_seconds: no new timed call starts once the timed calls took this
      long (there is always at least one).
    before: called before each timed call, outside its timing.

  Returns:
    The wall-clock seconds of each timed call.
  """
  for _ in range(warmup):
    carry = jax.block_until_ready(step(carry))
  times = []
  while len(times) < repeats and (not times or sum(times) < budget_seconds):
    before()
    start = time.perf_counter()
    carry = jax.block_until_ready(step(carry))
    times.append(time.perf_counter() - start)
  return times


def matmul_call(size: int) -> tuple[Callable[[], jax.Array], float]:
  """A compiled n x n float32 matmul, as (call, FLOPs per call)."""
  keys = jax.random.split(jax.random.key(0))
  lhs, rhs = (jax.random.normal(key, (size, size), jnp.float32)
              for key in keys)
  compiled, _ = compile_timed(jax.jit(jnp.matmul), lhs, rhs)
  return lambda: compiled(lhs, rhs), compiled_flops(compiled)


def matmul_ceiling(size: int, *, warmup: int, repeats: int) -> dict[str, Any]:
  """This machine's float32 matrix-multiply FLOP rate under jax.

  Args:
    size: n of the n x n matrices.
    warmup: untimed calls.
    repeats: timed calls.

  Returns:
    `size`, `flops` per call (cost analysis: 2 n^3), `seconds` (median,
    min, max) and `flops_per_second` from the median.
  """
  call, flops = matmul_call(size)
  seconds = summarize(time_calls(
      lambda _: call(), None, warmup=warmup, repeats=repeats,
      budget_seconds=float('inf')))
  return {'size': size, 'flops': flops, 'seconds': seconds,
          'flops_per_second': flops / seconds['median']}


class KeypointsInNet(nn.Module):
  """`OcclusionNet` in keypoints-in mode behind the full model's signature.

  `train.train_step` calls `model.apply(variables, crops, boxes, ...)`;
  this module takes (N, K, 3) node inputs (box-normalised x, y and the
  confidence) in place of the crops, so the unchanged train step trains
  the graph stages alone.

  Attributes:
    net: the `OcclusionNet`.
  """

  net: nn.Module

  def __call__(self, keypoints_and_confidence: jax.Array, boxes: jax.Array,
               *, train: bool) -> dict[str, jax.Array]:
    return self.net(None, boxes, train=train,
                    keypoints=keypoints_and_confidence[..., :2],
                    confidence=keypoints_and_confidence[..., 2])


def synthetic_shape_basis(rng: np.random.Generator,
                          category: keypoints_lib.Category,
                          num_components: int) -> shape_basis_lib.ShapeBasis:
  """A PCA basis fitted on the category's mean shape, randomly stretched."""
  shapes = category.mean_shape * rng.uniform(
      0.85, 1.15, (4 * num_components + 8, 1, 3))
  shapes = shapes + rng.normal(scale=0.05, size=shapes.shape)
  return shape_basis_lib.fit_shape_basis(shapes, num_components,
                                         mirror=category.mirror)


def synthetic_batch(rng: np.random.Generator,
                    category: keypoints_lib.Category, num_cars: int,
                    num_views: int, crop_size: int) -> dict[str, np.ndarray]:
  """A batch (docs/design.md) of cars seen by consistent cameras.

  Args:
    rng: the randomness.
    category: gives the keypoints and the mean shape.
    num_cars: B.
    num_views: V, every view real.
    crop_size: S of the (random) crops.

  Returns:
    `crops`, `boxes`, `keypoints`, `visibility`, `cameras`, `view_mask`
    with leading axes (B, V), and `nodes` (B, V, K, 3): the box-normalised
    keypoints with a random confidence, the graph stages' input.
  """
  directions = viewpoints.view_directions(_VIEWPOINT_LEVEL)
  shapes = category.mean_shape * rng.uniform(0.9, 1.1, (num_cars, 1, 3))
  cameras = np.stack([viewpoints.sample_view_cameras(rng, directions,
                                                     num_views, shape)
                      for shape in shapes]).astype(np.float32)
  pixels, _ = geometry.project(cameras, shapes[:, None])
  pixels = np.asarray(pixels, np.float32)
  boxes = np.stack([cropping.padded_box(view)
                    for view in pixels.reshape((-1,) + pixels.shape[2:])])
  boxes = boxes.reshape(num_cars, num_views, 4)
  visibility = np.where(
      rng.random(pixels.shape[:-1]) < _OCCLUDED_FRACTION,
      labels.Visibility.OCCLUDED, labels.Visibility.VISIBLE).astype(np.int32)
  box_keypoints = np.asarray(
      boxes_lib.to_box_coordinates(pixels, boxes), np.float32)
  confidence = rng.uniform(size=pixels.shape[:-1] + (1,)).astype(np.float32)
  return {
      'crops': rng.integers(0, 256, (num_cars, num_views, crop_size,
                                     crop_size, 3), dtype=np.uint8),
      'boxes': boxes,
      'keypoints': pixels,
      'visibility': visibility,
      'cameras': cameras,
      'view_mask': np.ones((num_cars, num_views), bool),
      'nodes': np.concatenate([box_keypoints, confidence], -1),
  }


def sized_config(base: ml_collections.ConfigDict, size: str,
                 train_batch: int) -> ml_collections.ConfigDict:
  """The base config with the model of `occnet_jax/configs/<size>.py`.

  Args:
    base: gives the data (views, crop size), losses, optimizer.
    size: a config module name, e.g. 'default', 'paper', 'test'.
    train_batch: cars per training step.

  Returns:
    A validated copy, training in the end-to-end stage from step 0.
  """
  sized = importlib.import_module(f'occnet_jax.configs.{size}').get_config()
  config = ml_collections.ConfigDict(base.to_dict())
  config.model = sized.model
  config.data.batch_size = train_batch
  config.train.heatmap_steps = 0
  config.train.graph_steps = 0
  configs.validate(config, num_devices=1)
  return config


def measure_compiled(compiled: Any, compile_seconds: float,
                     step: Callable[[Any], Any], carry: Any, *, cars: int,
                     views_per_car: int, ceiling: float,
                     settings: Settings,
                     ceiling_call: tuple[Callable[[], Any], float] | None = None,
                     ) -> dict[str, Any]:
  """Times a compiled call; its throughput, FLOP efficiency and memory.

  Args:
    compiled: the compiled executable (for its cost and memory analyses).
    compile_seconds: how long compiling it took.
    step: one call of it, as in `time_calls`.
    carry: the first call's argument, as in `time_calls`.
    cars: cars per call.
    views_per_car: views of each car.
    ceiling: the machine's matmul FLOP/s.
    settings: warm-up, repeats and time budget.
    ceiling_call: (the ceiling's matmul call, its FLOPs), timed before each
      timed call; None skips it.

  Returns:
    `batch_cars`, `views_per_car`, `compile_seconds`, `flops_per_call`,
    `compiled_memory_bytes`, `timed`, `peak_rss_bytes` (so far) and
    `device_memory`; timed calls add `repeats`, `seconds` and
    `cars_per_second` (median, min, max), `views_per_second`,
    `flops_per_second`, `fraction_of_ceiling` and `call_seconds` (each
    timed call); with `ceiling_call` also `ceiling_seconds_beside` (each
    matmul timed beside), `ceiling_beside` (the matmul FLOP/s from their
    median), `fraction_of_ceiling_beside` (the median over the calls of
    each call's FLOP/s over the matmuls' that bracket it) and
    `fraction_of_ceiling_beside_range` ([min, max] of those). Calls not run
    add `cars_per_second_at_ceiling`.
  """
  flops = compiled_flops(compiled)
  record = {
      'batch_cars': cars, 'views_per_car': views_per_car,
      'compile_seconds': compile_seconds, 'flops_per_call': flops,
      'compiled_memory_bytes': compiled_memory(compiled),
  }
  if flops / ceiling * (settings.warmup + 1) > settings.budget_seconds:
    record.update(timed=False,
                  cars_per_second_at_ceiling=cars * ceiling / flops)
  else:
    ceiling_times = []

    def time_ceiling():
      start = time.perf_counter()
      jax.block_until_ready(ceiling_call[0]())
      ceiling_times.append(time.perf_counter() - start)

    times = time_calls(step, carry, warmup=settings.warmup,
                       repeats=settings.repeats,
                       budget_seconds=settings.budget_seconds,
                       before=time_ceiling if ceiling_call else lambda: None)
    seconds = summarize(times)
    achieved = flops / seconds['median']
    record.update(
        timed=True, repeats=len(times), seconds=seconds,
        cars_per_second={'median': cars / seconds['median'],
                         'min': cars / seconds['max'],
                         'max': cars / seconds['min']},
        views_per_second=cars * views_per_car / seconds['median'],
        flops_per_second=achieved, fraction_of_ceiling=achieved / ceiling,
        call_seconds=times)
    if ceiling_call:
      # One matmul more after the last call brackets every call between
      # two; their mean time is the ceiling under the load during the call,
      # which on a shared machine drifts from call to call.
      time_ceiling()
      ratios = beside_ratios(flops, times, ceiling_call[1], ceiling_times)
      record.update(
          ceiling_seconds_beside=ceiling_times,
          ceiling_beside=ceiling_call[1] / float(np.median(ceiling_times)),
          fraction_of_ceiling_beside=float(np.median(ratios)),
          fraction_of_ceiling_beside_range=[float(np.min(ratios)),
                                            float(np.max(ratios))])
  record['peak_rss_bytes'] = peak_rss_bytes()
  record['device_memory'] = device_memory(jax.devices()[0])
  return record


def beside_ratios(flops: float, call_seconds: Sequence[float],
                  ceiling_flops: float,
                  ceiling_seconds: Sequence[float]) -> np.ndarray:
  """Each call's FLOP/s over the ceiling's FLOP/s timed around it.

  Args:
    flops: FLOPs per call.
    call_seconds: the n calls' times.
    ceiling_flops: FLOPs per ceiling matmul.
    ceiling_seconds: the n + 1 matmuls' times, one before each call and one
      after the last.

  Returns:
    (n,) fractions of the ceiling: call i against the mean time of the
    matmuls right before and right after it.
  """
  bracket = (np.asarray(ceiling_seconds[:-1])
             + np.asarray(ceiling_seconds[1:])) / 2
  return (flops / np.asarray(call_seconds)) / (ceiling_flops / bracket)


def _logged(record: dict[str, Any]) -> dict[str, Any]:
  """Logs a measurement as it completes (the whole run takes minutes)."""
  rate = (f"{record['cars_per_second']['median']:.1f} cars/s"
          if record['timed'] else 'not run')
  logging.info('%s %s %s batch %d: %s, compiled in %.1f s', record['size'],
               record['pipeline'], record['mode'], record['batch_cars'], rate,
               record['compile_seconds'])
  return record


def benchmark_size(base: ml_collections.ConfigDict, size: str, *,
                   ceiling: float, settings: Settings,
                   rng: np.random.Generator,
                   ceiling_call: tuple[Callable[[], Any], float] | None = None,
                   ) -> list[dict[str, Any]]:
  """Every measurement of one model size.

  Args:
    base: the base config (data, losses, optimizer).
    size: the config module whose `model` block is measured.
    ceiling: the machine's matmul FLOP/s.
    settings: what to measure.
    rng: the synthetic data's randomness.
    ceiling_call: as in `measure_compiled`.

  Returns:
    One record per (pipeline, mode, batch): `size`, `pipeline`, `mode`,
    the model's widths and those of `measure_compiled`.
  """
  config = sized_config(base, size, settings.train_batch)
  category = categories.get_category(config.category)
  basis = synthetic_shape_basis(rng, category,
                                config.shape_basis.num_components)
  num_views = config.data.num_views
  batch = synthetic_batch(
      rng, category, max(settings.train_batch, *settings.inference_batches),
      num_views, config.data.crop_size)
  mesh = jax.make_mesh((1,), (train.AXIS,), devices=jax.devices()[:1])
  describe = {'size': size, 'hidden': config.model.hidden,
              'heatmap_features': config.model.heatmap_features,
              'heatmap_layers': config.model.heatmap_layers,
              'crop_size': config.data.crop_size}
  measure = functools.partial(measure_compiled, ceiling=ceiling,
                              settings=settings, ceiling_call=ceiling_call)
  measurements = []
  for pipeline in settings.pipelines:
    model = models.from_config(config, basis)
    # The graph stages read the `nodes` field through `KeypointsInNet`.
    inputs = 'crops' if pipeline == 'full' else 'nodes'
    if pipeline == 'graph':
      model = KeypointsInNet(model)
    train_batch = {name: batch[name][:settings.train_batch] for name in (
        'boxes', 'keypoints', 'visibility', 'cameras', 'view_mask')}
    train_batch['crops'] = batch[inputs][:settings.train_batch]
    state, optimizer = train.create_train_state(
        model, functools.partial(train.create_optimizer, config),
        jax.random.key(config.seed),
        {name: values[:1] for name, values in train_batch.items()})

    # Inference first: the train step donates (invalidates) the state.
    variables = {'params': state.params, **state.model_state}
    apply = jax.jit(functools.partial(model.apply, train=False))
    for cars in settings.inference_batches:
      views = (batch[inputs][:cars, 0], batch['boxes'][:cars, 0])
      compiled, seconds = compile_timed(apply, variables, *views)
      measurements.append(_logged(dict(
          describe, pipeline=pipeline, mode='inference',
          **measure(compiled, seconds,
                    lambda _, c=compiled, v=views: c(variables, *v), None,
                    cars=cars, views_per_car=1))))

    step = train.make_train_step(model, optimizer, config, mesh)
    state = train.replicate(state, mesh)
    sharded = train.shard_batch(train_batch, mesh)
    step_rng = train.replicate(jax.random.key(config.seed + 1), mesh)
    compiled, seconds = compile_timed(step, state, sharded, step_rng)
    measurements.append(_logged(dict(
        describe, pipeline=pipeline, mode='train',
        **measure(compiled, seconds,
                  lambda carry, c=compiled: c(carry[0], sharded, step_rng),
                  (state, None), cars=settings.train_batch,
                  views_per_car=num_views))))
  return measurements


def time_input_pipeline(base: ml_collections.ConfigDict, data_dir: str,
                        settings: Settings) -> dict[str, Any]:
  """Cars/s of the training input pipeline alone, to a device-ready batch.

  Args:
    base: gives the dataset, split, views, read threads and seed.
    data_dir: the TFDS data dir (the dataset is built there if missing).
    settings: `train_batch` cars per batch; warm-up, repeats and budget.

  Returns:
    `dataset`, `read_threads`, `batch_cars`, `views_per_car`, `repeats`,
    `seconds` and `cars_per_second` (median, min, max) per batch,
    `views_per_second` and `peak_rss_bytes` (so far).
  """
  config = ml_collections.ConfigDict(base.to_dict())
  config.data.batch_size = settings.train_batch
  builders.register(config.data.name)
  input_pipeline.prepare_dataset(config, data_dir)
  source = input_pipeline.get_source(config, config.data.train_split,
                                     data_dir)
  iterator = input_pipeline.create_train_iterator(
      source, config, config.seed, process_index=0, process_count=1)
  mesh = jax.make_mesh((1,), (train.AXIS,), devices=jax.devices()[:1])
  # The warm-up drains the batches the reader threads prefetched while the
  # iterator started, so the timed calls see the steady state.
  prefetched = 2 * max(config.data.read_threads, 1)
  times = time_calls(
      lambda _: train.shard_batch(next(iterator), mesh), None,
      warmup=settings.warmup + prefetched, repeats=settings.repeats,
      budget_seconds=settings.budget_seconds)
  seconds = summarize(times)
  cars = settings.train_batch
  return {
      'dataset': input_pipeline.dataset_name(config),
      'read_threads': config.data.read_threads, 'batch_cars': cars,
      'views_per_car': config.data.num_views, 'repeats': len(times),
      'seconds': seconds,
      'cars_per_second': {'median': cars / seconds['median'],
                          'min': cars / seconds['max'],
                          'max': cars / seconds['min']},
      'views_per_second': cars * config.data.num_views / seconds['median'],
      'peak_rss_bytes': peak_rss_bytes()}


def run(base: ml_collections.ConfigDict, sizes: Sequence[str],
        settings: Settings = Settings(), data_dir: str = '',
        ) -> dict[str, Any]:
  """Measures the ceiling, then every size; the JSON-ready results.

  Args:
    base: the base config (data, losses, optimizer).
    sizes: config modules whose `model` blocks are measured.
    settings: what to measure.
    data_dir: a TFDS data dir: the input pipeline is timed on the base
      config's dataset there; '' does not time it.

  Returns:
    `machine`, `settings`, `ceiling` (`matmul_ceiling`), `measurements`
    (records of `benchmark_size`), `input_pipeline` (`time_input_pipeline`,
    None without a data dir), `goals` (`speed_table.evaluate_goals`),
    `peak_rss_bytes`, `device_memory`, `wall_seconds` and the load average
    at the end.
  """
  start = time.perf_counter()
  machine = machine_info()
  ceiling = matmul_ceiling(settings.ceiling_size, warmup=settings.warmup,
                           repeats=settings.repeats)
  rng = np.random.default_rng(base.seed)
  ceiling_call = matmul_call(settings.ceiling_size)
  measurements = []
  for size in sizes:
    measurements += benchmark_size(base, size,
                                   ceiling=ceiling['flops_per_second'],
                                   settings=settings, rng=rng,
                                   ceiling_call=ceiling_call)
  pipeline = (time_input_pipeline(base, data_dir, settings) if data_dir
              else None)
  if pipeline:
    logging.info('input pipeline batch %d: %.1f cars/s', pipeline['batch_cars'],
                 pipeline['cars_per_second']['median'])
  return {
      'machine': machine,
      'settings': dataclasses.asdict(settings),
      'ceiling': ceiling,
      'measurements': measurements,
      'input_pipeline': pipeline,
      'goals': speed_table.evaluate_goals(measurements,
                                          ceiling['flops_per_second']),
      'peak_rss_bytes': peak_rss_bytes(),
      'device_memory': device_memory(jax.devices()[0]),
      'wall_seconds': time.perf_counter() - start,
      'load_average_1min_end': os.getloadavg()[0],
  }


def format_table(results: Mapping[str, Any]) -> str:
  """The results as a text table (`speed_table`), followed by the goals."""
  lines = [speed_table.summary(results), '',
           cells.text_table(speed_table.HEADER,
                            [speed_table.row(record)
                             for record in results['measurements']]),
           '', cells.text_table(speed_table.INPUT_HEADER,
                                speed_table.input_rows(results)),
           '', f"peak RSS {cells.mib(results['peak_rss_bytes'])} MiB; "
           f"device memory stats: {results['device_memory']}", '', 'goals:']
  lines += [f"  [{goal['status']}] {goal['name']}: "
            f'{speed_table.goal_measured(goal)}' for goal in results['goals']]
  return '\n'.join(lines)


def run_and_report(base: ml_collections.ConfigDict, sizes: Sequence[str],
                   output: str, settings: Settings = Settings(),
                   data_dir: str = '') -> dict[str, Any]:
  """Runs the benchmark, prints the table and writes the JSON results.

  Args:
    base: the base config (data, losses, optimizer).
    sizes: config modules whose `model` blocks are measured.
    output: path of the JSON file.
    settings: what to measure (`Settings()`, or `QUICK`).
    data_dir: as in `run`.

  Returns:
    The results of `run`.
  """
  results = run(base, sizes, settings, data_dir)
  print(format_table(results))
  directory = os.path.dirname(output)
  if directory:
    os.makedirs(directory, exist_ok=True)
  with open(output, 'w') as file:
    json.dump(results, file, indent=2)
  return results
