"""Tests of occnet_jax.models: graphs, layers, heatmap head, OcclusionNet."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from occnet_jax import geometry
from occnet_jax import models
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.models import graphs
from occnet_jax.models import heatmap_head
from occnet_jax.models import kgnn2d
from occnet_jax.models import kgnn3d
from occnet_jax.models import layers

CATEGORY = car_lib.CAR
K = CATEGORY.num_keypoints
NUM_VIEWS = 3
CROP_SIZE = 16


def model_config(**overrides):
  config = ml_collections.ConfigDict(dict(
      heatmap_features=8, heatmap_layers=2, heatmap_size=8, hidden=16,
      dropout=0.5, use_keypoint_type=True, use_encoder=True,
      decoder_gate='none', decoder_gate_threshold=0.5,
      decoder_gate_open_rate=0.0, graph_trains_head=False, dtype='float32'))
  config.update(overrides)
  return config


def random_shape_basis(rng, mean_shape):
  shapes = mean_shape + rng.normal(scale=0.2, size=(10,) + mean_shape.shape)
  return shape_basis_lib.fit_shape_basis(shapes, num_components=3)


def random_inputs(rng, num_views=NUM_VIEWS):
  crops = rng.integers(0, 256, size=(num_views, CROP_SIZE, CROP_SIZE, 3),
                       dtype=np.uint8)
  low = rng.uniform(0.0, 500.0, size=(num_views, 2))
  boxes = np.concatenate([low, low + rng.uniform(50.0, 300.0, (num_views, 2))],
                         -1).astype(np.float32)
  keypoints = rng.uniform(-1.0, 1.0, size=(num_views, K, 2)).astype(np.float32)
  confidence = rng.uniform(size=(num_views, K)).astype(np.float32)
  return crops, boxes, keypoints, confidence


def perturbed(rng, params, scale=0.3):
  """Parameters with noise added, so that zero-initialised layers act."""
  return jax.tree.map(
      lambda p: p + scale * rng.normal(size=p.shape).astype(p.dtype), params)


@pytest.fixture(scope='module')
def model_and_variables():
  rng = np.random.default_rng(0)
  model = models.create_model(model_config(), CATEGORY,
                              random_shape_basis(rng, CATEGORY.mean_shape))
  crops, boxes, _, _ = random_inputs(rng)
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), crops, boxes)
  return model, variables


def test_fully_connected_edges_and_batching(rng):
  senders, receivers = graphs.fully_connected_edges(K)
  assert senders.size == K * (K - 1) and np.all(senders != receivers)
  assert len(set(zip(senders, receivers))) == K * (K - 1)
  nodes = rng.normal(size=(NUM_VIEWS, K, 4)).astype(np.float32)
  graph = graphs.batch_graphs(jnp.asarray(nodes))
  edge_values = nodes.reshape(-1, 4)[graph.senders]
  # Every node receives from all other nodes of its own view only.
  incoming = np.asarray(graphs.sum_incoming(edge_values, graph))
  expected = nodes.sum(1, keepdims=True) - nodes
  np.testing.assert_allclose(incoming.reshape(nodes.shape), expected,
                             rtol=1e-5, atol=1e-5)
  assert graph.n_node.tolist() == [K] * NUM_VIEWS
  assert graph.n_edge.tolist() == [K * (K - 1)] * NUM_VIEWS


def sparse_form(graph):
  """The same graph with traced-style (jax) indices: jraph's sparse ops."""
  return graph._replace(senders=jnp.asarray(graph.senders),
                        receivers=jnp.asarray(graph.receivers))


def test_complete_graphs_are_recognised():
  graph = graphs.batch_graphs(jnp.zeros((NUM_VIEWS, K, 1)))
  assert graphs.complete_graph_size(graph) == K
  assert graphs.complete_graph_size(sparse_form(graph)) is None
  # One edge less (a sparse graph) is not complete.
  assert graphs.complete_graph_size(graph._replace(
      senders=graph.senders[1:], receivers=graph.receivers[1:])) is None
  # Nor is a batch of graphs of different sizes.
  assert graphs.complete_graph_size(graph._replace(
      n_node=np.array([K + 1, K - 1] + [K] * (NUM_VIEWS - 2)))) is None


def test_dense_message_passing_equals_jraph_segment_ops(rng):
  """Values and gradients of the dense complete-graph form and jraph's."""
  nodes = jnp.asarray(rng.normal(size=(NUM_VIEWS, K, 5)), jnp.float32)
  graph = graphs.batch_graphs(nodes)
  senders = rng.normal(size=(NUM_VIEWS * K, 3)).astype(np.float32)
  receivers = rng.normal(size=(NUM_VIEWS * K, 3)).astype(np.float32)
  weights = rng.normal(size=(graph.senders.size, 3)).astype(np.float32)

  def messages(senders, receivers, graph):
    edges = graphs.pair_sum(senders, receivers, graph)
    # A non-linearity between the two, so the gradients test both.
    return edges, graphs.sum_incoming(jnp.tanh(edges) * weights, graph)

  dense = messages(senders, receivers, graph)
  sparse = messages(senders, receivers, sparse_form(graph))
  np.testing.assert_allclose(dense[0], senders[graph.senders]
                             + receivers[graph.receivers], rtol=1e-6)
  for value, expected in zip(dense, sparse):
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)

  def loss(senders, receivers, graph):
    return jnp.sum(messages(senders, receivers, graph)[1]**2)

  dense_grads = jax.grad(loss, (0, 1))(senders, receivers, graph)
  sparse_grads = jax.grad(loss, (0, 1))(senders, receivers,
                                        sparse_form(graph))
  for value, expected in zip(dense_grads, sparse_grads):
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)


def test_graph_networks_dense_equal_sparse(rng, model_and_variables):
  """The 2D and 3D networks' outputs and gradients on either graph form."""
  model, variables = model_and_variables
  # Small weights keep the 3D camera in front of the car (well-conditioned
  # projections, so float32 rounding stays small).
  params = perturbed(rng, variables['params'], scale=0.05)
  _, _, keypoints, confidence = random_inputs(rng)
  graph = graphs.batch_graphs(
      graphs.node_features(keypoints, confidence, CATEGORY, True))
  aspect = jnp.asarray(rng.uniform(0.5, 2.0, NUM_VIEWS), jnp.float32)
  encoder = kgnn2d.KGNNEncoder(model.hidden)
  decoder = kgnn2d.KGNNDecoder(model.hidden)
  kgnn_3d = kgnn3d.KGNN3D(model.shape_basis, model.hidden)

  # Jitted: op by op, the networks and their gradients take a minute.
  @jax.jit
  def run(params, graph):
    logits = encoder.apply({'params': params['KGNNEncoder_0']}, graph,
                           train=False)
    moved = decoder.apply({'params': params['KGNNDecoder_0']}, graph,
                          jax.nn.softmax(logits), train=False)
    lifted = kgnn_3d.apply({'params': params['KGNN3D_0']}, graph, aspect,
                           train=False)
    return logits, moved, lifted['reprojected']

  outputs = run(params, graph)
  weights = [rng.normal(size=output.shape) for output in outputs]

  def loss(params, graph):
    return sum(jnp.sum(weight * output)
               for weight, output in zip(weights, run(params, graph)))

  for dense, sparse in zip(outputs, run(params, sparse_form(graph))):
    np.testing.assert_allclose(dense, sparse, rtol=1e-4, atol=1e-5)
  gradient = jax.jit(jax.grad(loss))
  dense = gradient(params, graph)
  sparse = gradient(params, sparse_form(graph))
  for (path, value), expected in zip(jax.tree.leaves_with_path(dense),
                                     jax.tree.leaves(sparse)):
    # A gradient element is a sum of terms as large as the leaf's largest
    # one, summed in another order: its float32 rounding scales with them
    # (an element of 0.04 beside ones of 17 once differed by 1.5e-5).
    np.testing.assert_allclose(value, expected, rtol=1e-4,
                               atol=1e-5 * max(1.0, np.abs(expected).max()),
                               err_msg=jax.tree_util.keystr(path))


def test_pair_dense_equals_naive_concatenation(rng):
  nodes = rng.normal(size=(2 * K, 5)).astype(np.float32)
  graph = graphs.batch_graphs(jnp.asarray(nodes.reshape(2, K, 5)))
  layer = layers.PairDense(7)
  params = perturbed(rng, layer.init(jax.random.key(1), nodes, graph))
  factorised = layer.apply(params, nodes, graph)
  weights = params['params']
  kernel = np.concatenate([weights['sender']['kernel'],
                           weights['receiver']['kernel']], axis=0)
  naive = (np.concatenate([nodes[graph.senders], nodes[graph.receivers]], -1)
           @ kernel + weights['sender']['bias'])
  np.testing.assert_allclose(factorised, naive, rtol=1e-5, atol=1e-5)


def test_heatmap_targets_and_decoding_are_exact(rng):
  size = 8
  points = rng.uniform(-1.0 + 1.0 / size, 1.0 - 1.0 / size, size=(20, 2))
  targets = heatmap_head.heatmap_targets(jnp.asarray(points, jnp.float32),
                                         size, size)
  np.testing.assert_allclose(targets.sum((-2, -1)), 1.0, rtol=1e-6)
  centres = np.asarray(heatmap_head.cell_centres(size))
  mean = np.stack([(targets.sum(-2) * centres).sum(-1),
                   (targets.sum(-1) * centres).sum(-1)], -1)
  np.testing.assert_allclose(mean, points, atol=1e-5)
  decoded, confidence = heatmap_head.decode_heatmaps(
      jnp.log(targets + 1e-12))
  np.testing.assert_allclose(decoded, points, atol=1e-5)
  np.testing.assert_allclose(confidence, 1.0, atol=1e-5)


def test_occlusion_scores_from_true_edges(rng):
  visibility = rng.integers(0, 3, size=(4, K))
  visibility[:, :2] = 1  # At least two visible keypoints per view.
  senders, receivers = graphs.fully_connected_edges(K)
  visible = visibility == 1
  edge_types = (visible[:, senders] & visible[:, receivers]).astype(int)
  probabilities = jax.nn.one_hot(edge_types.reshape(-1), 2)
  graph = graphs.batch_graphs(jnp.zeros((4, K, 1)))
  scores = kgnn2d.occlusion_scores(probabilities, graph).reshape(4, K)
  np.testing.assert_array_equal(scores, np.where(visible, 0.0, 1.0))


def test_outputs_and_initial_state(rng, model_and_variables):
  model, variables = model_and_variables
  crops, boxes, _, _ = random_inputs(rng)
  outputs = jax.jit(lambda v, c, b: model.apply(v, c, b, train=False))(
      variables, crops, boxes)
  num_edges = K * (K - 1)
  expected_shapes = dict(
      heatmaps=(NUM_VIEWS, K, 8, 8), initial_keypoints=(NUM_VIEWS, K, 2),
      confidence=(NUM_VIEWS, K), edge_logits=(NUM_VIEWS, num_edges, 2),
      occlusion_score=(NUM_VIEWS, K), keypoints_2d=(NUM_VIEWS, K, 2),
      shape_coefficients=(NUM_VIEWS, 3), focal=(NUM_VIEWS,),
      quaternion=(NUM_VIEWS, 4), translation=(NUM_VIEWS, 3),
      keypoints_3d=(NUM_VIEWS, K, 3), reprojected=(NUM_VIEWS, K, 2))
  assert {k: v.shape for k, v in outputs.items()} == expected_shapes
  assert all(v.dtype == jnp.float32 for v in outputs.values())
  # The untrained decoder is the identity and the 3D branch starts from the
  # mean shape in front of the camera.
  np.testing.assert_array_equal(outputs['keypoints_2d'],
                                outputs['initial_keypoints'])
  np.testing.assert_allclose(outputs['keypoints_3d'],
                             np.broadcast_to(model.shape_basis.mean,
                                             (NUM_VIEWS, K, 3)), atol=1e-6)
  assert np.all(outputs['focal'] > 0)
  assert np.all(outputs['translation'][:, 2] > 0)
  np.testing.assert_allclose(np.linalg.norm(outputs['quaternion'], axis=-1),
                             1.0, rtol=1e-6)
  aspect = (boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1])
  np.testing.assert_allclose(
      outputs['reprojected'],
      geometry.perspective_projection(
          outputs['keypoints_3d'], outputs['focal'], outputs['quaternion'],
          outputs['translation'], aspect), rtol=1e-5, atol=1e-6)
  assert np.all((outputs['confidence'] >= 0) & (outputs['confidence'] <= 1))
  assert np.all(np.abs(outputs['initial_keypoints']) <= 1.0)


def test_dropout_only_in_training(rng, model_and_variables):
  model, variables = model_and_variables
  variables = perturbed(rng, variables)
  crops, boxes, _, _ = random_inputs(rng)
  apply = jax.jit(lambda key, train: model.apply(
      variables, crops, boxes, train=train, rngs={'dropout': key}),
                  static_argnums=1)
  first = apply(jax.random.key(1), False)
  second = apply(jax.random.key(2), False)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)
  first = apply(jax.random.key(1), True)
  second = apply(jax.random.key(2), True)
  # One output per network; the 3D branch's quaternion rather than its
  # tanh-bounded shape coefficients, which perturbed weights can saturate.
  for name in ('edge_logits', 'keypoints_2d', 'quaternion'):
    assert np.any(first[name] != second[name]), name


class TwoDropouts(nn.Module):
  rate: float

  @nn.compact
  def __call__(self, x):
    return (layers.Dropout(self.rate)(x, train=True),
            layers.Dropout(self.rate)(x, train=True))


@pytest.mark.parametrize('impl', ['threefry2x32', 'rbg', 'unsafe_rbg'])
def test_dropout_rate_and_independence(rng, impl):
  """Bernoulli(1 - rate) masks, independent within and across layers."""
  rate = float(rng.choice([0.1, 0.5, 0.25, 0.875, 1 - 37 / 256,
                           rng.uniform(0.05, 0.95)]))
  shape = (int(rng.integers(200, 300)), 2 * int(rng.integers(200, 300)) + 1)
  key = jax.random.key(int(rng.integers(2**31)), impl=impl)
  layer = TwoDropouts(rate)
  first, second = layer.apply({}, jnp.ones(shape), rngs={'dropout': key})
  bits = layers.draw_bits(1 - rate)
  keep = round((1 - rate) * 2**bits) / 2**bits
  # Exact where a few bits hold the rate, else within 2^-17.
  assert keep == 1 - rate if bits < 16 else abs(keep - (1 - rate)) <= 2**-17
  for output in (first, second):
    kept = np.asarray(output) != 0
    # Kept values are scaled by the inverse of the rounded keep rate.
    np.testing.assert_allclose(np.asarray(output)[kept], 1 / keep, rtol=1e-6)

  def check(observed, probability):
    # Within 5 standard errors of a Bernoulli mean.
    sigma = np.sqrt(probability * (1 - probability) / observed.size)
    assert abs(observed.mean() - probability) < 5 * sigma, (
        observed.mean(), probability)

  kept, other = np.asarray(first) != 0, np.asarray(second) != 0
  check(kept, keep)
  per_word = 32 // bits
  flat = kept.reshape(-1)[:kept.size // per_word * per_word].reshape(
      -1, per_word)
  # Draws of one random word (its first and last, and two neighbours),
  # neighbouring elements of a row and of a column, and the same element
  # in two layers: independent.
  check(flat[:, 0] & flat[:, -1], keep**2)
  check(flat[:, ::2][:, :per_word // 2] & flat[:, 1::2], keep**2)
  check(kept[:, :-1] & kept[:, 1:], keep**2)
  check(kept[:-1] & kept[1:], keep**2)
  check(kept & other, keep**2)
  # The same key draws the same masks.
  again = layer.apply({}, jnp.ones(shape), rngs={'dropout': key})
  np.testing.assert_array_equal(again[0], first)


def permuted_category(permutation):
  inverse = np.argsort(permutation)
  return dataclasses.replace(
      CATEGORY, name='permuted_car',
      keypoint_names=tuple(CATEGORY.keypoint_names[p] for p in permutation),
      mirror=tuple(int(inverse[CATEGORY.mirror[p]]) for p in permutation),
      types=tuple(CATEGORY.types[p] for p in permutation),
      skeleton=tuple((int(inverse[i]), int(inverse[j]))
                     for i, j in CATEGORY.skeleton),
      mean_shape=CATEGORY.mean_shape[permutation])


def test_graph_networks_are_permutation_equivariant(rng, model_and_variables):
  model, variables = model_and_variables
  variables = perturbed(rng, variables)
  _, boxes, keypoints, confidence = random_inputs(rng)
  permutation = rng.permutation(K)
  basis = model.shape_basis
  permuted_model = models.create_model(
      model_config(), permuted_category(permutation),
      dataclasses.replace(basis, mean=basis.mean[permutation],
                          components=basis.components[:, permutation]))

  def run(model, keypoints, confidence):
    return jax.jit(functools.partial(model.apply, train=False))(
        variables, None, boxes, keypoints=keypoints, confidence=confidence)

  outputs = run(model, keypoints, confidence)
  permuted = run(permuted_model, keypoints[:, permutation],
                 confidence[:, permutation])
  for name in ('keypoints_2d', 'occlusion_score', 'keypoints_3d'):
    np.testing.assert_allclose(permuted[name], outputs[name][:, permutation],
                               rtol=1e-4, atol=1e-5, err_msg=name)
  # Reprojection divides by depth: a rounding error dZ moves a projection x
  # by x dZ / Z, and Z = f X / x shrinks as |x| grows, so the error grows as
  # x**2, and every keypoint of a view shares its camera's error. Perturbed
  # weights can put a view's points near the camera plane (seed 2210224114:
  # |x| up to 2e5, errors up to 3.5, 1e-10 of the squared scale); the
  # x**2 term is negligible for views with |x| < 1e2.
  reprojected = np.asarray(outputs['reprojected'][:, permutation], np.float64)
  view_scale = np.abs(reprojected).max(axis=(1, 2), keepdims=True)
  np.testing.assert_array_less(
      np.abs(permuted['reprojected'] - reprojected),
      1e-5 + 1e-4 * np.abs(reprojected) + 1e-9 * view_scale**2)
  senders, receivers = graphs.fully_connected_edges(K)
  edge_index = np.full((K, K), -1)
  edge_index[senders, receivers] = np.arange(senders.size)
  # float32 sums in another order: errors scale with the largest logit.
  np.testing.assert_allclose(
      permuted['edge_logits'],
      outputs['edge_logits'][:, edge_index[permutation[senders],
                                           permutation[receivers]]],
      rtol=1e-4, atol=1e-5 * np.abs(outputs['edge_logits']).max())
  for name in ('shape_coefficients', 'focal', 'quaternion', 'translation'):
    np.testing.assert_allclose(permuted[name], outputs[name], rtol=1e-4,
                               atol=1e-5, err_msg=name)
  assert np.any(np.abs(outputs['keypoints_2d'] - keypoints) > 1e-3)


def test_ablations(rng, model_and_variables):
  model, variables = model_and_variables
  variables = perturbed(rng, variables)
  _, boxes, keypoints, confidence = random_inputs(rng)
  without_encoder = models.create_model(
      model_config(use_encoder=False), CATEGORY, model.shape_basis)
  other_encoder = dict(variables['params'])
  other_encoder['KGNNEncoder_0'] = perturbed(rng,
                                             other_encoder['KGNNEncoder_0'])

  def run(model, variables):
    return jax.jit(functools.partial(model.apply, train=False))(
        variables, None, boxes, keypoints=keypoints, confidence=confidence)

  # Without the encoder the decoder ignores the encoder's parameters.
  np.testing.assert_array_equal(
      run(without_encoder, variables)['keypoints_2d'],
      run(without_encoder, {'params': other_encoder})['keypoints_2d'])
  # With it, the encoder's output changes with its parameters, and the
  # decoder reads it (its edge probabilities are not the uniform ones).
  assert np.any(run(model, variables)['edge_logits']
                != run(model, {'params': other_encoder})['edge_logits'])
  assert np.any(run(model, variables)['keypoints_2d']
                != run(without_encoder, variables)['keypoints_2d'])
  # Without keypoint types the node features are (x, y, c).
  without_types = models.create_model(
      model_config(use_keypoint_type=False), CATEGORY, model.shape_basis)
  shapes = jax.eval_shape(
      lambda: without_types.init(jax.random.key(0), None, boxes, train=False,
                                 keypoints=keypoints, confidence=confidence))
  first_kernel = shapes['params']['KGNNEncoder_0']['message_passing'][
      'node_embedding']['Dense_0']
  assert first_kernel['kernel'].shape == (3, 16)


def test_shape_coefficients_stay_plausible(rng, model_and_variables):
  model, variables = model_and_variables
  _, boxes, keypoints, confidence = random_inputs(rng)
  outputs = model.apply(perturbed(rng, variables, scale=10.0), None, boxes,
                        train=False, keypoints=keypoints,
                        confidence=confidence)
  beta = np.abs(outputs['shape_coefficients'])
  # Large weights saturate the bound instead of leaving the shape space.
  assert np.all(beta <= kgnn3d.MAX_SHAPE_COEFFICIENT)
  assert np.max(beta) > 0.9 * kgnn3d.MAX_SHAPE_COEFFICIENT


def test_3d_branch_reads_the_2d_graph_as_data(rng, model_and_variables):
  model, variables = model_and_variables
  # Small weights keep the 3D camera in front of the car (a live gradient).
  variables = perturbed(rng, variables, scale=0.05)
  crops, boxes, _, _ = random_inputs(rng)
  weights = rng.normal(size=(NUM_VIEWS, K, 2))

  def projected(params):
    outputs = model.apply({'params': params}, crops, boxes, train=False)
    return jnp.sum(weights * outputs['reprojected'])

  gradients = jax.jit(jax.grad(projected))(variables['params'])
  for name, subtree in gradients.items():
    norm = squared_norm(subtree)
    if name.startswith('KGNN3D'):
      assert norm > 0.0, name
    else:  # Nothing reaches the heatmap head or the 2D-KGNN this way.
      assert norm == 0.0, (name, norm)


def squared_norm(tree):
  return float(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(tree)))


@pytest.mark.parametrize('graph_trains_head', [False, True])
def test_graph_outputs_reach_the_head_only_if_configured(
    rng, model_and_variables, graph_trains_head):
  model, variables = model_and_variables
  model = model.clone(graph_trains_head=graph_trains_head)
  variables = perturbed(rng, variables, scale=0.05)
  crops, boxes, _, _ = random_inputs(rng)
  weights = rng.normal(size=(NUM_VIEWS, K, 2))

  def gradients(output):
    return jax.jit(jax.grad(lambda params: jnp.sum(weights * model.apply(
        {'params': params}, crops, boxes, train=False)[output])))(
            variables['params'])

  # The decoder's keypoints: what the visible and trifocal losses read.
  graph = gradients('keypoints_2d')
  head = sum(squared_norm(subtree) for name, subtree in graph.items()
             if name.startswith('HeatmapHead'))
  assert (head > 0.0) == graph_trains_head
  assert squared_norm(graph['KGNNDecoder_0']) > 0.0
  # The head's own keypoints always train it (the keypoint loss's path).
  assert squared_norm(gradients('initial_keypoints')['HeatmapHead_0']) > 0.0


@pytest.mark.parametrize('keep, bits', [(0.5, 1), (0.25, 2), (0.75, 2),
                                        (0.625, 4), (37 / 256, 8), (0.9, 16),
                                        (0.1, 16)])
def test_dropout_draws_as_few_bits_as_hold_the_rate(keep, bits):
  assert layers.draw_bits(keep) == bits


def certain_encoder(params, visible):
  """`params` whose encoder calls every edge visible (or every one not)."""
  params = jax.tree.map(np.array, params)
  last = params['KGNNEncoder_0']['vertex_to_edge_2']['MLP_0']['Dense_1']
  last['kernel'] = np.zeros_like(last['kernel'])
  sign = 1.0 if visible else -1.0
  last['bias'] = np.array([-50.0 * sign, 50.0 * sign], np.float32)
  return params


@pytest.mark.parametrize('gate', ['soft', 'hard'])
def test_gate_moves_only_what_the_encoder_calls_hidden(
    rng, model_and_variables, gate):
  model, variables = model_and_variables
  gated = model.clone(decoder_gate=gate,
                      decoder_gate_threshold=float(rng.uniform(0.05, 0.95)))
  params = perturbed(rng, variables)['params']
  _, boxes, keypoints, confidence = random_inputs(rng)

  def run(model, params):
    return jax.jit(functools.partial(model.apply, train=False))(
        {'params': params}, None, boxes, keypoints=keypoints,
        confidence=confidence)

  # Sure that every keypoint is visible (score 0): the gated decoder leaves
  # them all exactly where they were; the ungated one moves them.
  sure_visible = certain_encoder(params, visible=True)
  outputs = run(gated, sure_visible)
  np.testing.assert_array_equal(outputs['occlusion_score'], 0.0)
  np.testing.assert_array_equal(outputs['keypoints_2d'], keypoints)
  assert np.all(run(model, sure_visible)['keypoints_2d'] != keypoints)
  # Sure that every one is hidden (score 1): both move them alike.
  sure_hidden = certain_encoder(params, visible=False)
  np.testing.assert_array_equal(run(gated, sure_hidden)['keypoints_2d'],
                                run(model, sure_hidden)['keypoints_2d'])


def test_training_opens_gates_at_random_and_evaluation_never(
    rng, model_and_variables):
  model, variables = model_and_variables
  # Sure that every keypoint is visible: every gate is shut, so a keypoint
  # moves only where training opened its gate at random.
  params = certain_encoder(perturbed(rng, variables)['params'], visible=True)
  _, boxes, keypoints, confidence = random_inputs(rng)

  def moved(rate, train):
    gated = model.clone(decoder_gate='hard', decoder_gate_open_rate=rate)
    outputs = jax.jit(functools.partial(gated.apply, train=train))(
        {'params': params}, None, boxes, keypoints=keypoints,
        confidence=confidence, rngs={'dropout': jax.random.key(
            int(rng.integers(2**31)))})
    return np.any(np.asarray(outputs['keypoints_2d']) != keypoints, -1)

  assert not np.any(moved(0.0, train=True))
  assert np.all(moved(1.0, train=True))
  assert not np.any(moved(1.0, train=False))


def test_random_opening_opens_a_fraction_and_shuts_none(rng):
  size, rate = 100_000, float(rng.uniform(0.05, 0.95))
  gate = (rng.uniform(size=size) < 0.5).astype(np.float32)
  gate[rng.uniform(size=size) < 0.2] = 0.3  # a soft gate's values too
  opened = np.asarray(kgnn2d.open_at_random(
      jnp.asarray(gate), rate, jax.random.key(int(rng.integers(2**31)))))
  assert np.all((opened == gate) | (opened == 1.0))
  below = gate < 1.0
  fraction = np.mean(opened[below] == 1.0)
  # Six binomial standard deviations: no seed fails it in practice.
  assert abs(fraction - rate) < 6 * np.sqrt(rate * (1 - rate) / below.sum())


def test_gate_scales_each_displacement_and_stops_its_gradient(rng):
  num_views = 2
  graph = graphs.batch_graphs(jnp.asarray(
      rng.normal(size=(num_views, K, 5)), jnp.float32))
  num_edges = graph.senders.shape[0]
  probabilities = jax.nn.softmax(jnp.asarray(
      rng.normal(size=(num_edges, 2)), jnp.float32))
  decoder = kgnn2d.KGNNDecoder(hidden=8)
  variables = decoder.init(jax.random.key(0), graph, probabilities,
                           train=False)
  variables = perturbed(rng, variables)
  scores = rng.uniform(size=num_views * K).astype(np.float32)
  scores[rng.permutation(scores.size)[:4]] = 0.0
  threshold = float(rng.uniform(0.2, 0.8))
  start = np.asarray(graph.nodes[:, :2])
  free = np.asarray(decoder.apply(variables, graph, probabilities,
                                  train=False))
  assert kgnn2d.displacement_gate(scores, 'none', threshold) is None
  for mode in ('soft', 'hard'):
    gate = kgnn2d.displacement_gate(scores, mode, threshold)
    moved = np.asarray(decoder.apply(variables, graph, probabilities, gate,
                                     train=False))
    expected = (scores if mode == 'soft'
                else (scores > threshold).astype(np.float32))
    np.testing.assert_allclose(moved - start,
                               expected[:, None] * (free - start),
                               rtol=1e-5, atol=1e-5)
    shut = expected == 0.0
    np.testing.assert_array_equal(moved[shut], start[shut])
    # No keypoint loss reaches the encoder's scores through the gate.
    gradient = jax.grad(lambda s, mode=mode: jnp.sum(
        kgnn2d.displacement_gate(s, mode, threshold) * 3.0))(
            jnp.asarray(scores))
    np.testing.assert_array_equal(gradient, 0.0)


def test_a_config_from_before_the_gate_builds_the_ungated_decoder(rng):
  config = model_config(decoder_gate='soft', decoder_gate_open_rate=0.25)
  basis = random_shape_basis(rng, CATEGORY.mean_shape)
  model = models.create_model(config, CATEGORY, basis)
  assert (model.decoder_gate, model.decoder_gate_open_rate) == ('soft', 0.25)
  del config['decoder_gate'], config['decoder_gate_threshold']
  del config['decoder_gate_open_rate']
  model = models.create_model(config, CATEGORY, basis)
  assert (model.decoder_gate, model.decoder_gate_open_rate) == ('none', 0.0)
