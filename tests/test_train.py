"""Tests of the training step: stage schedule, frozen groups, non-finite batches."""

import functools

import jax
import numpy as np
import pytest

from occnet_jax import input_pipeline
from occnet_jax import losses
from occnet_jax import models
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax import train
from occnet_jax.configs import test as test_config
import fake_data


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  fake_data.make_dataset(data_dir, num_views=3)
  config = test_config.get_config()
  config.data.name, config.data.builder_config = fake_data.NAME, ''
  config.train.heatmap_steps = config.train.graph_steps = 1
  # Every stage's first step moves its groups (no warmup from 0).
  config.optimizer.warmup_steps = 0
  source = input_pipeline.get_source(config, 'train', data_dir)
  shapes = np.stack([source[i]['shape_3d'] for i in range(len(source))])
  model = models.from_config(config, shape_basis_lib.fit_shape_basis(
      shapes, config.shape_basis.num_components))
  mesh = jax.make_mesh((1,), (train.AXIS,), devices=jax.devices()[:1])
  state, optimizer = train.create_train_state(
      model, functools.partial(train.create_optimizer, config),
      jax.random.key(0), train.example_car(config))
  batch = next(input_pipeline.create_train_iterator(source, config, 0))
  # Host copies: every test places (and donates) its own device state.
  return dict(config=config, mesh=mesh, state=jax.device_get(state),
              batch=batch, model=model,
              step=train.make_train_step(model, optimizer, config, mesh))


def _groups_changed(before, after):
  labels = train.param_labels(before)
  changed = {group: False for group in train.PARAM_GROUPS}
  for old, new, group in zip(jax.tree.leaves(before), jax.tree.leaves(after),
                             jax.tree.leaves(labels)):
    changed[group] |= not np.array_equal(old, new)
  return changed


def test_learning_rates_follow_the_stages(seed):
  rng = np.random.default_rng(seed)
  config = test_config.get_config()
  config.train.num_steps = int(rng.integers(30, 200))
  config.train.heatmap_steps = int(rng.integers(0, config.train.num_steps // 2))
  config.train.graph_steps = int(rng.integers(0, config.train.num_steps // 3))
  config.optimizer.warmup_steps = int(rng.integers(0, 5))
  _, graph_start, joint_start = train.stage_starts(config)
  schedules = {group: train.learning_rate_schedule(config, group)
               for group in train.PARAM_GROUPS}
  for step in range(config.train.num_steps):
    stage = int(train.stage_index(np.int32(step), config))
    assert stage == (step >= graph_start) + (step >= joint_start)
    heatmap_rate = float(schedules['heatmap'](step))
    graph_rate = float(schedules['graph'](step))
    assert (heatmap_rate == 0.0) if stage == 1 else heatmap_rate >= 0.0
    assert (graph_rate == 0.0) if stage == 0 else graph_rate >= 0.0
    # Past the warmup of its stage, a trained group has a positive rate,
    # at most the peak.
    stage_start = (0, graph_start, joint_start)[stage]
    if step - stage_start > config.optimizer.warmup_steps and (
        step < config.train.num_steps - 1):
      rates = {0: [heatmap_rate], 1: [graph_rate],
               2: [heatmap_rate, graph_rate]}[stage]
      assert all(0.0 < rate <= config.optimizer.learning_rate
                 for rate in rates), (step, rates)


def test_param_labels_split_head_and_graph_networks(setup):
  labels = train.param_labels(setup['state'].params)
  for name, subtree in labels.items():
    expected = ('heatmap' if name.startswith(train.HEATMAP_MODULE_PREFIX)
                else 'graph')
    assert set(jax.tree.leaves(subtree)) == {expected}, name
  assert set(jax.tree.leaves(labels)) == set(train.PARAM_GROUPS)


def test_stage_loss_terms_are_named_loss_terms():
  # pylint: disable=protected-access
  named = {term for terms in train._STAGE_LOSS_TERMS for term in terms}
  assert named == set(losses.LOSS_TERMS)
  masks = train._STAGE_LOSS_MASKS
  assert set(masks) == set(losses.LOSS_TERMS)
  assert [term for term, mask in masks.items() if mask[0]] == ['keypoints']
  assert all(mask[-1] == 1 for mask in masks.values())


def test_stages_train_only_their_groups(setup):
  state = train.replicate(setup['state'], setup['mesh'])
  rng = train.replicate(jax.random.key(1), setup['mesh'])
  batch = train.shard_batch(setup['batch'], setup['mesh'])
  expected = [{'heatmap': True, 'graph': False},
              {'heatmap': False, 'graph': True},
              {'heatmap': True, 'graph': True}]
  for stage, changes in enumerate(expected):
    before = jax.device_get(state.params)
    state, metrics = setup['step'](state, batch, rng)
    assert float(metrics['finite']) == 1.0
    assert int(state.step) == stage + 1
    assert _groups_changed(before, jax.device_get(state.params)) == changes
    if stage == 0:
      # Only the keypoint term is trained in the heatmap stage.
      np.testing.assert_allclose(metrics['loss'], metrics['keypoints'],
                                 rtol=1e-6)


@pytest.mark.parametrize('impl', ['threefry2x32', 'rbg', 'unsafe_rbg'])
def test_dropout_key_has_the_configured_implementation(seed, impl):
  step_key = jax.random.key(seed)
  key = train.dropout_key(step_key, impl)
  assert str(jax.random.key_impl(key)) == impl
  # A function of the step's key: the same key again, another for another.
  np.testing.assert_array_equal(
      jax.random.key_data(train.dropout_key(step_key, impl)),
      jax.random.key_data(key))
  other = train.dropout_key(jax.random.fold_in(step_key, 1), impl)
  assert np.any(jax.random.key_data(other) != jax.random.key_data(key))
  if impl == str(jax.random.key_impl(step_key)):
    assert key is step_key


def test_train_step_is_deterministic_for_a_seed(setup):
  assert setup['config'].train.dropout_prng != 'threefry2x32'
  batch = train.shard_batch(setup['batch'], setup['mesh'])

  def step(seed):
    # Past the heatmap stage: the graph networks and their dropout train.
    state = train.replicate(setup['state'].replace(step=np.int32(1)),
                            setup['mesh'])
    return jax.device_get(setup['step'](
        state, batch, train.replicate(jax.random.key(seed), setup['mesh'])))

  first, again, other = (step(seed) for seed in (3, 3, 4))
  jax.tree.map(np.testing.assert_array_equal, first, again)
  # Another seed draws other dropout masks: another loss.
  assert first[1]['loss'] != other[1]['loss']


def test_nonfinite_batch_changes_nothing_but_the_counters(setup, seed):
  rng = np.random.default_rng(seed)
  batch = {name: value.copy() for name, value in setup['batch'].items()}
  car, view, point = np.argwhere(batch['visibility'] == 1)[
      rng.integers(np.sum(batch['visibility'] == 1))]
  batch['keypoints'][car, view, point] = np.nan
  state = train.replicate(setup['state'], setup['mesh'])
  before = jax.device_get(state)
  new_state, metrics = setup['step'](
      state, train.shard_batch(batch, setup['mesh']),
      train.replicate(jax.random.key(1), setup['mesh']))
  metrics = jax.tree.map(float, metrics)
  assert metrics['finite'] == 0.0
  after = jax.device_get(new_state)
  assert int(after.step) == 1 and int(after.num_skipped) == 1
  jax.tree.map(np.testing.assert_array_equal,
               (after.params, after.opt_state),
               (before.params, before.opt_state))
  message = train._nonfinite_message(0, metrics)  # pylint: disable=protected-access
  assert 'keypoints' in message and 'step 0' in message


def test_box_jitter_moves_the_step_inputs_deterministically(setup):
  config = setup['config'].copy_and_resolve_references()
  config.train.box_jitter = 0.2
  model = models.from_config(config, setup['model'].shape_basis)
  state, optimizer = train.create_train_state(
      model, functools.partial(train.create_optimizer, config),
      jax.random.key(0), train.example_car(config))
  jittered_step = train.make_train_step(model, optimizer, config,
                                        setup['mesh'])
  batch = train.shard_batch(setup['batch'], setup['mesh'])

  def loss(step_fn, seed):
    # The heatmap stage: the loss is the keypoint term, of crops and boxes.
    placed = train.replicate(jax.device_get(state), setup['mesh'])
    return float(step_fn(placed, batch, train.replicate(
        jax.random.key(seed), setup['mesh']))[1]['loss'])

  first = loss(jittered_step, 3)
  assert loss(jittered_step, 3) == first
  assert loss(jittered_step, 4) != first
  assert loss(setup['step'], 3) != first


def test_skipped_record_trains_as_a_padding_car(setup, seed):
  # config.data.skip_corrupt puts an all-padding car where an unreadable
  # record was: every stage's loss and gradients stay finite.
  rng = np.random.default_rng(seed)
  batch = {name: value.copy() for name, value in setup['batch'].items()}
  car = rng.integers(len(batch['crops']))
  for name, value in input_pipeline.padding_example(
      {name: value[car] for name, value in batch.items()}).items():
    batch[name][car] = value
  for stage_start in train.stage_starts(setup['config']):
    state = train.replicate(setup['state'].replace(
        step=np.int32(stage_start)), setup['mesh'])
    _, metrics = setup['step'](
        state, train.shard_batch(batch, setup['mesh']),
        train.replicate(jax.random.key(seed), setup['mesh']))
    metrics = jax.tree.map(float, metrics)
    assert metrics['finite'] == 1.0, (stage_start, metrics)
