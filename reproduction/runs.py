"""The table of the reproduction: every run behind RESULTS.md, in one place.

`python -m launch.reproduce` trains the `RUNS` into a workdirs tree (each in
`<workdirs>/<name>`, from its config file and overrides), first making the
`PREPARATIONS` a run `needs`; then it runs the `STUDIES` (the label studies,
the box oracle, the simulated detector, the benchmark). Its budget was
about three hours on a 2-core CPU: 18 runs of 8-15 minutes each on the
machines of earlier sessions (RESULTS.md's runs table gives each run's
time; a slower machine takes two to three times as long). Synthetic CarFusion's own trifocal
sweep added 3, about half an hour more, so a run added here should replace
one. Issue 23's decoder gate and train-time box jitter add 13 (an
ablation and 12 tuning runs, `_gated_tuning_runs`); the sweeps before them
pin the ungated decoder, so their committed copies still stand for them
(`launch.reproduce --skip_committed` leaves them out). `report.py` reads
the same table back: the runs' rows, the datasets they stand for, the
ablations and where each study's output lies. The configs are the runs'
single source; a run adds only command-line overrides. `{workdirs}` in a
flag stands for the workdirs tree.
"""

import dataclasses
import importlib
import os

import ml_collections

# The TFDS data dir every run and study shares (`input_pipeline.
# resolve_data_dir` puts it beside each workdir).
DATA_DIR = os.path.join('{workdirs}', 'tensorflow_datasets')
CONFIG_DIR = os.path.join('occnet_jax', 'configs')
# The Car-render training cars' shape basis, for CarFusion's 3D-KGNN.
CAR_RENDER_BASIS = os.path.join('{workdirs}',
                                'car_render_small_train_basis.npz')
BENCH_FILE = os.path.join('benchmark', 'bench.json')


@dataclasses.dataclass(frozen=True)
class Step:
  """A command of the reproduction other than training.

  Attributes:
    name: what it makes.
    module: run as `python -m <module>`.
    flags: its flags.
    done: a path whose existence means the step need not run again; ''
      for a step rerun every time (a study reads what the runs left).
    needs: what must be made first: names of `PREPARATIONS`, and TFDS
      datasets with their builder config ('car_render/small'), built by
      `dataset_step`.
    reads: the runs of `RUNS` whose checkpoint a study reads (the studies
      come after every run; `reproduce.commands` leaves such a study out
      where it leaves one of them out as committed).
  """

  name: str
  module: str
  flags: tuple[str, ...]
  done: str = ''
  needs: tuple[str, ...] = ()
  reads: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Run:
  """A training run of the reproduction.

  Attributes:
    name: its workdir under the workdirs.
    config: its config file under `occnet_jax/configs/`.
    dataset: the dataset it trains and is tested on, for the tables.
    description: what it is.
    overrides: `--config.KEY=VALUE` flags.
    paper: the paper's dataset its claims are compared with ('car_render'
      or 'carfusion'), '' for ablations.
    ablation_of: the run it ablates, '' for the runs of a dataset.
    tunes: the run one of whose settings it varies, to choose that setting
      by validation PCK ('' for the runs that are tested). A tuning run is
      evaluated on the validation split only.
    seed_of: the dataset run it repeats with another `config.seed` ('' for
      the rest), for the mean and spread across seeds.
    needs: the names of the `PREPARATIONS` it needs first (`run_needs`
      adds the dataset it trains on).
  """

  name: str
  config: str
  dataset: str
  description: str
  overrides: tuple[str, ...] = ()
  paper: str = ''
  ablation_of: str = ''
  tunes: str = ''
  seed_of: str = ''
  needs: tuple[str, ...] = ()


RUNS = (
    Run('demo', 'default.py', 'Car-render small',
        'the `default` config (`make demo`)', paper='car_render'),
    Run('no_trifocal', 'default.py', 'Car-render small',
        'demo without the trifocal loss',
        overrides=('--config.loss.trifocal=0',), ablation_of='demo'),
    # Without the encoder every occlusion score is 0.5: the hard gate would
    # move every keypoint or none, so this ablation's decoder is ungated.
    Run('no_encoder', 'default.py', 'Car-render small',
        'demo without the graph encoder (uniform edge probabilities)',
        overrides=('--config.model.use_encoder=False',
                   '--config.model.decoder_gate=none'), ablation_of='demo'),
    # The decoder before issue 23: every keypoint moves, visible ones too,
    # held in place only by the visible term.
    Run('ungated_decoder', 'default.py', 'Car-render small',
        'demo whose decoder moves every keypoint (no occlusion gate)',
        overrides=('--config.model.decoder_gate=none',), ablation_of='demo'),
    Run('no_keypoint_type', 'default.py', 'Car-render small',
        'demo without keypoint types in the node features',
        overrides=('--config.model.use_keypoint_type=False',),
        ablation_of='demo'),
    # Full supervision for reference: its heatmap row shows how far the
    # self-supervised graph networks are from a head told the hidden points.
    Run('heatmap_supervised', 'default.py', 'Car-render small',
        'demo whose heatmap head also learns occluded labels (the authors\' '
        'release\'s loss)',
        overrides=('--config.loss.keypoints_occluded=True',),
        ablation_of='demo'),
    Run('car_render_full_cpu', 'car_render_full_cpu.py', 'Car-render full',
        'the demo model on the full set, 96 px crops', paper='car_render'),
    # The basis is fitted on the Car-render training cars (built by `demo`).
    Run('carfusion_synthetic', 'carfusion_synthetic.py',
        'synthetic CarFusion',
        'the demo model on synthetic intersections read by the carfusion '
        'builder',
        overrides=(f'--config.shape_basis.path={CAR_RENDER_BASIS}',),
        paper='carfusion', needs=('synthetic_carfusion', 'car_render_basis')),
)
# Every dataset run is repeated with these seeds (initialisation, data
# order, dropout): the report gives the mean and spread over its seeds.
EXTRA_SEEDS = (1, 2)


def seed_run_name(name: str, seed: int) -> str:
  """The run that repeats dataset run `name` with `seed`."""
  return f'{name}_seed_{seed}'


RUNS += tuple(
    dataclasses.replace(
        run, name=seed_run_name(run.name, seed),
        description=f'`{run.name}` with seed {seed}',
        overrides=run.overrides + (f'--config.seed={seed}',), paper='',
        seed_of=run.name)
    for run in RUNS if run.paper for seed in EXTRA_SEEDS)
# The sweeps from before the decoder gate (issue 23) ran the ungated
# decoder: they pin it, so that their committed copies stay theirs.
UNGATED = ('--config.model.decoder_gate=none',)
# The trifocal loss's (mode, weight) pairs tried on validation (issue 12):
# both residuals are in box scales, so one weight means the same in either.
# An earlier sweep found 0.1 and 0.3 below 1.0 in both modes (RESULTS.md).
TRIFOCAL_SWEEP = (('algebraic', 1.0), ('algebraic', 3.0), ('algebraic', 10.0),
                  ('geometric', 3.0))
# Weights of the decoder's visible term tried on validation (default 1).
VISIBLE_SWEEP = (2.0,)
# Synthetic CarFusion's own trifocal weights (the algebraic mode), tried on
# its validation split: its trifocal targets are far noisier than
# Car-render's (PnP cameras, annotator noise: RESULTS.md, "Trifocal
# labels"), so the weight chosen on Car-render need not carry over.
CARFUSION_TRIFOCAL_SWEEP = (0.3, 1.0, 3.0)
# Issue 23's gate variants, each at the tuned run's trifocal weight: the
# soft gate (this weight), the hard gate (`HARD_GATE_SWEEP`'s thresholds)
# and the ungated decoder (the run at that weight of the sweeps above).
SOFT_GATE_TRIFOCAL = {'demo': 3.0, 'carfusion_synthetic': 0.3}
# The hard gate's thresholds, the config's gate (chosen on validation over
# the soft one: RESULTS.md, "Tuning on validation").
HARD_GATE_SWEEP = (0.5,)
# The trifocal weight again, algebraic, with the config's hard gate: only
# occluded keypoints pay for it now, so the ungated sweeps' choice need not
# carry over. The config's own weight is `HARD_GATE_SWEEP`'s run.
HARD_GATE_TRIFOCAL_SWEEP = {'demo': (1.0, 10.0),
                            'carfusion_synthetic': (1.0, 3.0)}
# Train-time box jitter sigmas (`config.train.box_jitter`), hard gate.
BOX_JITTER_SWEEP = (0.05, 0.1)
# Rates at which training opens the hard gate at random
# (`config.model.decoder_gate_open_rate`), so that the decoder learns to
# keep the visible keypoints the encoder mistakes for occluded.
GATE_OPEN_SWEEP = (0.1,)
# The tuning runs' name prefix, by the run they tune.
TUNING_PREFIXES = {'demo': 'tune', 'carfusion_synthetic': 'tune_carfusion'}


def trifocal_run_name(mode: str, weight: float, tuned: str = 'demo',
                      gate: str = 'none') -> str:
  """The tuning run of `tuned` with a trifocal (mode, weight) and gate."""
  gated = '' if gate == 'none' else f'_{gate}_gate'
  return f'{TUNING_PREFIXES[tuned]}{gated}_trifocal_{mode}_{weight}'


def hard_gate_run_name(threshold: float, tuned: str = 'demo') -> str:
  """The tuning run of `tuned` with the hard gate at a threshold."""
  return f'{TUNING_PREFIXES[tuned]}_hard_gate_{threshold}'


def box_jitter_run_name(sigma: float, tuned: str = 'demo') -> str:
  """The tuning run of `tuned` with train-time box jitter `sigma`."""
  return f'{TUNING_PREFIXES[tuned]}_box_jitter_{sigma}'


def gate_open_run_name(rate: float, tuned: str = 'demo') -> str:
  """The tuning run of `tuned` whose training opens gates at `rate`."""
  return f'{TUNING_PREFIXES[tuned]}_gate_open_{rate}'


def visible_run_name(weight: float) -> str:
  """The tuning run of a weight of `VISIBLE_SWEEP`."""
  return f'tune_visible_{weight}'


def _tuning_run(tuned: str, name: str, what: str,
                overrides: tuple[str, ...]) -> Run:
  """Dataset run `tuned` with `overrides` (its description's `what`)."""
  base, = (run for run in RUNS if run.name == tuned)
  return dataclasses.replace(base, name=name, description=f'{tuned} {what}',
                             overrides=base.overrides + overrides, paper='',
                             tunes=tuned)


def _trifocal_tuning_run(tuned: str, mode: str, weight: float,
                         gate: str = 'none') -> Run:
  gated = '' if gate == 'none' else f', {gate} decoder gate'
  return _tuning_run(
      tuned, trifocal_run_name(mode, weight, tuned, gate),
      f'with the {mode} trifocal loss at weight {weight}{gated}',
      (f'--config.loss.trifocal_mode={mode}',
       f'--config.loss.trifocal={weight}') + (
           UNGATED if gate == 'none'
           else (f'--config.model.decoder_gate={gate}',)))


RUNS += tuple(
    _trifocal_tuning_run('demo', mode, weight)
    for mode, weight in TRIFOCAL_SWEEP) + tuple(
        _tuning_run('demo', visible_run_name(weight),
                    f'with the decoder\'s visible term weighted {weight:g}x',
                    (f'--config.loss.visible={weight}',) + UNGATED)
        for weight in VISIBLE_SWEEP) + tuple(
            _trifocal_tuning_run('carfusion_synthetic', 'algebraic', weight)
            for weight in CARFUSION_TRIFOCAL_SWEEP)


def _gated_tuning_runs(tuned: str) -> tuple[Run, ...]:
  """The gate's and the box jitter's tuning runs of `tuned` (issue 23)."""
  return (_trifocal_tuning_run(tuned, 'algebraic', SOFT_GATE_TRIFOCAL[tuned],
                               'soft'),) + tuple(
      _tuning_run(tuned, hard_gate_run_name(threshold, tuned),
                  f'with the hard decoder gate at {threshold}',
                  ('--config.model.decoder_gate=hard',
                   f'--config.model.decoder_gate_threshold={threshold}'))
      for threshold in HARD_GATE_SWEEP) + tuple(
          _trifocal_tuning_run(tuned, 'algebraic', weight, 'hard')
          for weight in HARD_GATE_TRIFOCAL_SWEEP[tuned]) + tuple(
              _tuning_run(tuned, box_jitter_run_name(sigma, tuned),
                          f'trained under box jitter sigma {sigma}',
                          (f'--config.train.box_jitter={sigma}',))
              for sigma in BOX_JITTER_SWEEP) + tuple(
                  _tuning_run(tuned, gate_open_run_name(rate, tuned),
                              f'whose training opens gates at rate {rate}',
                              (f'--config.model.decoder_gate_open_rate={rate}',))
                  for rate in GATE_OPEN_SWEEP)


RUNS += _gated_tuning_runs('demo') + _gated_tuning_runs('carfusion_synthetic')
RUNS_BY_NAME = {run.name: run for run in RUNS}


def tuning_setting(run: Run) -> tuple[str, ...]:
  """The overrides a tuning run adds to the run it tunes."""
  return run.overrides[len(RUNS_BY_NAME[run.tunes].overrides):]


TESTED_RUNS = tuple(run.name for run in RUNS if not run.tunes)
TUNING_RUNS = tuple(run.name for run in RUNS if run.tunes)
DATASET_RUNS = tuple(run.name for run in RUNS if run.paper)
# Each dataset run and its repeats with `EXTRA_SEEDS`.
SEED_GROUPS = {name: (name,) + tuple(run.name for run in RUNS
                                     if run.seed_of == name)
               for name in DATASET_RUNS}
# The runs whose evaluation figures RESULTS.md links (a seed's repeat or a
# tuning run would only add bulk).
FIGURE_RUNS = tuple(run.name for run in RUNS
                    if not run.tunes and not run.seed_of)
ABLATION_RUNS = ('demo',) + tuple(run.name for run in RUNS
                                  if run.ablation_of == 'demo')

# Synthetic intersections in the CarFusion layout, read by the carfusion
# builder as it reads real CarFusion: no calibration (the run builds
# `carfusion/visible_hull_multiview`, which poses each view against its
# car's own 3D keypoints, triangulated from the car's views; the label
# studies compare it with `carfusion/visible_hull`'s PnP against the
# ShapeNet mean car), labels with simulated annotator noise
# (data_prep/annotator.py; exact positions in gt_true/ for evaluation),
# boxes of the visible pixels in bb/ (the runs read the visible-keypoint
# hull instead; docs/design.md, "Boxes"). Traffic moves (queues drive off, a fifth of the
# cars park); 10 training intersections of 32 cars give up to 320 distinct
# training cars (before: 8 of 12, 96); validation/ holds whole
# intersections of their own, which the tuning runs read. The 14
# intersections took 38 min 31 s to render on a 2-core machine beside two
# training runs (2026-12-07).
CARFUSION_MANUAL = os.path.join(DATA_DIR, 'downloads', 'manual', 'carfusion')
PREPARATIONS = {step.name: step for step in (
    Step('synthetic_carfusion', 'data_prep.make_synthetic_carfusion', (
        f'--output={CARFUSION_MANUAL}', '--train_sequences=10',
        '--validation_sequences=2', '--test_sequences=2', '--cameras=8',
        '--frames=12', '--cars=32',
        '--width=1280', '--height=720', '--seed=0', '--nocalibration',
        '--label_sigma_visible=0.015', '--label_sigma_occluded=0.05',
        '--label_mirror_swap_rate=0.05'),
         # The generator writes validation/ last.
         done=os.path.join(CARFUSION_MANUAL, 'validation')),
    # The 3D-KGNN's shape basis for CarFusion, fitted on other cars: the
    # Car-render training cars.
    Step('car_render_basis', 'data_prep.fit_shape_basis', (
        '--dataset=car_render/small', '--split=train',
        f'--data_dir={DATA_DIR}', f'--output={CAR_RENDER_BASIS}'),
         done=CAR_RENDER_BASIS, needs=('car_render/small',)),
)}
# What a builder of data_prep/ reads besides its code.
BUILDER_NEEDS = {'carfusion': ('synthetic_carfusion',)}


def dataset_step(dataset: str) -> Step:
  """The `tfds build` of a dataset of data_prep/ into `DATA_DIR`.

  Training would build it on first use too; a step of its own builds it
  once, before the runs that read it (`launch.reproduce --jobs` runs them
  side by side).

  Args:
    dataset: the TFDS name with its builder config, 'carfusion/default'.
  """
  builder, config = dataset.split('/')
  manual = ((f'--manual_dir={CARFUSION_MANUAL}',) if builder == 'carfusion'
            else ())
  return Step(dataset, 'tensorflow_datasets.scripts.cli.main', (
      'build', f'data_prep/{builder}', f'--config={config}',
      f'--data_dir={DATA_DIR}', '--file_format=array_record', *manual),
              done=os.path.join(DATA_DIR, builder, config),
              needs=BUILDER_NEEDS.get(builder, ()))


def _config(run: Run) -> ml_collections.ConfigDict:
  """A run's config file's config (before its overrides)."""
  return importlib.import_module(
      f'occnet_jax.configs.{run.config.removesuffix(".py")}').get_config()


def run_dataset(run: Run) -> str:
  """The TFDS dataset a run trains on, with its builder config."""
  data = _config(run).data
  return f'{data.name}/{data.builder_config}'


def run_needs(run: Run) -> tuple[str, ...]:
  """What must be made before a run: its `needs`, then its dataset."""
  return run.needs + (run_dataset(run),)


def step_named(name: str) -> Step:
  """The preparation, or dataset build, of a name in some `needs`."""
  return PREPARATIONS[name] if name in PREPARATIONS else dataset_step(name)


@dataclasses.dataclass(frozen=True)
class LabelStudy:
  """A trifocal label study (paper Fig. 4 left) of `launch.trifocal_labels`.

  Attributes:
    name: its directory under `<workdirs>/trifocal_labels/`.
    dataset: the TFDS name with its builder config.
    label: the dataset's name in the tables.
  """

  name: str
  dataset: str
  label: str


LABEL_STUDIES = (
    LabelStudy('car_render_full', 'car_render/full', 'Car-render full'),
    LabelStudy('carfusion_synthetic', 'carfusion/visible_hull',
               'synthetic CarFusion'),
    # The same views, posed against each car's own 3D keypoints.
    LabelStudy('carfusion_synthetic_multiview',
               'carfusion/visible_hull_multiview',
               'synthetic CarFusion, cameras from each car\'s views'),
)


def label_directory(workdirs: str, study: str) -> str:
  """Where `launch.trifocal_labels` writes a label study."""
  return os.path.join(workdirs, 'trifocal_labels', study)


@dataclasses.dataclass(frozen=True)
class BoxOracleStudy:
  """What a dataset's box rules leak, by `data_prep.box_oracle`.

  Attributes:
    name: its JSON file's stem under `<workdirs>/box_oracle/`.
    dataset: the TFDS name with its builder config.
    label: the dataset and its box in the tables.
  """

  name: str
  dataset: str
  label: str


BOX_ORACLE_STUDIES = (
    BoxOracleStudy('carfusion_synthetic_visible_hull', 'carfusion/visible_hull',
                   'synthetic CarFusion, `carfusion/visible_hull` (the '
                   'runs\' box: the visible keypoints\' hull)'),
    BoxOracleStudy('carfusion_synthetic_default', 'carfusion/default',
                   'synthetic CarFusion, `carfusion/default` (the visible '
                   'pixels\' box of bb/)'),
    BoxOracleStudy('car_render_small', 'car_render/small',
                   'Car-render `small` (the silhouette\'s box)'),
)


def box_oracle_file(workdirs: str, study: str) -> str:
  """Where `data_prep.box_oracle` writes a study of `BOX_ORACLE_STUDIES`."""
  return os.path.join(workdirs, 'box_oracle', f'{study}.json')


# The run whose checkpoint the simulated-detector study feeds a simulated
# detector's keypoints (`launch.evaluate --simulated_detector`).
SIMULATED_DETECTOR_RUN = 'demo'
SIMULATED_DETECTOR_SPLIT = 'test'

STUDIES = tuple(
    Step(f'trifocal_labels/{study.name}', 'launch.trifocal_labels', (
        f'--dataset={study.dataset}', '--split=test',
        f'--data_dir={DATA_DIR}',
        f'--output={label_directory("{workdirs}", study.name)}'),
         needs=(study.dataset,))
    for study in LABEL_STUDIES) + tuple(
        # What a box rule tells about hidden keypoints (docs/design.md,
        # "Boxes"): the runs' boxes, and the generator's visible-pixel
        # boxes of bb/, which `carfusion/default` reads.
        Step(f'box_oracle/{study.name}', 'data_prep.box_oracle', (
            f'--data_dir={DATA_DIR}', f'--dataset={study.dataset}',
            f'--output={box_oracle_file("{workdirs}", study.name)}'),
             needs=(study.dataset,))
        for study in BOX_ORACLE_STUDIES) + (
        # The graph networks fed by another detector than the heatmap head
        # (issue 27): its metrics go beside the run's own,
        # `<run>/eval/<split>/simulated_detector/metrics.json`.
        Step('simulated_detector', 'launch.evaluate', (
            f'--workdir={os.path.join("{workdirs}", SIMULATED_DETECTOR_RUN)}',
            f'--split={SIMULATED_DETECTOR_SPLIT}', f'--data_dir={DATA_DIR}',
            '--simulated_detector'), reads=(SIMULATED_DETECTOR_RUN,)),
        # Speed: alone on the machine, or its numbers mean little.
        # 60 s a measurement: the paper-size full pipeline's batch of 64
        # needs about 20 s a call at this machine's ceiling.
        Step('benchmark', 'launch.benchmark', (
            '--sizes=default,paper', '--budget_seconds=60',
            f'--data_dir={DATA_DIR}',
            f'--output={os.path.join("{workdirs}", BENCH_FILE)}'),
             needs=('car_render/small',)),
    )


def eval_split(run: Run) -> str:
  """The split a run is evaluated on: test, or a tuning run's validation."""
  if not run.tunes:
    return 'test'
  # Tuning reads validation only, its config's (synthetic CarFusion's holds
  # whole intersections of its own): its runs never touch the test split.
  return _config(run).data.periodic_eval_split


def train_flags(run: Run, workdirs: str) -> list[str]:
  """The `launch.train` flags of a run."""
  # A tested run evaluates its config's split, the test split.
  split = ((f'--config.eval.final_split={eval_split(run)}',) if run.tunes
           else ())
  return [f'--config={os.path.join(CONFIG_DIR, run.config)}',
          f'--workdir={os.path.join(workdirs, run.name)}'] + [
              flag.format(workdirs=workdirs)
              for flag in run.overrides + split]


def step_flags(step: Step, workdirs: str) -> list[str]:
  """A step's flags in the workdirs tree."""
  return [flag.format(workdirs=workdirs) for flag in step.flags]
