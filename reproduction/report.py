"""RESULTS.md's tables and figures, regenerated from the workdirs.

`python -m launch.reproduce` trains every run of the table `runs.RUNS` into
a workdirs tree and measures the label studies and the speed; `python -m
launch.report` then calls `write_report`, which

  - loads what is there (`load_inputs`; a missing file is logged and its
    rows say "not run");
  - copies each run's figures and metrics.json, the label-study figures and
    the box oracles' and the benchmark's JSON into the repository
    (`copy_figures`) and draws the ablation comparison (`plots.ablations`);
  - renders one markdown block per study (`render_blocks`: `runs`,
    `claims`, `headline`, `seeds`, `kinds`, `levels_<run>`, `robustness`,
    `ablations`, `tuning`, `multiview`, `trifocal_labels`, `box_oracle`,
    `speed`, `targets`, `figures`) and writes each between the markers
    `<!-- report:NAME -->` and `<!-- /report:NAME -->` of RESULTS.md
    (`replace_blocks`);
  - rewrites the numbers the prose around them quotes as inline values
    (`prose_values`), leaving the rest of the prose alone.

Inputs under the workdirs:

  - `<run>/config.json`, `<run>/run.json` (`workdir.record_run`) and
    `<run>/eval/<split>/metrics.json` with its PNGs (`launch.train`);
  - `trifocal_labels/<dataset>/trifocal_labels.{json,png}`
    (`launch.trifocal_labels`) for each of `runs.LABEL_STUDIES`;
  - `runs.box_oracle_file` (`data_prep.box_oracle`) for each of
    `runs.BOX_ORACLE_STUDIES`;
  - `runs.BENCH_FILE` (`launch.benchmark --sizes=default,paper`).

The paper's numbers and the targets they are compared with are in
`claims.py`.

Percentages have one decimal; gains are differences in percentage points.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
import dataclasses
import json
import os
import re
from typing import Any

from absl import logging
from etils import epath
from flax import traverse_util
import numpy as np

from occnet_jax import evaluate
from occnet_jax import machine
from occnet_jax import metric_keys
from occnet_jax import multiview
from occnet_jax import plots
from occnet_jax import workdir as workdir_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.configs import default as default_config
from reproduction import cells
from reproduction import claims
from reproduction import label_study
from reproduction import prose_values
from reproduction import runs
from reproduction import speed_table

NOT_RUN = 'not run'
NOT_MEASURED = 'not measured'
MET, MISSED = 'met', 'missed'
ALPHA = 0.1
METHOD_NAMES = {'heatmap': 'heatmap', 'kgnn2d': '2D-KGNN',
                'kgnn3d': '3D-KGNN', 'shape_fit': 'shape fit',
                'oracle_fit': 'oracle fit (upper reference)',
                'labels': 'labels (upper bound)'}
LABEL_ALPHAS = (0.05, 0.1, 0.2)
ABLATIONS_FIGURE = 'ablations.png'
# Where `launch.report` copies the figures and the numbers behind them.
COMMITTED = os.path.join('docs', 'results')
METRICS_FILE = 'metrics.json'
BENCH_COPY = 'bench.json'
# `study_files`' key of a label study's plot, after the study's.
FIGURE_KEY = ':figure'
# What the runs table adds to a run read from its committed copy.
COMMITTED_MARK = '†'
# `write_report`'s name for the prose's inline values.
VALUES = 'inline values'
# Occlusion levels with fewer keypoints than this are marked in the tables.
FEW_KEYPOINTS = 100
FEW_MARK = '*'


@dataclasses.dataclass(frozen=True)
class RunResults:
  """What a training run left in its workdir (None where missing).

  Attributes:
    run: the run.
    config: config.json.
    segments: run.json's segments, one per invocation of training.
    metrics: the evaluated split's metrics.json.
    split: the split its metrics are of.
    eval_dir: where metrics.json is (or would be).
    figures: paths of the PNGs beside it.
    committed: read from the committed copy (`load_inputs`), not from a
      workdir.
  """

  run: runs.Run
  config: dict[str, Any] | None
  segments: list[dict[str, Any]] | None
  metrics: dict[str, Any] | None
  split: str
  eval_dir: str
  figures: tuple[str, ...]
  committed: bool = False


@dataclasses.dataclass(frozen=True)
class Inputs:
  """Everything the report reads.

  Attributes:
    runs: `RunResults` by run name, for every run of `runs.RUNS`.
    labels: trifocal_labels.json by study of `runs.LABEL_STUDIES` (None
      where missing).
    label_figures: the label study's PNG by dataset, where it exists.
    box_oracle: `data_prep.box_oracle`'s JSON by study of
      `runs.BOX_ORACLE_STUDIES` (None where missing).
    bench: bench.json, or None.
    workdirs: where they were read from.
  """

  runs: dict[str, RunResults]
  labels: dict[str, dict[str, Any] | None]
  label_figures: dict[str, str]
  box_oracle: dict[str, dict[str, Any] | None]
  bench: dict[str, Any] | None
  workdirs: str


def read_json(path: str) -> Any:
  """A JSON file's content, or None (logged) when it does not exist."""
  if not epath.Path(path).exists():
    logging.warning('Not found, reported as not run: %s', path)
    return None
  return json.loads(epath.Path(path).read_text())


def _pngs(directory: str) -> tuple[str, ...]:
  if not epath.Path(directory).is_dir():
    return ()
  return tuple(os.fspath(path) for path in
               sorted(epath.Path(directory).glob('*.png')))


def config_split(config: Mapping[str, Any] | None, run: runs.Run) -> str:
  """The split a run evaluates: its config's, else the run table's."""
  return (config or {}).get('eval', {}).get('split') or runs.eval_split(run)


def load_run(workdirs: str, run: runs.Run,
             committed: str | None = None) -> RunResults:
  """Reads one run's workdir; its metrics are those of the config's split.

  Args:
    workdirs: the workdirs tree.
    run: the run.
    committed: the directory `copy_figures` fills; a run without metrics
      under `workdirs` is read from its copy `<committed>/<run>/` there,
      where one exists.
  """
  workdir = os.path.join(workdirs, run.name)
  config = read_json(os.path.join(workdir, workdir_lib.CONFIG_FILE))
  split = config_split(config, run)
  path = evaluate.metrics_path(workdir, split)
  from_copy = bool(committed) and not epath.Path(path).exists() and (
      epath.Path(committed, run.name, METRICS_FILE).exists())
  if from_copy:
    workdir = os.path.join(committed, run.name)
    logging.info('%s: reading the committed copy in %s', run.name, workdir)
    path = os.path.join(workdir, METRICS_FILE)
    config = read_json(os.path.join(workdir, workdir_lib.CONFIG_FILE))
    split = config_split(config, run)
  run_file = read_json(os.path.join(workdir, workdir_lib.RUN_FILE))
  eval_dir = os.path.dirname(path)
  return RunResults(run=run, config=config,
                    segments=run_file and run_file['segments'],
                    metrics=read_json(path), split=split, eval_dir=eval_dir,
                    figures=_pngs(eval_dir), committed=from_copy)


def study_files(workdirs: str, copies: str) -> dict[str, tuple[str, str]]:
  """Every study output: (its path under `workdirs`, its copy's in `copies`).

  Keyed by the name of the step of `runs.STUDIES` that writes it:
  'trifocal_labels/<study>' (and '...:figure', its plot) for
  `runs.LABEL_STUDIES`, 'box_oracle/<study>' for `runs.BOX_ORACLE_STUDIES`
  and 'benchmark'.
  """
  files = {}
  for study in runs.LABEL_STUDIES:
    directory = runs.label_directory(workdirs, study.name)
    stem = os.path.join(copies, f'trifocal_labels_{study.name}')
    files[f'trifocal_labels/{study.name}'] = (
        os.path.join(directory, label_study.RESULT_FILE), f'{stem}.json')
    files[f'trifocal_labels/{study.name}{FIGURE_KEY}'] = (
        os.path.join(directory, label_study.PLOT_FILE), f'{stem}.png')
  for study in runs.BOX_ORACLE_STUDIES:
    files[f'box_oracle/{study.name}'] = (
        runs.box_oracle_file(workdirs, study.name),
        os.path.join(copies, f'box_oracle_{study.name}.json'))
  files['benchmark'] = (os.path.join(workdirs, runs.BENCH_FILE),
                    os.path.join(copies, BENCH_COPY))
  return files


def load_inputs(workdirs: str, committed: str | None = None) -> Inputs:
  """Reads every input of the report under `workdirs` (module docstring).

  Args:
    workdirs: the workdirs tree.
    committed: the directory `copy_figures` fills (docs/results/ for
      `write_report`), or None. An input missing under `workdirs` is read
      from its copy there, so a tree that reruns some of the runs reports
      the others as they were committed; the runs table marks them.
  """
  paths = {}
  for key, (path, copy) in study_files(workdirs, committed or '').items():
    use_copy = committed and not epath.Path(path).exists()
    paths[key] = copy if use_copy else path
  labels, label_figures = {}, {}
  for study in runs.LABEL_STUDIES:
    labels[study.name] = read_json(paths[f'trifocal_labels/{study.name}'])
    figure = paths[f'trifocal_labels/{study.name}{FIGURE_KEY}']
    if epath.Path(figure).exists():
      label_figures[study.name] = figure
  return Inputs(
      runs={run.name: load_run(workdirs, run, committed) for run in runs.RUNS},
      labels=labels, label_figures=label_figures,
      box_oracle={study.name: read_json(paths[f'box_oracle/{study.name}'])
                  for study in runs.BOX_ORACLE_STUDIES},
      bench=read_json(paths['benchmark']), workdirs=workdirs)


# Formatting.


def gain(value: float | None, base: float | None) -> str:
  """value - base in signed percentage points; '-' if either is None."""
  if value is None or base is None:
    return cells.EMPTY
  return f'{100 * (value - base):+.1f}'


def auc(value: float | None) -> str:
  """An AUC with three decimals; '-' for None."""
  return cells.EMPTY if value is None else f'{value:.3f}'


def duration(seconds: float) -> str:
  """'45 s', '8 min 20 s' or '1 h 05 min'."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds} s'
  if seconds < 3600:
    return f'{seconds // 60} min {seconds % 60:02d} s'
  return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'


def _not_run_row(first: Sequence[str], width: int) -> list[str]:
  """`first` cells, then 'not run', then '-' up to `width` cells."""
  return list(first) + [NOT_RUN] + [cells.EMPTY] * (width - len(first) - 1)


def config_changes(config: Mapping[str, Any]) -> list[str]:
  """`key=value` for every config key whose value is not the default's."""
  # A JSON round trip makes the default's tuples lists, as in config.json.
  defaults = traverse_util.flatten_dict(json.loads(json.dumps(
      default_config.get_config().to_dict())), sep='.')
  return [f'{key}={value}' for key, value in
          sorted(traverse_util.flatten_dict(dict(config), sep='.').items())
          if defaults.get(key, object()) != value]


# Metrics.


def pck(metrics: Mapping[str, Any], method: str, subset: str,
        alpha: float = ALPHA) -> float | None:
  """A PCK value of metrics.json, None where absent or empty."""
  return metrics.get(metric_keys.pck(method, subset, alpha))


def pck_with_interval(metrics: Mapping[str, Any], method: str, subset: str,
                      alpha: float = ALPHA) -> str:
  """A PCK cell with its bootstrap interval where metrics.json has one."""
  key = metric_keys.pck(method, subset, alpha)
  return cells.percent_interval(metrics.get(key),
                                metrics.get(key + metric_keys.CI_SUFFIX))


def level_gains(metrics: Mapping[str, Any],
                alpha: float = ALPHA) -> dict[int, float]:
  """2D-KGNN minus heatmap occluded PCK by populated occlusion level."""
  gains = {}
  for level in car_lib.CAR.occlusion_levels:
    subset = f'occluded_{level}'
    ours, base = (pck(metrics, method, subset, alpha)
                  for method in ('kgnn2d', 'heatmap'))
    if ours is not None and base is not None:
      gains[level] = ours - base
  return gains


def populated_levels(metrics: Sequence[Mapping[str, Any]]) -> list[int]:
  """Occlusion levels with a 2D-KGNN PCK in any of the metrics."""
  return [level for level in car_lib.CAR.occlusion_levels
          if any(pck(m, 'kgnn2d', f'occluded_{level}') is not None
                 for m in metrics)]


def noise_sigmas(metrics: Mapping[str, Any]) -> list[float]:
  """The robustness noise levels of metrics.json, ascending."""
  return metric_keys.levels(metrics, 'robustness', 'kgnn2d')


# Targets (issue 6): each returns (measured, status).


def _status(met: bool) -> str:
  return MET if met else MISSED


def auc_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """2D-KGNN occlusion AUC >= 0.95 and >= the heatmap's + 0.05."""
  if metrics is None:
    return cells.EMPTY, NOT_RUN
  ours = metrics.get(metric_keys.occlusion_auc('kgnn2d'))
  base = metrics.get(metric_keys.occlusion_auc('heatmap'))
  if ours is None or base is None:
    return cells.EMPTY, NOT_MEASURED
  return (f'{auc(ours)} (heatmap {auc(base)})',
          _status(ours >= claims.TARGET_AUC
                  and ours >= base + claims.TARGET_AUC_MARGIN))


def level_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """2D-KGNN occluded PCK@0.1 >= heatmap + 10 at every populated level."""
  if metrics is None:
    return cells.EMPTY, NOT_RUN
  gains = level_gains(metrics)
  if not gains:
    return cells.EMPTY, NOT_MEASURED
  measured = ', '.join(f'{100 * value:+.1f} ({level})'
                       for level, value in gains.items())
  return measured, _status(all(value >= claims.TARGET_LEVEL_GAIN
                               for value in gains.values()))


def visible_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """2D-KGNN visible PCK@0.1 >= heatmap visible - 1 point."""
  if metrics is None:
    return cells.EMPTY, NOT_RUN
  ours, base = (pck(metrics, method, 'visible')
                for method in ('kgnn2d', 'heatmap'))
  if ours is None or base is None:
    return cells.EMPTY, NOT_MEASURED
  return (f'{cells.percent(ours)} vs {cells.percent(base)} '
          f'({gain(ours, base)})',
          _status(ours >= base - claims.TARGET_VISIBLE_LOSS))


def robustness_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """Noise costs the 3D-KGNN less PCK@0.1 than the 2D-KGNN (least to most)."""
  if metrics is None:
    return cells.EMPTY, NOT_RUN
  sigmas = noise_sigmas(metrics)
  if len(sigmas) < 2:
    return cells.EMPTY, NOT_MEASURED
  values = {method: [metrics.get(metric_keys.robustness(method, sigma))
                     for sigma in (sigmas[0], sigmas[-1])]
            for method in ('kgnn2d', 'kgnn3d')}
  if any(None in pair for pair in values.values()):
    return cells.EMPTY, NOT_MEASURED
  change = {method: last - first for method, (first, last) in values.items()}
  measured = (f'3D-KGNN {100 * change["kgnn3d"]:+.1f}, 2D-KGNN '
              f'{100 * change["kgnn2d"]:+.1f} (σ {sigmas[0]:g} to '
              f'{sigmas[-1]:g})')
  return measured, _status(change['kgnn3d'] > change['kgnn2d'])


def interval_above(metrics: Mapping[str, Any], key: str, base_key: str,
                   show: Callable[[float, Sequence[float] | None], str],
                   ) -> tuple[str, bool | None]:
  """Whether a figure's 95% interval lies wholly above another's.

  Args:
    metrics: metrics.json.
    key: the figure that should be higher.
    base_key: the figure it is compared with.
    show: formats a value and its interval for the table.

  Returns:
    (both figures with their intervals, True / False, or None where a
    figure or an interval is missing).
  """
  value, base = metrics.get(key), metrics.get(base_key)
  if value is None or base is None:
    return cells.EMPTY, None
  interval = metrics.get(metric_keys.interval(key))
  base_interval = metrics.get(metric_keys.interval(base_key))
  measured = f'{show(value, interval)} against {show(base, base_interval)}'
  if interval is None or base_interval is None:
    return measured + ' (no intervals)', None
  return measured, bool(interval[0] > base_interval[1])


def _above_target(metrics: Mapping[str, Any] | None, key: str,
                  base_key: str) -> tuple[str, str]:
  """`interval_above` of two PCKs as a target: (measured, met / missed)."""
  if metrics is None:
    return cells.EMPTY, NOT_RUN
  measured, above = interval_above(metrics, key, base_key,
                                   cells.percent_interval)
  return measured, NOT_MEASURED if above is None else _status(above)


def shape_fit_target(metrics: Mapping[str, Any] | None) -> tuple[str, str]:
  """2D-KGNN occluded PCK@0.1 interval above the shape fit's."""
  return _above_target(metrics, metric_keys.pck('kgnn2d', 'occluded', ALPHA),
                       metric_keys.pck('shape_fit', 'occluded', ALPHA))


RUN_TARGETS: tuple[tuple[str, Callable[..., tuple[str, str]]], ...] = (
    (f'occlusion AUC of the 2D-KGNN >= {claims.TARGET_AUC:g} and >= '
     f'heatmap + {claims.TARGET_AUC_MARGIN:g}', auc_target),
    ('2D-KGNN occluded PCK@0.1 >= heatmap + '
     f'{100 * claims.TARGET_LEVEL_GAIN:g} at every populated level',
     level_target),
    ('2D-KGNN visible PCK@0.1 >= heatmap - '
     f'{100 * claims.TARGET_VISIBLE_LOSS:g}', visible_target),
    ('noise costs the 3D-KGNN less PCK@0.1 than the 2D-KGNN',
     robustness_target),
    ('2D-KGNN occluded PCK@0.1 above the shape fit\'s (95% intervals apart)',
     shape_fit_target),
)


# The paper's claims (`claims.CLAIMS`): each check returns (measured,
# True / False / None) for a run's metrics.


def occlusion_auc_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  return interval_above(metrics, metric_keys.occlusion_auc('kgnn2d'),
                        metric_keys.occlusion_auc('heatmap'), auc_interval)


def occluded_pck_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  return interval_above(metrics, metric_keys.pck('kgnn2d', 'occluded', ALPHA),
                        metric_keys.pck('heatmap', 'occluded', ALPHA),
                        cells.percent_interval)


def robustness_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  sigmas = noise_sigmas(metrics)
  if not sigmas:
    return cells.EMPTY, None
  measured, above = interval_above(
      metrics, metric_keys.robustness('kgnn3d', sigmas[-1]),
      metric_keys.robustness('kgnn2d', sigmas[-1]), cells.percent_interval)
  return f'σ {sigmas[-1]:g}: {measured}', above


def multiview_claim(metrics: Mapping[str, Any]) -> tuple[str, bool | None]:
  counts = [n for n in multiview.VIEW_COUNTS
            if metrics.get(metric_keys.multiview_subsets(n))]
  means = {n: {method: metrics.get(metric_keys.multiview(method, n))
               for method in ('kgnn3d', 'kgnn2d', 'heatmap')} for n in counts}
  if not counts or any(None in row.values() for row in means.values()):
    return cells.EMPTY, None
  measured = '; '.join(
      f'{n} views: ' + ', '.join(f'{METHOD_NAMES[method]} {value:.1f}'
                                 for method, value in row.items())
      for n, row in means.items())
  return measured, all(row['kgnn3d'] > max(row['kgnn2d'], row['heatmap'])
                       for row in means.values())


CLAIM_CHECKS: dict[str, Callable[[Mapping[str, Any]],
                                 tuple[str, bool | None]]] = {
    'occlusion_auc': occlusion_auc_claim, 'occluded_pck': occluded_pck_claim,
    'robustness': robustness_claim, 'multiview': multiview_claim}


def claim_verdict(above: bool | None) -> str:
  """The verdict of a check's outcome."""
  if above is None:
    return NOT_MEASURED
  return claims.REPRODUCED if above else claims.NOT_REPRODUCED


# Blocks.


def render_runs(inputs: Inputs) -> str:
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
      train_time = duration(sum(s['train_seconds'] for s in segments))
      eval_time = duration(sum(s['eval_seconds'] for s in segments))
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


def tested_metrics(inputs: Inputs, rows: list[list[str]], width: int,
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


def auc_interval(value: float | None,
                 interval: Sequence[float] | None) -> str:
  """An AUC with its [low, high] interval where there is one."""
  if value is None or interval is None:
    return auc(value)
  return f'{auc(value)} [{auc(interval[0])}, {auc(interval[1])}]'


def auc_with_interval(metrics: Mapping[str, Any], method: str) -> str:
  """An occlusion-AUC cell of metrics.json with its bootstrap interval."""
  key = metric_keys.occlusion_auc(method)
  return auc_interval(metrics.get(key), metrics.get(metric_keys.interval(key)))


def render_headline(inputs: Inputs) -> str:
  """`headline`: PCK@0.1 all/visible/occluded and occlusion AUC per run."""
  header = ['run', 'method', 'all', 'visible', 'occluded', 'occlusion AUC']
  rows = []
  for name, metrics in tested_metrics(inputs, rows, len(header)):
    for method in evaluate.METHODS:
      rows.append([f'`{name}`', METHOD_NAMES[method]] + [
          pck_with_interval(metrics, method, subset)
          for subset in ('all', 'visible', 'occluded')] + [
              auc_with_interval(metrics, method)
              if method in evaluate.OCCLUSION_METHODS else cells.EMPTY])
  for method, value in claims.PAPER_AUC.items():
    rows.append(['paper (Fig. 3)', METHOD_NAMES[method]]
                + [cells.EMPTY] * 3 + [auc(value)])
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


def render_seeds(inputs: Inputs) -> str:
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
      rows.append([f'`{name}`', seeds, METHOD_NAMES[method]] + [
          mean_sd([pck(m, method, subset) for m in present])
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


def render_kinds(inputs: Inputs) -> str:
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
      rows.append([f'`{name}`', METHOD_NAMES[method]] + [
          pck_with_interval(metrics, method, subset)
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


def render_levels(results: RunResults) -> str:
  """`levels_<run>`: occluded PCK by number of invisible keypoints."""
  header = ['invisible'] + [
      f'{METHOD_NAMES[method]} @{alpha:g}' for alpha in (0.1, 0.2)
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
        cells.percent(pck(results.metrics, method, subset, alpha))
        for alpha in (0.1, 0.2) for method in evaluate.METHODS] + [
            gain(pck(results.metrics, 'kgnn2d', subset),
                 pck(results.metrics, 'heatmap', subset)),
            paper.get(level, cells.EMPTY),
            cells.EMPTY if count is None else str(count)])
  return (cells.table(header, rows) + f'\n\n{FEW_MARK}: fewer than '
          f'{FEW_KEYPOINTS} keypoints at that level; its PCK is a rough '
          'estimate.')


def render_robustness(inputs: Inputs) -> str:
  """`robustness`: PCK@0.1 vs input noise sigma per dataset run."""
  metrics = [inputs.runs[name].metrics for name in runs.DATASET_RUNS]
  sigmas = sorted({sigma for m in metrics if m for sigma in noise_sigmas(m)})
  header = ['run', 'method'] + [f'σ {sigma:g}' for sigma in sigmas]
  rows = []
  for name, run_metrics in zip(runs.DATASET_RUNS, metrics):
    if run_metrics is None:
      rows.append(_not_run_row([f'`{name}`'], len(header)))
      continue
    for method in evaluate.PERTURBED_METHODS:
      rows.append([f'`{name}`', METHOD_NAMES[method]] + [
          cells.percent(run_metrics.get(metric_keys.robustness(method, sigma)))
          for sigma in sigmas])
  return cells.table(header, rows)


def ablation_metrics(inputs: Inputs) -> dict[str, dict[str, Any]]:
  """The metrics of the ablation runs (and the demo) that have them."""
  return {name: inputs.runs[name].metrics for name in runs.ABLATION_RUNS
          if inputs.runs[name].metrics is not None}


def render_ablations(inputs: Inputs, figures_link: str) -> str:
  """`ablations`: the demo against each ablation, and their figure."""
  available = ablation_metrics(inputs)
  levels = populated_levels(list(available.values()))
  header = ['run', 'what', 'heatmap occluded'] + [
      f'{METHOD_NAMES[method]} {subset}' for method in ('kgnn2d', 'kgnn3d')
      for subset in ('visible', 'occluded')] + ['2D-KGNN occlusion AUC'] + [
          f'2D-KGNN occluded, {level} invisible' for level in levels]
  rows = []
  for name in runs.ABLATION_RUNS:
    first = [f'`{name}`', runs.RUNS_BY_NAME[name].description]
    metrics = available.get(name)
    if metrics is None:
      rows.append(_not_run_row(first, len(header)))
      continue
    rows.append(first + [cells.percent(pck(metrics, 'heatmap', 'occluded'))] + [
        cells.percent(pck(metrics, method, subset))
        for method in ('kgnn2d', 'kgnn3d')
        for subset in ('visible', 'occluded')] + [
            auc(metrics.get(metric_keys.occlusion_auc('kgnn2d')))] + [
                cells.percent(pck(metrics, 'kgnn2d', f'occluded_{level}'))
                for level in levels])
  text = ('Test PCK@0.1 (%) of the heatmap head on occluded keypoints and '
          'of the 2D- and 3D-KGNN:\n\n'
          + cells.table(header, rows))
  if available:
    text += (f'\n\n![occluded PCK by level, ablations]'
             f'({figures_link}/{ABLATIONS_FIGURE})')
  return text


def render_tuning(inputs: Inputs) -> str:
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
      value = pck(metrics, 'kgnn2d', subset)
      if value is not None:
        values[name] = value
    rows.append(first + [
        pck_with_interval(metrics, method, subset)
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


def render_multiview(inputs: Inputs) -> str:
  """`multiview`: mean correspondences per n-view subset (Fig. 4 right)."""
  header = ['run', 'method'] + [f'{n} views' for n in multiview.VIEW_COUNTS]
  rows = []
  for name, metrics in tested_metrics(inputs, rows, len(header)):
    if not metric_keys.levels(metrics, 'multiview'):
      logging.warning('%s: no multiview.* keys in metrics.json.', name)
      rows.append([f'`{name}`', NOT_MEASURED]
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
      rows.append([f'`{name}`', METHOD_NAMES[method]] + row)
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


def render_trifocal_labels(inputs: Inputs, figures_link: str) -> str:
  """`trifocal_labels`: labelled occluded points near the trifocal transfer."""
  header = ['dataset', 'split', 'occluded labels', 'with a trifocal target'
            ] + [f'noise-free @{a:g}' for a in LABEL_ALPHAS] + [
                f'label noise @{a:g}' for a in LABEL_ALPHAS]
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
                     for alpha in LABEL_ALPHAS])
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
          for alpha in LABEL_ALPHAS])
  return ('Labelled occluded points within alpha * L of the trifocal '
          'transfer from two views where they are visible (%):\n\n'
          + '\n\n'.join([cells.table(header, rows)] + notes))


# The box rules of `data_prep.box_oracle`, as the box-oracle table names them.
BOX_RULES = {'visible_hull': 'hull of the visible keypoints',
             'record': 'the dataset\'s box',
             'all_labelled_hull': 'hull of all labelled keypoints (the '
                                  'boxes before issue 11)'}


def render_box_oracle(inputs: Inputs) -> str:
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


def render_speed(inputs: Inputs) -> str:
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


def render_targets(inputs: Inputs) -> str:
  """`targets`: each target of issue 6, measured, met or missed."""
  header = ['target', 'run', 'measured', 'status']
  rows = []
  for target, check in RUN_TARGETS:
    for name in runs.DATASET_RUNS:
      rows.append([target, f'`{name}`',
                   *check(inputs.runs[name].metrics)])
  if inputs.bench is None:
    rows.append(['speed goals (benchmark)', cells.EMPTY, cells.EMPTY, NOT_RUN])
  else:
    for goal in speed_table.bench_goals(inputs.bench):
      measured = speed_table.goal_measured(goal)
      rows.append([goal['name'], 'benchmark', measured, goal['status']])
  return cells.table(header, rows)


def render_claims(inputs: Inputs) -> str:
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
        row.append(NOT_RUN)
      else:
        measured, above = CLAIM_CHECKS[claim.check](metrics)
        row.append(f'**{claim_verdict(above)}**: {measured}')
    rows.append(row)
  return ('Each claim on each dataset run\'s test split (seed 0), with 95% '
          'bootstrap intervals over cars; "not reproduced" includes '
          'intervals that overlap:\n\n' + cells.table(header, rows))


def render_figures(inputs: Inputs, figures_link: str) -> str:
  """`figures`: links to the copied evaluation figures of `FIGURE_RUNS`."""
  lines = []
  for name in runs.FIGURE_RUNS:
    results = inputs.runs[name]
    if not results.figures:
      lines.append(f'- `{name}`: {NOT_RUN}')
      continue
    links = ', '.join(
        f'[{os.path.splitext(os.path.basename(path))[0]}]'
        f'({figures_link}/{name}/{os.path.basename(path)})'
        for path in results.figures)
    lines.append(f'- `{name}` ([metrics.json]({figures_link}/{name}/'
                 f'metrics.json)): {links}')
  return '\n'.join(lines)


def render_blocks(inputs: Inputs, figures_link: str) -> dict[str, str]:
  """Every generated block of RESULTS.md by marker name.

  Args:
    inputs: `load_inputs`.
    figures_link: the figures directory relative to RESULTS.md.

  Returns:
    Markdown by block name: `runs`, `claims`, `headline`, `seeds`,
    `kinds`, `levels_<run>` for each of `runs.DATASET_RUNS`, `robustness`,
    `ablations`, `tuning`, `multiview`, `trifocal_labels`,
    `box_oracle`, `speed`, `targets`, `figures`.
  """
  blocks = {'runs': render_runs(inputs), 'claims': render_claims(inputs),
            'headline': render_headline(inputs),
            'seeds': render_seeds(inputs), 'kinds': render_kinds(inputs)}
  for name in runs.DATASET_RUNS:
    blocks[f'levels_{name}'] = render_levels(inputs.runs[name])
  blocks.update(
      robustness=render_robustness(inputs),
      ablations=render_ablations(inputs, figures_link),
      tuning=render_tuning(inputs),
      multiview=render_multiview(inputs),
      trifocal_labels=render_trifocal_labels(inputs, figures_link),
      box_oracle=render_box_oracle(inputs),
      speed=render_speed(inputs),
      targets=render_targets(inputs),
      figures=render_figures(inputs, figures_link))
  return blocks


_OPEN = re.compile(r'<!-- report:(\S+) -->')
_CLOSE = re.compile(r'<!-- /report:(\S+) -->')


def replace_blocks(text: str, blocks: Mapping[str, str],
                   ) -> tuple[str, list[str]]:
  """Writes each block between its markers; nothing else changes.

  A block is `<!-- report:NAME -->`, a newline, its content, a newline and
  `<!-- /report:NAME -->`; replacing is idempotent.

  Args:
    text: the document (RESULTS.md).
    blocks: content by block name.

  Returns:
    (the new text, the names of the blocks whose content changed).

  Raises:
    ValueError: naming a marker without a block, a block without markers,
      or a marker opened twice or not closed.
  """
  opened = _OPEN.findall(text)
  closed = _CLOSE.findall(text)
  for name in opened:
    if opened.count(name) > 1:
      raise ValueError(f'Marker report:{name} appears more than once.')
  if sorted(opened) != sorted(closed):
    raise ValueError('Unpaired markers: '
                     f'{sorted(set(opened) ^ set(closed))}.')
  unknown = [name for name in opened if name not in blocks]
  if unknown:
    raise ValueError(f'Unknown report markers (no such block): {unknown}.')
  missing = [name for name in blocks if name not in opened]
  if missing:
    raise ValueError(f'No markers for report blocks: {missing}; add '
                     '<!-- report:NAME --> and <!-- /report:NAME -->.')
  updated = []

  def substitute(match: re.Match[str]) -> str:
    name, old = match.group(1), match.group(2)
    content = blocks[name].strip()
    new = f'\n{content}\n' if content else '\n'
    if old != new:
      updated.append(name)
    return f'<!-- report:{name} -->{new}<!-- /report:{name} -->'

  text, count = re.subn(r'<!-- report:(\S+) -->(.*?)<!-- /report:\1 -->',
                        substitute, text, flags=re.DOTALL)
  if count != len(opened):
    raise ValueError('Markers are nested or out of order.')
  return text, updated


def _copy(source: str, destination: str) -> None:
  destination = epath.Path(destination)
  destination.parent.mkdir(parents=True, exist_ok=True)
  epath.Path(source).copy(destination, overwrite=True)


def copy_figures(inputs: Inputs, figures: str) -> None:
  """Copies the figures and the numbers behind them into `figures`.

  Each run's PNGs (those of `runs.FIGURE_RUNS`), metrics.json, config.json
  and run.json go to `<figures>/<run>/`, and each study output to its copy
  of `study_files`; the ablation comparison is drawn to
  `<figures>/ablations.png`. What was read from the committed copies is
  already there.
  """
  for name, results in inputs.runs.items():
    if results.metrics is None or results.committed:
      continue
    workdir = os.path.join(inputs.workdirs, name)
    sources = [os.path.join(results.eval_dir, METRICS_FILE)] + [
        os.path.join(workdir, file) for file in (workdir_lib.CONFIG_FILE,
                                                 workdir_lib.RUN_FILE)]
    if name in runs.FIGURE_RUNS:
      sources += results.figures
    for path in sources:
      if epath.Path(path).exists():
        _copy(path, os.path.join(figures, name, os.path.basename(path)))
  for path, copy in study_files(inputs.workdirs, figures).values():
    if epath.Path(path).exists():
      _copy(path, copy)
  available = ablation_metrics(inputs)
  if available:
    epath.Path(figures).mkdir(parents=True, exist_ok=True)
    splits = sorted({inputs.runs[name].split for name in available})
    plots.ablations(available, populated_levels(list(available.values())),
                    os.path.join(figures, ABLATIONS_FIGURE),
                    split=', '.join(splits))


def current_blocks(text: str) -> dict[str, str]:
  """The content of every block of a document, by name."""
  return {match.group(1): match.group(2) for match in re.finditer(
      r'<!-- report:(\S+) -->(.*?)<!-- /report:\1 -->', text, re.DOTALL)}


def write_report(workdirs: str, results: str, figures: str,
                 only: Sequence[str] = ()) -> list[str]:
  """Regenerates RESULTS.md's blocks and figures from the workdirs.

  Args:
    workdirs: the runs' workdirs (`launch.reproduce`).
    results: RESULTS.md, with a marker pair per block of `render_blocks`.
    figures: the directory the figures are copied to (what the workdirs
      hold; nothing there is removed).
    only: the names of the blocks to rewrite, e.g. ('speed',) after a
      benchmark on a machine without the runs; () rewrites every block.

  Returns:
    The names of the blocks whose content changed, and `VALUES` where an
    inline value of the prose did (`prose_values`).

  Raises:
    ValueError: `only` names no block, the markers are wrong
      (`replace_blocks`) or an inline value has no source.
  """
  inputs = load_inputs(workdirs, committed=figures)
  link = os.path.relpath(figures, os.path.dirname(os.path.abspath(results)))
  text = epath.Path(results).read_text()
  blocks = render_blocks(inputs, link)
  unknown = sorted(set(only) - set(blocks))
  if unknown:
    raise ValueError(f'No such report blocks: {unknown}; the blocks are '
                     f'{sorted(blocks)}.')
  if only:
    kept = current_blocks(text)
    blocks = {name: content if name in only else kept.get(name, content)
              for name, content in blocks.items()}
  # Markers are checked before anything is written.
  text, updated = replace_blocks(text, blocks)
  valued = prose_values.replace_values(
      text, {name: results.metrics for name, results in inputs.runs.items()},
      inputs.bench)
  if valued != text:
    updated.append(VALUES)
    text = valued
  copy_figures(inputs, figures)
  if updated:
    epath.Path(results).write_text(text)
  return updated
