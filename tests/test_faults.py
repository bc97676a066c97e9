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

import glob
import os
import shutil

import numpy as np
import pytest

from occnet_jax import input_pipeline
from occnet_jax import workdir as workdir_lib
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
      'shape basis': lambda: workdir_lib.prepare_shape_basis(
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
