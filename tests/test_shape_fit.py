"""Tests of the shape-fit baselines on exact projections of basis shapes."""

import functools

import jax
import numpy as np
import pytest

from occnet_jax import geometry
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.evaluation import shape_fit

NUM_VIEWS = 32


@pytest.fixture(scope='module')
def views(module_seed):
  """Basis shapes seen by random cameras, a third of the keypoints hidden."""
  rng = np.random.default_rng(module_seed)
  category = car_lib.CAR
  shapes = category.mean_shape[None] * rng.uniform(0.85, 1.15, (40, 1, 3))
  basis = shape_basis_lib.fit_shape_basis(shapes, 2, mirror=category.mirror)
  shapes = shape_basis_lib.compose(basis, rng.normal(size=(NUM_VIEWS, 2)))
  yaw = rng.uniform(-np.pi, np.pi, NUM_VIEWS)
  elevation = rng.uniform(0.1, 0.5, NUM_VIEWS)
  eye = rng.uniform(7, 12, NUM_VIEWS)[:, None] * np.stack(
      [np.cos(elevation) * np.cos(yaw), np.sin(elevation),
       np.cos(elevation) * np.sin(yaw)], -1)
  rotation, translation = geometry.look_at(eye, np.zeros_like(eye))
  aspect = rng.uniform(0.8, 2.0, NUM_VIEWS)
  keypoints = np.asarray(geometry.perspective_projection(
      shapes, rng.uniform(3, 5, NUM_VIEWS),
      geometry.rotation_to_quaternion(rotation), translation, aspect))
  # A third hidden in every view: with 2 or 3 points left (a third hidden
  # at random leaves that now and then) neither shape nor camera is
  # determined.
  num_keypoints = keypoints.shape[1]
  hidden = rng.permuted(np.tile(np.arange(num_keypoints) < num_keypoints // 3,
                                (NUM_VIEWS, 1)), axis=1)
  return dict(basis=basis, keypoints=keypoints, hidden=hidden, yaw=yaw,
              aspect=aspect, fit=jax.jit(functools.partial(shape_fit.fit,
                                                           basis)))


def _fit(views, keypoints):
  return views['fit'](keypoints, (~views['hidden']).astype(np.float32),
                      views['aspect'])


def test_fit_recovers_hidden_keypoints_and_yaw(views):
  result = _fit(views, views['keypoints'])
  error = np.linalg.norm(np.asarray(result.keypoints) - views['keypoints'],
                         axis=-1)
  hidden = views['hidden']
  # The box spans 2 units: 0.1 is PCK@0.05 of a square box.
  assert np.median(error[hidden]) < 0.1 and np.mean(error[hidden] < 0.2) > 0.9
  assert np.median(error[~hidden]) < 0.05
  yaw_error = np.abs((np.asarray(shape_fit.yaw(result)) - views['yaw']
                      + np.pi) % (2 * np.pi) - np.pi)
  assert np.median(np.degrees(yaw_error)) < 10


def test_fit_reads_no_hidden_keypoint(views, rng):
  # Hidden points moved anywhere, even to NaN: the same fit, bit for bit.
  moved = views['keypoints'].copy()
  hidden = views['hidden']
  moved[hidden] += rng.normal(scale=3.0, size=moved[hidden].shape)
  moved[hidden.nonzero()[0][:3], hidden.nonzero()[1][:3]] = np.nan
  for before, after in zip(_fit(views, views['keypoints']), _fit(views, moved)):
    np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def test_confident_keeps_the_threshold_and_the_most_confident(rng):
  confidence = rng.uniform(0, 1, (50, 12)).astype(np.float32)
  chosen = np.asarray(shape_fit.confident(confidence))
  top = np.argsort(-confidence, axis=1)[:, :shape_fit.MIN_POINTS]
  expected = confidence >= shape_fit.MIN_CONFIDENCE
  np.put_along_axis(expected, top, True, axis=1)
  np.testing.assert_array_equal(chosen, expected)


def _encoder_scores(rng, hidden, threshold):
  """Occlusion scores that call exactly the visible keypoints visible."""
  return np.where(hidden, rng.uniform(threshold + 1e-3, 1.0, hidden.shape),
                  rng.uniform(0.0, threshold, hidden.shape)).astype(np.float32)


def test_encoder_calling_the_visible_set_fits_as_that_set(views, rng):
  threshold = float(rng.uniform(0.2, 0.8))
  scores = _encoder_scores(rng, views['hidden'], threshold)
  called = np.asarray(shape_fit.called_visible(scores, threshold))
  # Two thirds visible: more than MIN_POINTS, so no point is added.
  np.testing.assert_array_equal(called, ~views['hidden'])
  by_encoder = views['fit'](views['keypoints'], called.astype(np.float32),
                            views['aspect'])
  for before, after in zip(_fit(views, views['keypoints']), by_encoder):
    np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def test_a_keypoint_the_encoder_calls_occluded_is_never_read(views, rng):
  threshold = float(rng.uniform(0.2, 0.8))
  scores = _encoder_scores(rng, views['hidden'], threshold)
  weights = shape_fit.called_visible(scores, threshold).astype(np.float32)
  moved = views['keypoints'].copy()
  view, keypoint = (index[0] for index in np.nonzero(views['hidden']))
  moved[view, keypoint] += rng.normal(scale=3.0, size=2)
  np.testing.assert_array_equal(
      np.asarray(shape_fit.observed(views['keypoints'], weights)),
      np.asarray(shape_fit.observed(moved, weights)))
  before, after = (views['fit'](points, weights, views['aspect'])
                   for points in (views['keypoints'], moved))
  np.testing.assert_array_equal(np.asarray(before.keypoints),
                                np.asarray(after.keypoints))


def test_called_visible_keeps_the_threshold_and_the_least_occluded(rng):
  scores = rng.uniform(0, 1, (50, 12)).astype(np.float32)
  threshold = float(rng.uniform(0, 1))
  chosen = np.asarray(shape_fit.called_visible(scores, threshold))
  least = np.argsort(scores, axis=1)[:, :shape_fit.MIN_POINTS]
  expected = scores <= threshold
  np.put_along_axis(expected, least, True, axis=1)
  np.testing.assert_array_equal(chosen, expected)
  assert np.all(chosen.sum(1) >= shape_fit.MIN_POINTS)
