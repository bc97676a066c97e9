"""Tests of occnet_jax.losses on noiseless synthetic multi-view cars."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from occnet_jax import boxes as boxes_lib
from occnet_jax import losses
from occnet_jax.categories import car as car_lib
from occnet_jax.models import graphs
from tests import synthetic_cars

NUM_CARS, NUM_VIEWS = 2, 4
HEATMAP_SIZE = 8
EDGES = 12 * 11


def trifocal(keypoints_2d, batch, mode):
  return losses.trifocal_loss(keypoints_2d, batch['keypoints'],
                              batch['visibility'], batch['cameras'],
                              batch['boxes'], batch['view_mask'], mode=mode)


# ((loss, terms), d loss / d keypoints_2d); one compile per shape and mode.
trifocal_and_gradient = jax.jit(
    jax.value_and_grad(trifocal, has_aux=True), static_argnames='mode')


def box_prediction(pixels, batch):
  return boxes_lib.to_box_coordinates(pixels, batch['boxes'])


def random_directions(rng, shape):
  directions = rng.normal(size=shape + (2,))
  return directions / np.linalg.norm(directions, axis=-1, keepdims=True)


@pytest.mark.parametrize('mode', losses.TRIFOCAL_MODES)
def test_trifocal_is_zero_at_truth_and_grows_with_distance(rng, mode):
  batch = synthetic_cars.make_batch(rng, NUM_CARS, NUM_VIEWS)
  directions = random_directions(rng, batch['visibility'].shape)
  scale = np.asarray(boxes_lib.box_scale(batch['boxes']))[..., None, None]
  distances = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)
  values = []
  for distance in distances:
    predicted = batch['keypoints'] + distance * scale * directions
    (value, terms), _ = trifocal_and_gradient(
        box_prediction(predicted, batch), batch, mode)
    values.append(float(value))
  assert terms['trifocal_terms'] > 0
  assert values[0] < 1e-9
  assert np.all(np.diff(values) > 0), values
  # The transferred point is the truth: the geometric loss is exactly
  # distance^2, the algebraic one to first order in the distance (its
  # docstring's box scales).
  rtol = 1e-3 if mode == 'geometric' else 0.1
  np.testing.assert_allclose(values[1:4], np.square(distances[1:4]),
                             rtol=rtol)


def degenerate_cases():
  """Per case: (3 cameras, expected masked fraction, degenerate fraction)."""
  eye = np.array([8.0, 3.0, 6.0])
  good = [synthetic_cars.camera_from_eye(eye * [s, 1.0, t], 1500.0)
          for s, t in ((1, 1), (-1, 1), (1, -1))]
  # Centres on one line that misses the car: fine seen from the car,
  # collinear seen from each centre.
  collinear = [synthetic_cars.camera_from_eye([x, 2.0, 10.0], 1500.0)
               for x in (-6.0, 0.0, 6.0)]
  coincident = [good[0], good[0], good[1]]
  facing_away = good[:2] + [synthetic_cars.camera_from_eye(
      eye * [1, 1, -1], 1500.0, facing=-1.0)]
  zero = good[:2] + [np.zeros((3, 4))]
  not_finite = good[:2] + [np.full((3, 4), np.nan)]
  return dict(good=(good, 0.0, 0.0), collinear=(collinear, 1.0, 1.0),
              coincident=(coincident, 1.0, 1.0),
              facing_away=(facing_away, 1.0, 1.0), zero=(zero, 1.0, 0.0),
              not_finite=(not_finite, 1.0, 0.0))


@pytest.mark.parametrize('mode', losses.TRIFOCAL_MODES)
@pytest.mark.parametrize('case', sorted(degenerate_cases()))
def test_trifocal_masks_degenerate_triples(rng, mode, case):
  cameras, masked_fraction, degenerate_fraction = degenerate_cases()[case]
  shape = car_lib.CAR.mean_shape
  valid = [np.all(np.isfinite(c)) and np.any(c) for c in cameras]
  keypoints = np.stack([synthetic_cars.project(c, shape) if ok
                        else np.zeros((12, 2))
                        for c, ok in zip(cameras, valid)])
  boxes = np.stack([synthetic_cars.box_around(p) if ok
                    else np.array([0.0, 0.0, 100.0, 100.0])
                    for p, ok in zip(keypoints, valid)])
  # Keypoint j is occluded in view j % 3 only: each has two supports.
  visibility = np.where(np.arange(12)[None] % 3 == np.arange(3)[:, None], 2, 1)
  batch = jax.tree.map(lambda x: jnp.asarray(x)[None], dict(
      keypoints=keypoints.astype(np.float32), visibility=visibility,
      cameras=np.stack(cameras).astype(np.float32),
      boxes=boxes.astype(np.float32), view_mask=np.ones(3, bool)))
  prediction = box_prediction(batch['keypoints'], batch) + rng.normal(
      scale=0.1, size=batch['keypoints'].shape)
  (value, terms), gradient = trifocal_and_gradient(prediction, batch, mode)
  assert np.isfinite(value) and np.all(np.isfinite(gradient))
  assert float(terms['trifocal_masked_fraction']) == pytest.approx(
      masked_fraction)
  assert float(terms['trifocal_degenerate_fraction']) == pytest.approx(
      degenerate_fraction)
  if masked_fraction == 1.0:
    assert value == 0.0 and np.all(gradient == 0.0)
  else:
    assert terms['trifocal_terms'] == 12 and value > 0.0


@pytest.mark.parametrize('mode', losses.TRIFOCAL_MODES)
def test_trifocal_float32_matches_float64(rng, mode):
  batch = synthetic_cars.make_batch(rng, NUM_CARS, NUM_VIEWS)
  scale = np.asarray(boxes_lib.box_scale(batch['boxes']))[..., None, None]
  pixels = batch['keypoints'] + 0.05 * scale * rng.normal(
      size=batch['keypoints'].shape)
  prediction = np.asarray(box_prediction(pixels, batch), np.float64)

  def evaluate(dtype):
    cast = lambda x: jnp.asarray(x, dtype) if x.dtype.kind == 'f' else x
    inputs = jax.tree.map(cast, (prediction, batch))
    (value, _), gradient = trifocal_and_gradient(*inputs, mode)
    return np.float64(value), np.asarray(gradient, np.float64)

  value_32, gradient_32 = evaluate(jnp.float32)
  with jax.enable_x64(True):
    value_64, gradient_64 = evaluate(jnp.float64)
  assert abs(value_32 - value_64) < 1e-3 * value_64
  assert (np.linalg.norm(gradient_32 - gradient_64)
          < 1e-3 * np.linalg.norm(gradient_64))


def random_outputs(rng, num_views):
  n = NUM_CARS * num_views
  return dict(
      heatmaps=rng.normal(size=(n, 12, HEATMAP_SIZE, HEATMAP_SIZE)),
      edge_logits=rng.normal(size=(n, EDGES, 2)),
      keypoints_2d=rng.uniform(-1.0, 1.0, size=(n, 12, 2)),
      reprojected=rng.uniform(-1.0, 1.0, size=(n, 12, 2)))


def loss_config(mode, reproj_trains_2d=True, keypoints_occluded=False):
  return ml_collections.ConfigDict(dict(
      keypoints=1.0, edge=0.5, visible=0.75, trifocal=2.0, reproj=0.25,
      trifocal_mode=mode, reproj_trains_2d=reproj_trains_2d,
      keypoints_occluded=keypoints_occluded))


@functools.partial(jax.jit, static_argnames='mode')
def total_loss_and_gradients(outputs, batch, mode):
  (loss, terms), gradients = jax.value_and_grad(
      losses.total_loss, has_aux=True)(outputs, batch, loss_config(mode))
  return loss, terms, gradients


@functools.partial(jax.jit, static_argnames=('mode', 'reproj_trains_2d'))
def term_gradients(outputs, batch, mode, reproj_trains_2d=True):
  """The gradient of each unweighted loss term with respect to the outputs."""
  config = loss_config(mode, reproj_trains_2d)
  terms = lambda o: losses.total_loss(o, batch, config)[1]
  return {term: jax.grad(lambda o, term=term: terms(o)[term])(outputs)
          for term in losses.LOSS_TERMS}


@pytest.mark.parametrize('mode', losses.TRIFOCAL_MODES)
def test_every_loss_has_finite_nonzero_gradients(rng, mode):
  batch = synthetic_cars.make_batch(rng, NUM_CARS, NUM_VIEWS)
  outputs = jax.tree.map(np.float32, random_outputs(rng, NUM_VIEWS))
  gradients_of_terms = term_gradients(outputs, batch, mode)
  for term, gradients in gradients_of_terms.items():
    norms = {k: float(jnp.linalg.norm(v)) for k, v in gradients.items()}
    assert all(np.isfinite(v) for v in norms.values()), (term, norms)
    assert sum(norms.values()) > 0.0, term
  # Only visible keypoints supervise the heatmaps.
  heatmap_gradient = np.asarray(gradients_of_terms['keypoints']['heatmaps'])
  occluded = batch['visibility'].reshape(-1, 12) != 1
  assert np.all(heatmap_gradient[occluded] == 0.0)
  assert np.all(np.any(heatmap_gradient[~occluded] != 0.0, axis=(-2, -1)))
  # The decoder: its visible keypoints by labels, the others by trifocal.
  visible_gradient = np.asarray(gradients_of_terms['visible']['keypoints_2d'])
  assert np.all(visible_gradient[occluded] == 0.0)
  assert np.all(np.any(visible_gradient[~occluded] != 0.0, axis=-1))
  trifocal_gradient = np.asarray(
      gradients_of_terms['trifocal']['keypoints_2d'])
  assert np.all(trifocal_gradient[~occluded] == 0.0)
  # The weighted sum is the loss.
  config = loss_config(mode)
  loss, terms, _ = total_loss_and_gradients(outputs, batch, mode)
  np.testing.assert_allclose(
      loss, sum(config[name] * terms[name] for name in gradients_of_terms),
      rtol=1e-6)


def test_reprojection_can_leave_the_2d_keypoints_alone(rng):
  batch = synthetic_cars.make_batch(rng, NUM_CARS, NUM_VIEWS)
  outputs = jax.tree.map(np.float32, random_outputs(rng, NUM_VIEWS))
  flowing = term_gradients(outputs, batch, 'geometric')['reproj']
  stopped = term_gradients(outputs, batch, 'geometric',
                           reproj_trains_2d=False)['reproj']
  assert np.all(np.asarray(stopped['keypoints_2d']) == 0.0)
  # Eq. 10 summed over keypoints: d/d pi(W) = 2 (pi(W) - V^g) / num_views.
  expected = 2.0 * (outputs['reprojected'] - outputs['keypoints_2d']) / (
      NUM_CARS * NUM_VIEWS)
  for gradients in (flowing, stopped):
    np.testing.assert_allclose(gradients['reprojected'], expected, rtol=1e-5)
  np.testing.assert_allclose(flowing['keypoints_2d'], -expected, rtol=1e-5)


def test_supervised_heatmaps_also_learn_occluded_labels(rng):
  batch = synthetic_cars.make_batch(rng, NUM_CARS, NUM_VIEWS)
  outputs = jax.tree.map(np.float32, random_outputs(rng, NUM_VIEWS))
  # Some keypoints unlabelled as well: they never supervise.
  unlabelled = rng.random(batch['visibility'].shape) < 0.2
  batch['visibility'] = np.where(unlabelled, 0, batch['visibility'])
  config = loss_config('algebraic', keypoints_occluded=True)
  gradient = np.asarray(jax.grad(lambda o: losses.total_loss(
      o, batch, config)[1]['keypoints'])(outputs)['heatmaps'])
  visibility = batch['visibility'].reshape(-1, 12)
  assert np.all(gradient[visibility == 0] == 0.0)
  assert np.all(np.any(gradient[visibility != 0] != 0.0, axis=(-2, -1)))
  # An occluded label supervises exactly as a visible one would.
  arguments = (outputs['heatmaps'], batch['keypoints'].reshape(-1, 12, 2))
  boxes = batch['boxes'].reshape(-1, 4), batch['view_mask'].reshape(-1)
  np.testing.assert_allclose(
      losses.keypoint_loss(*arguments, visibility, *boxes,
                           supervise_occluded=True),
      losses.keypoint_loss(*arguments, np.minimum(visibility, 1), *boxes),
      rtol=1e-6)


visible_and_gradient = jax.jit(jax.value_and_grad(losses.visible_loss))


def test_visible_loss_is_zero_at_labels_with_the_right_gradient(rng):
  batch = jax.tree.map(
      lambda x: x.reshape((-1,) + x.shape[2:]),
      synthetic_cars.make_batch(rng, NUM_CARS, NUM_VIEWS))
  view_mask = rng.uniform(size=NUM_CARS * NUM_VIEWS) < 0.7
  view_mask[0] = True
  labels = box_prediction(batch['keypoints'], batch)
  arguments = (batch['keypoints'], batch['visibility'], batch['boxes'],
               view_mask)
  value, gradient = visible_and_gradient(labels, *arguments)
  assert value < 1e-10
  assert np.all(np.abs(gradient) < 1e-6)
  # Away from the labels: the mean of |offset in pixels|^2 / L^2 over the
  # visible keypoints of real views, and its gradient in box coordinates.
  offsets = rng.normal(scale=0.1, size=labels.shape)
  value, gradient = visible_and_gradient(labels + offsets, *arguments)
  boxes = batch['boxes']
  half_size = 0.5 * (boxes[:, None, 2:] - boxes[:, None, :2])  # px per unit
  scale = np.asarray(boxes_lib.box_scale(boxes))[:, None]
  supervised = (batch['visibility'] == 1) & view_mask[:, None]
  squared = np.sum((offsets * half_size)**2, -1) / scale**2
  np.testing.assert_allclose(value, squared[supervised].mean(), rtol=1e-4)
  expected = np.where(
      supervised[..., None],
      2.0 * offsets * half_size**2 / scale[..., None]**2 / supervised.sum(),
      0.0)
  np.testing.assert_allclose(gradient, expected, rtol=1e-3, atol=1e-9)
  # Junk in the padding views changes nothing, and gets no gradient.
  junk = np.where(view_mask[:, None, None], 0.0, 1e3)
  padded_value, padded_gradient = visible_and_gradient(
      labels + offsets + junk, *arguments)
  np.testing.assert_allclose(padded_value, value, rtol=1e-6)
  np.testing.assert_allclose(padded_gradient, gradient, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize('mode', losses.TRIFOCAL_MODES)
def test_padding_views_contribute_nothing(rng, mode):
  batch = synthetic_cars.make_batch(rng, NUM_CARS, NUM_VIEWS)
  outputs = random_outputs(rng, NUM_VIEWS)
  # Insert a padding view at position 1 of every car, with junk outputs.
  padded_batch = {
      k: np.insert(v, 1, np.zeros_like(v[:, 0]), axis=1)
      for k, v in batch.items() if k != 'shape_3d'}
  padded_outputs = {
      k: np.insert(v.reshape(NUM_CARS, NUM_VIEWS, *v.shape[1:]), 1,
                   100.0 * rng.normal(size=(NUM_CARS,) + v.shape[1:]),
                   axis=1).reshape(-1, *v.shape[1:])
      for k, v in outputs.items()}
  cast = lambda tree: jax.tree.map(
      lambda x: x.astype(np.float32) if x.dtype.kind == 'f' else x, tree)
  loss, terms, gradients = total_loss_and_gradients(
      cast(outputs), cast(batch), mode)
  padded_loss, padded_terms, padded_gradients = total_loss_and_gradients(
      cast(padded_outputs), cast(padded_batch), mode)
  assert terms['trifocal_terms'] > 0
  np.testing.assert_allclose(padded_loss, loss, rtol=1e-6)
  for name in terms:
    np.testing.assert_allclose(padded_terms[name], terms[name], rtol=1e-6)
  for name, gradient in gradients.items():
    padded = np.asarray(padded_gradients[name]).reshape(
        NUM_CARS, NUM_VIEWS + 1, *gradient.shape[1:])
    assert np.all(padded[:, 1] == 0.0), name
    np.testing.assert_allclose(
        np.delete(padded, 1, axis=1).reshape(gradient.shape), gradient,
        rtol=1e-5, atol=1e-9)


def test_edge_labels_and_loss(rng):
  visibility = rng.integers(0, 3, size=(5, 12))
  senders, receivers = graphs.fully_connected_edges(12)
  labels = np.asarray(losses.edge_labels(visibility))
  for view in range(5):
    for edge, (i, j) in enumerate(zip(senders, receivers)):
      expected = visibility[view, i] == 1 and visibility[view, j] == 1
      assert labels[view, edge] == expected
  confident = 20.0 * (2.0 * np.eye(2)[labels] - 1.0)
  view_mask = np.array([True, True, True, False, True])
  loss, accuracy = losses.edge_loss(confident, visibility, view_mask)
  assert loss < 1e-6 and accuracy == 1.0
  # Wrong logits on the padding view change nothing.
  confident[3] *= -1.0
  assert losses.edge_loss(confident, visibility, view_mask)[1] == 1.0
  confident[0] *= -1.0
  assert losses.edge_loss(confident, visibility, view_mask)[1] == pytest.approx(
      0.75)
