"""Data parallelism: one step on 4 devices equals one step on 1 device."""

import functools

import jax
import numpy as np

from occnet_jax import input_pipeline
from occnet_jax import models
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax import train
from occnet_jax.configs import test as test_config
import fake_data

NUM_DEVICES = 4


def test_four_devices_step_like_one(tmp_path):
  seed = np.random.SeedSequence().entropy % 2**32
  print(f'seed = {seed}')
  rng = np.random.default_rng(seed)
  assert jax.device_count() == NUM_DEVICES
  data_dir = str(tmp_path)
  fake_data.make_dataset(data_dir, num_views=3, split_sizes={'train': 2},
                         seed=int(rng.integers(1000)))
  config = test_config.get_config()
  config.data.name, config.data.builder_config = fake_data.NAME, ''
  # No dropout (its masks depend on the device), every group trained from
  # the first step, and plain SGD so that updates are linear in gradients.
  config.model.dropout = 0.0
  # The ungated decoder: the hard gate opens on a keypoint only where the
  # untrained encoder happens to score it above the threshold, and where it
  # opens on none the decoder gets no gradient, so how many parameters the
  # step moves would depend on the seed. The gate acts on each keypoint
  # alone, so it has no part in how the step splits over devices.
  config.model.decoder_gate = 'none'
  config.train.heatmap_steps = config.train.graph_steps = 0
  config.optimizer.name = 'sgd'
  config.optimizer.warmup_steps = 0
  config.optimizer.learning_rate = 0.1
  source = input_pipeline.get_source(config, 'train', data_dir)
  record = source[0]
  # Identical geometry in every car (so each device's masked means average
  # the same number of terms), different random crops.
  car = input_pipeline.select_views(record, np.arange(3), 3)
  batch = input_pipeline.stack([car] * NUM_DEVICES)
  batch['crops'] = rng.integers(0, 256, batch['crops'].shape, np.uint8)
  shapes = np.stack([source[i]['shape_3d'] for i in range(len(source))])
  model = models.from_config(config, shape_basis_lib.fit_shape_basis(
      shapes, 1))
  state, optimizer = train.create_train_state(
      model, functools.partial(train.create_optimizer, config),
      jax.random.key(int(rng.integers(1000))), train.example_car(config))
  initial = jax.device_get(state.params)

  results = {}
  for num_devices in (1, NUM_DEVICES):
    mesh = jax.make_mesh((num_devices,), (train.AXIS,),
                         devices=jax.devices()[:num_devices])
    step = train.make_train_step(model, optimizer, config, mesh)
    new_state, metrics = step(train.replicate(jax.device_get(state), mesh),
                              train.shard_batch(batch, mesh),
                              train.replicate(jax.random.key(0), mesh))
    results[num_devices] = jax.device_get((new_state.params, metrics))

  (one_params, one_metrics), (many_params, many_metrics) = (
      results[1], results[NUM_DEVICES])
  assert one_metrics['finite'] == many_metrics['finite'] == 1.0
  for name in ('loss', 'keypoints', 'edge', 'trifocal', 'reproj'):
    np.testing.assert_allclose(many_metrics[name], one_metrics[name],
                               rtol=2e-5, atol=1e-6, err_msg=name)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=2e-5,
                                 atol=2e-6), many_params, one_params)
  moved = [not np.allclose(new, old) for new, old in zip(
      jax.tree.leaves(one_params), jax.tree.leaves(initial))]
  assert np.mean(moved) > 0.5
