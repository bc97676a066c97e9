"""The workdir's own guarantees: one owner, checked resumes, consistent logs.

Everything here runs without training: locks are taken by real other
processes, checkpoints are tiny trees, and the logs are written by the
workdir's own writers.
"""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow as tf

from occnet_jax import checkpointing
from occnet_jax import configs
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_lock
from occnet_jax.configs import default as default_config
from occnet_jax.configs import test as test_config
import checkpoint_damage

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A trainer stand-in: takes the lock, says so, and holds it until killed.
_HOLDER = ('import sys, time\n'
           'from occnet_jax import workdir_lock\n'
           'with workdir_lock.WorkdirLock(sys.argv[1]):\n'
           '  print("locked", flush=True)\n'
           '  time.sleep(300)\n')


@pytest.fixture
def holder(tmp_path):
  """A live process holding the lock of `tmp_path`."""
  process = subprocess.Popen(
      [sys.executable, '-c', _HOLDER, str(tmp_path)], cwd=REPOSITORY,
      stdout=subprocess.PIPE, text=True,
      env=dict(os.environ, PYTHONPATH=REPOSITORY))
  with process:
    assert process.stdout.readline() == 'locked\n'
    yield process
    process.kill()


def test_second_owner_is_refused_with_the_first_ones_name(tmp_path, holder):
  with pytest.raises(workdir_lock.WorkdirLockedError,
                     match=f'trainer of process {holder.pid} on '):
    with workdir_lock.WorkdirLock(tmp_path):
      pass
  # The refused owner leaves the holder's lock as it was.
  lock = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
  assert lock['pid'] == holder.pid and lock['started']


def test_trainer_refused_before_writing_anything(tmp_path, holder):
  from occnet_jax import train  # pylint: disable=g-import-not-at-top
  with pytest.raises(workdir_lock.WorkdirLockedError, match=str(holder.pid)):
    train.train_and_evaluate(test_config.get_config(), str(tmp_path))
  assert os.listdir(tmp_path) == [workdir_lock.LOCK_FILE]


def test_stale_lock_of_a_killed_owner_is_taken_over(tmp_path, holder, caplog):
  os.kill(holder.pid, signal.SIGKILL)
  holder.wait()
  with workdir_lock.WorkdirLock(tmp_path):
    lock = json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())
    assert lock['pid'] == os.getpid()
  assert 'stale lock' in caplog.text and str(holder.pid) in caplog.text
  assert not (tmp_path / workdir_lock.LOCK_FILE).exists()


def test_lock_released_when_the_run_raises(tmp_path):
  with pytest.raises(KeyError):
    with workdir_lock.WorkdirLock(tmp_path):
      raise KeyError('boom')
  assert not (tmp_path / workdir_lock.LOCK_FILE).exists()


def test_relative_workdir_is_locked_where_it_lies(tmp_path, monkeypatch,
                                                  holder):
  # `make demo` passes workdirs/demo: relative to where the trainer runs.
  monkeypatch.chdir(tmp_path.parent)
  relative = os.path.join(tmp_path.name, 'run')
  os.mkdir(relative)
  with workdir_lock.WorkdirLock(relative):
    lock = json.loads((tmp_path / 'run' / workdir_lock.LOCK_FILE).read_text())
    assert lock['pid'] == os.getpid()
  assert not (tmp_path / 'run' / workdir_lock.LOCK_FILE).exists()
  # The holder's lock on tmp_path refuses a relative name for it too.
  with pytest.raises(workdir_lock.WorkdirLockedError, match=str(holder.pid)):
    with workdir_lock.WorkdirLock(tmp_path.name):
      pass


def _saved_config(workdir):
  config = test_config.get_config()
  workdir_lib.save_config(config, workdir)
  return config


@pytest.mark.parametrize('key, value', [
    ('model.hidden', 16), ('data.crop_size', 32), ('category', 'bus'),
    ('shape_basis.num_components', 3), ('optimizer.name', 'sgd')])
def test_resume_refuses_what_the_checkpoints_fix(tmp_path, key, value):
  config = _saved_config(tmp_path)
  before = (tmp_path / workdir_lib.CONFIG_FILE).read_bytes()
  section, _, name = key.rpartition('.')
  (config[section] if section else config)[name] = value
  with pytest.raises(configs.ConfigError, match=rf'changed {key} \('):
    workdir_lib.config_changes(config, tmp_path)
  assert (tmp_path / workdir_lib.CONFIG_FILE).read_bytes() == before


def test_safe_changes_are_kept_in_the_history(tmp_path):
  config = _saved_config(tmp_path)
  rng = np.random.default_rng()
  steps = int(rng.integers(10, 1000))
  config.train.num_steps = steps
  config.eval.alphas = (0.1, 0.2)
  changes = workdir_lib.config_changes(config, tmp_path)
  assert changes == {'eval.alphas': [list(test_config.get_config().eval.alphas),
                                     [0.1, 0.2]],
                     'train.num_steps': [8, steps]}
  workdir_lib.save_config(config, tmp_path, changes)
  config.train.log_every_steps = 5
  workdir_lib.save_config(config, tmp_path,
                          workdir_lib.config_changes(config, tmp_path))
  saved = json.loads((tmp_path / workdir_lib.CONFIG_FILE).read_text())
  assert [list(entry['changed']) for entry in saved['history']] == [
      ['eval.alphas', 'train.num_steps'], ['train.log_every_steps']]
  loaded = workdir_lib.load_config(tmp_path)
  assert loaded.train.num_steps == steps and 'history' not in loaded
  assert workdir_lib.config_changes(loaded, tmp_path) == {}


def test_a_config_saved_with_old_key_names_resumes(tmp_path, rng):
  # A workdir trained before the two evaluation splits were renamed.
  config = test_config.get_config()
  config.eval.final_split = f'validation[:{rng.integers(1, 100)}%]'
  contents = json.loads(config.to_json())
  for new, old in ((('eval', 'final_split'), 'split'),
                   (('data', 'periodic_eval_split'), 'eval_split')):
    contents[new[0]][old] = contents[new[0]].pop(new[1])
  (tmp_path / workdir_lib.CONFIG_FILE).write_text(json.dumps(contents))
  current = json.loads(config.to_json())
  assert json.loads(workdir_lib.load_config(tmp_path).to_json()) == current
  assert workdir_lib.config_changes(config, tmp_path) == {}
  assert configs.with_current_keys(current) == current


def test_a_config_saved_before_an_evaluation_key_evaluates_by_default(
    tmp_path, rng):
  # A workdir trained before some evaluation settings existed.
  contents = json.loads(test_config.get_config().to_json())
  missing = rng.choice(sorted(contents['eval']), size=2, replace=False)
  for key in missing:
    del contents['eval'][key]
  (tmp_path / workdir_lib.CONFIG_FILE).write_text(json.dumps(contents))
  defaults = json.loads(default_config.get_config().to_json())['eval']
  loaded = json.loads(workdir_lib.load_config(tmp_path).to_json())['eval']
  for key in missing:
    assert loaded[key] == defaults[key], key
  assert loaded.keys() == defaults.keys()


def _event_steps(workdir):
  steps = []
  for name in sorted(os.listdir(workdir)):
    if name.startswith('events.out.tfevents'):
      events = map(tf.compat.v1.Event.FromString, tf.data.TFRecordDataset(
          os.path.join(workdir, name)).as_numpy_iterator())
      steps += [event.step for event in events if event.summary.value]
  return steps


def test_resumed_logs_hold_each_step_once(tmp_path):
  rng = np.random.default_rng()
  killed_at, resumed_at = sorted(rng.choice(np.arange(2, 20), 2,
                                            replace=False))[::-1]
  writer = workdir_lib.MetricWriter(tmp_path)
  for step in range(1, killed_at + 1):
    writer.write(step, {'loss': float(step)})
  writer.close()
  with open(tmp_path / workdir_lib.METRICS_FILE, 'a') as file:
    file.write('{"step": 99, "lo')  # A row cut short by a kill.
  with workdir_lib.MetricWriter(tmp_path, resumed_at) as writer:
    for step in range(resumed_at + 1, 21):
      writer.write(step, {'loss': float(step)})
  with open(tmp_path / workdir_lib.METRICS_FILE) as file:
    rows = [json.loads(line) for line in file]
  assert [row['step'] for row in rows] == list(range(1, 21))
  assert [row['loss'] for row in rows] == list(range(1, 21))
  assert sorted(_event_steps(tmp_path)) == list(range(1, 21))


def test_run_record_keeps_every_start(tmp_path):
  with workdir_lib.RunRecord(tmp_path, 0) as record:
    record.trained(4)
  # A start that is killed: its last update stays.
  killed = workdir_lib.RunRecord(tmp_path, 4)
  killed.trained(6)
  with pytest.raises(ValueError):
    with workdir_lib.RunRecord(tmp_path, 6) as record:
      raise ValueError('boom')
  segments = json.loads((tmp_path / workdir_lib.RUN_FILE).read_text())[
      'segments']
  assert [segment['steps'] for segment in segments] == [[0, 4], [4, 6],
                                                         [6, 6]]
  assert [segment['finished'] for segment in segments] == [True, False, False]
  assert segments[2]['error'] == 'ValueError'
  assert all(segment['train_seconds'] > 0 for segment in segments[:2])


def _tiny_checkpoints(directory, steps):
  state = {'weights': np.random.default_rng().normal(size=(3, 5)).astype(
      np.float32), 'empty': {}}
  with checkpointing.Checkpointer(directory, max_to_keep=5) as writer:
    for step in steps:
      writer.save(step, jax.tree.map(lambda x, s=step: x * s, state),
                  jax.random.key(step), {'iterator': {'next_index': step}})
  return state


def test_corrupt_latest_step_falls_back_and_is_set_aside(tmp_path, caplog):
  directory = tmp_path / 'checkpoints'
  state = _tiny_checkpoints(directory, (2, 4, 6))
  checkpoint_damage.flip_a_byte(directory / '6')
  files = sorted(os.listdir(directory / '6'))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          state)
  with checkpointing.Checkpointer(directory) as checkpointer:
    step, (restored, _, data) = checkpointer.restore_newest(
        lambda step: checkpointer.restore(step, abstract))
    assert step == 4 and data == {'iterator': {'next_index': 4}}
    np.testing.assert_array_equal(restored['weights'], 4 * state['weights'])
    assert 'checkpoint of step 6' in caplog.text and 'DATA_LOSS' in caplog.text
    checkpointer.set_aside([6], tmp_path / 'aside')
    assert checkpointer.all_steps() == [2, 4]
  assert os.listdir(tmp_path / 'aside') == ['6']
  assert sorted(os.listdir(tmp_path / 'aside' / '6')) == files


def test_no_restorable_step_names_each(tmp_path):
  directory = tmp_path / 'checkpoints'
  _tiny_checkpoints(directory, (1, 2))
  for step in ('1', '2'):
    checkpoint_damage.flip_a_byte(directory / step)
  with checkpointing.Checkpointer(directory, read_only=True) as reader:
    with pytest.raises(checkpointing.CheckpointError,
                       match='step 2: .*DATA_LOSS.*; step 1: '):
      reader.restore_newest(lambda step: reader.restore_state(
          step, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
  assert sorted(os.listdir(directory)) == ['1', '2']
