"""Faults of a long run: a damaged data shard, a full disk.

- Data: a flipped byte in one record of an array_record shard, or a shard
  cut short, ends reading (training's iterator, the shape basis, evaluation)
  with a `DataError` naming the file; with `config.data.skip_corrupt` the
  unreadable records are skipped and counted (an all-padding car in a
  training batch, absent from evaluation).
- Disk: a training run whose workdir fills up during a checkpoint save ends
  with one `error:` line naming the workdir and its free space; every
  earlier checkpoint restores, and once space is freed the same command
  resumes and ends with the parameters of an uninterrupted run.
"""

import gc
import glob
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from occnet_jax import checkpointing
from occnet_jax import input_pipeline
from occnet_jax import train
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_model
from occnet_jax.configs import test as test_config
import fake_data

# A byte inside the first record's chunk (array_record writes one record
# per chunk, each with its own hash): only that record becomes unreadable.
FLIPPED_OFFSET = 100


def _train_shard(data_dir):
  return glob.glob(os.path.join(data_dir, '**', '*-train.array_record-*'),
                   recursive=True)[0]


@pytest.fixture(scope='module', params=['flipped', 'truncated'])
def damaged(request, fake_data_dir, tmp_path_factory):
  """(data dir, damaged shard, damage) of a copy of the fake set."""
  data_dir = str(tmp_path_factory.mktemp(request.param))
  shutil.copytree(fake_data_dir, data_dir, dirs_exist_ok=True)
  shard = _train_shard(data_dir)
  with open(shard, 'rb') as file:
    data = bytearray(file.read())
  if request.param == 'flipped':
    data[FLIPPED_OFFSET] ^= 0x01
  else:
    data = data[:len(data) // 2]
  with open(shard, 'wb') as file:
    file.write(bytes(data))
  return data_dir, shard, request.param


def _config(data_dir, skip_corrupt=False):
  config = test_config.get_config()
  config.data.name = fake_data.NAME
  config.data.builder_config = ''
  config.data.data_dir = data_dir
  config.data.skip_corrupt = skip_corrupt
  return config


def test_damaged_shard_is_an_error_naming_it(damaged, tmp_path):
  data_dir, shard, _ = damaged
  config = _config(data_dir)
  source = input_pipeline.get_source(config, 'train', data_dir)
  iterator = input_pipeline.create_train_iterator(source, config, seed=0)
  readers = {
      'training': lambda: [next(iterator) for _ in range(len(source))],
      'evaluation': lambda: list(input_pipeline.eval_batches(source, 3, 4)),
      'shape basis': lambda: workdir_model.prepare_shape_basis(
          config, str(tmp_path), source)}
  for what, read in readers.items():
    with pytest.raises(input_pipeline.DataError) as error:
      read()
    assert shard in str(error.value), what
    assert 'skip_corrupt' in str(error.value), what


def test_skip_corrupt_skips_and_counts(damaged, fake_data_dir, caplog):
  data_dir, shard, damage = damaged
  config = _config(data_dir, skip_corrupt=True)
  source = input_pipeline.get_source(config, 'train', data_dir)
  intact = input_pipeline.get_source(config, 'train', fake_data_dir)
  readable = [index for index in range(len(source))
              if source[index] is not None]
  expected = [0] if damage == 'flipped' else list(range(len(source)))
  assert sorted(set(range(len(source))) - set(readable)) == expected
  for index in readable:
    assert source[index]['car_id'] == intact[index]['car_id']
  skipped = [record.getMessage() for record in caplog.records
             if record.getMessage().startswith('Skipped unreadable')]
  assert len(skipped) == len(expected) and shard in skipped[0]
  assert skipped[-1].endswith(f'{len(expected)} skipped so far.')
  if damage == 'truncated':
    iterator = input_pipeline.create_train_iterator(source, config, seed=0)
    with pytest.raises(input_pipeline.DataError, match='Every record'):
      next(iterator)
    return
  # The skipped car is an all-padding car in its training batch...
  iterator = input_pipeline.create_train_iterator(source, config, seed=0)
  batches = [next(iterator) for _ in range(len(source) //
                                           config.data.batch_size)]
  empty = sum(int(not mask.any()) for batch in batches
              for mask in batch['view_mask'])
  assert empty == 1
  # ... and is absent from evaluation, which keeps the others.
  car_ids = [car for _, cars in input_pipeline.eval_batches(source, 3, 4)
             for car in cars if car]
  assert sorted(set(car_ids)) == sorted(
      intact[index]['car_id'].decode() for index in readable)
  np.testing.assert_array_equal(
      source[readable[0]]['crops'], intact[readable[0]]['crops'])


def _small_run(data_dir, num_steps):
  config = _config(data_dir)
  config.train.num_steps = num_steps
  config.train.heatmap_steps = config.train.graph_steps = 1
  config.train.checkpoint_every_steps = 2
  config.train.log_every_steps = 1
  config.train.max_checkpoints_to_keep = 5
  config.train.eval_every_steps = 1000
  config.eval.final_split = ''
  return config


@pytest.fixture
def small_disk(tmp_path):
  """A 16 MiB tmpfs of its own (root only, as on CI), unmounted after."""
  mount_point = tmp_path / 'disk'
  mount_point.mkdir()
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs',
                            str(mount_point)], capture_output=True, check=False)
  if mounted.returncode:
    pytest.skip(f'cannot mount a tmpfs here: {mounted.stderr.decode()}')
  yield mount_point
  subprocess.run(['umount', '-l', str(mount_point)], check=True)


def test_full_disk_during_a_save_keeps_earlier_checkpoints(
    small_disk, fake_data_dir, monkeypatch):
  workdir = str(small_disk / 'run')
  ballast = small_disk / 'ballast'
  save = checkpointing.Checkpointer.save

  def fill_disk_then_save(self, step, *args):
    if step == 4:  # Once step 2 is complete, nothing is left for step 4.
      self.wait_until_finished()
      with open(ballast, 'wb') as file:
        file.write(b'\0' * shutil.disk_usage(small_disk).free)
    save(self, step, *args)

  monkeypatch.setattr(checkpointing.Checkpointer, 'save', fill_disk_then_save)
  with pytest.raises(checkpointing.DiskFullError) as error:
    train.train_and_evaluate(_small_run(fake_data_dir, 6), workdir)
  message = str(error.value)
  assert workdir in message and '0.0 MiB free' in message, message
  assert 'The last complete checkpoint is step 2 of' in message, message
  assert workdir_model.restore_workdir(workdir, 2)[-1] == 2
  monkeypatch.undo()
  ballast.unlink()
  train.train_and_evaluate(_small_run(fake_data_dir, 6), workdir)
  with open(os.path.join(workdir, workdir_lib.RUN_FILE)) as file:
    segments = json.load(file)['segments']
  assert [segment['steps'][0] for segment in segments] == [0, 2]
  assert segments[-1]['steps'][1] == 6 and segments[-1]['finished']
  assert not segments[0]['finished']
  with open(os.path.join(workdir, workdir_lib.METRICS_FILE)) as file:
    assert [json.loads(line)['step'] for line in file] == list(range(1, 7))
  # A file left open by the failed start would be reported here.
  gc.collect()
