"""Tests of reproduction.report: RESULTS.md's tables from a fake workdirs tree.

One tree is written per module with random metrics, label curves and
benchmark records (fresh seed); one training run and one label study are
left out. The tests parse the rendered markdown and compare its cells with
the inputs, check the gains, met/missed on both sides of every target's
threshold, and the marker replacement. No jax compilation is involved.
"""

import dataclasses
import json
import os
import re

import numpy as np
import pytest

from occnet_jax import machine
from occnet_jax import workdir as workdir_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.configs import default as default_config
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import multiview
from occnet_jax.evaluation import outputs
from occnet_jax.evaluation import simulated_detector
from reproduction import benchmark
from reproduction import cells
from reproduction import claim_rules
from reproduction import claims
from reproduction import label_study
from reproduction import report
from reproduction import results_blocks
from reproduction import run_inputs
from reproduction import runs
from reproduction import speed_table
from reproduction import tables

MISSING_RUN = 'no_keypoint_type'
# A repeat with another seed left out: its group's mean has one seed fewer.
MISSING_SEED = runs.seed_run_name('demo', runs.EXTRA_SEEDS[-1])
MISSING_LABELS = 'carfusion_synthetic'
MISSING_BOX_ORACLE = 'carfusion_synthetic_default'
# This run evaluates another split, so its metrics are found through its
# config.
VALIDATION_RUN = 'car_render_full_cpu'
ALPHAS = (0.05, 0.1, 0.15, 0.2)
SIGMAS = (0.0, 0.05, 0.1, 0.3)
JITTER_SIGMAS = (0.0, claims.BOX_JITTER_SIGMA, 0.2)
FIGURES = ('pck_vs_alpha.png', 'robustness.png')
# Within 0.05 of the percentage: one decimal, rounded.
ROUNDING = 0.05 + 1e-9
MACHINE = {'cpu_model': 'Test CPU', 'cpu_count': 4, 'usable_cpus': 2,
           'load_average_1min': 1.5, 'platform': 'linux', 'python': '3.11',
           'jax': '0.0', 'jax_backend': 'cpu', 'device_kind': 'cpu',
           'num_devices': 1, 'num_processes': 1}


def random_metrics(rng: np.random.Generator,
                   extra_methods: tuple[str, ...] = ()) -> dict:
  """metrics.json with random values; some occlusion levels empty.

  Args:
    rng: the values.
    extra_methods: methods with PCK and robustness figures besides
      `evaluate.METHODS` (`simulated_detector.METHODS`).
  """
  empty = [level for level in car_lib.CAR.occlusion_levels
           if rng.random() < 0.3]
  if len(empty) == len(car_lib.CAR.occlusion_levels):
    empty = empty[1:]
  metrics = {'num_instances': int(rng.integers(10, 100)), 'num_cars': 5}

  def put(key, value, low=0.0, high=1.0):
    # A figure, and in half the cases an interval around it.
    metrics[key] = value
    if value is not None and rng.random() < 0.5:
      bounds = np.sort(rng.uniform(low, high, 2))
      metrics[metric_keys.interval(key)] = [min(bounds[0], value),
                                            max(bounds[1], value)]

  levels = [f'occluded_{level}' for level in car_lib.CAR.occlusion_levels]
  kinds = list(evaluate.OCCLUSION_KIND_SUBSETS)
  empty_kind = kinds[rng.integers(len(kinds))]
  for method in evaluate.METHODS + extra_methods:
    for subset in ['all', 'visible', 'occluded'] + levels + kinds:
      for alpha in ALPHAS:
        populated = subset != empty_kind and (
            subset not in levels or int(subset.split('_')[1]) not in empty)
        put(metric_keys.pck(method, subset, alpha),
            float(rng.random()) if populated else None)
    for sigma in SIGMAS:
      put(metric_keys.robustness(method, sigma), float(rng.random()))
    if method in evaluate.PERTURBED_METHODS:
      for sigma in JITTER_SIGMAS:
        put(metric_keys.box_jitter(method, sigma), float(rng.random()))
  for level in car_lib.CAR.occlusion_levels:
    # Some levels below tables.FEW_KEYPOINTS, some above.
    metrics[metric_keys.count(f'occluded_{level}')] = (
        0 if level in empty else int(rng.integers(1, 1000)))
  for subset in ['visible'] + kinds:
    metrics[metric_keys.count(subset)] = (
        0 if subset == empty_kind else int(rng.integers(1, 1000)))
  for method in evaluate.OCCLUSION_METHODS:
    put(metric_keys.occlusion_auc(method), float(rng.uniform(0.5, 1.0)),
        0.5, 1.0)
  for method in evaluate.YAW_METHODS:
    put(metric_keys.yaw_error(method, metric_keys.MEDIAN_DEG),
        float(rng.uniform(0, 90)), 0, 90)
    put(metric_keys.yaw_error(method, metric_keys.WITHIN_30DEG),
        float(rng.random()))
  for n in multiview.VIEW_COUNTS:
    metrics[metric_keys.multiview_subsets(n)] = int(rng.integers(1, 100))
    for method in evaluate.MULTIVIEW_METHODS:
      fraction = float(rng.random())
      metrics[metric_keys.multiview(method, n)] = 12 * n * fraction
      metrics[metric_keys.multiview(method, n, fraction=True)] = fraction
  return metrics


def random_record(rng: np.random.Generator, size: str, pipeline: str,
                  mode: str, batch: int, timed: bool) -> dict:
  """A bench.json measurement."""
  record = {'size': size, 'pipeline': pipeline, 'mode': mode,
            'batch_cars': batch, 'views_per_car': 1 if mode == 'inference'
            else 4, 'compile_seconds': float(rng.uniform(0.5, 40)),
            'flops_per_call': float(rng.uniform(1e6, 1e10)),
            'compiled_memory_bytes': {
                name: int(rng.integers(0, 2**30)) for name in (
                    'argument', 'output', 'temp', 'alias')},
            'timed': timed, 'peak_rss_bytes': int(rng.integers(2**20, 2**33)),
            'device_memory': None}
  if timed:
    low, median, high = np.sort(rng.uniform(1, 1000, 3))
    record.update(cars_per_second={'median': median, 'min': low,
                                   'max': high},
                  seconds={'median': batch / median},
                  fraction_of_ceiling=float(rng.random()))
    if rng.random() < 0.5:
      low, median, high = np.sort(rng.random(3))
      record['fraction_of_ceiling_beside'] = float(median)
      if rng.random() < 0.5:  # Benchmarks since calls were bracketed.
        record['fraction_of_ceiling_beside_range'] = [low, high]
  else:
    record['cars_per_second_at_ceiling'] = float(rng.uniform(0, 10))
  return record


def random_detector_metrics(rng: np.random.Generator) -> dict:
  """A metrics.json of `launch.evaluate --simulated_detector`."""
  return random_metrics(rng, simulated_detector.METHODS) | {
      'step': int(rng.integers(1, 5000)),
      'detector_sigma': float(rng.choice([0.01, 0.02, 0.05])),
      'detector_drop_rate': float(rng.choice([0.0, 0.1, 0.25]))}


def write_json(path, value) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as file:
    json.dump(value, file)


@pytest.fixture(scope='module')
def tree(tmp_path_factory, module_seed):
  """Writes the fake workdirs; returns (workdirs, inputs written)."""
  rng = np.random.default_rng(module_seed)
  workdirs = str(tmp_path_factory.mktemp('workdirs'))
  written = {'metrics': {}, 'configs': {}, 'segments': {}, 'labels': {},
             'box_oracle': {}}
  written['simulated_detector'] = random_detector_metrics(rng)
  write_json(run_inputs.simulated_detector_file(workdirs),
             written['simulated_detector'])
  defaults = json.loads(json.dumps(default_config.get_config().to_dict()))
  for run in runs.RUNS:
    if run.name in (MISSING_RUN, MISSING_SEED):
      continue
    workdir = os.path.join(workdirs, run.name)
    config = json.loads(json.dumps(defaults))
    if run.name == 'no_trifocal':
      config['loss']['trifocal'] = 0.0
    if run.seed_of:
      config['seed'] = int(run.name.rsplit('_', 1)[1])
    if run.name == VALIDATION_RUN:
      config['eval']['final_split'] = 'validation'
    if run.tunes:
      config['eval']['final_split'] = runs.eval_split(run)
    for mode, weight in runs.TRIFOCAL_SWEEP:
      if run.name == runs.trifocal_run_name(mode, weight):
        config['loss'].update(trifocal_mode=mode, trifocal=weight)
    for weight in runs.CARFUSION_TRIFOCAL_SWEEP:
      if run.name == runs.trifocal_run_name('algebraic', weight,
                                            'carfusion_synthetic'):
        config['loss']['trifocal'] = weight
    for weight in runs.VISIBLE_SWEEP:
      if run.name == runs.visible_run_name(weight):
        config['loss']['visible'] = weight
    segments = [{'steps': [start, end],
                 'train_seconds': float(rng.uniform(0, 3000)),
                 'eval_seconds': float(rng.uniform(0, 100)),
                 'machine': dict(MACHINE, usable_cpus=int(cpus)),
                 'started': f'2026-{month:02d}-{day:02d}T10:00:00+00:00'}
                for start, end, cpus, month, day in (
                    (0, int(rng.integers(1, 500)), 2, rng.integers(1, 13),
                     rng.integers(1, 29)),
                    (500, 4000, rng.integers(2, 4), 12, 31))]
    metrics = random_metrics(rng)
    write_json(os.path.join(workdir, workdir_lib.CONFIG_FILE), config)
    write_json(os.path.join(workdir, workdir_lib.RUN_FILE),
               {'segments': segments})
    path = outputs.metrics_path(workdir, config['eval']['final_split'])
    write_json(path, metrics)
    for name in FIGURES:
      with open(os.path.join(os.path.dirname(path), name), 'wb') as file:
        file.write(rng.bytes(16))
    written['metrics'][run.name] = metrics
    written['configs'][run.name] = config
    written['segments'][run.name] = segments
  for study in runs.LABEL_STUDIES:
    dataset = study.name
    if dataset == MISSING_LABELS:
      continue
    # A grid without 0.05: the table interpolates there.
    alphas = [float(a) for a in np.round(np.arange(0, 0.31, 0.02), 6)]
    summary = {
        'dataset': dataset, 'split': 'test', 'num_cars': 7,
        'num_points': int(rng.integers(1, 500)),
        'num_occluded': int(rng.integers(500, 900)), 'alphas': alphas,
        'fraction_within': sorted(rng.random(len(alphas)).tolist()),
        'fraction_within_noise_free': sorted(
            rng.random(len(alphas)).tolist()),
        'noise_model': {'sigma_visible': 0.01, 'sigma_occluded': 0.03},
        'target_error': {'num_points': 3, 'median': float(rng.random()),
                         'p90': float(1 + rng.random())}}
    directory = runs.label_directory(workdirs, dataset)
    write_json(os.path.join(directory, label_study.RESULT_FILE), summary)
    with open(os.path.join(directory, label_study.PLOT_FILE), 'wb') as file:
      file.write(rng.bytes(16))
    written['labels'][dataset] = summary
  for study in runs.BOX_ORACLE_STUDIES:
    if study.name == MISSING_BOX_ORACLE:
      continue
    result = {'alpha': 0.1, 'dataset': study.dataset}
    for count in ('num_queries', 'num_database', 'num_occluded',
                  'num_other_occluder'):
      result[count] = int(rng.integers(1, 5000))
    for rule in tables.BOX_RULES:
      result[rule] = {
          subset + scale: float(rng.random())
          for subset in ('occluded', 'other_occluder')
          for scale in ('', '_record_scale')}
    write_json(runs.box_oracle_file(workdirs, study.name), result)
    written['box_oracle'][study.name] = result
  records = [random_record(rng, size, pipeline, mode, batch, timed)
             for size, pipeline, mode, batch, timed in (
                 ('default', 'graph', 'inference', 64, True),
                 ('default', 'full', 'train', 64, True),
                 ('paper', 'full', 'inference', 1, False))]
  ceiling = float(rng.uniform(1e10, 2e11))
  bench = {'machine': dict(MACHINE, benchmark_devices=1),
           'ceiling': {'size': 2048, 'flops_per_second': ceiling},
           'measurements': records,
           'goals': speed_table.evaluate_goals(records, ceiling),
           'wall_seconds': 123.0, 'load_average_1min_end': 2.0}
  write_json(os.path.join(workdirs, runs.BENCH_FILE), bench)
  written['bench'] = bench
  return workdirs, written


@pytest.fixture(scope='module')
def blocks(tree):
  workdirs, _ = tree
  return report.render_blocks(run_inputs.load_inputs(workdirs), 'figs')


def parse_table(markdown: str) -> tuple[list[str], list[list[str]]]:
  """(header, rows) of the markdown table in a block."""
  lines = [line for line in markdown.splitlines() if line.startswith('|')]
  cells = [[cell.strip() for cell in line.strip('|').split('|')]
           for line in lines if not line.startswith('|---')]
  assert all(len(row) == len(cells[0]) for row in cells), markdown
  return cells[0], cells[1:]


def assert_percent(cell: str, value) -> None:
  if value is None:
    assert cell == '-'
  else:
    assert abs(float(cell) - 100 * value) <= ROUNDING, (cell, value)


def split_interval(cell: str) -> tuple[str, list[str]]:
  """'12.3 [10.1, 14.0]' -> ('12.3', ['10.1', '14.0']); no interval: []."""
  value, *interval = cell.replace('[', '').replace(']', '').replace(
      ',', '').split()
  return value, interval


def assert_figure(cell: str, metrics, key, check=None) -> None:
  """A cell holds metrics[key] and its interval where metrics has one."""
  check = check or assert_percent
  value, interval = split_interval(cell)
  check(value, metrics.get(key))
  expected = metrics.get(metric_keys.interval(key))
  if metrics.get(key) is None:
    expected = None
  assert len(interval) == (0 if expected is None else 2), (cell, key)
  for bound, truth in zip(interval, expected or ()):
    check(bound, truth)


def assert_rounded(digits):
  def check(cell, value):
    if value is None:
      assert cell == '-'
    else:
      assert cell == f'{value:.{digits}f}', (cell, value)
  return check


METHOD_KEYS = {v: k for k, v in cells.METHOD_NAMES.items()}


def test_headline_cells_equal_inputs(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['headline'])
  assert header == ['run', 'method', 'all', 'visible', 'occluded',
                    'occlusion AUC']
  seen = []
  for row in rows:
    name = row[0].strip('`')
    if name.startswith('paper'):
      method = {'heatmap': 'heatmap', '2D-KGNN': 'kgnn2d'}[row[1]]
      assert float(row[5]) == claims.PAPER_AUC[method]
      continue
    method = METHOD_KEYS[row[1]]
    metrics = written['metrics'][name]
    for cell, subset in zip(row[2:5], ('all', 'visible', 'occluded')):
      assert_figure(cell, metrics, metric_keys.pck(method, subset, 0.1))
    if method in evaluate.OCCLUSION_METHODS:
      assert_figure(row[5], metrics, metric_keys.occlusion_auc(method),
                    assert_rounded(3))
    else:
      assert row[5] == '-'
    seen.append((name, method))
  assert seen == [(name, method) for name in runs.DATASET_RUNS
                  for method in evaluate.METHODS]


def test_seed_means_and_spreads(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['seeds'])
  assert header[:3] == ['run', 'seeds', 'method']
  assert [(row[0].strip('`'), METHOD_KEYS[row[2]]) for row in rows] == [
      (name, method) for name in runs.DATASET_RUNS
      for method in evaluate.METHODS]
  for row in rows:
    group = runs.SEED_GROUPS[row[0].strip('`')]
    present = [written['metrics'][member] for member in group
               if member in written['metrics']]
    assert row[1] == f'{len(present)} of {len(group)}'
    method = METHOD_KEYS[row[2]]
    keys = [metric_keys.pck(method, subset, 0.1)
            for subset in ('visible', 'occluded')]
    scales = [100, 100]
    if method in evaluate.OCCLUSION_METHODS:
      keys.append(metric_keys.occlusion_auc(method))
      scales.append(1)
    for key, scale, cell in zip(keys, scales, row[3:]):
      values = scale * np.array([m[key] for m in present])
      digits = 1 if scale == 100 else 3
      assert cell == (f'{values.mean():.{digits}f} ± '
                      f'{values.std(ddof=1):.{digits}f} ({len(values)})')
    if method in evaluate.YAW_METHODS:
      yaw = np.array([m[metric_keys.yaw_error(method, metric_keys.MEDIAN_DEG)]
                      for m in present])
      assert row[6] == f'{yaw.mean():.1f} ± {yaw.std(ddof=1):.1f} ({len(yaw)})'
    else:
      assert row[6] == '-'
  assert tables.mean_sd([None, 0.25]) == '25.0 (1 seed)'
  assert tables.mean_sd([None]) == '-'


def test_kind_table_and_yaw(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['kinds'])
  subsets = tables.KIND_SUBSETS
  assert header[2:2 + len(subsets)] == [tables.KIND_NAMES[s] for s in subsets]
  for row in rows:
    name = row[0].strip('`')
    metrics = written['metrics'][name]
    if row[1] == 'keypoints':
      assert row[2:2 + len(subsets)] == [
          str(metrics[metric_keys.count(subset)]) for subset in subsets]
      continue
    method = METHOD_KEYS[row[1]]
    for cell, subset in zip(row[2:], subsets):
      assert_figure(cell, metrics, metric_keys.pck(method, subset, 0.1))
    median, within = row[2 + len(subsets):]
    if method in evaluate.YAW_METHODS:
      assert_figure(median, metrics, metric_keys.yaw_error(
          method, metric_keys.MEDIAN_DEG), assert_rounded(1))
      assert_figure(within, metrics, metric_keys.yaw_error(
          method, metric_keys.WITHIN_30DEG))
    else:
      assert median == within == '-'
  assert len(rows) == len(runs.DATASET_RUNS) * (len(evaluate.METHODS) + 1)
  assert f'{claims.PAPER_TABLE1_YAW_ERROR_DEG:g} degrees' in blocks['kinds']


def test_claims_verdicts_follow_the_intervals(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['claims'])
  assert header[3:] == [f'`{name}`' for name in runs.DATASET_RUNS]
  assert [row[0] for row in rows] == [claim.name for claim in claims.CLAIMS]
  for claim, row in zip(claims.CLAIMS, rows):
    if not claim.check:
      assert row[3:] == [claims.NOT_TESTABLE] * len(runs.DATASET_RUNS)
      continue
    for name, cell in zip(runs.DATASET_RUNS, row[3:]):
      verdict = cell.split('**')[1]
      assert verdict in (claims.REPRODUCED, claims.NOT_REPRODUCED,
                         cells.NOT_MEASURED)
      key = {'occluded_pck': lambda method: metric_keys.pck(
          method, 'occluded', 0.1),
             'box_jitter': lambda method: metric_keys.box_jitter(
                 method, claims.BOX_JITTER_SIGMA)}.get(claim.check)
      if key is None:
        continue
      metrics = written['metrics'][name]
      ours, base = (metrics.get(metric_keys.interval(key(method)))
                    for method in ('kgnn2d', 'heatmap'))
      assert verdict == (
          cells.NOT_MEASURED if ours is None or base is None else
          claims.REPRODUCED if ours[0] > base[1] else claims.NOT_REPRODUCED)


def test_interval_above_both_sides(rng):
  key, base_key = 'pck.kgnn2d.occluded.0.1', 'pck.heatmap.occluded.0.1'
  low = float(rng.uniform(0.1, 0.5))
  eps = float(rng.uniform(1e-4, 0.01))
  metrics = {key: low + 0.1, metric_keys.interval(key): [low, low + 0.2],
             base_key: low - 0.1}
  for gap, expected in ((eps, True), (-eps, False)):
    metrics[metric_keys.interval(base_key)] = [low - 0.2, low - gap]
    assert claim_rules.interval_above(metrics, key, base_key,
                                 cells.percent_interval)[1] is expected
  del metrics[metric_keys.interval(base_key)]
  measured, above = claim_rules.interval_above(metrics, key, base_key,
                                          cells.percent_interval)
  assert above is None and measured.endswith('(no intervals)')


def test_box_jitter_claim_reads_its_sigma_only(rng):
  sigma = claims.BOX_JITTER_SIGMA
  other = float(rng.uniform(0.1, 0.3))
  low = float(rng.uniform(0.2, 0.5))
  metrics = {}
  for method, bounds in (('kgnn2d', [low + 0.05, low + 0.1]),
                         ('heatmap', [low - 0.1, low])):
    key = metric_keys.box_jitter(method, sigma)
    metrics[key], metrics[metric_keys.interval(key)] = np.mean(bounds), bounds
  # Another level, the other way round, changes nothing.
  for method, bounds in (('heatmap', [0.8, 0.9]), ('kgnn2d', [0.1, 0.2])):
    key = metric_keys.box_jitter(method, other)
    metrics[key], metrics[metric_keys.interval(key)] = np.mean(bounds), bounds
  measured, above = claim_rules.box_jitter_claim(metrics)
  assert above is True and measured.startswith(f'σ {sigma:g}:')
  swapped = {key.replace('kgnn2d', 'tmp').replace('heatmap', 'kgnn2d')
             .replace('tmp', 'heatmap'): value
             for key, value in metrics.items()}
  assert claim_rules.box_jitter_claim(swapped)[1] is False
  assert claim_rules.box_jitter_claim({})[1] is None


def test_multiview_claim_needs_every_view_count(rng):
  metrics = {}
  for n in multiview.VIEW_COUNTS:
    metrics[metric_keys.multiview_subsets(n)] = 3
    base = float(rng.uniform(1, 10))
    for method, extra in (('kgnn3d', 1.0), ('kgnn2d', 0.5), ('heatmap', 0)):
      metrics[metric_keys.multiview(method, n)] = base + extra
  assert claim_rules.multiview_claim(metrics)[1] is True
  last = multiview.VIEW_COUNTS[-1]
  metrics[metric_keys.multiview('heatmap', last)] += 2
  assert claim_rules.multiview_claim(metrics)[1] is False


def test_tuning_cells_and_the_best(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['tuning'])
  assert header[:3] == ['run', 'tunes', 'setting']
  assert [row[0].strip('`') for row in rows] == list(runs.TUNING_RUNS)
  best = {}
  for row in rows:
    name = row[0].strip('`')
    run = runs.RUNS_BY_NAME[name]
    assert row[1] == f'`{run.tunes}`'
    # Only what the tuning run changes in the run it tunes.
    assert row[2] == ', '.join(
        f'`{flag.removeprefix("--config.")}`'
        for flag in run.overrides
        if flag not in runs.RUNS_BY_NAME[run.tunes].overrides)
    metrics = written['metrics'][name]
    for cell, (method, subset) in zip(row[3:7], (
        ('kgnn2d', 'occluded'), ('kgnn2d', 'visible'), ('kgnn2d', 'all'),
        ('kgnn3d', 'occluded'))):
      assert_figure(cell, metrics, metric_keys.pck(method, subset, 0.1))
    assert_figure(row[7], metrics, metric_keys.occlusion_auc('kgnn2d'),
                  assert_rounded(3))
    for subset in ('occluded', 'all'):
      best.setdefault(run.tunes, {}).setdefault(subset, {})[name] = metrics[
          metric_keys.pck('kgnn2d', subset, 0.1)]
  # Each tuned run's best, among its own tuning runs only.
  assert set(best) == {'demo', 'carfusion_synthetic'}
  for tuned, group in best.items():
    top = {subset: max(values, key=values.get)
           for subset, values in group.items()}
    assert (f'tuning `{tuned}`: on occluded keypoints `{top["occluded"]}`, '
            f'on all keypoints `{top["all"]}`.') in blocks['tuning']


def test_level_tables_and_gains(tree, blocks):
  _, written = tree
  for name in runs.DATASET_RUNS:
    metrics = written['metrics'][name]
    header, rows = parse_table(blocks[f'levels_{name}'])
    assert [int(row[0].rstrip(tables.FEW_MARK)) for row in rows] == list(
        car_lib.CAR.occlusion_levels)
    gains = claim_rules.level_gains(metrics)
    # Both alphas of every method, then gain, paper gain and count.
    num_pck = 2 * len(evaluate.METHODS)
    for row in rows:
      level = int(row[0].rstrip(tables.FEW_MARK))
      subset = f'occluded_{level}'
      count = metrics[metric_keys.count(subset)]
      assert row[0].endswith(tables.FEW_MARK) == (
          0 < count < tables.FEW_KEYPOINTS)
      gain, paper_gain, count = row[1 + num_pck:]
      for cell, column in zip(row[1:1 + num_pck], header[1:1 + num_pck]):
        method = {v: k for k, v in cells.METHOD_NAMES.items()}[
            column.split(' @')[0]]
        alpha = float(column.split('@')[1])
        assert_percent(cell, metrics[metric_keys.pck(method, subset,
                                                     alpha)])
      ours = metrics[metric_keys.pck('kgnn2d', subset, 0.1)]
      base = metrics[metric_keys.pck('heatmap', subset, 0.1)]
      if ours is None:
        assert gain == '-' and level not in gains
      else:
        assert gains[level] == ours - base
        assert abs(float(gain) - 100 * (ours - base)) <= ROUNDING
      paper = runs.RUNS_BY_NAME[name].paper
      expected = {('car_render', 3): '+22', ('car_render', 9): '+10',
                  ('carfusion', 4): 'about +25',
                  ('carfusion', 5): 'about +12'}.get(
                      (paper, level), '>= +6' if paper == 'carfusion' else '-')
      assert paper_gain == expected
      assert int(count) == metrics[metric_keys.count(subset)]


def test_missing_run_gives_not_run_rows(tree):
  workdirs, _ = tree
  results = run_inputs.load_run(workdirs, runs.RUNS_BY_NAME[MISSING_RUN])
  assert results.metrics is None and results.config is None
  _, rows = parse_table(tables.render_levels(results))
  assert rows == [['not run'] + ['-'] * (2 * len(evaluate.METHODS) + 3)]


def test_robustness_cells(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['robustness'])
  assert header[2:] == [f'σ {sigma:g}' for sigma in SIGMAS]
  assert len(rows) == len(evaluate.PERTURBED_METHODS) * len(
      runs.DATASET_RUNS)
  for row in rows:
    metrics = written['metrics'][row[0].strip('`')]
    method = {v: k for k, v in cells.METHOD_NAMES.items()}[row[1]]
    for cell, sigma in zip(row[2:], SIGMAS):
      assert_percent(cell, metrics[metric_keys.robustness(method, sigma)])


def test_ablation_cells(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['ablations'])
  available = [written['metrics'][name] for name in runs.ABLATION_RUNS
               if name != MISSING_RUN]
  levels = [level for level in car_lib.CAR.occlusion_levels
            if any(m[metric_keys.pck('kgnn2d', f'occluded_{level}', 0.1)]
                   is not None for m in available)]
  assert header[8:] == [f'2D-KGNN occluded, {level} invisible'
                        for level in levels]
  assert [row[0].strip('`') for row in rows] == list(runs.ABLATION_RUNS)
  for row in rows:
    name = row[0].strip('`')
    if name == MISSING_RUN:
      assert row[2] == cells.NOT_RUN
      continue
    metrics = written['metrics'][name]
    expected = [metrics[metric_keys.pck('heatmap', 'occluded', 0.1)]] + [
        metrics[metric_keys.pck(method, subset, 0.1)]
        for method in ('kgnn2d', 'kgnn3d')
        for subset in ('visible', 'occluded')]
    expected += [None] + [
        metrics[metric_keys.pck('kgnn2d', f'occluded_{level}', 0.1)]
        for level in levels]
    for index, (cell, value) in enumerate(zip(row[2:], expected)):
      if index == 5:
        assert cell == f'{metrics[metric_keys.occlusion_auc("kgnn2d")]:.3f}'
      else:
        assert_percent(cell, value)
  assert 'figs/ablations.png' in blocks['ablations']


def test_multiview_cells(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['multiview'])
  assert header[2:] == [f'{n} views' for n in multiview.VIEW_COUNTS]
  for row in rows:
    metrics = written['metrics'][row[0].strip('`')]
    if row[1] == 'subsets':
      assert row[2:] == [str(metrics[metric_keys.multiview_subsets(n)])
                         for n in multiview.VIEW_COUNTS]
      continue
    method = {v: k for k, v in cells.METHOD_NAMES.items()}[row[1]]
    for cell, n in zip(row[2:], multiview.VIEW_COUNTS):
      count, fraction = cell.rstrip('%)').split(' (')
      assert abs(float(count) - metrics[metric_keys.multiview(method, n)]
                 ) <= 0.05 + 1e-9
      assert_percent(fraction, metrics[metric_keys.multiview(
          method, n, fraction=True)])


def test_fraction_at_interpolates_the_curve(rng):
  alphas = np.sort(rng.uniform(0, 0.3, 8)).tolist() + [0.3]
  slope, offset = rng.uniform(0.5, 3), rng.uniform(0, 0.1)
  summary = {'alphas': [0.0] + alphas,
             'curve': [offset + slope * a for a in [0.0] + alphas]}
  for alpha in rng.uniform(0, 0.3, 5).tolist() + alphas:
    assert tables.fraction_at(summary, 'curve', alpha) == pytest.approx(
        offset + slope * alpha)
  # A study without points has null curves.
  summary['curve'] = [None] * len(summary['alphas'])
  assert tables.fraction_at(summary, 'curve', 0.1) is None


def test_trifocal_label_cells(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['trifocal_labels'])
  assert len(header) == 4 + 2 * len(tables.LABEL_ALPHAS) + len(
      tables.TARGET_ERROR_STATISTICS)
  names = {study.name: study.label for study in runs.LABEL_STUDIES}
  summary = written['labels']['car_render_full']
  by_dataset = {row[0]: row for row in rows}
  row = by_dataset[f'{names["car_render_full"]} (`car_render_full`)']
  assert row[1:4] == ['test', str(summary['num_occluded']),
                      str(summary['num_points'])]
  for index, key in enumerate(('fraction_within_noise_free',
                               'fraction_within')):
    row_cells = row[4 + index * 3:7 + index * 3]
    for cell, alpha in zip(row_cells, tables.LABEL_ALPHAS):
      grid = np.array(summary['alphas'])
      assert_percent(cell, np.interp(alpha, grid, summary[key]))
  # The target error is in % of L already.
  assert row[-2:] == [f'{summary["target_error"][statistic]:.1f}'
                      for statistic in ('median', 'p90')]
  assert by_dataset[names[MISSING_LABELS]][1] == cells.NOT_RUN
  assert by_dataset['CarFusion (paper, human labels)'][8] == '~90'
  assert 'figs/trifocal_labels_car_render_full.png' in blocks[
      'trifocal_labels']


def test_box_oracle_cells(tree, blocks):
  _, written = tree
  header, rows = parse_table(blocks['box_oracle'])
  assert len(header) == 6
  expected = []
  for study in runs.BOX_ORACLE_STUDIES:
    if study.name == MISSING_BOX_ORACLE:
      expected.append([study.label, cells.NOT_RUN] + ['-'] * 4)
      continue
    result = written['box_oracle'][study.name]
    for index, rule in enumerate(tables.BOX_RULES):
      expected.append([study.label if index == 0 else '',
                       tables.BOX_RULES[rule]] + [
                           f'{100 * result[rule][key]:.1f}' for key in (
                               'occluded', 'other_occluder',
                               'occluded_record_scale',
                               'other_occluder_record_scale')])
    assert f'{result["num_queries"]} test views' in blocks['box_oracle']
  assert rows == expected


def test_simulated_detector_cells(tree, blocks):
  _, written = tree
  metrics = written['simulated_detector']
  block = blocks['simulated_detector']
  header, rows = parse_table(block)
  assert header == ['keypoints from', 'method', 'all', 'visible', 'occluded']
  fed = 'the keypoints fed'
  expected = [('heatmap head', 'heatmap', fed), ('', 'kgnn2d', '2D-KGNN'),
              ('', 'kgnn3d', '3D-KGNN'),
              ('simulated detector', simulated_detector.DETECTOR, fed),
              ('', 'detector_kgnn2d', '2D-KGNN'),
              ('', 'detector_kgnn3d', '3D-KGNN')]
  assert [row[:2] for row in rows] == [[source, name]
                                       for source, _, name in expected]
  for row, (_, method, _) in zip(rows, expected):
    for cell, subset in zip(row[2:], ('all', 'visible', 'occluded')):
      assert_figure(cell, metrics, metric_keys.pck(method, subset, 0.1))
  for fact in (f'`{runs.SIMULATED_DETECTOR_RUN}` (step {metrics["step"]})',
               f'{metrics["num_cars"]} cars',
               f'sigma {metrics["detector_sigma"]:g} L',
               f'drops {100 * metrics["detector_drop_rate"]:.1f}%'):
    assert fact in block


def test_simulated_detector_not_run(tree):
  workdirs, _ = tree
  inputs = dataclasses.replace(run_inputs.load_inputs(workdirs),
                               simulated_detector=None)
  _, rows = parse_table(tables.render_simulated_detector(inputs))
  assert rows == [[f'`{runs.SIMULATED_DETECTOR_RUN}`', cells.NOT_RUN]
                  + ['-'] * 3]


def test_simulated_detector_block_from_its_committed_copy_alone(tmp_path,
                                                                 rng):
  # An empty workdirs tree: only docs/results/'s copy (the layout
  # `launch.report --blocks=simulated_detector` reads) is there.
  workdirs, committed = tmp_path / 'workdirs', tmp_path / 'committed'
  workdirs.mkdir()
  metrics = random_detector_metrics(rng)
  write_json(str(committed / run_inputs.SIMULATED_DETECTOR_COPY), metrics)
  assert run_inputs.study_files(str(workdirs), str(committed))[
      'simulated_detector'] == (
          run_inputs.simulated_detector_file(str(workdirs)),
          str(committed / run_inputs.SIMULATED_DETECTOR_COPY))
  results = tmp_path / 'RESULTS.md'
  names = list(report.render_blocks(run_inputs.load_inputs(str(workdirs)),
                                    'x'))
  before = document(names, rng)
  results.write_text(before)
  assert report.write_report(str(workdirs), str(results), str(committed),
                             only=['simulated_detector']) == [
                                 'simulated_detector']
  old, new = (results_blocks.current_blocks(text)
              for text in (before, results.read_text()))
  assert [name for name in names if old[name] != new[name]] == [
      'simulated_detector']
  _, rows = parse_table(new['simulated_detector'])
  key = metric_keys.pck('detector_kgnn2d', 'occluded', 0.1)
  assert rows[4][1] == '2D-KGNN'
  assert_figure(rows[4][4], metrics, key)


def speed_tables(block: str) -> list[tuple[list[str], list[list[str]]]]:
  """The speed block's tables: the measurements, then the input pipeline."""
  return [parse_table(table) for table in block.split('\n\n')
          if table.startswith('|')]


def test_speed_cells(tree, blocks):
  _, written = tree
  bench = written['bench']
  (header, rows), input_table = speed_tables(blocks['speed'])
  # A bench.json without the input pipeline says so beside every size.
  assert input_table == (list(speed_table.INPUT_HEADER),
                         speed_table.input_rows(bench))
  assert {row[1] for row in input_table[1]} == {'not run'}
  assert header == list(speed_table.HEADER)
  assert len(rows) == len(bench['measurements'])
  for row, record in zip(rows, bench['measurements']):
    cell = dict(zip(header, row))
    assert row[:3] == [record['size'], record['pipeline'], record['mode']]
    assert cell['batch (cars x views)'] == (f'{record["batch_cars"]} x '
                                            f'{record["views_per_car"]}')
    speed = cell['cars/s median (min-max)']
    if record['timed']:
      rate = record['cars_per_second']
      median, low, high = (float(x) for x in speed.replace(
          ' (', '-').rstrip(')').split('-'))
      for value, expected in ((median, rate['median']), (low, rate['min']),
                              (high, rate['max'])):
        assert abs(value - expected) <= ROUNDING
      assert abs(float(cell['ms/call']) * 1e-3 * rate['median']
                 - record['batch_cars']) <= 1e-3 * rate['median']
      assert_percent(cell['% of ceiling'], record['fraction_of_ceiling'])
      if 'fraction_of_ceiling_beside_range' in record:
        median, low, high = cell['% of ceiling timed beside'].replace(
            ' (', '-').rstrip(')').split('-')
        assert_percent(median, record['fraction_of_ceiling_beside'])
        for value, expected in zip(
            (low, high), record['fraction_of_ceiling_beside_range']):
          assert_percent(value, expected)
      elif 'fraction_of_ceiling_beside' in record:
        assert_percent(cell['% of ceiling timed beside'],
                       record['fraction_of_ceiling_beside'])
      else:
        assert cell['% of ceiling timed beside'] == cells.EMPTY
    else:
      assert speed.startswith('<=') and 'not run' in speed
    assert (abs(float(cell['GFLOP/call']) - record['flops_per_call'] / 1e9)
            <= 5e-4)
    assert abs(float(cell['compile s'])
               - record['compile_seconds']) <= ROUNDING
    assert abs(float(cell['peak memory MiB'])
               - record['peak_rss_bytes'] / 2**20) <= 0.5
  assert machine.describe(bench['machine']) in blocks['speed']
  gflops = bench['ceiling']['flops_per_second'] / 1e9
  assert f'{gflops:.1f} GFLOP/s' in blocks['speed']


def test_benchmark_prints_the_report_s_speed_table(tree, blocks):
  _, written = tree
  bench = dict(written['bench'], peak_rss_bytes=2**30, device_memory=None)
  printed = benchmark.format_table(bench)
  _, rows = speed_tables(blocks['speed'])[0]
  lines = printed.splitlines()
  start = next(index for index, line in enumerate(lines)
               if line.startswith('size '))
  assert [re.split(r'\s{2,}', line) for line in
          lines[start + 1:start + 1 + len(rows)]] == rows
  assert speed_table.summary(bench) in printed
  for goal in bench['goals']:
    assert (f"[{goal['status']}] {goal['name']}: "
            f'{speed_table.goal_measured(goal)}') in printed


def test_runs_table(tree, blocks):
  _, written = tree
  default_loss = default_config.get_config().loss
  _, rows = parse_table(blocks['runs'])
  assert [row[0].strip('`') for row in rows] == [r.name for r in runs.RUNS]
  for row in rows:
    name = row[0].strip('`')
    if name in (MISSING_RUN, MISSING_SEED):
      assert row[3] == cells.NOT_RUN
      continue
    segments = written['segments'][name]
    assert row[4] == f'{segments[-1]["steps"][1]} (2 invocations)'
    assert row[5] == cells.duration(sum(s['train_seconds']
                                         for s in segments))
    assert row[6] == cells.duration(sum(s['eval_seconds']
                                         for s in segments))
    assert row[7] == '; '.join(sorted({machine.describe(s['machine'])
                                       for s in segments}))
    assert row[8] == segments[0]['started'][:10]
    expected = {'no_trifocal': '`loss.trifocal=0.0`',
                VALIDATION_RUN: '`eval.final_split=validation`'}.get(
                    name, 'none')
    if runs.RUNS_BY_NAME[name].seed_of:
      expected = f'`seed={written["configs"][name]["seed"]}`'
    if runs.RUNS_BY_NAME[name].tunes:
      loss, defaults = written['configs'][name]['loss'], default_loss
      split = written['configs'][name]['eval']['final_split']
      expected = ', '.join(
          [f'`eval.final_split={split}`'] +
          [f'`loss.{key}={loss[key]}`'
           for key in ('trifocal', 'trifocal_mode', 'visible')
           if loss[key] != defaults[key]])
    assert row[3] == expected


@pytest.mark.parametrize('seconds, text', [
    (0, '0 s'), (59.4, '59 s'), (500, '8 min 20 s'), (3900, '1 h 05 min')])
def test_duration(seconds, text):
  assert cells.duration(seconds) == text


def test_targets_table(tree, blocks):
  _, written = tree
  _, rows = parse_table(blocks['targets'])
  expected = [[target, f'`{name}`', *check(written['metrics'][name])]
              for target, check in claim_rules.RUN_TARGETS
              for name in runs.DATASET_RUNS]
  expected += [[goal['name'], 'benchmark', goal['status']]
               for goal in written['bench']['goals']]
  assert [row for row in rows if row[1] != 'benchmark'] == expected[
      :len(claim_rules.RUN_TARGETS) * len(runs.DATASET_RUNS)]
  assert [[row[0], row[1], row[3]] for row in rows
          if row[1] == 'benchmark'] == expected[len(claim_rules.RUN_TARGETS)
                                                * len(runs.DATASET_RUNS):]


def metrics_with(**values) -> dict:
  """metrics.json holding only the given PCK@0.1/AUC/robustness values."""
  metrics = {}
  for name, value in values.items():
    if name.startswith('auc_'):
      metrics[metric_keys.occlusion_auc(name[4:])] = value
    elif name.startswith('noise_'):
      method, sigma = name[6:].split('_')
      metrics[metric_keys.robustness(method, float(sigma))] = value
    else:
      method, subset = name.split('_', 1)
      metrics[metric_keys.pck(method, subset.replace('level', 'occluded_'),
                              0.1)] = value
  return metrics


def test_auc_target_both_sides(rng):
  eps = float(rng.uniform(1e-4, 0.02))
  base = float(rng.uniform(0.5, 0.85))
  check = lambda ours, base: claim_rules.auc_target(
      metrics_with(auc_kgnn2d=ours, auc_heatmap=base))[1]
  assert check(0.95 + eps, base) == 'met'
  assert check(0.95 - eps, base) == 'missed'
  high = float(rng.uniform(0.91, 0.94))
  assert check(high + 0.05 + eps, high) == 'met'
  assert check(high + 0.05 - eps, high) == 'missed'
  assert check(None, base) == cells.NOT_MEASURED
  assert claim_rules.auc_target(None) == ('-', cells.NOT_RUN)


def test_level_target_both_sides(rng):
  levels = sorted(rng.choice(car_lib.CAR.occlusion_levels, 3, replace=False))
  base = rng.uniform(0, 0.5, len(levels))
  gains = rng.uniform(0.1 + 1e-4, 0.4, len(levels))

  def check(gains):
    values = {}
    for level, b, g in zip(levels, base, gains):
      values[f'heatmap_level{level}'] = float(b)
      values[f'kgnn2d_level{level}'] = float(b + g)
    return claim_rules.level_target(metrics_with(**values))

  assert check(gains)[1] == 'met'
  short = gains.copy()
  short[rng.integers(len(levels))] = 0.1 - float(rng.uniform(1e-4, 0.05))
  assert check(short)[1] == 'missed'
  assert check([])[1] == cells.NOT_MEASURED
  measured = check(gains)[0]
  assert measured == ', '.join(f'{100 * g:+.1f} ({level})'
                               for level, g in zip(levels, gains))


def test_visible_target_both_sides(rng):
  eps = float(rng.uniform(1e-4, 0.005))
  base = float(rng.uniform(0.2, 0.9))
  check = lambda ours: claim_rules.visible_target(
      metrics_with(kgnn2d_visible=ours, heatmap_visible=base))[1]
  assert check(base - 0.01 + eps) == 'met'
  assert check(base - 0.01 - eps) == 'missed'
  assert check(base + eps) == 'met'


def test_robustness_target_both_sides(rng):
  start2, start3 = rng.uniform(0.5, 0.9, 2)
  small, large = np.sort(rng.uniform(0.05, 0.4, 2))

  def check(loss3, loss2):
    return claim_rules.robustness_target(metrics_with(**{
        'noise_kgnn2d_0.0': start2, 'noise_kgnn2d_0.3': start2 - loss2,
        'noise_kgnn2d_0.1': 0.0, 'noise_kgnn3d_0.1': 0.0,
        'noise_kgnn3d_0.0': start3, 'noise_kgnn3d_0.3': start3 - loss3}))

  assert check(small, large)[1] == 'met'
  assert check(large, small)[1] == 'missed'
  assert 'σ 0 to 0.3' in check(small, large)[0]


def test_shape_fit_target_beats_the_stronger_fit(rng):
  ours, weak, strong = 0.6, 0.2, float(rng.uniform(0.3, 0.5))
  gap = float(rng.uniform(0.01, 0.05))

  def metrics_of(fits):
    metrics = {}
    for method, value in dict(kgnn2d=ours, **fits).items():
      key = metric_keys.pck(method, 'occluded', 0.1)
      metrics[key], metrics[metric_keys.interval(key)] = value, [
          value - gap, value + gap]
    return metrics

  for stronger in evaluate.SHAPE_FIT_METHODS:
    fits = {method: strong if method == stronger else weak
            for method in evaluate.SHAPE_FIT_METHODS}
    assert claim_rules.stronger_shape_fit(metrics_of(fits),
                                          'occluded') == stronger
    measured, status = claim_rules.shape_fit_target(metrics_of(fits))
    assert status == 'met'
    assert measured.endswith(f'({cells.METHOD_NAMES[stronger]})')
    # The weaker fit lies below, the stronger one's interval now overlaps.
    fits[stronger] = ours - gap
    assert claim_rules.shape_fit_target(metrics_of(fits))[1] == 'missed'
  only = {evaluate.SHAPE_FIT_METHODS[0]: weak}
  assert claim_rules.stronger_shape_fit(metrics_of(only), 'occluded') == (
      evaluate.SHAPE_FIT_METHODS[0])
  assert claim_rules.shape_fit_target({}) == ('-', cells.NOT_MEASURED)
  assert claim_rules.shape_fit_target(None) == ('-', cells.NOT_RUN)


def test_benchmark_goals_without_goal_fields(rng):
  eps = float(rng.uniform(0.1, 5))
  ceiling = float(rng.uniform(1e10, 1e11))

  def goals(rate, compile_seconds):
    record = random_record(rng, 'paper', 'graph', 'inference', 64, True)
    record['cars_per_second']['median'] = rate
    record['compile_seconds'] = compile_seconds
    train_record = random_record(rng, 'default', 'full', 'train', 64, True)
    train_record['compile_seconds'] = compile_seconds
    bench = {'measurements': [record, train_record],
             'ceiling': {'flops_per_second': ceiling}}
    statuses = {goal['name']: goal['status']
                for goal in speed_table.bench_goals(bench)}
    return (statuses[claims.SPEED_GOALS[0].name],
            statuses[claims.SPEED_GOALS[-1].name])

  assert goals(200 + eps, 30 - eps) == ('met', 'met')
  assert goals(200 - eps, 30 + eps) == ('missed', 'missed')
  # Goals already in bench.json are used as they are.
  given = [{'name': 'x', 'status': 'met', 'value': 1.0, 'target': 2.0}]
  assert speed_table.bench_goals({'goals': given, 'measurements': []}) == given


def document(names, rng) -> str:
  parts = ['# Title\n\nProse with numbers 1.0 and a | pipe.\n']
  for name in names:
    parts.append(f'## {name}\n\n<!-- report:{name} -->\nold {rng.random()}\n'
                 f'<!-- /report:{name} -->\n\nMore prose {rng.random()}.\n')
  return '\n'.join(parts)


def test_replace_blocks_only_touches_blocks(rng):
  names = [f'block{i}' for i in range(4)]
  text = document(names, rng)
  blocks = {name: f'| a |\n|---|\n| {rng.random()} |' for name in names}
  new, updated = results_blocks.replace_blocks(text, blocks)
  assert updated == names
  again, updated_again = results_blocks.replace_blocks(new, blocks)
  assert again == new and updated_again == []
  outside = lambda t: re.sub(r'<!-- report:(\S+) -->.*?<!-- /report:\1 -->',
                             r'<\1>', t, flags=re.DOTALL)
  assert outside(new) == outside(text)
  assert outside(text).count('<block') == len(names)
  for name, content in blocks.items():
    assert (f'<!-- report:{name} -->\n{content}\n<!-- /report:{name} -->'
            in new)
  changed = dict(blocks, block2='new content')
  _, updated = results_blocks.replace_blocks(new, changed)
  assert updated == ['block2']


def test_replace_blocks_errors_name_the_marker(rng):
  text = document(['known', 'stray'], rng)
  with pytest.raises(ValueError, match='stray'):
    results_blocks.replace_blocks(text, {'known': 'x'})
  with pytest.raises(ValueError, match='absent'):
    results_blocks.replace_blocks(text, {'known': 'x', 'stray': 'y',
                                         'absent': 'z'})
  unclosed = text.replace('<!-- /report:stray -->', '')
  with pytest.raises(ValueError, match='stray'):
    results_blocks.replace_blocks(unclosed, {'known': 'x', 'stray': 'y'})


def test_write_report(tree, tmp_path, rng):
  workdirs, written = tree
  names = list(report.render_blocks(run_inputs.load_inputs(workdirs), 'x'))
  results = tmp_path / 'RESULTS.md'
  key = metric_keys.pck('kgnn2d', 'visible', 0.1)
  results.write_text(document(names, rng) + (
      f'\nQuoted: <!-- value:demo:{key} -->stale<!-- /value -->.\n'))
  figures = tmp_path / 'docs' / 'results'
  updated = report.write_report(workdirs, str(results), str(figures))
  assert updated == names + [report.VALUES]
  text = results.read_text()
  assert (f'<!-- value:demo:{key} -->'
          f'{100 * written["metrics"]["demo"][key]:.1f}<!-- /value -->') in text
  assert report.write_report(workdirs, str(results), str(figures)) == []
  assert results.read_text() == text
  for name, metrics in written['metrics'].items():
    with open(figures / name / 'metrics.json') as file:
      assert json.load(file) == metrics
    for figure in FIGURES:
      # Tuning runs and seed repeats keep their numbers, not their figures.
      assert (figures / name / figure).exists() == (name in runs.FIGURE_RUNS)
  assert not (figures / MISSING_RUN).exists()
  assert (figures / 'trifocal_labels_car_render_full.png').exists()
  assert (figures / 'trifocal_labels_car_render_full.json').exists()
  assert not (figures / f'trifocal_labels_{MISSING_LABELS}.png').exists()
  for study, result in written['box_oracle'].items():
    with open(figures / f'box_oracle_{study}.json') as file:
      assert json.load(file) == result
  assert not (figures / f'box_oracle_{MISSING_BOX_ORACLE}.json').exists()
  with open(figures / run_inputs.SIMULATED_DETECTOR_COPY) as file:
    assert json.load(file) == written['simulated_detector']
  assert (figures / tables.ABLATIONS_FIGURE).stat().st_size > 1000
  with open(figures / 'bench.json') as file:
    assert json.load(file) == written['bench']
  # Links are relative to RESULTS.md.
  assert '(docs/results/demo/pck_vs_alpha.png)' in text


def test_committed_copies_stand_in_for_missing_inputs(tree, tmp_path, rng):
  workdirs, written = tree
  committed = tmp_path / 'committed'
  # The committed copies of a run, a label study and a box oracle that the
  # tree lacks, as an earlier `write_report` would have left them.
  metrics = random_metrics(rng)
  config = json.loads(json.dumps(written['configs']['demo']))
  segments = written['segments']['demo']
  write_json(str(committed / MISSING_RUN / 'metrics.json'), metrics)
  # Committed before the splits were renamed: the old keys are read as the
  # new ones.
  old_config = json.loads(json.dumps(config))
  old_config['eval']['split'] = old_config['eval'].pop('final_split')
  old_config['data']['eval_split'] = old_config['data'].pop(
      'periodic_eval_split')
  write_json(str(committed / MISSING_RUN / workdir_lib.CONFIG_FILE),
             old_config)
  write_json(str(committed / MISSING_RUN / workdir_lib.RUN_FILE),
             {'segments': segments})
  labels = dict(written['labels']['car_render_full'], num_points=7)
  write_json(str(committed / f'trifocal_labels_{MISSING_LABELS}.json'),
             labels)
  oracle = written['box_oracle'][runs.BOX_ORACLE_STUDIES[0].name]
  write_json(str(committed / f'box_oracle_{MISSING_BOX_ORACLE}.json'), oracle)
  # A copy without config.json or run.json (kept from before they were
  # copied): its split is the run table's.
  seed_metrics = random_metrics(rng)
  write_json(str(committed / MISSING_SEED / 'metrics.json'), seed_metrics)
  inputs = run_inputs.load_inputs(workdirs, committed=str(committed))
  assert inputs.runs[MISSING_RUN].metrics == metrics
  assert inputs.runs[MISSING_RUN].split == config['eval']['final_split']
  assert inputs.runs[MISSING_RUN].config == config
  assert inputs.runs[MISSING_SEED].metrics == seed_metrics
  assert inputs.runs[MISSING_SEED].split == runs.eval_split(
      runs.RUNS_BY_NAME[MISSING_SEED])
  assert inputs.runs[MISSING_RUN].committed
  assert not inputs.runs['demo'].committed
  # A workdir's metrics win over a committed copy.
  assert inputs.runs['demo'].metrics == written['metrics']['demo']
  assert inputs.labels[MISSING_LABELS] == labels
  assert inputs.box_oracle[MISSING_BOX_ORACLE] == oracle
  _, rows = parse_table(tables.render_runs(inputs))
  by_name = {row[0]: row for row in rows}
  row = by_name[f'`{MISSING_RUN}`{tables.COMMITTED_MARK}']
  assert row[4:9] == [f'{segments[-1]["steps"][1]} (2 invocations)',
                      cells.duration(sum(s['train_seconds']
                                          for s in segments)),
                      cells.duration(sum(s['eval_seconds']
                                          for s in segments)),
                      '; '.join(sorted({machine.describe(s['machine'])
                                        for s in segments})),
                      segments[0]['started'][:10]]
  assert by_name[f'`{MISSING_SEED}`{tables.COMMITTED_MARK}'][3:9] == [
      '-'] * 6
  assert '`demo`' in by_name
  # Copying leaves the committed copies as they are and adds the tree's.
  report.copy_figures(inputs, str(committed))
  with open(committed / MISSING_RUN / 'metrics.json') as file:
    assert json.load(file) == metrics
  with open(committed / 'demo' / workdir_lib.RUN_FILE) as file:
    assert json.load(file) == {'segments': written['segments']['demo']}


def test_write_report_can_rewrite_some_blocks_only(tree, tmp_path, rng):
  workdirs, _ = tree
  names = list(report.render_blocks(run_inputs.load_inputs(workdirs), 'x'))
  picked = set(rng.choice(names, 2, replace=False).tolist())
  chosen = [name for name in names if name in picked]  # Document order.
  results = tmp_path / 'RESULTS.md'
  before = document(names, rng)
  results.write_text(before)
  figures = str(tmp_path / 'figures')
  assert report.write_report(workdirs, str(results), figures,
                             only=chosen) == chosen
  old, new = (results_blocks.current_blocks(text)
              for text in (before, results.read_text()))
  assert [name for name in names if old[name] != new[name]] == chosen
  with pytest.raises(ValueError, match="'nonesuch'"):
    report.write_report(workdirs, str(results), figures, only=['nonesuch'])
