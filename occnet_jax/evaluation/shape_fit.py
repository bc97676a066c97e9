"""Shape-fit baselines: the PCA shape basis and a camera fitted per view.

The classical answer to occlusion treats hidden keypoints as missing data:
fit a deformable 3D model to the keypoints one trusts and project all K.
`fit` fits the 3D-KGNN's own model, the PCA basis (`shape_basis`) and
perspective camera (`geometry.perspective_projection`, box coordinates,
parametrised as in `models.kgnn3d`), to weighted 2D keypoints of each view:
a robust (pseudo-Huber, scale `ROBUST_SCALE` box units) reprojection error
plus a small ridge on the shape coefficients, minimised by `NUM_STEPS` Adam
steps from `NUM_YAWS` initial yaws around the car (a single start can fall
into the front/back and left/right mirror minima), keeping the best start.
It learns nothing: its only knowledge is the basis.

Evaluation's baseline methods (evaluate.py) differ only in which keypoints
they trust (`called_visible`):
  - `shape_fit_confidence`: fitted to the heatmap keypoints that the
    heatmap's own confidence calls visible (`confident`). That confidence
    hardly tells occluded keypoints from visible ones, so this fit also
    trusts misplaced hidden points.
  - `shape_fit_encoder`: fitted to the heatmap keypoints that the 2D-KGNN's
    encoder calls visible (its occlusion score, the one the decoder gate and
    the occlusion AUC read, at most `config.eval.encoder_fit_threshold`):
    the classical answer given the network's knowledge of visibility, the
    competitor to beat.
  - `oracle_fit`: fitted to the true visible keypoints, the headroom the
    data allows, an upper reference and not a competitor.

A keypoint of weight 0 is replaced by 0 before anything reads it
(`observed`), so no output depends on where an unused (occluded) keypoint
is. Pure jax; `fit` is jit-able and batches over views.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from occnet_jax import geometry
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax.models import kgnn3d

NUM_STEPS = 150
LEARNING_RATE = 0.05
NUM_YAWS = 8
# Residuals beyond this (box coordinates, the box spans 2) count linearly.
ROBUST_SCALE = 0.1
# Weight of the mean squared shape coefficient (units of standard deviation).
SHAPE_PRIOR = 1e-2
# `confident`: a keypoint is called visible at this heatmap confidence.
MIN_CONFIDENCE = 0.5
# `called_visible`: the MIN_POINTS least occluded keypoints are always
# trusted, whatever their scores (a camera and shape need several).
MIN_POINTS = 6


class Fit(NamedTuple):
  """Fitted shape and camera of N views (box coordinates)."""

  keypoints: jax.Array  # (N, K, 2) every keypoint, projected.
  shape_coefficients: jax.Array  # (N, n)
  focal: jax.Array  # (N,)
  quaternion: jax.Array  # (N, 4)
  translation: jax.Array  # (N, 3)
  loss: jax.Array  # (N,) the kept start's final objective.


def called_visible(occlusion: jax.Array, threshold: float,
                   min_points: int = MIN_POINTS) -> jax.Array:
  """(N, K) bool: the keypoints a fit trusts.

  Args:
    occlusion: (N, K) scores, higher = more likely occluded.
    threshold: a keypoint scoring at most this is called visible (as the
      decoder's hard gate leaves it in place, `kgnn2d.displacement_gate`).
    min_points: the min_points lowest-scored keypoints are trusted too.
  """
  rank = jnp.argsort(jnp.argsort(occlusion, axis=-1), axis=-1)
  return (occlusion <= threshold) | (rank < min_points)


def confident(confidence: jax.Array) -> jax.Array:
  """(N, K) bool: the keypoints the heatmap's confidence calls visible."""
  return called_visible(-confidence, -MIN_CONFIDENCE)


def observed(keypoints: jax.Array, weights: jax.Array) -> jax.Array:
  """The keypoints a fit reads: those of weight 0 replaced by 0."""
  return jnp.where(weights[..., None] > 0, keypoints, 0.0)


def _initial_quaternions(num_yaws):
  """(Y, 4): the 3D-KGNN's initial rotation turned by Y yaws about y."""
  # kgnn3d.INITIAL_QUATERNION (a half turn about x) times a turn about y.
  half = jnp.pi * jnp.arange(num_yaws) / num_yaws
  zero = jnp.zeros_like(half)
  return jnp.stack([zero, jnp.cos(half), zero, jnp.sin(half)], axis=-1)


def _camera(params):
  beta = kgnn3d.MAX_SHAPE_COEFFICIENT * jnp.tanh(
      params['beta'] / kgnn3d.MAX_SHAPE_COEFFICIENT)
  focal = kgnn3d.INITIAL_FOCAL * jnp.exp(params['log_focal'])
  translation = jnp.concatenate([
      params['shift'],
      kgnn3d.INITIAL_DEPTH * jnp.exp(params['log_depth'])[..., None]], -1)
  quaternion = params['quaternion'] * jax.lax.rsqrt(
      jnp.sum(params['quaternion']**2, -1, keepdims=True) + 1e-12)
  return beta, focal, quaternion, translation


def _losses(params, basis, points, weights, aspect):
  """(M,) objective of each start."""
  beta, focal, quaternion, translation = _camera(params)
  projected = geometry.perspective_projection(
      shape_basis_lib.compose(basis, beta), focal, quaternion, translation,
      aspect)
  squared = jnp.sum((projected - points)**2, -1) / ROBUST_SCALE**2
  robust = ROBUST_SCALE**2 * (jnp.sqrt(1.0 + squared) - 1.0)
  data = jnp.sum(weights * robust, -1) / jnp.maximum(jnp.sum(weights, -1),
                                                     1.0)
  return data + SHAPE_PRIOR * jnp.mean(beta**2, -1)


def fit(basis: shape_basis_lib.ShapeBasis, keypoints: jax.Array,
        weights: jax.Array, aspect: jax.Array, *, num_steps: int = NUM_STEPS,
        num_yaws: int = NUM_YAWS) -> Fit:
  """Fits the basis and a camera to each view's weighted keypoints.

  Args:
    basis: the PCA shape basis (K keypoints, n components).
    keypoints: (N, K, 2) observed keypoints, box coordinates.
    weights: (N, K) non-negative weights; 0 = not observed (never read).
    aspect: (N,) box width / height.
    num_steps: Adam steps per start.
    num_yaws: starts per view, at yaws evenly around the car.

  Returns:
    A `Fit` of the start with the lowest objective per view.
  """
  weights = jnp.asarray(weights, jnp.float32)
  num_views = keypoints.shape[0]

  def starts(value):
    return jnp.repeat(value, num_yaws, axis=0)

  points, weights, aspect = (starts(observed(keypoints, weights)),
                             starts(weights), starts(aspect))
  # Start with the mean shape's centre on the observed centroid.
  centroid = jnp.sum(weights[..., None] * points, 1) / jnp.maximum(
      jnp.sum(weights, 1), 1.0)[:, None]
  scale = kgnn3d.INITIAL_DEPTH / kgnn3d.INITIAL_FOCAL
  num_starts = num_views * num_yaws
  params = {
      'beta': jnp.zeros((num_starts, basis.stddevs.shape[0])),
      'log_focal': jnp.zeros(num_starts),
      'log_depth': jnp.zeros(num_starts),
      'shift': scale * centroid / jnp.stack(
          [jnp.ones_like(aspect), aspect], -1),
      'quaternion': jnp.tile(_initial_quaternions(num_yaws), (num_views, 1)),
  }
  optimizer = optax.adam(LEARNING_RATE)

  def total(params):
    # Starts are independent: the sum's gradient is each start's own.
    return jnp.sum(_losses(params, basis, points, weights, aspect))

  def step(carry, _):
    params, state = carry
    updates, state = optimizer.update(jax.grad(total)(params), state)
    return (optax.apply_updates(params, updates), state), None

  (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None,
                                length=num_steps)
  losses = _losses(params, basis, points, weights, aspect).reshape(
      num_views, num_yaws)
  best = jnp.argmin(losses, axis=1) + num_yaws * jnp.arange(num_views)
  params = jax.tree.map(lambda value: value[best], params)
  beta, focal, quaternion, translation = _camera(params)
  projected = geometry.perspective_projection(
      shape_basis_lib.compose(basis, beta), focal, quaternion, translation,
      aspect[best])
  return Fit(projected, beta, focal, quaternion, translation,
             jnp.min(losses, axis=1))


def yaw(result: Fit) -> jax.Array:
  """(N,) the fitted camera's yaw about the car (`geometry.viewing_yaw`)."""
  return geometry.viewing_yaw(geometry.pose_center(result.quaternion,
                                                   result.translation))
