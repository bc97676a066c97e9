"""Tests of the TFDS + grain input pipeline on a tiny written dataset."""

import json

import numpy as np
import pytest

from data_prep import records
from occnet_jax import input_pipeline
from occnet_jax.configs import test as test_config
import fake_data

NUM_RECORD_VIEWS = 4


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('tfds'))
  fake_data.make_dataset(directory, num_views=NUM_RECORD_VIEWS)
  return directory


@pytest.fixture(scope='module')
def config(data_dir):
  config = test_config.get_config()
  config.data.name = fake_data.NAME
  config.data.builder_config = ''
  config.data.data_dir = data_dir
  return config


@pytest.fixture(scope='module')
def source(config, data_dir):
  return input_pipeline.get_source(config, 'train', data_dir)


def test_select_views_keeps_and_pads(source, seed):
  rng = np.random.default_rng(seed)
  record = source[int(rng.integers(len(source)))]
  num_views = NUM_RECORD_VIEWS + 2
  views = np.sort(rng.choice(NUM_RECORD_VIEWS, 3, replace=False))
  example = input_pipeline.select_views(record, views, num_views)
  np.testing.assert_array_equal(example['view_mask'], np.arange(num_views) < 3)
  for name in input_pipeline.VIEW_FIELDS:
    assert example[name].shape[0] == num_views
    np.testing.assert_array_equal(example[name][:3], record[name][views])
    if name != 'boxes':
      assert not example[name][3:].any(), name
  np.testing.assert_array_equal(
      example['boxes'][3:], np.tile(input_pipeline.PADDING_BOX, (3, 1)))
  np.testing.assert_array_equal(example['shape_3d'], record['shape_3d'])


def test_sample_views_is_a_subset_without_repeats(source, seed):
  rng = np.random.default_rng(seed)
  record = source[0]
  example = input_pipeline.sample_views(record, rng, 3)
  # Every sampled view is one of the record's, each at most once, in order.
  matches = [int(np.flatnonzero((record['boxes'] == box).all(-1))[0])
             for box in example['boxes']]
  assert len(set(matches)) == 3 and matches == sorted(matches)
  assert example['view_mask'].all()


def test_train_iterator_is_deterministic_and_resumable(source, config, seed):
  first = input_pipeline.create_train_iterator(source, config, seed)
  batches = [next(first) for _ in range(2)]
  # Training reads labels, never the exact positions kept for evaluation.
  assert 'keypoints' in batches[0]
  assert not set(input_pipeline.EVALUATION_ONLY_FIELDS) & set(batches[0])
  state = json.loads(json.dumps(first.get_state()))
  expected = [next(first) for _ in range(4)]

  again = input_pipeline.create_train_iterator(source, config, seed)
  for batch in batches:
    np.testing.assert_array_equal(next(again)['crops'], batch['crops'])
  resumed = input_pipeline.create_train_iterator(source, config, seed)
  resumed.set_state(state)
  for batch in expected:
    got = next(resumed)
    for name in batch:
      np.testing.assert_array_equal(got[name], batch[name], err_msg=name)

  other = input_pipeline.create_train_iterator(source, config, seed + 1)
  assert not all(np.array_equal(next(other)['crops'], batch['crops'])
                 for batch in batches)


def test_train_epoch_visits_every_car_once(source, config, seed):
  iterator = input_pipeline.create_train_iterator(source, config, seed)
  batch_size = config.data.batch_size
  assert len(source) % batch_size == 0
  epoch = [next(iterator) for _ in range(len(source) // batch_size)]
  for batch in epoch:
    assert batch['crops'].shape == (
        batch_size, config.data.num_views, config.data.crop_size,
        config.data.crop_size, 3)
    assert batch['view_mask'].all()
  shapes = np.concatenate([batch['shape_3d'] for batch in epoch])
  expected = np.stack([source[i]['shape_3d'] for i in range(len(source))])
  # The same set of cars (each car's shape is unique), in shuffled order.
  order = np.lexsort(shapes.reshape(len(shapes), -1).T)
  expected_order = np.lexsort(expected.reshape(len(expected), -1).T)
  np.testing.assert_array_equal(shapes[order], expected[expected_order])
  assert not np.array_equal(shapes, expected)


@pytest.mark.parametrize('process_count', [2, 4])
def test_processes_read_slices_of_one_global_batch(source, config, seed,
                                                   process_count):
  # Resumed from a position saved by process 0, as training does.
  state = input_pipeline.create_train_iterator(
      source, config, seed, process_index=0, process_count=process_count)
  skipped = int(np.random.default_rng(seed).integers(0, 4))
  for _ in range(skipped):
    next(state)
  one = input_pipeline.create_train_iterator(
      source, config, seed, process_index=0, process_count=1)
  for _ in range(skipped):
    next(one)
  processes = []
  for index in range(process_count):
    iterator = input_pipeline.create_train_iterator(
        source, config, seed, process_index=index,
        process_count=process_count)
    iterator.set_state(state.get_state())
    processes.append(iterator)
  for _ in range(4):
    expected = next(one)
    local = [next(iterator) for iterator in processes]
    for name in expected:
      assert local[0][name].shape[0] == (
          config.data.batch_size // process_count)
      np.testing.assert_array_equal(
          np.concatenate([batch[name] for batch in local]), expected[name],
          err_msg=name)


def test_batch_must_split_between_processes(source, config):
  with pytest.raises(ValueError, match='not divisible by the 3 processes'):
    input_pipeline.create_train_iterator(source, config, 0, process_index=0,
                                         process_count=3)


@pytest.mark.parametrize('num_views,batch_size', [(3, 4), (4, 5)])
def test_eval_batches_cover_every_view_once(source, num_views, batch_size):
  batches = list(input_pipeline.eval_batches(source, num_views, batch_size))
  views = {}
  for batch, car_ids in batches:
    assert batch['crops'].shape[:2] == (batch_size, num_views)
    assert len(car_ids) == batch_size
    for boxes, mask, car_id in zip(batch['boxes'], batch['view_mask'],
                                   car_ids):
      assert bool(car_id) == mask.any()
      views.setdefault(car_id, []).extend(map(tuple, boxes[mask]))
  views.pop('', None)
  assert len(views) == len(source)
  for index in range(len(source)):
    record = source[index]
    assert views[record['car_id'].decode()] == list(map(tuple,
                                                        record['boxes']))


def test_eval_batches_stop_at_max_instances(source):
  batches = list(input_pipeline.eval_batches(source, 4, 2, max_instances=3))
  car_ids = [car_id for _, ids in batches for car_id in ids if car_id]
  assert len(set(car_ids)) == 3


def test_resolve_data_dir(config):
  config = config.copy_and_resolve_references()
  config.data.data_dir = ''
  assert input_pipeline.resolve_data_dir(config, '/runs/a/') == (
      '/runs/tensorflow_datasets')
  config.data.data_dir = '/data'
  assert input_pipeline.resolve_data_dir(config, '/runs/a') == '/data'


def test_view_fields_are_the_records_per_view_features(rng):
  # The record's fields are declared by data_prep/records.py; the library's
  # VIEW_FIELDS (padded, flattened into graphs, kept by evaluation) must be
  # exactly its per-view ones, so that a new field cannot drift.
  num_views, num_keypoints = int(rng.integers(2, 6)), 12
  features = records.features(num_views, num_keypoints)
  per_view = [name for name, feature in features.items()
              if feature.shape[:1] == (num_views,)]
  assert tuple(per_view) == input_pipeline.VIEW_FIELDS
  view = records.View(
      crop=np.zeros((64, 64, 3), np.uint8), box=np.ones(4),
      keypoints=np.zeros((num_keypoints, 2)),
      visibility=np.zeros(num_keypoints),
      occlusion_kind=np.zeros(num_keypoints),
      camera=np.zeros((3, 4)), camera_error=0.0, image_size=(8, 8))
  example = records.make_example('car', [view] * num_views)
  assert list(example) == list(features)
