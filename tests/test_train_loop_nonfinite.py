"""The host loop's handling of a non-finite step, read one step late.

`train_and_evaluate` reads each step's `finite` flag only after the next
step is dispatched (or at a logged/saved step). A step function wrapped to
report one random step as non-finite checks that the run still stops
naming that step before saving anything after it, and, with
`skip_nonfinite`, that it finishes and leaves the step out of the logged
means.
"""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from occnet_jax import checkpointing
from occnet_jax import train
from occnet_jax import workdir as workdir_lib
from occnet_jax.configs import test as test_config
import fake_data

NUM_STEPS = 8


def _config(data_dir, skip):
  config = test_config.get_config()
  config.data.name, config.data.builder_config = fake_data.NAME, ''
  config.data.data_dir = data_dir
  config.train.num_steps = NUM_STEPS
  config.train.log_every_steps = NUM_STEPS
  config.train.checkpoint_every_steps = 2
  config.train.eval_every_steps = 1000
  config.train.skip_nonfinite = skip
  config.eval.final_split = ''
  return config


def _report_nonfinite_at(monkeypatch, bad_step):
  """Makes the train step report `bad_step` (0-based) as non-finite."""
  make_train_step = train.make_train_step

  def make_faulty_step(*args, **kwargs):
    step_fn = make_train_step(*args, **kwargs)
    calls = []

    def faulty_step(state, batch, rng):
      state, metrics = step_fn(state, batch, rng)
      if len(calls) == bad_step:
        metrics = dict(metrics, finite=jnp.zeros(()),
                       loss=jnp.full((), jnp.nan))
      calls.append(None)
      return state, metrics

    return faulty_step

  monkeypatch.setattr(train, 'make_train_step', make_faulty_step)


def test_stops_naming_the_step_before_saving_past_it(
    fake_data_dir, tmp_path, monkeypatch, seed):
  bad_step = int(np.random.default_rng(seed).integers(0, NUM_STEPS))
  _report_nonfinite_at(monkeypatch, bad_step)
  with pytest.raises(train.NonFiniteError,
                     match=f'loss term.* loss at step {bad_step}:'):
    train.train_and_evaluate(_config(fake_data_dir, skip=False), str(tmp_path))
  checkpointer = checkpointing.Checkpointer(str(tmp_path / 'checkpoints'),
                                            read_only=True)
  steps = checkpointer.all_steps()
  checkpointer.close()
  # A checkpoint after k steps holds steps 0..k-1: none may hold bad_step.
  assert all(step <= bad_step for step in steps), (bad_step, steps)
  with open(tmp_path / workdir_lib.RUN_FILE) as file:
    [segment] = json.load(file)['segments']
  assert not segment['finished'] and segment['error'] == 'NonFiniteError'
  assert segment['steps'][1] <= bad_step


def test_skip_mode_finishes_without_the_step(fake_data_dir, tmp_path,
                                             monkeypatch, seed):
  bad_step = int(np.random.default_rng(seed).integers(0, NUM_STEPS))
  _report_nonfinite_at(monkeypatch, bad_step)
  train.train_and_evaluate(_config(fake_data_dir, skip=True), str(tmp_path))
  with open(tmp_path / workdir_lib.METRICS_FILE) as file:
    [logged] = [json.loads(line) for line in file]
  assert logged['step'] == NUM_STEPS
  # The mean over the 7 applied steps is finite: the NaN step is left out.
  assert np.isfinite(logged['train_loss'])
  with open(tmp_path / workdir_lib.RUN_FILE) as file:
    assert json.load(file)['segments'][0]['steps'] == [0, NUM_STEPS]
