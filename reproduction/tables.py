"""The markdown of each RESULTS.md block, rendered from the report's inputs.

One `render_<block>` per block of `report.render_blocks`; percentages have
one decimal and gains are differences in percentage points (`cells`).
"""

from collections.abc import Iterator, Mapping, Sequence
import json
import os
from typing import Any

from absl import logging
from flax import traverse_util
import numpy as np

from occnet_jax import machine
from occnet_jax.categories import car as car_lib
from occnet_jax.configs import default as default_config
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import multiview
from occnet_jax.evaluation import simulated_detector
from reproduction import cells
from reproduction import claim_rules
from reproduction import claims
from reproduction import run_inputs
from reproduction import runs
from reproduction import speed_table

LABEL_ALPHAS = (0.05, 0.1, 0.2)
ABLATIONS_FIGURE = 'ablations.png'
# What the runs table adds to a run read from its committed copy.
COMMITTED_MARK = '†'
# Occlusion levels with fewer keypoints than this are marked in the tables.
FEW_KEYPOINTS = 100
FEW_MARK = '*'


def _not_run_row(first: Sequence[str], width: int) -> list[str]:
  """`first` cells, then 'not run', then '-' up to `width` cells."""
  return list(first) + [cells.NOT_RUN] + [cells.EMPTY] * (
      width - len(first) - 1)


def config_changes(config: Mapping[str, Any]) -> list[str]:
  """`key=value` for every config key whose value is not the default's."""
  # A JSON round trip makes the default's tuples lists, as in config.json.
  defaults = traverse_util.flatten_dict(json.loads(json.dumps(
      default_config.get_config().to_dict())), sep='.')
  return [f'{key}={value}' for key, value in
          sorted(traverse_util.flatten_dict(dict(config), sep='.').items())
          if defaults.get(key, object()) != value]


# Blocks.


def render_runs(inputs: run_inputs.Inputs) -> str:
  """`runs`: what each run is, its steps, wall times, machine and date."""
  header = ['run', 'dataset', 'what', 'config vs `default`', 'steps',
            'train time', 'eval time', 'machine', 'trained (UTC)']
  rows, marked = [], False
  for name, results in inputs.runs.items():
    run = results.run
    label = f'`{name}`'
    if results.committed:
      label, marked = label + COMMITTED_MARK, True
    first = [label, run.dataset, run.description]
    if (results.config is None and results.segments is None
        and results.metrics is None):
      rows.append(_not_run_row(first, len(header)))
      continue
    changes = (cells.EMPTY if results.config is None else
               ', '.join(f'`{change}`'
                         for change in config_changes(results.config))
               or 'none')
    segments = results.segments or []
    if segments:
      steps = str(max(segment['steps'][1] for segment in segments))
      if len(segments) > 1:
        steps += f' ({len(segments)} invocations)'
      train_time = cells.duration(sum(s['train_seconds'] for s in segments))
      eval_time = cells.duration(sum(s['eval_seconds'] for s in segments))
      machines = '; '.join(sorted({machine.describe(s['machine'])
                                   for s in segments}))
      # Older run.json files have no start time.
      started = segments[0].get('started', '')[:len('YYYY-MM-DD')]
    else:
      steps = train_time = eval_time = machines = started = cells.EMPTY
    rows.append(first + [changes, steps, train_time, eval_time, machines,
                         started or cells.EMPTY])
  text = cells.table(header, rows)
  if marked:
    text += (f'\n\n{COMMITTED_MARK}: not in this workdirs tree; read from its '
             'committed copy in docs/results/ (its date says when it was '
             'trained).')
  return text


def tested_metrics(inputs: run_inputs.Inputs, rows: list[list[str]], width: int,
                   ) -> Iterator[tuple[str, dict[str, Any]]]:
  """(name, metrics) of each dataset run that has them, in table order.

  A run without metrics gets its 'not run' row of `width` cells in `rows`
  instead, so a table's rows keep the order of `runs.DATASET_RUNS`.
  """
  for name in runs.DATASET_RUNS:
    metrics = inputs.runs[name].metrics
    if metrics is None:
      rows.append(_not_run_row([f'`{name}`'], width))
    else:
      yield name, metrics


def auc_with_interval(metrics: Mapping[str, Any], method: str) -> str:
  """An occlusion-AUC cell of metrics.json with its bootstrap interval."""
  key = metric_keys.occlusion_auc(method)
  return cells.auc_interval(metrics.get(key),
                            metrics.get(metric_keys.interval(key)))


def render_headline(inputs: run_inputs.Inputs) -> str:
  """`headline`: PCK@0.1 all/visible/occluded and occlusion AUC per run."""
  header = ['run', 'method', 'all', 'visible', 'occluded', 'occlusion AUC']
  rows = []
  for name, metrics in tested_metrics(inputs, rows, len(header)):
    for method in evaluate.METHODS:
      rows.append([f'`{name}`', cells.METHOD_NAMES[method]] + [
          claim_rules.pck_with_interval(metrics, method, subset)
          for subset in ('all', 'visible', 'occluded')] + [
              auc_with_interval(metrics, method)
              if method in evaluate.OCCLUSION_METHODS else cells.EMPTY])
  for method, value in claims.PAPER_AUC.items():
    rows.append(['paper (Fig. 3)', cells.METHOD_NAMES[method]]
                + [cells.EMPTY] * 3 + [cells.auc(value)])
  return ('PCK@0.1 (%) and occlusion AUC with 95% bootstrap intervals over '
          'the test split\'s cars:\n\n' + cells.table(header, rows))


def mean_sd(values: Sequence[float | None], scale: float = 100.0,
            digits: int = 1) -> str:
  """'mean ± sd (n)' of the values that exist, scaled; '-' if none do.

  The sd is the sample standard deviation across seeds (ddof 1), absent for
  a single value.
  """
  present = [scale * value for value in values if value is not None]
  if not present:
    return cells.EMPTY
  if len(present) == 1:
    return f'{present[0]:.{digits}f} (1 seed)'
  return (f'{np.mean(present):.{digits}f} ± '
          f'{np.std(present, ddof=1):.{digits}f} ({len(present)})')


def render_seeds(inputs: run_inputs.Inputs) -> str:
  """`seeds`: each dataset run's PCK@0.1 and AUC, mean ± sd over seeds."""
  header = ['run', 'seeds', 'method', 'visible', 'occluded',
            'occlusion AUC', 'yaw error median (deg)']
  rows = []
  for name, group in runs.SEED_GROUPS.items():
    metrics = [inputs.runs[member].metrics for member in group]
    present = [m for m in metrics if m is not None]
    seeds = f'{len(present)} of {len(group)}'
    if not present:
      rows.append(_not_run_row([f'`{name}`', seeds], len(header)))
      continue
    for method in evaluate.METHODS:
      rows.append([f'`{name}`', seeds, cells.METHOD_NAMES[method]] + [
          mean_sd([claim_rules.pck(m, method, subset) for m in present])
          for subset in ('visible', 'occluded')] + [
              mean_sd([m.get(metric_keys.occlusion_auc(method))
                       for m in present], scale=1.0, digits=3)
              if method in evaluate.OCCLUSION_METHODS else cells.EMPTY,
              mean_sd([m.get(metric_keys.yaw_error(
                  method, metric_keys.MEDIAN_DEG)) for m in present],
                      scale=1.0)
              if method in evaluate.YAW_METHODS else cells.EMPTY])
  return ('Test PCK@0.1 (%), occlusion AUC and yaw error of each dataset '
          'run and its repeats with other seeds (`config.seed`: '
          'initialisation, data order, dropout): mean ± sample sd over the '
          'seeds (their number):\n\n' + cells.table(header, rows))


# Table 1's columns: visible keypoints, then the occluded ones by kind.
KIND_SUBSETS = ('visible', *evaluate.OCCLUSION_KIND_SUBSETS)
KIND_NAMES = {'visible': 'visible', 'occluded_self': 'self-occluded',
              'occluded_vehicle': 'occluded by a vehicle',
              'occluded_object': 'occluded by an object'}


def render_kinds(inputs: run_inputs.Inputs) -> str:
  """`kinds`: PCK@0.1 by occlusion kind and yaw error (paper Table 1)."""
  header = ['run', 'method'] + [KIND_NAMES[subset] for subset in
                                KIND_SUBSETS] + [
      'yaw error median (deg)', 'yaw within 30 deg (%)']
  rows = []
  for name, metrics in tested_metrics(inputs, rows, len(header)):
    for method in evaluate.METHODS:
      yaw = [cells.EMPTY, cells.EMPTY]
      if method in evaluate.YAW_METHODS:
        median = metric_keys.yaw_error(method, metric_keys.MEDIAN_DEG)
        within = metric_keys.yaw_error(method, metric_keys.WITHIN_30DEG)
        yaw = [degrees_with_interval(metrics.get(median), metrics.get(
            metric_keys.interval(median))), cells.percent_interval(
                metrics.get(within), metrics.get(
                    metric_keys.interval(within)))]
      rows.append([f'`{name}`', cells.METHOD_NAMES[method]] + [
          claim_rules.pck_with_interval(metrics, method, subset)
          for subset in KIND_SUBSETS] + yaw)
    rows.append([f'`{name}`', 'keypoints'] + [
        str(metrics.get(metric_keys.count(subset), cells.EMPTY))
        for subset in KIND_SUBSETS] + [cells.EMPTY] * 2)
  paper = ', '.join(f'{kind.replace("_", " ")} {value:g}'
                    for kind, value in claims.PAPER_TABLE1_PCK.items())
  return ('Test PCK@0.1 (%) by why a keypoint is hidden, and the camera '
          'yaw error of the methods with a camera, with 95% bootstrap '
          'intervals over cars:\n\n' + cells.table(header, rows) + '\n\n'
          'The paper\'s Table 1 measures another quantity on KITTI-3D, which '
          'is not here: PCK@0.1 of *visible* keypoints grouped by how the '
          f'whole car is occluded ({paper}) and a yaw error of '
          f'{claims.PAPER_TABLE1_YAW_ERROR_DEG:g} degrees on unoccluded '
          'cars.')


def degrees_with_interval(value: float | None,
                          interval: Sequence[float] | None) -> str:
  """Degrees with one decimal and their [low, high] interval."""
  if value is None:
    return cells.EMPTY
  if interval is None:
    return f'{value:.1f}'
  return f'{value:.1f} [{interval[0]:.1f}, {interval[1]:.1f}]'


def render_levels(results: run_inputs.RunResults) -> str:
  """`levels_<run>`: occluded PCK by number of invisible keypoints."""
  header = ['invisible'] + [
      f'{cells.METHOD_NAMES[method]} @{alpha:g}' for alpha in (0.1, 0.2)
      for method in evaluate.METHODS] + ['2D-KGNN gain @0.1',
                                         'paper gain @0.1', 'keypoints']
  if results.metrics is None:
    return cells.table(header, [_not_run_row([], len(header))])
  paper = claims.PAPER_LEVEL_GAINS[results.run.paper]
  rows = []
  for level in car_lib.CAR.occlusion_levels:
    subset = f'occluded_{level}'
    count = results.metrics.get(metric_keys.count(subset))
    few = count is not None and 0 < count < FEW_KEYPOINTS
    rows.append([f'{level}{FEW_MARK if few else ""}'] + [
        cells.percent(claim_rules.pck(results.metrics, method, subset, alpha))
        for alpha in (0.1, 0.2) for method in evaluate.METHODS] + [
            cells.gain(claim_rules.pck(results.metrics, 'kgnn2d', subset),
                 claim_rules.pck(results.metrics, 'heatmap', subset)),
            paper.get(level, cells.EMPTY),
            cells.EMPTY if count is None else str(count)])
  return (cells.table(header, rows) + f'\n\n{FEW_MARK}: fewer than '
          f'{FEW_KEYPOINTS} keypoints at that level; its PCK is a rough '
          'estimate.')


def render_robustness(inputs: run_inputs.Inputs) -> str:
  """`robustness`: PCK@0.1 vs input noise sigma per dataset run."""
  metrics = [inputs.runs[name].metrics for name in runs.DATASET_RUNS]
  sigmas = sorted({sigma for m in metrics if m
                   for sigma in claim_rules.noise_sigmas(m)})
  header = ['run', 'method'] + [f'σ {sigma:g}' for sigma in sigmas]
  rows = []
  for name, run_metrics in zip(runs.DATASET_RUNS, metrics):
    if run_metrics is None:
      rows.append(_not_run_row([f'`{name}`'], len(header)))
      continue
    for method in evaluate.PERTURBED_METHODS:
      rows.append([f'`{name}`', cells.METHOD_NAMES[method]] + [
          cells.percent(run_metrics.get(metric_keys.robustness(method, sigma)))
          for sigma in sigmas])
  return cells.table(header, rows)


def ablation_metrics(inputs: run_inputs.Inputs) -> dict[str, dict[str, Any]]:
  """The metrics of the ablation runs (and the demo) that have them."""
  return {name: inputs.runs[name].metrics for name in runs.ABLATION_RUNS
          if inputs.runs[name].metrics is not None}


def render_ablations(inputs: run_inputs.Inputs, figures_link: str) -> str:
  """`ablations`: the demo against each ablation, and their figure."""
  available = ablation_metrics(inputs)
  levels = claim_rules.populated_levels(list(available.values()))
  header = ['run', 'what', 'heatmap occluded'] + [
      f'{cells.METHOD_NAMES[method]} {subset}'
      for method in ('kgnn2d', 'kgnn3d')
      for subset in ('visible', 'occluded')] + ['2D-KGNN occlusion AUC'] + [
          f'2D-KGNN occluded, {level} invisible' for level in levels]
  rows = []
  for name in runs.ABLATION_RUNS:
    first = [f'`{name}`', runs.RUNS_BY_NAME[name].description]
    metrics = available.get(name)
    if metrics is None:
      rows.append(_not_run_row(first, len(header)))
      continue
    rows.append(first + [cells.percent(
        claim_rules.pck(metrics, 'heatmap', 'occluded'))] + [
        cells.percent(claim_rules.pck(metrics, method, subset))
        for method in ('kgnn2d', 'kgnn3d')
        for subset in ('visible', 'occluded')] + [
            cells.auc(metrics.get(metric_keys.occlusion_auc('kgnn2d')))] + [
                cells.percent(claim_rules.pck(metrics, 'kgnn2d',
                                              f'occluded_{level}'))
                for level in levels])
  text = ('Test PCK@0.1 (%) of the heatmap head on occluded keypoints and '
          'of the 2D- and 3D-KGNN:\n\n'
          + cells.table(header, rows))
  if available:
    text += (f'\n\n![occluded PCK by level, ablations]'
             f'({figures_link}/{ABLATIONS_FIGURE})')
  return text


def render_tuning(inputs: run_inputs.Inputs) -> str:
  """`tuning`: each tuning run's validation PCK@0.1, the best of each tuned
  run marked."""
  header = ['run', 'tunes', 'setting', '2D-KGNN occluded', '2D-KGNN visible',
            '2D-KGNN all', '3D-KGNN occluded', '2D-KGNN occlusion AUC']
  rows, best = [], {}
  for name in runs.TUNING_RUNS:
    run = runs.RUNS_BY_NAME[name]
    setting = ', '.join(f'`{flag.removeprefix("--config.")}`'
                        for flag in runs.tuning_setting(run))
    first = [f'`{name}`', f'`{run.tunes}`', setting]
    metrics = inputs.runs[name].metrics
    if metrics is None:
      rows.append(_not_run_row(first, len(header)))
      continue
    group = best.setdefault(run.tunes, {'occluded': {}, 'all': {}})
    for subset, values in group.items():
      value = claim_rules.pck(metrics, 'kgnn2d', subset)
      if value is not None:
        values[name] = value
    rows.append(first + [
        claim_rules.pck_with_interval(metrics, method, subset)
        for method, subset in (('kgnn2d', 'occluded'), ('kgnn2d', 'visible'),
                               ('kgnn2d', 'all'), ('kgnn3d', 'occluded'))] + [
            auc_with_interval(metrics, 'kgnn2d')])
  splits = ', '.join(
      f'`{tuned}` on `{runs.eval_split(runs.RUNS_BY_NAME[name])}`'
      for tuned, name in {runs.RUNS_BY_NAME[name].tunes: name
                          for name in runs.TUNING_RUNS}.items())
  text = (f'Validation PCK@0.1 (%), 95% bootstrap intervals over cars '
          f'({splits}):\n\n' + cells.table(header, rows))
  for tuned, group in best.items():
    if group['occluded'] and group['all']:
      top = {subset: max(values, key=values.get)
             for subset, values in group.items()}
      text += (f'\n\nHighest 2D-KGNN PCK@0.1 on validation tuning '
               f'`{tuned}`: on occluded keypoints `{top["occluded"]}`, on all '
               f'keypoints `{top["all"]}`.')
  return text


def render_multiview(inputs: run_inputs.Inputs) -> str:
  """`multiview`: mean correspondences per n-view subset (Fig. 4 right)."""
  header = ['run', 'method'] + [f'{n} views' for n in multiview.VIEW_COUNTS]
  rows = []
  for name, metrics in tested_metrics(inputs, rows, len(header)):
    if not metric_keys.levels(metrics, 'multiview'):
      logging.warning('%s: no multiview.* keys in metrics.json.', name)
      rows.append([f'`{name}`', cells.NOT_MEASURED]
                  + [cells.EMPTY] * len(multiview.VIEW_COUNTS))
      continue
    for method in evaluate.MULTIVIEW_METHODS:
      row = []
      for n in multiview.VIEW_COUNTS:
        count = metrics.get(metric_keys.multiview(method, n))
        fraction = metrics.get(metric_keys.multiview(method, n,
                                                     fraction=True))
        row.append(cells.EMPTY if count is None else
                   f'{count:.1f} ({cells.percent(fraction)}%)')
      rows.append([f'`{name}`', cells.METHOD_NAMES[method]] + row)
    rows.append([f'`{name}`', 'subsets'] + [
        cells.EMPTY if metrics.get(metric_keys.multiview_subsets(n)) is None
        else str(metrics[metric_keys.multiview_subsets(n)])
        for n in multiview.VIEW_COUNTS])
  return ('Mean number of keypoint correspondences (inliers at alpha 0.1) '
          'per n-view subset of a car, and their share of the subset\'s '
          'K x n keypoints:\n\n' + cells.table(header, rows))


def fraction_at(summary: Mapping[str, Any], key: str,
                alpha: float) -> float | None:
  """A label-study curve at alpha (linear between the grid's alphas).

  Returns:
    The fraction, None where the study had no points (a null curve).
  """
  if None in summary[key]:
    return None
  return float(np.interp(alpha, summary['alphas'], summary[key]))


# The label study's `target_error` statistics, as the table names them.
TARGET_ERROR_STATISTICS = {'median': 'median', 'p90': '90th percentile'}


def _target_error(summary: Mapping[str, Any], statistic: str) -> str:
  """A statistic of the study's target error (% of L); '-' without it."""
  value = summary.get('target_error', {}).get(statistic)
  return cells.EMPTY if value is None else f'{value:.1f}'


def render_trifocal_labels(inputs: run_inputs.Inputs, figures_link: str) -> str:
  """`trifocal_labels`: labelled occluded points near the trifocal transfer."""
  header = ['dataset', 'split', 'occluded labels', 'with a trifocal target'
            ] + [f'noise-free @{a:g}' for a in LABEL_ALPHAS] + [
                f'label noise @{a:g}' for a in LABEL_ALPHAS] + [
                    f'targets off, {statistic} (% of L)'
                    for statistic in TARGET_ERROR_STATISTICS.values()]
  rows, notes = [], []
  for study in runs.LABEL_STUDIES:
    dataset, label = study.name, study.label
    summary = inputs.labels[dataset]
    if summary is None:
      rows.append(_not_run_row([label], len(header)))
      continue
    rows.append([f'{label} (`{summary["dataset"]}`)', summary['split'],
                 str(summary['num_occluded']),
                 str(summary['num_points'])] + [
                     cells.percent(fraction_at(summary, key, alpha))
                     for key in ('fraction_within_noise_free',
                                 'fraction_within')
                     for alpha in LABEL_ALPHAS] + [
                         _target_error(summary, statistic)
                         for statistic in TARGET_ERROR_STATISTICS])
    model = ', '.join(f'{key}={value}' for key, value
                      in sorted(summary['noise_model'].items()))
    notes.append(f'Label noise on {label}: {model}.')
    if dataset in inputs.label_figures:
      notes.append(f'![trifocal labels, {label}]'
                   f'({figures_link}/trifocal_labels_{dataset}.png)')
  # Human labels: the paper's counterpart of our simulated annotator.
  rows.append(['CarFusion (paper, human labels)'] + [cells.EMPTY] * (
      3 + len(LABEL_ALPHAS)) + [
          claims.PAPER_LABEL_FRACTION_AT_0_1 if alpha == 0.1 else cells.EMPTY
          for alpha in LABEL_ALPHAS] + [cells.EMPTY] * len(
              TARGET_ERROR_STATISTICS))
  return ('Labelled occluded points within alpha * L of the trifocal '
          'transfer from two views where they are visible (%), and how far '
          'the trifocal loss\'s targets, transferred from the labels, lie '
          'from the true positions of the occluded points they supervise:'
          '\n\n'
          + '\n\n'.join([cells.table(header, rows)] + notes))


# The box rules of `data_prep.box_oracle`, as the box-oracle table names them.
BOX_RULES = {'visible_hull': 'hull of the visible keypoints',
             'record': 'the dataset\'s box',
             'all_labelled_hull': 'hull of all labelled keypoints (the '
                                  'boxes before issue 11)'}


def render_box_oracle(inputs: run_inputs.Inputs) -> str:
  """`box_oracle`: what each box rule tells a nearest-neighbour oracle."""
  header = ['dataset', 'box rule', 'occluded', 'by another vehicle or object',
            'occluded (dataset\'s L)', 'by another (dataset\'s L)']
  rows, counts = [], []
  for study in runs.BOX_ORACLE_STUDIES:
    result = inputs.box_oracle[study.name]
    if result is None:
      rows.append(_not_run_row([study.label], len(header)))
      continue
    for index, (rule, name) in enumerate(BOX_RULES.items()):
      entry = result[rule]
      rows.append([study.label if index == 0 else '', name] + [
          cells.percent(entry[key]) for key in (
              'occluded', 'other_occluder', 'occluded_record_scale',
              'other_occluder_record_scale')])
    counts.append(f'{study.label}: {result["num_queries"]} test views '
                  f'({result["num_database"]} training views), '
                  f'{result["num_occluded"]} occluded keypoints, '
                  f'{result["num_other_occluder"]} of them hidden by another '
                  'vehicle or object.')
  return ('The oracle\'s PCK@0.1 (%) on the test split\'s occluded '
          'keypoints, with L of each rule\'s box and with L of the '
          'dataset\'s box:\n\n' + '\n\n'.join(
              [cells.table(header, rows)] + counts))


# The simulated-detector table's rows: (what feeds the method, its methods
# with their names); the keypoints fed are themselves a row.
DETECTOR_FED = (
    ('heatmap head', {'heatmap': 'the keypoints fed',
                      'kgnn2d': cells.METHOD_NAMES['kgnn2d'],
                      'kgnn3d': cells.METHOD_NAMES['kgnn3d']}),
    ('simulated detector', {
        simulated_detector.DETECTOR: 'the keypoints fed'} | {
            method: cells.METHOD_NAMES[method.removeprefix('detector_')]
            for method in simulated_detector.GRAPH_METHODS}),
)


def render_simulated_detector(inputs: run_inputs.Inputs) -> str:
  """`simulated_detector`: the graph networks fed by another detector."""
  header = ['keypoints from', 'method', 'all', 'visible', 'occluded']
  metrics = inputs.simulated_detector
  run = f'`{runs.SIMULATED_DETECTOR_RUN}`'
  if metrics is None:
    return cells.table(header, [_not_run_row([run], len(header))])
  rows = []
  for source, methods in DETECTOR_FED:
    for index, (method, name) in enumerate(methods.items()):
      rows.append([source if index == 0 else '', name] + [
          claim_rules.pck_with_interval(metrics, method, subset)
          for subset in ('all', 'visible', 'occluded')])
  return (f'PCK@0.1 (%) of {run} (step {metrics["step"]}) on the '
          f'{runs.SIMULATED_DETECTOR_SPLIT} split\'s '
          f'{metrics["num_cars"]} cars, with 95% bootstrap intervals over '
          'them. The simulated detector keeps each visible keypoint with '
          f'noise of sigma {metrics["detector_sigma"]:g} L per coordinate '
          f'and drops {cells.percent(metrics["detector_drop_rate"])}% of '
          'them; it gives no occluded keypoint:\n\n'
          + cells.table(header, rows))


def render_speed(inputs: run_inputs.Inputs) -> str:
  """`speed`: the benchmark's measurements, its ceiling and machine."""
  bench = inputs.bench
  if bench is None:
    return cells.table(speed_table.HEADER,
                       [_not_run_row([], len(speed_table.HEADER))])
  return '\n\n'.join([
      cells.table(speed_table.HEADER, [speed_table.row(record)
                                       for record in bench['measurements']]),
      cells.table(speed_table.INPUT_HEADER, speed_table.input_rows(bench)),
      f'{speed_table.summary(bench)} {speed_table.NOTE}'])


def render_targets(inputs: run_inputs.Inputs) -> str:
  """`targets`: each target of issue 6, measured, met or missed."""
  header = ['target', 'run', 'measured', 'status']
  rows = []
  for target, check in claim_rules.RUN_TARGETS:
    for name in runs.DATASET_RUNS:
      rows.append([target, f'`{name}`',
                   *check(inputs.runs[name].metrics)])
  if inputs.bench is None:
    rows.append(['speed goals (benchmark)', cells.EMPTY, cells.EMPTY,
                 cells.NOT_RUN])
  else:
    for goal in speed_table.bench_goals(inputs.bench):
      measured = speed_table.goal_measured(goal)
      rows.append([goal['name'], 'benchmark', measured, goal['status']])
  return cells.table(header, rows)


def render_claims(inputs: run_inputs.Inputs) -> str:
  """`claims`: each claim of the paper, tested on each dataset run."""
  header = ['paper says', 'where', 'test'] + [
      f'`{name}`' for name in runs.DATASET_RUNS]
  rows = []
  for claim in claims.CLAIMS:
    row = [claim.name, claim.source, claim.rule]
    for name in runs.DATASET_RUNS:
      metrics = inputs.runs[name].metrics
      if not claim.check:
        row.append(claims.NOT_TESTABLE)
      elif metrics is None:
        row.append(cells.NOT_RUN)
      else:
        measured, above = claim_rules.CLAIM_CHECKS[claim.check](metrics)
        row.append(f'**{claim_rules.claim_verdict(above)}**: {measured}')
    rows.append(row)
  return ('Each claim on each dataset run\'s test split (seed 0), with 95% '
          'bootstrap intervals over cars; "not reproduced" includes '
          'intervals that overlap:\n\n' + cells.table(header, rows))


def render_figures(inputs: run_inputs.Inputs, figures_link: str) -> str:
  """`figures`: links to the copied evaluation figures of `FIGURE_RUNS`."""
  lines = []
  for name in runs.FIGURE_RUNS:
    results = inputs.runs[name]
    if not results.figures:
      lines.append(f'- `{name}`: {cells.NOT_RUN}')
      continue
    links = ', '.join(
        f'[{os.path.splitext(os.path.basename(path))[0]}]'
        f'({figures_link}/{name}/{os.path.basename(path)})'
        for path in results.figures)
    lines.append(f'- `{name}` ([metrics.json]({figures_link}/{name}/'
                 f'metrics.json)): {links}')
  return '\n'.join(lines)
