"""RESULTS.md's tables and figures, regenerated from the workdirs.

`python -m launch.reproduce` trains every run of the table `runs.RUNS` into
a workdirs tree and measures the label studies and the speed; `python -m
launch.report` then calls `write_report`, which

  - loads what is there (`run_inputs.load_inputs`; a missing file is
    logged and its rows say "not run");
  - copies each run's figures and metrics.json, the label-study figures and
    the box oracles', the simulated detector's and the benchmark's JSON
    into the repository (`copy_figures`) and draws the ablation comparison
    (`plots.ablations`);
  - renders one markdown block per study (`render_blocks`, by `tables`:
    `runs`, `claims`, `headline`, `seeds`, `kinds`, `levels_<run>`,
    `robustness`, `ablations`, `tuning`, `multiview`, `trifocal_labels`,
    `box_oracle`, `simulated_detector`, `speed`, `targets`, `figures`) and
    writes each between the markers `<!-- report:NAME -->` and
    `<!-- /report:NAME -->` of RESULTS.md (`results_blocks.replace_blocks`);
  - rewrites the numbers the prose around them quotes as inline values
    (`prose_values`), leaving the rest of the prose alone.

Inputs under the workdirs:

  - `<run>/config.json`, `<run>/run.json` (`workdir.RunRecord`) and
    `<run>/eval/<split>/`'s metrics with its PNGs (`launch.train`);
  - `trifocal_labels/<dataset>/trifocal_labels.{json,png}`
    (`launch.trifocal_labels`) for each of `runs.LABEL_STUDIES`;
  - `runs.box_oracle_file` (`data_prep.box_oracle`) for each of
    `runs.BOX_ORACLE_STUDIES`;
  - `run_inputs.simulated_detector_file` (`launch.evaluate
    --simulated_detector` on `runs.SIMULATED_DETECTOR_RUN`);
  - `runs.BENCH_FILE` (`launch.benchmark --sizes=default,paper`).

The paper's numbers and the targets they are compared with are in
`claims.py`.

Percentages have one decimal; gains are differences in percentage points.
"""

from collections.abc import Sequence
import os

from etils import epath

from occnet_jax import workdir as workdir_lib
from occnet_jax.evaluation import outputs
from occnet_jax.evaluation import plots
from reproduction import claim_rules
from reproduction import prose_values
from reproduction import results_blocks
from reproduction import run_inputs
from reproduction import runs
from reproduction import tables

# `write_report`'s name for the prose's inline values.
VALUES = 'inline values'


def render_blocks(inputs: run_inputs.Inputs,
                  figures_link: str) -> dict[str, str]:
  """Every generated block of RESULTS.md by marker name.

  Args:
    inputs: `load_inputs`.
    figures_link: the figures directory relative to RESULTS.md.

  Returns:
    Markdown by block name: `runs`, `claims`, `headline`, `seeds`,
    `kinds`, `levels_<run>` for each of `runs.DATASET_RUNS`, `robustness`,
    `ablations`, `tuning`, `multiview`, `trifocal_labels`,
    `box_oracle`, `simulated_detector`, `speed`, `targets`, `figures`.
  """
  blocks = {'runs': tables.render_runs(inputs),
            'claims': tables.render_claims(inputs),
            'headline': tables.render_headline(inputs),
            'seeds': tables.render_seeds(inputs),
            'kinds': tables.render_kinds(inputs)}
  for name in runs.DATASET_RUNS:
    blocks[f'levels_{name}'] = tables.render_levels(inputs.runs[name])
  blocks.update(
      robustness=tables.render_robustness(inputs),
      ablations=tables.render_ablations(inputs, figures_link),
      tuning=tables.render_tuning(inputs),
      multiview=tables.render_multiview(inputs),
      trifocal_labels=tables.render_trifocal_labels(inputs, figures_link),
      box_oracle=tables.render_box_oracle(inputs),
      simulated_detector=tables.render_simulated_detector(inputs),
      speed=tables.render_speed(inputs),
      targets=tables.render_targets(inputs),
      figures=tables.render_figures(inputs, figures_link))
  return blocks


def _copy(source: str, destination: str) -> None:
  destination = epath.Path(destination)
  destination.parent.mkdir(parents=True, exist_ok=True)
  epath.Path(source).copy(destination, overwrite=True)


def copy_figures(inputs: run_inputs.Inputs, figures: str) -> None:
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
    sources = [os.path.join(results.eval_dir, outputs.METRICS_FILE)] + [
        os.path.join(workdir, file) for file in (workdir_lib.CONFIG_FILE,
                                                 workdir_lib.RUN_FILE)]
    if name in runs.FIGURE_RUNS:
      sources += results.figures
    for path in sources:
      if epath.Path(path).exists():
        _copy(path, os.path.join(figures, name, os.path.basename(path)))
  for path, copy in run_inputs.study_files(inputs.workdirs, figures).values():
    if epath.Path(path).exists():
      _copy(path, copy)
  available = tables.ablation_metrics(inputs)
  if available:
    epath.Path(figures).mkdir(parents=True, exist_ok=True)
    splits = sorted({inputs.runs[name].split for name in available})
    plots.ablations(available,
                    claim_rules.populated_levels(list(available.values())),
                    os.path.join(figures, tables.ABLATIONS_FIGURE),
                    split=', '.join(splits))


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
  inputs = run_inputs.load_inputs(workdirs, committed=figures)
  link = os.path.relpath(figures, os.path.dirname(os.path.abspath(results)))
  text = epath.Path(results).read_text()
  blocks = render_blocks(inputs, link)
  unknown = sorted(set(only) - set(blocks))
  if unknown:
    raise ValueError(f'No such report blocks: {unknown}; the blocks are '
                     f'{sorted(blocks)}.')
  if only:
    kept = results_blocks.current_blocks(text)
    blocks = {name: content if name in only else kept.get(name, content)
              for name, content in blocks.items()}
  # Markers are checked before anything is written.
  text, updated = results_blocks.replace_blocks(text, blocks)
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
