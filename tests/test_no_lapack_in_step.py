"""The training step must not contain LAPACK custom calls.

On a two-core CPU host the default-size training step hung inside XLA: two
LAPACK custom calls of the loss (the LU factorisation behind
`jnp.linalg.solve`/`det`, the SVD of the triangulation) each held one of
the two threads of XLA's CPU pool while waiting for sub-tasks queued on that
same pool. The geometry now uses closed forms (`geometry.small_linalg`);
these tests lower the loss's gradient and the whole train step and fail if
a LAPACK call comes back.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from occnet_jax import categories
from occnet_jax import configs
from occnet_jax import losses
from occnet_jax import models
from occnet_jax import train
from occnet_jax.configs import default
from occnet_jax.configs import test as test_config
from reproduction import benchmark
from tests import synthetic_cars

# jax's CPU targets are named lapack_<routine>_ffi; the routine names catch
# other spellings too.
_LAPACK_TARGET = re.compile(
    r'lapack|getrf|getrs|gesdd|gesvd|gesvj|syevd|heevd|potrf|geqrf|orgqr'
    r'|trsm|geev|gees|gehrd|sytrd|hetrd', re.IGNORECASE)
# StableHLO's pretty form `custom_call @target(...)` and its generic form.
_CUSTOM_CALL = re.compile(
    r'custom_call\s*@([\w.$-]+)|call_target_name\s*=\s*"([^"]+)"')


def lapack_calls(lowered):
  """The LAPACK custom-call targets in a `jax.stages.Lowered`."""
  targets = {''.join(match)
             for match in _CUSTOM_CALL.findall(lowered.as_text())}
  return sorted(target for target in targets if _LAPACK_TARGET.search(target))


def test_lapack_calls_are_detected():
  matrix = jnp.eye(4)
  solve = jax.jit(jnp.linalg.solve).lower(matrix, jnp.ones(4))
  svd = jax.jit(jnp.linalg.svd).lower(matrix)
  assert any('getrf' in target for target in lapack_calls(solve))
  assert any('gesdd' in target or 'gesvd' in target
             for target in lapack_calls(svd))


@pytest.mark.parametrize('mode', losses.TRIFOCAL_MODES)
def test_loss_gradient_has_no_lapack_call(rng, mode):
  num_cars, num_views, heatmap_size = 2, 3, 8
  batch = synthetic_cars.make_batch(rng, num_cars, num_views)
  num_keypoints = batch['visibility'].shape[-1]
  views = num_cars * num_views
  outputs = dict(
      heatmaps=rng.normal(size=(views, num_keypoints, heatmap_size,
                                heatmap_size)),
      edge_logits=rng.normal(
          size=(views, num_keypoints * (num_keypoints - 1), 2)),
      keypoints_2d=rng.uniform(-1.0, 1.0, size=(views, num_keypoints, 2)),
      reprojected=rng.uniform(-1.0, 1.0, size=(views, num_keypoints, 2)))
  outputs = jax.tree.map(lambda x: np.asarray(x, np.float32), outputs)
  loss_config = default.get_config().loss
  loss_config.trifocal_mode = mode
  gradient = jax.jit(jax.grad(
      lambda o: losses.total_loss(o, batch, loss_config)[0]))
  assert lapack_calls(gradient.lower(outputs)) == []


def test_train_step_has_no_lapack_call(rng):
  config = test_config.get_config()
  config.train.heatmap_steps = 0
  config.train.graph_steps = 0
  # Its resampled crops are in the step too.
  config.train.box_jitter = 0.1
  configs.validate(config, num_devices=1)
  category = categories.get_category(config.category)
  basis = benchmark.synthetic_shape_basis(rng, category,
                                          config.shape_basis.num_components)
  batch = benchmark.synthetic_batch(rng, category, config.data.batch_size,
                                    config.data.num_views,
                                    config.data.crop_size)
  del batch['nodes']  # the graph-only benchmark's input
  model = models.from_config(config, basis)
  state, optimizer = train.create_train_state(
      model, functools.partial(train.create_optimizer, config),
      jax.random.key(0), train.example_car(config))
  mesh = jax.make_mesh((1,), (train.AXIS,), devices=jax.devices()[:1])
  step = train.make_train_step(model, optimizer, config, mesh)
  lowered = step.lower(train.replicate(state, mesh),
                       train.shard_batch(batch, mesh),
                       train.replicate(jax.random.key(1), mesh))
  assert lapack_calls(lowered) == []
