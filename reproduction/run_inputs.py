"""What the report reads: each run's workdir files and the studies' outputs.

`load_inputs` reads every input under a workdirs tree (`report` module
docstring); an input missing there is read from its committed copy in
docs/results/ where one exists, and one missing in both is logged and
reported as not run.
"""

from collections.abc import Mapping
import dataclasses
import json
import os
from typing import Any

from absl import logging
from etils import epath

from occnet_jax import configs
from occnet_jax import workdir as workdir_lib
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import outputs
from occnet_jax.evaluation import simulated_detector
from reproduction import label_study
from reproduction import runs

# Where `launch.report` copies the figures and the numbers behind them.
COMMITTED = os.path.join('docs', 'results')
BENCH_COPY = 'bench.json'
# `study_files`' key of a label study's plot, after the study's.
FIGURE_KEY = ':figure'
SIMULATED_DETECTOR_COPY = (
    f'simulated_detector_{runs.SIMULATED_DETECTOR_RUN}.json')


@dataclasses.dataclass(frozen=True)
class RunResults:
  """What a training run left in its workdir (None where missing).

  Attributes:
    run: the run.
    config: config.json.
    segments: run.json's segments, one per invocation of training.
    metrics: the evaluated split's metrics.json, its methods under their
      current names (`metric_keys.with_current_names`).
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
    simulated_detector: the metrics.json of `launch.evaluate
      --simulated_detector` on `runs.SIMULATED_DETECTOR_RUN`, its methods
      under their current names, or None.
    bench: bench.json, or None.
    workdirs: where they were read from.
  """

  runs: dict[str, RunResults]
  labels: dict[str, dict[str, Any] | None]
  label_figures: dict[str, str]
  box_oracle: dict[str, dict[str, Any] | None]
  simulated_detector: dict[str, Any] | None
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
  return ((config or {}).get('eval', {}).get('final_split')
          or runs.eval_split(run))


def read_config(workdir: str) -> dict[str, Any] | None:
  """A run's config.json with its keys' current names, or None (logged)."""
  config = read_json(os.path.join(workdir, workdir_lib.CONFIG_FILE))
  return None if config is None else configs.with_current_keys(config)


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
  config = read_config(workdir)
  split = config_split(config, run)
  path = outputs.metrics_path(workdir, split)
  from_copy = bool(committed) and not epath.Path(path).exists() and (
      epath.Path(committed, run.name, outputs.METRICS_FILE).exists())
  if from_copy:
    workdir = os.path.join(committed, run.name)
    logging.info('%s: reading the committed copy in %s', run.name, workdir)
    path = os.path.join(workdir, outputs.METRICS_FILE)
    config = read_config(workdir)
    split = config_split(config, run)
  run_file = read_json(os.path.join(workdir, workdir_lib.RUN_FILE))
  eval_dir = os.path.dirname(path)
  metrics = read_json(path)
  return RunResults(run=run, config=config,
                    segments=run_file and run_file['segments'],
                    metrics=metrics and metric_keys.with_current_names(metrics),
                    split=split, eval_dir=eval_dir,
                    figures=_pngs(eval_dir), committed=from_copy)


def simulated_detector_file(workdirs: str) -> str:
  """Where the simulated-detector study (`runs.STUDIES`) writes its metrics."""
  return os.path.join(
      outputs.split_directory(
          os.path.join(workdirs, runs.SIMULATED_DETECTOR_RUN),
          runs.SIMULATED_DETECTOR_SPLIT),
      simulated_detector.DIRECTORY, outputs.METRICS_FILE)


def study_files(workdirs: str, copies: str) -> dict[str, tuple[str, str]]:
  """Every study output: (its path under `workdirs`, its copy's in `copies`).

  Keyed by the name of the step of `runs.STUDIES` that writes it:
  'trifocal_labels/<study>' (and '...:figure', its plot) for
  `runs.LABEL_STUDIES`, 'box_oracle/<study>' for `runs.BOX_ORACLE_STUDIES`,
  'simulated_detector' and 'benchmark'.
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
  files['simulated_detector'] = (
      simulated_detector_file(workdirs),
      os.path.join(copies, SIMULATED_DETECTOR_COPY))
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
  detector = read_json(paths['simulated_detector'])
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
      simulated_detector=detector and metric_keys.with_current_names(
          detector),
      bench=read_json(paths['benchmark']), workdirs=workdirs)
