"""The reproduction's table of runs and the commands it drives."""

import os
import subprocess

from absl import flags
from ml_collections import config_flags
import numpy as np
import pytest

from occnet_jax import configs
from occnet_jax.evaluation import outputs
from reproduction import reproduce
from reproduction import run_inputs
from reproduction import runs

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parsed_config(argv):
  """The config of `launch.train` flags (--config and its overrides)."""
  flag_values = flags.FlagValues()
  argv = ['train', *argv]
  holder = config_flags.DEFINE_config_file('config', flag_values=flag_values,
                                           sys_argv=argv)
  flags.DEFINE_string('workdir', None, '', flag_values=flag_values)
  flag_values(argv)
  return holder.value


@pytest.mark.parametrize('run', runs.RUNS, ids=lambda run: run.name)
def test_every_run_is_a_valid_config_its_overrides_change(run, monkeypatch):
  monkeypatch.chdir(REPOSITORY)
  workdirs = 'some/workdirs'
  argv = runs.train_flags(run, workdirs)
  assert argv[1] == f'--workdir={workdirs}/{run.name}'
  config = parsed_config(argv)
  configs.validate(config, num_devices=1)
  base = parsed_config(argv[:1]).to_dict()
  for override in argv[2:]:
    key, value = override.removeprefix('--config.').split('=', 1)
    assert '{' not in value, override
    default, parsed = base, config
    for part in key.split('.'):
      default, parsed = default[part], parsed[part]
    # A sweep holds the default setting too; every other override changes
    # the config.
    assert parsed != default or run.tunes, f'{override} changes nothing'


def test_the_table_is_consistent():
  names = [run.name for run in runs.RUNS]
  assert len(set(names)) == len(names)
  for run in runs.RUNS:
    assert set(run.needs) <= set(runs.PREPARATIONS)
    # A run is of a dataset, or ablates, tunes or repeats one: one of these.
    assert [run.paper in ('car_render', 'carfusion'), bool(run.ablation_of),
            bool(run.tunes), bool(run.seed_of)].count(True) == 1, run.name
    for field in (run.ablation_of, run.tunes, run.seed_of):
      assert field in ('', *names)
  assert set(runs.DATASET_RUNS) | set(runs.ABLATION_RUNS) | set(
      runs.TUNING_RUNS) | {run.name for run in runs.RUNS if run.seed_of} == (
          set(names))
  assert set(runs.TESTED_RUNS) == set(names) - set(runs.TUNING_RUNS)


def test_every_dataset_run_has_its_seeds(monkeypatch):
  monkeypatch.chdir(REPOSITORY)
  assert set(runs.SEED_GROUPS) == set(runs.DATASET_RUNS)
  for name, group in runs.SEED_GROUPS.items():
    base = parsed_config(runs.train_flags(runs.RUNS_BY_NAME[name], 'w'))
    seeds = [base.seed]
    for member in group[1:]:
      config = parsed_config(runs.train_flags(runs.RUNS_BY_NAME[member], 'w'))
      seeds.append(config.seed)
      # Only the seed differs from the run it repeats.
      config.seed = base.seed
      assert config.to_dict() == base.to_dict()
    assert sorted(seeds) == [0, *runs.EXTRA_SEEDS]


def test_tuning_runs_never_read_test(monkeypatch):
  monkeypatch.chdir(REPOSITORY)
  for name in runs.TUNING_RUNS:
    run = runs.RUNS_BY_NAME[name]
    config = parsed_config(runs.train_flags(run, 'w'))
    # The split it evaluates is the one training held out, never test.
    assert config.eval.final_split == config.data.periodic_eval_split == (
        runs.eval_split(run))
    assert 'test' not in config.eval.final_split
    assert config.data.train_split != config.eval.final_split
    # It is the run it tunes but for its setting and split.
    tuned = runs.train_flags(runs.RUNS_BY_NAME[run.tunes], 'w')
    flags_of_run = runs.train_flags(run, 'w')
    assert flags_of_run[0] == tuned[0]
    assert flags_of_run[2:] == tuned[2:] + [
        flag.format(workdirs='w') for flag in runs.tuning_setting(run)] + [
            f'--config.eval.final_split={config.eval.final_split}']
    assert runs.tuning_setting(run)
  gated = [
      name for tuned in ('demo', 'carfusion_synthetic') for name in [
          runs.trifocal_run_name('algebraic', runs.SOFT_GATE_TRIFOCAL[tuned],
                                 tuned, 'soft')] + [
              runs.hard_gate_run_name(threshold, tuned)
              for threshold in runs.HARD_GATE_SWEEP] + [
                  runs.trifocal_run_name('algebraic', weight, tuned, 'hard')
                  for weight in runs.HARD_GATE_TRIFOCAL_SWEEP[tuned]] + [
                      runs.box_jitter_run_name(sigma, tuned)
                      for sigma in runs.BOX_JITTER_SWEEP] + [
                          runs.gate_open_run_name(rate, tuned)
                          for rate in runs.GATE_OPEN_SWEEP]]
  assert [runs.trifocal_run_name(*pair) for pair in runs.TRIFOCAL_SWEEP] + [
      runs.visible_run_name(weight) for weight in runs.VISIBLE_SWEEP] + [
          runs.trifocal_run_name('algebraic', weight, 'carfusion_synthetic')
          for weight in runs.CARFUSION_TRIFOCAL_SWEEP] + gated == list(
              runs.TUNING_RUNS)


def test_gate_and_box_jitter_sweeps_set_what_their_names_say(monkeypatch):
  monkeypatch.chdir(REPOSITORY)

  def config_of(name):
    return parsed_config(runs.train_flags(runs.RUNS_BY_NAME[name], 'w'))

  # The sweeps from before the gate ran, and pin, the ungated decoder.
  for mode, weight in runs.TRIFOCAL_SWEEP:
    assert config_of(runs.trifocal_run_name(
        mode, weight)).model.decoder_gate == 'none'
  assert config_of('ungated_decoder').model.decoder_gate == 'none'
  assert config_of('no_encoder').model.decoder_gate == 'none'
  for tuned in ('demo', 'carfusion_synthetic'):
    tuned_config = config_of(tuned)
    # Every gate variant is compared at the tuned run's trifocal weight.
    weight = runs.SOFT_GATE_TRIFOCAL[tuned]
    config = config_of(runs.trifocal_run_name('algebraic', weight, tuned,
                                              'soft'))
    assert (config.model.decoder_gate, config.loss.trifocal) == (
        'soft', tuned_config.loss.trifocal)
    for threshold in runs.HARD_GATE_SWEEP:
      config = config_of(runs.hard_gate_run_name(threshold, tuned))
      assert (config.model.decoder_gate, config.model.decoder_gate_threshold,
              config.loss.trifocal) == ('hard', threshold,
                                        tuned_config.loss.trifocal)
    assert tuned_config.loss.trifocal not in runs.HARD_GATE_TRIFOCAL_SWEEP[
        tuned]
    for weight in runs.HARD_GATE_TRIFOCAL_SWEEP[tuned]:
      config = config_of(runs.trifocal_run_name('algebraic', weight, tuned,
                                                'hard'))
      assert (config.model.decoder_gate, config.loss.trifocal) == (
          'hard', weight)
    for sigma in runs.BOX_JITTER_SWEEP:
      assert config_of(runs.box_jitter_run_name(
          sigma, tuned)).train.box_jitter == sigma
    for rate in runs.GATE_OPEN_SWEEP:
      config = config_of(runs.gate_open_run_name(rate, tuned))
      assert (config.model.decoder_gate, config.model.decoder_gate_open_rate,
              config.loss.trifocal) == ('hard', rate,
                                        tuned_config.loss.trifocal)


def needs_of(name):
  """What a command of `reproduce.commands` needs made before it."""
  if name in runs.RUNS_BY_NAME:
    return runs.run_needs(runs.RUNS_BY_NAME[name])
  studies = {step.name: step for step in runs.STUDIES}
  return (studies[name] if name in studies else runs.step_named(name)).needs


def test_every_run_reads_the_dataset_its_flags_configure(monkeypatch):
  monkeypatch.chdir(REPOSITORY)
  for run in runs.RUNS:
    config = parsed_config(runs.train_flags(run, 'w'))
    assert runs.run_dataset(run) == (
        f'{config.data.name}/{config.data.builder_config}')
  step = runs.dataset_step('carfusion/default')
  assert step.flags[:3] == ('build', 'data_prep/carfusion', '--config=default')
  assert step.needs == ('synthetic_carfusion',)
  assert step.done.format(workdirs='w') == os.path.join(
      'w', 'tensorflow_datasets', 'carfusion', 'default')


def test_commands_make_what_is_needed_once_before_it():
  order = [name for name, _, _ in reproduce.commands('w')]
  assert order[-1] == 'report'
  assert len(set(order)) == len(order)
  for name in order[:-1]:
    for need in needs_of(name):
      assert order.index(need) < order.index(name), (need, name)
  datasets = {runs.run_dataset(run) for run in runs.RUNS} | {
      need for step in runs.STUDIES for need in step.needs}
  assert set(order) == ({run.name for run in runs.RUNS} | set(
      runs.PREPARATIONS) | {step.name for step in runs.STUDIES} | datasets | {
          'report'})
  # Each preparation and dataset is needed by a command after it.
  for index, name in enumerate(order):
    if name in datasets | set(runs.PREPARATIONS):
      assert any(name in needs_of(later) for later in order[index + 1:-1])


def test_commands_leave_out_what_is_committed(tmp_path):
  committed = tmp_path / 'committed'
  # Every run that needs the basis, and one study.
  left_out = [run.name for run in runs.RUNS
              if 'car_render_basis' in run.needs]
  for name in left_out:
    (committed / name).mkdir(parents=True)
    (committed / name / outputs.METRICS_FILE).write_text('{}')
  study = runs.BOX_ORACLE_STUDIES[-1].name
  _, copy = run_inputs.study_files('w', str(committed))[f'box_oracle/{study}']
  with open(copy, 'w') as file:
    file.write('{}')
  order = [name for name, _, _ in reproduce.commands('w', str(committed))]
  everything = [name for name, _, _ in reproduce.commands('w')]
  gone = set(left_out) | {'car_render_basis', f'box_oracle/{study}'}
  assert set(order) == set(everything) - gone
  # The studies still read synthetic CarFusion: it is made before them.
  assert {'synthetic_carfusion', 'carfusion/visible_hull'} <= set(order)
  for name in order[:-1]:
    for need in needs_of(name):
      assert order.index(need) < order.index(name), (need, name)
  # A run needing car_render_basis brings it back.
  (committed / left_out[-1] / outputs.METRICS_FILE).unlink()
  order = [name for name, _, _ in reproduce.commands('w', str(committed))]
  assert order.index('car_render_basis') < order.index(left_out[-1])


def test_simulated_detector_study_evaluates_its_run_where_the_report_reads():
  study, = (step for step in runs.STUDIES if step.name == 'simulated_detector')
  assert study.reads == (runs.SIMULATED_DETECTOR_RUN,)
  assert study.module == 'launch.evaluate'
  flags_of_study = runs.step_flags(study, 'w')
  assert '--simulated_detector' in flags_of_study
  assert f'--workdir={os.path.join("w", runs.SIMULATED_DETECTOR_RUN)}' in (
      flags_of_study)
  assert f'--split={runs.SIMULATED_DETECTOR_SPLIT}' in flags_of_study
  # `launch.evaluate` writes its metrics where the report reads them.
  path, _ = run_inputs.study_files('w', 'c')['simulated_detector']
  assert path == os.path.join('w', runs.SIMULATED_DETECTOR_RUN, 'eval',
                              runs.SIMULATED_DETECTOR_SPLIT,
                              'simulated_detector', outputs.METRICS_FILE)
  order = [name for name, _, _ in reproduce.commands('w')]
  assert order.index(runs.SIMULATED_DETECTOR_RUN) < order.index(study.name)


def test_a_study_of_a_committed_run_is_left_out(tmp_path):
  committed = tmp_path / 'committed'
  (committed / runs.SIMULATED_DETECTOR_RUN).mkdir(parents=True)
  (committed / runs.SIMULATED_DETECTOR_RUN / outputs.METRICS_FILE).write_text(
      '{}')
  order = [name for name, _, _ in reproduce.commands('w', str(committed))]
  # Its checkpoint would not be there to read.
  assert runs.SIMULATED_DETECTOR_RUN not in order
  assert 'simulated_detector' not in order
  assert 'benchmark' in order


class FakeProcess:
  """A `subprocess.Popen` that ends after some polls, with a status."""

  def __init__(self, log, args, status, polls):
    self.args, self.returncode = args, None
    self._log, self._status, self._polls = log, status, polls

  def poll(self):
    self._polls -= 1
    if self._polls <= 0 and self.returncode is None:
      self.returncode = self._status
      self._log.append(('end', self.args[2:]))
    return self.returncode


@pytest.fixture
def fake_popen(monkeypatch):
  """Records ('start'|'end', arguments) and fails the commands named."""
  log, failing = [], set()
  rng = np.random.default_rng()

  def popen(command, stdout=None, stderr=None):
    assert command[1] == '-m' and stdout is stderr
    log.append(('start', command[2:]))
    status = 3 if any(name in ' '.join(command) for name in failing) else 0
    return FakeProcess(log, command, status, int(rng.integers(1, 4)))

  monkeypatch.setattr(subprocess, 'Popen', popen)
  monkeypatch.setattr(reproduce, 'POLL_SECONDS', 0.0)
  return log, failing


def concurrency(log):
  """The number of commands running after each start."""
  running, counts = 0, []
  for event, _ in log:
    running += 1 if event == 'start' else -1
    if event == 'start':
      counts.append(running)
  return counts


def test_reproduce_skips_what_is_done_and_stops_at_a_failure(
    tmp_path, fake_popen):
  log, failing = fake_popen
  workdirs = str(tmp_path)
  done = runs.PREPARATIONS['car_render_basis'].done.format(workdirs=workdirs)
  os.makedirs(os.path.dirname(done), exist_ok=True)
  open(done, 'w').close()
  failing.add(f'--workdir={workdirs}/{runs.RUNS[-1].name}')
  with pytest.raises(subprocess.CalledProcessError):
    reproduce.reproduce(workdirs)
  expected = [arguments for name, arguments, _ in reproduce.commands(workdirs)
              if name != 'car_render_basis']
  started = [arguments for event, arguments in log if event == 'start']
  assert started == expected[:expected.index(
      ['launch.train', *runs.train_flags(runs.RUNS[-1], workdirs)]) + 1]
  # One at a time.
  assert set(concurrency(log)) == {1}


@pytest.mark.parametrize('jobs', [2, 3])
def test_reproduce_runs_trainings_side_by_side_and_the_rest_alone(
    tmp_path, fake_popen, jobs):
  log, failing = fake_popen
  workdirs = str(tmp_path)
  reproduce.reproduce(workdirs, jobs=jobs)
  expected = [arguments for _, arguments, _ in reproduce.commands(workdirs)]
  assert [arguments for event, arguments in log if event == 'start'] == (
      expected)
  running = set()
  for event, arguments in log:
    training = arguments[0] == 'launch.train'
    if event == 'start':
      # Anything else starts on a quiet machine, and nothing joins it.
      assert training or not running, arguments
      assert not any(other[0] != 'launch.train' for other in running)
      running.add(tuple(arguments))
      assert len(running) <= jobs
    else:
      running.remove(tuple(arguments))
  assert max(concurrency(log)) == jobs
  for name in os.listdir(os.path.join(workdirs, 'logs')):
    assert name.removesuffix('.txt') in {
        run.name for run in runs.RUNS}
  # After a failure nothing starts, and the runs beside it end first.
  log.clear()
  failing.add(f'--workdir={workdirs}/{runs.RUNS[1].name}')
  with pytest.raises(subprocess.CalledProcessError) as raised:
    reproduce.reproduce(workdirs, jobs=jobs)
  assert runs.RUNS[1].name in ' '.join(raised.value.cmd)
  assert log[-1][0] == 'end' and concurrency(log)[-1] <= jobs
  assert ('start', expected[-1]) not in log
