"""Tests of reproduction.benchmark: the machinery, never the speed.

One tiny run of the whole benchmark (the `test` model size, batches of a
few cars, a few repeats) is shared by the tests of its JSON output; the
helpers are checked on their own against exact identities.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from occnet_jax import boxes as boxes_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.configs import test as test_config
from reproduction import benchmark
from reproduction import claims
from reproduction import speed_table
import fake_data

SETTINGS = benchmark.Settings(warmup=1, repeats=3, budget_seconds=1.0,
                              train_batch=4, inference_batches=(1, 2),
                              ceiling_size=256)
MEASUREMENT_FIELDS = {
    'size', 'pipeline', 'mode', 'hidden', 'heatmap_features',
    'heatmap_layers', 'crop_size', 'batch_cars', 'views_per_car',
    'compile_seconds', 'flops_per_call', 'compiled_memory_bytes', 'timed',
    'repeats', 'seconds', 'cars_per_second', 'views_per_second',
    'flops_per_second', 'fraction_of_ceiling', 'call_seconds',
    'ceiling_seconds_beside', 'ceiling_beside', 'fraction_of_ceiling_beside',
    'fraction_of_ceiling_beside_range', 'peak_rss_bytes', 'device_memory'}


def _fake_data_config():
  config = test_config.get_config()
  config.data.name, config.data.builder_config = fake_data.NAME, ''
  return config


@pytest.fixture(scope='module')
def results(tmp_path_factory, fake_data_dir):
  output = tmp_path_factory.mktemp('benchmark') / 'nested' / 'bench.json'
  returned = benchmark.run_and_report(_fake_data_config(), ['test'],
                                      str(output), SETTINGS, fake_data_dir)
  with open(output) as file:
    written = json.load(file)
  return returned, written


def test_json_has_every_field(results):
  returned, written = results
  # JSON round trip: only plain types, nothing lost.
  assert json.loads(json.dumps(returned)) == written
  assert set(written) == {
      'machine', 'settings', 'ceiling', 'measurements', 'input_pipeline',
      'goals', 'peak_rss_bytes', 'device_memory', 'wall_seconds',
      'load_average_1min_end'}
  machine = written['machine']
  assert machine['jax_backend'] == jax.default_backend()
  assert machine['cpu_model'] and machine['usable_cpus'] >= 1
  assert machine['benchmark_devices'] == 1
  measured = {(r['pipeline'], r['mode'], r['batch_cars'])
              for r in written['measurements']}
  assert measured == {(pipeline, 'inference', batch)
                      for pipeline in benchmark.PIPELINES
                      for batch in SETTINGS.inference_batches} | {
                          (pipeline, 'train', SETTINGS.train_batch)
                          for pipeline in benchmark.PIPELINES}
  for record in written['measurements']:
    assert set(record) == MEASUREMENT_FIELDS, record['pipeline']
  assert [goal['name'] for goal in written['goals']] == [
      goal.name for goal in claims.SPEED_GOALS]


def test_values_are_sane(results):
  _, written = results
  ceiling = written['ceiling']
  size = ceiling['size']
  assert ceiling['flops'] == 2 * size**3
  assert ceiling['flops_per_second'] == pytest.approx(
      ceiling['flops'] / ceiling['seconds']['median'])
  config = test_config.get_config()
  peak_rss = 0
  for record in written['measurements']:
    assert record['timed'] and 1 <= record['repeats'] <= SETTINGS.repeats
    for stats in (record['seconds'], record['cars_per_second']):
      assert 0 < stats['min'] <= stats['median'] <= stats['max']
    assert record['cars_per_second']['median'] == pytest.approx(
        record['batch_cars'] / record['seconds']['median'])
    assert record['views_per_second'] == pytest.approx(
        record['cars_per_second']['median'] * record['views_per_car'])
    assert record['views_per_car'] == (
        config.data.num_views if record['mode'] == 'train' else 1)
    assert record['flops_per_call'] > 0 and record['compile_seconds'] > 0
    assert record['fraction_of_ceiling'] == pytest.approx(
        record['flops_per_second'] / ceiling['flops_per_second'])
    calls, matmuls = record['call_seconds'], record['ceiling_seconds_beside']
    assert len(calls) == record['repeats'] and len(matmuls) == len(calls) + 1
    assert record['seconds']['median'] == pytest.approx(np.median(calls))
    assert record['ceiling_beside'] == pytest.approx(
        ceiling['flops'] / np.median(matmuls))
    ratios = benchmark.beside_ratios(record['flops_per_call'], calls,
                                     ceiling['flops'], matmuls)
    assert record['fraction_of_ceiling_beside'] == pytest.approx(
        np.median(ratios))
    assert record['fraction_of_ceiling_beside_range'] == pytest.approx(
        [ratios.min(), ratios.max()])
    assert record['hidden'] == config.model.hidden
    assert record['compiled_memory_bytes']['argument'] > 0
    # A high-water mark never goes down.
    assert record['peak_rss_bytes'] >= max(peak_rss, 1)
    peak_rss = record['peak_rss_bytes']
  assert written['peak_rss_bytes'] >= peak_rss


def test_input_pipeline_is_timed_beside_the_steps(results):
  _, written = results
  pipeline = written['input_pipeline']
  config = _fake_data_config()
  assert pipeline['dataset'] == fake_data.NAME
  assert pipeline['batch_cars'] == SETTINGS.train_batch
  assert pipeline['views_per_car'] == config.data.num_views
  assert pipeline['read_threads'] == config.data.read_threads
  assert 1 <= pipeline['repeats'] <= SETTINGS.repeats
  assert pipeline['cars_per_second']['median'] == pytest.approx(
      SETTINGS.train_batch / pipeline['seconds']['median'])
  assert 0 < pipeline['cars_per_second']['min'] <= pipeline[
      'cars_per_second']['max']
  [row] = speed_table.input_rows(written)
  steps = {r['pipeline']: r['cars_per_second']['median']
           for r in written['measurements'] if r['mode'] == 'train'}
  rate = pipeline['cars_per_second']['median']
  assert row[0] == 'test'
  assert row[2:] == [f"{steps['full']:.1f}", f"{steps['graph']:.1f}",
                     f"{rate / steps['full']:.1f}x"]
  # Without a data dir the pipeline is not timed, and the row says so.
  rows = speed_table.input_rows(dict(written, input_pipeline=None))
  assert rows[0][1] == 'not run' and rows[0][-1] == '-'


def test_flops_are_consistent_between_measurements(results):
  _, written = results
  flops = {(r['pipeline'], r['mode'], r['batch_cars']): r['flops_per_call']
           for r in written['measurements']}
  small, large = SETTINGS.inference_batches
  for pipeline in benchmark.PIPELINES:
    # Views are independent: FLOPs grow with the batch.
    assert flops[pipeline, 'inference', large] > flops[
        pipeline, 'inference', small]
    # A train step runs the forward pass on more views, then more.
    train_views = SETTINGS.train_batch * test_config.get_config(
    ).data.num_views
    assert flops[pipeline, 'train', SETTINGS.train_batch] > (
        flops[pipeline, 'inference', small] * train_views)
  # The full pipeline is the heatmap head plus the graph stages.
  for batch in SETTINGS.inference_batches:
    assert flops['full', 'inference', batch] > flops[
        'graph', 'inference', batch]


def test_compiled_flops_count_a_matmul(rng):
  # An inner size of 1 is an outer product, which XLA computes without the
  # additions (rows * columns FLOPs, seed with inner 1 failed).
  rows, columns = rng.integers(1, 64, size=2)
  inner = rng.integers(2, 64)
  compiled = jax.jit(jnp.matmul).lower(
      jnp.zeros((rows, inner)), jnp.zeros((inner, columns))).compile()
  assert benchmark.compiled_flops(compiled) == 2 * rows * inner * columns


def test_time_calls_threads_the_carry(rng):
  warmup, repeats = rng.integers(0, 4), rng.integers(1, 5)
  arguments = []

  def step(carry):
    arguments.append(int(carry))
    return carry + 1

  times = benchmark.time_calls(step, jnp.asarray(0), warmup=warmup,
                               repeats=repeats, budget_seconds=float('inf'),
                               before=lambda: arguments.append(None))
  assert len(times) == repeats and all(t >= 0 for t in times)
  # `before` runs before each timed call, not before the warm-up.
  assert arguments == list(range(warmup)) + [
      value for call in range(warmup, warmup + repeats)
      for value in (None, call)]
  # An exhausted budget still times one call.
  assert len(benchmark.time_calls(step, jnp.asarray(0), warmup=0,
                                  repeats=repeats, budget_seconds=0.0)) == 1


def test_calls_beyond_the_budget_are_not_run(rng):
  size = int(rng.integers(8, 32))
  compiled = jax.jit(jnp.matmul).lower(
      jnp.zeros((size, size)), jnp.zeros((size, size))).compile()
  cars = int(rng.integers(1, 10))

  def step(carry):
    raise AssertionError('A call beyond the budget ran.')

  # At 1 FLOP/s a matmul would take 2 size^3 seconds.
  record = benchmark.measure_compiled(
      compiled, 0.5, step, None, cars=cars, views_per_car=1, ceiling=1.0,
      settings=SETTINGS)
  assert not record['timed'] and 'seconds' not in record
  assert record['cars_per_second_at_ceiling'] == pytest.approx(
      cars / (2 * size**3))


def test_beside_ratios_follow_a_drifting_load(rng):
  # The machine slows down linearly: matmul i takes c (1 + a i), and the
  # call between matmuls i and i + 1 takes t (1 + a (i + 1/2)). Bracketing
  # cancels the drift exactly; the matmul before each call alone would not.
  n = rng.integers(2, 8)
  c, t, drift = rng.uniform(0.1, 1.0, 3)
  flops, ceiling_flops = rng.uniform(1e9, 1e10, 2)
  matmuls = c * (1 + drift * np.arange(n + 1))
  calls = t * (1 + drift * (np.arange(n) + 0.5))
  ratios = benchmark.beside_ratios(flops, calls, ceiling_flops, matmuls)
  np.testing.assert_allclose(ratios, (flops / t) / (ceiling_flops / c),
                             rtol=1e-12)
  before_only = (flops / calls) / (ceiling_flops / matmuls[:-1])
  assert np.all(before_only < ratios)


def _record(size, pipeline, mode, batch, *, rate=None, flops=1e9,
            compile_seconds=1.0, beside=None):
  record = {'size': size, 'pipeline': pipeline, 'mode': mode,
            'batch_cars': batch, 'flops_per_call': flops,
            'compile_seconds': compile_seconds, 'timed': rate is not None}
  if rate is None:
    record['cars_per_second_at_ceiling'] = 1e10 / (flops / batch)
  else:
    record['cars_per_second'] = {'median': rate, 'min': rate, 'max': rate}
    record['fraction_of_ceiling'] = rate * flops / batch / 1e10
    if beside is not None:
      record['fraction_of_ceiling_beside'] = beside
  return record


def test_goals_met_missed_and_not_measured(rng):
  ceiling = 1e10
  met_rate = 200.0 * rng.uniform(1.0, 2.0)
  missed_rate = 70.0 * rng.uniform(0.1, 0.99)
  efficient = rng.uniform(0.6, 1.0)
  slowest_compile = rng.uniform(30.0, 60.0)
  measurements = [
      _record('paper', 'graph', 'inference', 64, rate=met_rate),
      _record('paper', 'graph', 'train', 64, rate=missed_rate,
              compile_seconds=slowest_compile, beside=efficient),
      # Beyond the ceiling: 1e10 FLOP/s / 1e9 FLOP per car = 10 cars/s.
      _record('default', 'full', 'inference', 64, flops=64e9),
      _record('default', 'full', 'train', 64, rate=1.0),
  ]
  goals = speed_table.evaluate_goals(measurements, ceiling)
  assert [goal['quantity'] for goal in goals] == [
      goal.quantity for goal in claims.SPEED_GOALS]
  assert [goal['status'] for goal in goals] == ['met', 'missed', 'met',
                                                'missed', 'missed']
  assert goals[0]['value'] == met_rate
  assert goals[0]['required_fraction_of_ceiling'] == pytest.approx(
      200.0 * 1e9 / 64 / ceiling)
  assert goals[2]['value'] == efficient
  assert 'required_fraction_of_ceiling' not in goals[2]
  assert speed_table.goal_measured(goals[2]).startswith(
      f'{100 * efficient:.1f}%')
  assert goals[3]['value'] is None
  assert goals[4]['value'] == slowest_compile
  # Below 60% of the ceiling beside it, or never timed beside it.
  measurements[1] = _record('paper', 'graph', 'train', 64, rate=missed_rate,
                            beside=rng.uniform(0.0, 0.6))
  assert speed_table.evaluate_goals(measurements, ceiling)[2]['status'] == (
      'missed')
  measurements[1] = _record('paper', 'graph', 'train', 64, rate=missed_rate)
  assert speed_table.evaluate_goals(measurements, ceiling)[2]['status'] == (
      'not measured')
  # Without those measurements nothing is judged.
  assert all(goal['status'] == 'not measured'
             for goal in speed_table.evaluate_goals(measurements[3:], ceiling)
             [:4])
  assert speed_table.evaluate_goals([], ceiling)[4]['status'] == 'not measured'


def test_synthetic_batch_is_consistent(rng):
  category = car_lib.CAR
  cars, views, crop = rng.integers(1, 4), rng.integers(1, 4), 16
  batch = benchmark.synthetic_batch(rng, category, cars, views, crop)
  k = category.num_keypoints
  assert batch['crops'].shape == (cars, views, crop, crop, 3)
  assert batch['cameras'].shape == (cars, views, 3, 4)
  assert batch['view_mask'].all()
  assert set(np.unique(batch['visibility'])) <= {1, 2}
  nodes = batch['nodes']
  assert nodes.shape == (cars, views, k, 3)
  # The nodes are the keypoints in box coordinates, inside the padded box.
  np.testing.assert_allclose(
      boxes_lib.from_box_coordinates(nodes[..., :2], batch['boxes']),
      batch['keypoints'], rtol=1e-5, atol=1e-2)
  assert np.abs(nodes[..., :2]).max() <= 1.0
  assert np.all((nodes[..., 2] >= 0) & (nodes[..., 2] <= 1))
