"""A SIGKILLed run, restarted, ends exactly like an uninterrupted one.

Both runs are `python -m launch.train` subprocesses on the `test` config; the
interrupted one gets SIGKILL as soon as its metrics file shows a randomly
chosen step (so at any point of a step, a save or a write), then the same
command is run again. The final parameters must agree bit for bit, and the
logs hold each step once. Then the latest checkpoint is damaged: the next
start falls back to the previous one and again ends with the same
parameters; a start with a changed model is refused without a write.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import tensorflow as tf

from occnet_jax import checkpointing
from occnet_jax import configs
from occnet_jax import train
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_model
import checkpoint_damage
import fake_data

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 9
# Checkpoints every 3 steps; the kill comes at a random logged step.
OVERRIDES = (f'--config.train.num_steps={NUM_STEPS}',
             '--config.train.heatmap_steps=3', '--config.train.graph_steps=3',
             '--config.train.checkpoint_every_steps=3',
             '--config.train.log_every_steps=1',
             '--config.train.eval_every_steps=1000',
             '--config.eval.final_split=')


def _command(workdir, data_dir):
  return [sys.executable, '-m', 'launch.train',
          '--config=occnet_jax/configs/test.py', f'--workdir={workdir}',
          f'--config.data.name={fake_data.NAME}',
          '--config.data.builder_config=',
          f'--config.data.data_dir={data_dir}', *OVERRIDES]


def _start(workdir, data_dir, log):
  # The runs share the test run's compilation cache (conftest.py): only the
  # first one compiles.
  return subprocess.Popen(_command(workdir, data_dir), cwd=REPOSITORY,
                          stdout=log, stderr=subprocess.STDOUT)


def _run(workdir, data_dir, log_path):
  with open(log_path, 'w') as log:
    process = _start(workdir, data_dir, log)
    process.wait(timeout=300)
  with open(log_path) as log:
    assert process.returncode == 0, log.read()[-3000:]


def _logged_steps(workdir):
  path = os.path.join(workdir, workdir_lib.METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as file:
    return [json.loads(line)['step'] for line in file if line.endswith('\n')]


def _event_steps(workdir):
  """The steps of the train_loss scalars in all TensorBoard event files."""
  steps = []
  for name in os.listdir(workdir):
    if name.startswith('events.out.tfevents'):
      events = map(tf.compat.v1.Event.FromString, tf.data.TFRecordDataset(
          os.path.join(workdir, name)).as_numpy_iterator())
      steps += [event.step for event in events for value in
                event.summary.value if value.tag == 'train_loss']
  return sorted(steps)


def _segments(workdir):
  with open(os.path.join(workdir, workdir_lib.RUN_FILE)) as file:
    return json.load(file)['segments']


def _final_params(workdir):
  _, _, variables, _, step = workdir_model.restore_workdir(workdir)
  assert step == NUM_STEPS
  return jax.device_get(variables['params'])


def test_killed_run_resumes_to_identical_parameters(tmp_path, fake_data_dir):
  seed = np.random.SeedSequence().entropy % 2**32
  kill_step = int(np.random.default_rng(seed).integers(1, NUM_STEPS - 1))
  print(f'seed = {seed}, kill after step {kill_step}')
  reference_dir = str(tmp_path / 'reference')
  resumed_dir = str(tmp_path / 'resumed')
  _run(reference_dir, fake_data_dir, tmp_path / 'reference.log')

  with open(tmp_path / 'killed.log', 'w') as log:
    interrupted = _start(resumed_dir, fake_data_dir, log)
    deadline = time.time() + 240
    while not any(step >= kill_step for step in _logged_steps(resumed_dir)):
      if interrupted.poll() is not None or time.time() > deadline:
        interrupted.kill()
        interrupted.wait()
        pytest.fail((tmp_path / 'killed.log').read_text()[-3000:])
      time.sleep(0.02)
    os.kill(interrupted.pid, signal.SIGKILL)
    interrupted.wait()
  assert max(_logged_steps(resumed_dir)) < NUM_STEPS
  _run(resumed_dir, fake_data_dir, tmp_path / 'restarted.log')

  assert not checkpointing.incomplete_checkpoints(
      os.path.join(resumed_dir, 'checkpoints'))
  expected, got = _final_params(reference_dir), _final_params(resumed_dir)
  jax.tree.map(np.testing.assert_array_equal, got, expected)
  every_step = list(range(1, NUM_STEPS + 1))
  assert _logged_steps(resumed_dir) == every_step
  assert _event_steps(resumed_dir) == every_step
  killed, resumed = _segments(resumed_dir)
  assert not killed['finished'] and resumed['finished']
  assert killed['steps'][0] == 0 and resumed['steps'][1] == NUM_STEPS
  assert resumed['steps'][0] in (0, 3, 6) and resumed['train_seconds'] > 0

  # A flipped byte in the last checkpoint: the next start falls back to the
  # previous one, keeps the damaged one aside and retrains the same steps.
  checkpoints = os.path.join(resumed_dir, workdir_lib.CHECKPOINT_DIR)
  checkpoint_damage.flip_a_byte(os.path.join(checkpoints, str(NUM_STEPS)))
  _run(resumed_dir, fake_data_dir, tmp_path / 'fallback.log')
  log = (tmp_path / 'fallback.log').read_text()
  assert f'checkpoint of step {NUM_STEPS} in' in log and 'DATA_LOSS' in log
  assert os.listdir(os.path.join(resumed_dir,
                                 workdir_lib.UNRESTORABLE_DIR)) == [
                                     str(NUM_STEPS)]
  jax.tree.map(np.testing.assert_array_equal, _final_params(resumed_dir),
               expected)
  assert _logged_steps(resumed_dir) == every_step
  assert _event_steps(resumed_dir) == every_step
  assert _segments(resumed_dir)[-1]['steps'] == [NUM_STEPS - 3, NUM_STEPS]

  # A changed model is refused, naming the key, before anything is written.
  config = workdir_lib.load_config(resumed_dir)
  config.model.hidden *= 2
  config_file = os.path.join(resumed_dir, workdir_lib.CONFIG_FILE)
  with open(config_file, 'rb') as file:
    saved = file.read()
  with pytest.raises(configs.ConfigError, match='changed model.hidden'):
    train.train_and_evaluate(config, resumed_dir)
  with open(config_file, 'rb') as file:
    assert file.read() == saved
  assert len(_segments(resumed_dir)) == 3


def test_half_written_checkpoint_is_ignored(tmp_path, caplog):
  directory = str(tmp_path / 'checkpoints')
  writer = checkpointing.Checkpointer(directory)
  state = {'weights': np.arange(6.0, dtype=np.float32).reshape(2, 3)}
  for step in (1, 2):
    writer.save(step, jax.tree.map(lambda x, s=step: x * s, state),
                jax.random.key(step), {'iterator': {'next_index': step}})
  writer.close()
  # What a kill during the save of step 3 leaves behind.
  partial = os.path.join(directory, '3.orbax-checkpoint-tmp-1700000000')
  os.makedirs(os.path.join(partial, 'state'))
  with open(os.path.join(partial, 'state', 'manifest.ocdbt'), 'wb') as file:
    file.write(b'\0' * 7)

  reader = checkpointing.Checkpointer(directory, read_only=True)
  assert reader.all_steps() == [1, 2]
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          state)
  restored, rng, data = reader.restore(2, abstract)
  np.testing.assert_array_equal(restored['weights'], 2 * state['weights'])
  np.testing.assert_array_equal(jax.random.key_data(rng),
                                jax.random.key_data(jax.random.key(2)))
  assert data == {'iterator': {'next_index': 2}}
  reader.close()

  assert checkpointing.incomplete_checkpoints(directory) == [partial]
  writer = checkpointing.Checkpointer(directory)
  assert writer.latest_step() == 2
  writer.close()
  assert f'Ignoring incomplete checkpoint {partial}' in caplog.text


def test_relative_checkpoint_directory(tmp_path, monkeypatch):
  # Workdirs on the command line are often relative; TensorStore needs
  # absolute paths.
  monkeypatch.chdir(tmp_path)
  state = {'weights': np.arange(4.0, dtype=np.float32)}
  writer = checkpointing.Checkpointer(os.path.join('workdir', 'checkpoints'))
  writer.save(3, state, jax.random.key(3), {'iterator': {'next_index': 3}})
  writer.close()
  reader = checkpointing.Checkpointer(
      os.path.join('workdir', 'checkpoints'), read_only=True)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          state)
  restored, _, data = reader.restore(3, abstract)
  reader.close()
  np.testing.assert_array_equal(restored['weights'], state['weights'])
  assert data == {'iterator': {'next_index': 3}}
