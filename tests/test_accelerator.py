"""Accelerator readiness: the heatmap head's dilations, mixed precision and
profile traces."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from occnet_jax import categories
from occnet_jax import losses
from occnet_jax import models
from occnet_jax import train
from occnet_jax import workdir as workdir_lib
from occnet_jax.configs import car_render
from occnet_jax.configs import car_render_full_cpu
from occnet_jax.configs import carfusion_synthetic
from occnet_jax.configs import default
from occnet_jax.configs import paper
from occnet_jax.configs import test as test_config
from occnet_jax.models import heatmap_head
from occnet_jax.evaluation import outputs
from reproduction import benchmark
import fake_data


def test_dilations_double_below_the_map_then_restart(rng):
  for _ in range(20):
    size, num_layers = int(rng.integers(1, 200)), int(rng.integers(0, 20))
    dilations = heatmap_head.dilations(num_layers, size)
    assert len(dilations) == num_layers
    for layer, dilation in enumerate(dilations):
      # No layer whose off-centre taps all fall in the padding...
      assert dilation == 1 or dilation < size
      # ...and the doubling is untouched wherever it stays on the map.
      if 2**layer < size:
        assert dilation == 2**layer
    period = max(1, (size - 1).bit_length())
    if num_layers >= period:
      # The receptive field spans the map from any cell.
      assert 1 + 2 * sum(dilations) >= 2 * size - 1


@pytest.mark.parametrize('config_module', [default, car_render,
                                           car_render_full_cpu,
                                           carfusion_synthetic])
def test_trained_configs_keep_their_dilations(config_module):
  model = config_module.get_config().model
  assert heatmap_head.dilations(model.heatmap_layers, model.heatmap_size) == (
      tuple(2**layer for layer in range(model.heatmap_layers)))


def test_paper_head_stays_on_its_map():
  model = paper.get_config().model
  assert heatmap_head.dilations(model.heatmap_layers, model.heatmap_size) == (
      1, 2, 4, 8, 16, 1, 2, 4)


def _doubling_head(params, crops, stride):
  """The head as it was before `dilations`: dilation 2^layer throughout."""

  def conv(x, layer, dilation=1, strides=1):
    out = jax.lax.conv_general_dilated(
        x, layer['kernel'], (strides, strides), 'SAME',
        rhs_dilation=(dilation, dilation),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return out + layer['bias']

  x = crops.astype(jnp.float32) / 127.5 - 1.0
  x = jax.nn.relu(conv(x, params['stem'], strides=stride))
  layer = 0
  while f'Conv_{layer}' in params:
    x = jax.nn.relu(conv(x, params[f'Conv_{layer}'], dilation=2**layer))
    layer += 1
  return jnp.moveaxis(conv(x, params['logits']), -1, -3)


def test_default_head_has_the_same_params_and_outputs(seed):
  config = default.get_config()
  head = heatmap_head.HeatmapHead(12, config.model.heatmap_features,
                                  config.model.heatmap_layers,
                                  config.model.heatmap_size)
  crops = jax.random.randint(jax.random.key(seed), (2, config.data.crop_size,
                                                    config.data.crop_size, 3),
                             0, 256).astype(jnp.uint8)
  params = head.init(jax.random.key(seed + 1), crops)['params']
  assert sorted(params) == ['Conv_0', 'Conv_1', 'Conv_2', 'Conv_3', 'logits',
                            'stem']
  assert params['stem']['kernel'].shape == (4, 4, 3, 32)
  assert all(params[f'Conv_{layer}']['kernel'].shape == (3, 3, 32, 32)
             for layer in range(4))
  stride = config.data.crop_size // config.model.heatmap_size
  np.testing.assert_allclose(head.apply({'params': params}, crops),
                             _doubling_head(params, crops, stride),
                             rtol=1e-5, atol=1e-5)


@pytest.fixture(scope='module')
def parity_setup(module_seed):
  """(config, shape basis, batch) of the test config on consistent cars."""
  rng = np.random.default_rng(module_seed)
  config = test_config.get_config()
  category = categories.get_category(config.category)
  basis = benchmark.synthetic_shape_basis(rng, category,
                                          config.shape_basis.num_components)
  batch = benchmark.synthetic_batch(rng, category, 4, config.data.num_views,
                                    config.data.crop_size)
  return config, basis, batch


def _loss_and_grads(config, basis, batch, dtype, keypoints_in):
  """The total loss, its terms and gradients, computed in `dtype`."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.model.dtype = dtype
  model = models.from_config(config, basis)
  if keypoints_in:
    model = benchmark.KeypointsInNet(model)
  inputs = dict(batch, crops=batch['nodes'] if keypoints_in else
                batch['crops'])
  del inputs['nodes']
  crops, boxes = (inputs['crops'].reshape((-1,) + inputs['crops'].shape[2:]),
                  inputs['boxes'].reshape(-1, 4))
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), crops, boxes)

  def loss_fn(params):
    outputs = model.apply({**variables, 'params': params}, crops, boxes,
                          train=False)
    loss, terms = losses.total_loss(outputs, inputs, config.loss)
    return loss, (terms, outputs)

  (loss, (terms, outputs)), grads = jax.jit(jax.value_and_grad(
      loss_fn, has_aux=True))(variables['params'])
  return loss, terms, grads, outputs, variables


# bfloat16 keeps 8 significant bits: every conv and matmul input (and, in
# the backward pass, every cotangent) is rounded by up to 2^-9 = 0.2%
# relative; parameters and the f32 losses are not. The loss is a mean over
# many cells and keypoints, where the rounding averages out: it agrees to
# 1e-4 (measured over seeds 0-5 of this test's batches: <= 2e-4); 1% bounds
# it. A parameter's gradient is a sum over every position and view. The
# graph MLPs' terms add up (gradients agree to 0.4-0.6% in norm, bounded
# here by 2%). At initialisation the heatmap head's terms nearly cancel (its
# heatmaps are flat, so softmax - target changes sign from cell to cell)
# while their rounding errors do not: its gradients differed by 7-14% in
# norm, yet pointed the same way (cosine 0.990-0.998); bounded by 25% and
# a cosine of 0.98. A gradient that lost a branch or a term in the wrong
# dtype scale misses these by far. The full model is compared on the heatmap
# loss only, since its argmax decoding is discontinuous (0.2% on near-tied
# logits can move a keypoint by a cell); the graph losses in keypoints-in
# mode.
_LOSS_TOLERANCE = 0.01
_GRADIENT_TOLERANCE = {False: 0.25, True: 0.02}
_MIN_GRADIENT_COSINE = 0.98


def _flat(tree):
  return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


@pytest.mark.parametrize('keypoints_in', [False, True])
def test_bfloat16_losses_and_gradients_match_float32(parity_setup,
                                                     keypoints_in):
  config, basis, batch = parity_setup
  config = ml_collections.ConfigDict(config.to_dict())
  if not keypoints_in:
    for term in losses.LOSS_TERMS:
      config.loss[term] = float(term == 'keypoints')
  loss32, terms32, grads32, _, _ = _loss_and_grads(
      config, basis, batch, 'float32', keypoints_in)
  loss16, terms16, grads16, outputs16, variables16 = _loss_and_grads(
      config, basis, batch, 'bfloat16', keypoints_in)
  # Parameters and every output (geometry included) stay float32.
  assert {leaf.dtype for leaf in jax.tree.leaves(variables16)} == {
      jnp.dtype(jnp.float32)}
  assert {value.dtype for value in outputs16.values()} == {
      jnp.dtype(jnp.float32)}
  assert abs(float(loss16) - float(loss32)) <= _LOSS_TOLERANCE * abs(
      float(loss32))
  for term in losses.LOSS_TERMS:
    if config.loss[term]:
      assert abs(float(terms16[term]) - float(terms32[term])) <= (
          _LOSS_TOLERANCE * abs(float(terms32[term]))), term
  gradient16, gradient32 = _flat(grads16), _flat(grads32)
  error = float(jnp.linalg.norm(gradient16 - gradient32)
                / jnp.linalg.norm(gradient32))
  # bfloat16 did change the computation (the switch is not ignored).
  assert 0.0 < error <= _GRADIENT_TOLERANCE[keypoints_in]
  cosine = float(gradient16 @ gradient32 / jnp.linalg.norm(gradient16)
                 / jnp.linalg.norm(gradient32))
  assert cosine >= _MIN_GRADIENT_COSINE


@pytest.fixture(scope='module')
def bfloat16_profiled_workdir(tmp_path_factory, fake_data_dir):
  """A workdir of the test config trained and evaluated in bfloat16, with a
  profile of two steps."""
  config = test_config.get_config()
  config.data.name, config.data.builder_config = fake_data.NAME, ''
  config.data.data_dir = fake_data_dir
  config.model.dtype = 'bfloat16'
  config.train.profile_steps = 2
  workdir = str(tmp_path_factory.mktemp('bfloat16'))
  train.train_and_evaluate(config, workdir)
  return workdir


def test_bfloat16_trains_and_evaluates_end_to_end(bfloat16_profiled_workdir):
  config = workdir_lib.load_config(bfloat16_profiled_workdir)
  assert config.model.dtype == 'bfloat16'
  with open(outputs.metrics_path(bfloat16_profiled_workdir,
                                  config.eval.final_split)) as file:
    metrics = json.load(file)
  values = [value for value in metrics.values() if isinstance(value, float)]
  assert values and np.all(np.isfinite(values))


def test_profile_trace_is_written_for_tensorboard(bfloat16_profiled_workdir):
  profile_dir = os.path.join(bfloat16_profiled_workdir, 'plugins', 'profile')
  runs = os.listdir(profile_dir)
  assert len(runs) == 1
  traces = [name for name in os.listdir(os.path.join(profile_dir, runs[0]))
            if name.endswith('.xplane.pb')]
  assert traces and all(os.path.getsize(os.path.join(
      profile_dir, runs[0], name)) > 0 for name in traces)


def test_profile_steps_zero_writes_no_trace(tmp_path):
  with train.StepTrace(tmp_path, 0, 0) as trace:
    for step in range(3):
      trace.before(step)
      trace.after(step, jnp.zeros(()))
  assert not os.path.exists(tmp_path / 'plugins')


def test_a_run_stopped_mid_trace_still_writes_it(tmp_path):
  with train.StepTrace(tmp_path, 0, 5) as trace:
    for step in range(3):
      trace.before(step)
      trace.after(step, jax.jit(functools.partial(jnp.add, 1.0))(step))
  assert os.listdir(tmp_path / 'plugins' / 'profile')
