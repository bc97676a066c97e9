"""Runs of several processes, preemption and the evaluator job.

Every run is `python -m launch.train` or `launch.evaluate` on the `test`
config and the tiny fake dataset, started as local processes: two connected
by `jax.distributed` on 127.0.0.1 (gloo CPU collectives) with one CPU device
each, or one process with two devices. They share the test run's
compilation cache (conftest.py), so each of the two topologies compiles
once.

- A two-process run preempted (SIGTERM to one of its processes) saves at one
  step on both and exits 0; restarted, it ends with the parameters of an
  uninterrupted one-process, two-device run (the same global batches; float
  reassociation aside). Two processes evaluate that run's checkpoint to its
  metrics. (A SIGKILLed run's resume is test_resume.py's, on one process:
  it restores as a preempted one does.)
- Process 1 of a two-process run SIGKILLed after a checkpoint: process 0
  stops within `--lost_process_seconds`, naming it, the last complete
  checkpoint and the command that resumes.
- `launch.evaluate --watch` beside a one-process run that keeps one
  checkpoint and is preempted and restarted evaluates new checkpoints until
  the last, whose metrics are the uninterrupted run's; the resumed run ends
  with its parameters bit for bit.
"""

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from occnet_jax import checkpointing
from occnet_jax import input_pipeline
from occnet_jax import multihost
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_model
from occnet_jax.configs import test as test_config
from occnet_jax.evaluation import checkpoint_watcher
from occnet_jax.evaluation import outputs
import fake_data

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 12
SPLIT = 'test'
TIMEOUT_SECONDS = 600
# How long a lost process goes unnoticed (--lost_process_seconds).
# Long enough that a process starved of CPU on a busy 2-core machine still
# publishes its heartbeat in time (it does so every second).
LOST_PROCESS_SECONDS = 10
OVERRIDES = (f'--config.train.num_steps={NUM_STEPS}',
             '--config.train.heatmap_steps=3', '--config.train.graph_steps=3',
             '--config.train.checkpoint_every_steps=5',
             '--config.train.log_every_steps=1',
             '--config.train.eval_every_steps=1000')


class _Launch:
  """The processes of one command, each with its log file."""

  def __init__(self, module, args, log_prefix, *, num_processes=1,
               devices=1):
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices))
    distributed = []
    if num_processes > 1:
      with socket.socket() as free:
        free.bind(('127.0.0.1', 0))
        port = free.getsockname()[1]
      distributed = [f'--coordinator_address=127.0.0.1:{port}',
                     f'--num_processes={num_processes}']
    self.log_paths, self.processes = [], []
    for index in range(num_processes):
      command = [sys.executable, '-m', module, *args, *distributed]
      if distributed:
        command.append(f'--process_id={index}')
      path = f'{log_prefix}.{index}.log'
      with open(path, 'w') as log:
        self.processes.append(subprocess.Popen(
            command, cwd=REPOSITORY, env=env, stdout=log,
            stderr=subprocess.STDOUT))
      self.log_paths.append(path)

  def logs(self):
    return [pathlib.Path(path).read_text() for path in self.log_paths]

  def failure(self, what):
    return what + ''.join(f'\n--- {path}:\n{log[-3000:]}' for path, log in
                          zip(self.log_paths, self.logs()))

  def running(self):
    return all(process.poll() is None for process in self.processes)

  def signal(self, number, indices=None):
    for index in range(len(self.processes)) if indices is None else indices:
      self.processes[index].send_signal(number)

  def wait(self, expected_returncode=0):
    deadline = time.time() + TIMEOUT_SECONDS
    for process in self.processes:
      process.wait(timeout=max(1, deadline - time.time()))
    codes = [process.returncode for process in self.processes]
    assert codes == [expected_returncode] * len(codes), self.failure(
        f'return codes {codes}')

  def kill(self):
    for process in self.processes:
      if process.poll() is None:
        process.kill()
        process.wait()


@contextlib.contextmanager
def _launched(*args, **kwargs):
  launch = _Launch(*args, **kwargs)
  try:
    yield launch
  finally:
    launch.kill()


def _train_args(workdir, data_dir, *extra):
  return ['--config=occnet_jax/configs/test.py', f'--workdir={workdir}',
          f'--config.data.name={fake_data.NAME}',
          '--config.data.builder_config=',
          f'--config.data.data_dir={data_dir}', *OVERRIDES, *extra]


def _train(workdir, data_dir, *extra, **kwargs):
  with _launched('launch.train', _train_args(workdir, data_dir, *extra),
                 f'{workdir}.train', **kwargs) as launch:
    launch.wait()


def _logged(workdir):
  """The complete lines of a workdir's metrics.jsonl."""
  path = os.path.join(workdir, workdir_lib.METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as file:
    return [json.loads(line) for line in file if line.endswith('\n')]


def _logged_steps(workdir):
  return [line['step'] for line in _logged(workdir)]


def _wait_for_step(workdir, step, launch):
  deadline = time.time() + TIMEOUT_SECONDS
  while not any(logged >= step for logged in _logged_steps(workdir)):
    assert launch.running() and time.time() < deadline, launch.failure(
        f'step {step} was never logged')
    time.sleep(0.02)


def _final_params(workdir):
  _, _, variables, _, step = workdir_model.restore_workdir(workdir)
  assert step == NUM_STEPS
  return jax.device_get(variables['params'])


def _metrics(path):
  with open(path) as file:
    return json.load(file)


def _assert_same_metrics(got, expected):
  assert got.keys() == expected.keys()
  for key, value in expected.items():
    if isinstance(value, float):
      assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    else:
      assert got[key] == value, key


@pytest.fixture(scope='module')
def one_process(tmp_path_factory, fake_data_dir):
  """An uninterrupted one-process, two-device run, evaluated on SPLIT."""
  workdir = str(tmp_path_factory.mktemp('one_process') / 'workdir')
  _train(workdir, fake_data_dir, f'--config.eval.final_split={SPLIT}',
         devices=2)
  return workdir


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory, fake_data_dir, module_seed):
  """A two-process run, preempted and restarted.

  The preemption (SIGTERM to one random process) comes after step 1 or 2.

  Returns:
    (workdir, the step each process said it saved at when preempted, the
    latest checkpoint after the preemption).
  """
  rng = np.random.default_rng(module_seed)
  workdir = str(tmp_path_factory.mktemp('two_processes') / 'workdir')
  args = _train_args(workdir, fake_data_dir, '--config.eval.final_split=')
  with _launched('launch.train', args, f'{workdir}.preempted',
                 num_processes=2) as launch:
    _wait_for_step(workdir, int(rng.integers(1, 3)), launch)
    launch.signal(signal.SIGTERM, [int(rng.integers(2))])
    launch.wait()
    saved = [int(log.split('saved the checkpoint of step ')[1].split()[0])
             for log in launch.logs() if 'Preempted (SIGTERM)' in log]
  with checkpointing.Checkpointer(workdir_lib.checkpoint_dir(workdir),
                                  read_only=True) as checkpoints:
    latest = checkpoints.latest_step()
  if saved and latest < NUM_STEPS - 1:
    _train(workdir, fake_data_dir, '--config.eval.final_split=',
           num_processes=2)
  return workdir, saved, latest


def test_preemption_saves_on_every_process_at_one_step(two_processes):
  _, saved, latest = two_processes
  assert len(saved) == 2 and saved[0] == saved[1] == latest < NUM_STEPS - 1, (
      saved, latest)


def test_two_processes_train_like_one_with_two_devices(one_process,
                                                       two_processes):
  # Preempted and resumed, the run ends with the parameters of an
  # uninterrupted one: same batches, same randomness.
  workdir, _, _ = two_processes
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-7),
               _final_params(workdir), _final_params(one_process))
  # Every logged step has the loss of the uninterrupted run.
  expected = {line['step']: line['train_loss']
              for line in _logged(one_process)}
  logged = _logged(workdir)
  assert {line['step'] for line in logged} == set(expected)
  for line in logged:
    assert line['train_loss'] == pytest.approx(expected[line['step']],
                                               rel=1e-5), line['step']


def test_two_processes_evaluate_like_one(one_process, tmp_path):
  workdir = str(tmp_path / 'workdir')
  shutil.copytree(one_process, workdir)
  expected = _metrics(outputs.metrics_path(one_process, SPLIT))
  os.remove(outputs.metrics_path(workdir, SPLIT))
  with _launched('launch.evaluate', [f'--workdir={workdir}',
                                     f'--split={SPLIT}'],
                 str(tmp_path / 'evaluate'), num_processes=2) as launch:
    launch.wait()
  assert expected['step'] == NUM_STEPS and expected['num_cars'] == 6
  _assert_same_metrics(_metrics(outputs.metrics_path(workdir, SPLIT)),
                       expected)


def test_evaluator_beside_preempted_training(one_process, fake_data_dir,
                                             tmp_path, seed):
  workdir = str(tmp_path / 'workdir')
  args = _train_args(workdir, fake_data_dir, '--config.eval.final_split=',
                     '--config.train.checkpoint_every_steps=1',
                     '--config.train.max_checkpoints_to_keep=1')
  # Started first: it waits for the workdir to appear.
  with _launched('launch.evaluate', [f'--workdir={workdir}', '--watch',
                                     f'--split={SPLIT}', '--poll_seconds=0.1'],
                 f'{workdir}.evaluator', devices=2) as watching:
    with _launched('launch.train', args, f'{workdir}.preempted',
                   devices=2) as training:
      stop = int(np.random.default_rng(seed).integers(1, NUM_STEPS - 1))
      _wait_for_step(workdir, stop, training)
      training.signal(signal.SIGTERM)
      training.wait()
      [log] = training.logs()
    assert 'Preempted (SIGTERM)' in log
    assert stop <= max(_logged_steps(workdir)) < NUM_STEPS
    _train(workdir, fake_data_dir, '--config.eval.final_split=',
           '--config.train.checkpoint_every_steps=1',
           '--config.train.max_checkpoints_to_keep=1', devices=2)
    watching.wait()
  # One process resumes exactly too.
  jax.tree.map(np.testing.assert_array_equal, _final_params(workdir),
               _final_params(one_process))

  steps = outputs.evaluated_steps(workdir, SPLIT)
  assert steps and steps[-1] == NUM_STEPS, watching.failure(str(steps))
  for step in steps:
    results = _metrics(os.path.join(
        outputs.step_directory(workdir, SPLIT, step), outputs.METRICS_FILE))
    assert results['step'] == step
  _assert_same_metrics(
      results, _metrics(outputs.metrics_path(one_process, SPLIT)))
  directory = os.path.join(workdir, 'eval', SPLIT)
  assert any(name.startswith('events.out.tfevents')
             for name in os.listdir(directory))
  with open(os.path.join(directory, workdir_lib.METRICS_FILE)) as file:
    lines = [json.loads(line) for line in file]
  assert [line['step'] for line in lines] == steps
  assert 'kgnn2d_pck_all_alpha0.1' in lines[-1]
  # Restarted, it finds the last step evaluated and stops.
  assert checkpoint_watcher.watch(workdir, split=SPLIT) == []


def test_checkpoint_deleted_before_it_is_read_is_skipped(tmp_path):
  directory = str(tmp_path / 'checkpoints')
  state = {'params': {'w': np.arange(3.0, dtype=np.float32)},
           'model_state': {}}
  with checkpointing.Checkpointer(directory) as writer:
    for step in (1, 2):
      writer.save(step, state, jax.random.key(step), {'step': step})
  mesh = input_pipeline.data_mesh()
  with checkpointing.Checkpointer(directory, read_only=True) as reader:
    assert reader.all_steps() == [1, 2]
    # What training's max_to_keep does between listing and reading: the
    # step's files go first, then its directory.
    shutil.rmtree(os.path.join(directory, '1', 'state'))
    assert checkpoint_watcher.restore_variables(reader, 1, mesh) is None
    variables = checkpoint_watcher.restore_variables(reader, 2, mesh)
    np.testing.assert_array_equal(variables['params']['w'],
                                  state['params']['w'])
    # The newest step failing is an error, not a deletion.
    shutil.rmtree(os.path.join(directory, '2', 'state'))
    with pytest.raises(Exception, match='state'):
      checkpoint_watcher.restore_variables(reader, 2, mesh)


def test_only_process_0_prepares_the_dataset(tmp_path, monkeypatch):
  barriers = []
  monkeypatch.setattr(jax, 'process_index', lambda: 1)
  monkeypatch.setattr(multihost, 'barrier', barriers.append)
  config = test_config.get_config()
  data_dir = str(tmp_path / 'tfds')
  input_pipeline.prepare_dataset(config, data_dir)
  # Process 1 only waited for process 0's build.
  assert not os.path.exists(data_dir)
  assert barriers == [f'{input_pipeline.dataset_name(config)} prepared']


def test_lost_process_stops_the_survivor_naming_it(tmp_path, fake_data_dir):
  # SIGKILL process 1 once a checkpoint is complete: process 0 stops before
  # JAX's heartbeat timeout (twice --lost_process_seconds) would abort it,
  # naming the lost process, the last complete checkpoint and the command
  # that resumes. (Losing process 0, JAX's coordination service, races
  # JAX's own abort of process 1 within a second, so what process 1 says
  # last is not deterministic (README); the command that resumes, which
  # every process logs at its start, is checked here.)
  lost = 1
  workdir = str(tmp_path / 'workdir')
  args = _train_args(workdir, fake_data_dir, '--config.eval.final_split=',
                     '--config.train.checkpoint_every_steps=1',
                     f'--lost_process_seconds={LOST_PROCESS_SECONDS}')
  checkpoints = workdir_lib.checkpoint_dir(workdir)
  with _launched('launch.train', args, f'{workdir}.lost',
                 num_processes=2) as launch:
    deadline = time.time() + TIMEOUT_SECONDS
    while not (checkpoints.exists() and any(
        path.name.isdigit() for path in checkpoints.iterdir())):
      assert launch.running() and time.time() < deadline, launch.failure(
          'no checkpoint was completed')
      time.sleep(0.02)
    launch.signal(signal.SIGKILL, [lost])
    survivor = launch.processes[1 - lost]
    survivor.wait(timeout=4 * LOST_PROCESS_SECONDS)
    log = launch.logs()[1 - lost]
  command = f'-m launch.train {" ".join(args)}'
  assert 'If a process of this run is lost' in log and command in log
  assert survivor.returncode == multihost.LOST_PROCESS_STATUS, launch.failure(
      f'the survivor exited with {survivor.returncode}')
  [message] = [line for line in log.splitlines() if 'was lost' in line]
  last = max(int(path.name) for path in checkpoints.iterdir()
             if path.name.isdigit())
  assert f'Process {lost} of 2 was lost' in message, message
  assert (f'The last complete checkpoint is step {last} of {checkpoints}'
          in message), message
  assert command in message, message
