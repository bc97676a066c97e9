"""Tests of DLT triangulation and OpenCV PnP on fresh random views."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from occnet_jax.categories import car as car_lib
from occnet_jax.geometry import cameras
from occnet_jax.geometry import pnp
from occnet_jax.geometry import triangulation

NUM_VIEWS = 4
NUM_POINTS = 8
IMAGE_CENTRE = np.array([960.0, 540.0])


def _random_pose(rng):
  """A rotation and translation that put the origin 8-15 m in front."""
  R = Rotation.random(random_state=rng).as_matrix()
  t = np.array([*rng.normal(scale=0.5, size=2), rng.uniform(8.0, 15.0)])
  return R, t


def _intrinsics(rng):
  return np.asarray(cameras.intrinsics_matrix(rng.uniform(800, 2000),
                                              IMAGE_CENTRE), np.float64)


def _views(rng, num_views):
  """(V, 3, 4) cameras, (N, 3) points and their (V, N, 2) pixels, float64."""
  Ps = []
  for _ in range(num_views):
    R, t = _random_pose(rng)
    Ps.append(_intrinsics(rng) @ np.c_[R, t])
  Ps = np.stack(Ps)
  points = rng.uniform(-1.5, 1.5, size=(NUM_POINTS, 3))
  return Ps, points, _project_views(Ps, points)


def _project_views(Ps, points):
  """(V, N, 2) float64 pixels of (N, 3) points in (V, 3, 4) cameras."""
  homogeneous = np.einsum('vij,nj->vni', Ps[..., :3], points)
  homogeneous += Ps[:, None, :, 3]
  return homogeneous[..., :2] / homogeneous[..., 2:]


_triangulate_points = jax.jit(
    jax.vmap(triangulation.triangulate, in_axes=(None, 1, None)))


def test_triangulate_recovers_points_from_weighted_views(rng):
  Ps, points, pixels = _views(rng, NUM_VIEWS)
  weights = rng.uniform(0.5, 2.0, size=NUM_VIEWS)
  weights[rng.integers(NUM_VIEWS)] = 0.0  # one view does not see the points
  with jax.enable_x64(True):
    estimate, valid = _triangulate_points(Ps, pixels, weights)
    estimate = np.asarray(estimate)
  assert np.all(valid)
  np.testing.assert_allclose(estimate, points, atol=1e-8)


def test_triangulate_ignores_a_corrupted_view_with_zero_weight(rng):
  Ps, points, pixels = _views(rng, NUM_VIEWS)
  pixels[0] += rng.normal(scale=50.0, size=pixels[0].shape)
  pixels[1, 0] = np.nan
  weights = np.array([0.0, 0.0, 1.0, 1.0])
  estimate, valid = _triangulate_points(jnp.asarray(Ps, jnp.float32), pixels,
                                        weights)
  assert np.all(valid)
  np.testing.assert_allclose(estimate, points, atol=1e-3)


def test_triangulate_is_invalid_with_fewer_than_two_views(rng):
  Ps, _, pixels = _views(rng, NUM_VIEWS)
  estimate, valid = _triangulate_points(Ps, pixels, np.array([0, 0, 1.0, 0]))
  assert not np.any(valid)
  np.testing.assert_array_equal(estimate, 0.0)


def test_triangulate_is_invalid_for_coincident_centres(rng):
  Ps, points, _ = _views(rng, NUM_VIEWS)
  centre = -np.linalg.solve(Ps[0, :, :3], Ps[0, :, 3])
  for v in range(1, NUM_VIEWS):  # rotate every camera about view 0's centre
    R = Rotation.random(random_state=rng).as_matrix()
    Ps[v] = _intrinsics(rng) @ np.c_[R, -R @ centre]
  estimate, valid = _triangulate_points(Ps, _project_views(Ps, points),
                                        np.ones(NUM_VIEWS))
  assert not np.any(valid)
  assert np.all(np.isfinite(estimate))


def _plane_distance_least_squares(Ps, pixels, weights):
  """numpy reference: the point minimising the weighted squared distances
  to the planes of the DLT equations x p3 - p1 and y p3 - p2 (LAPACK)."""
  rows = pixels[..., None] * Ps[:, None, 2] - Ps[:, :2]  # (V, 2, 4)
  rows = rows / np.linalg.norm(rows[..., :3], axis=-1, keepdims=True)
  rows = (weights[:, None, None] * rows).reshape(-1, 4)
  return np.linalg.lstsq(rows[:, :3], -rows[:, 3], rcond=None)[0]


def test_triangulate_is_the_weighted_plane_distance_least_squares(rng):
  Ps, points, pixels = _views(rng, NUM_VIEWS)
  Ps *= rng.uniform(0.1, 10.0, size=(NUM_VIEWS, 1, 1))  # scale-free
  pixels += rng.normal(scale=3.0, size=pixels.shape)
  weights = rng.uniform(0.5, 2.0, size=NUM_VIEWS)
  with jax.enable_x64(True):
    estimate, valid = _triangulate_points(Ps, pixels, weights)
    estimate = np.asarray(estimate)
  expected = np.stack([_plane_distance_least_squares(Ps, pixels[:, n], weights)
                       for n in range(NUM_POINTS)])
  assert np.all(valid)
  np.testing.assert_allclose(estimate, expected, rtol=0, atol=1e-9)
  assert np.abs(estimate - points).max() > 1e-4  # the noise moved them


def _two_views_at_angle(rng, angle_degrees):
  """Cameras 10 m from the origin, looking at it from directions apart by
  `angle_degrees`, as (2, 3, 4) float64."""
  direction = rng.normal(size=3)
  direction /= np.linalg.norm(direction)
  other = np.cross(direction, rng.normal(size=3))
  other /= np.linalg.norm(other)
  angle = np.deg2rad(angle_degrees)
  Ps = []
  for eye in (direction, np.cos(angle) * direction + np.sin(angle) * other):
    R, t = cameras.look_at(10.0 * eye, np.zeros(3))
    Ps.append(_intrinsics(rng) @ np.c_[np.asarray(R, np.float64),
                                       np.asarray(t, np.float64)])
  return np.stack(Ps)


def test_triangulate_float32_cut_off_angle(rng):
  # Rays meeting at 1 degree still triangulate to 1 mm in float32; at 0.2
  # degrees the normal equations are too ill-conditioned (docstring).
  points = rng.uniform(-0.5, 0.5, size=(NUM_POINTS, 3))
  for angle_degrees, expect_valid in ((1.0, True), (0.2, False)):
    Ps = _two_views_at_angle(rng, angle_degrees)
    estimate, valid = _triangulate_points(
        jnp.asarray(Ps, jnp.float32), _project_views(Ps, points), np.ones(2))
    np.testing.assert_array_equal(valid, expect_valid)
    if expect_valid:
      np.testing.assert_allclose(estimate, points, atol=1e-3)


def _sum_and_valid(xs, Ps, weights):
  point, valid = triangulation.triangulate(Ps, xs, weights)
  return jnp.sum(point), (point, valid)


# d sum(X) / d pixels of every point, with X and valid.
_triangulation_gradient = jax.jit(jax.vmap(
    jax.grad(_sum_and_valid, has_aux=True), in_axes=(1, None, None)))


def test_triangulate_is_invalid_for_a_point_at_infinity(rng):
  Ps, _, _ = _views(rng, NUM_VIEWS)
  # Pixels of directions (X, 0): parallel rays, e.g. a star.
  directions = rng.normal(size=(NUM_POINTS, 3))
  homogeneous = np.einsum('vij,nj->vni', Ps[..., :3], directions)
  pixels = homogeneous[..., :2] / homogeneous[..., 2:]
  gradient, (estimate, valid) = _triangulation_gradient(
      jnp.asarray(pixels, jnp.float32), Ps, np.ones(NUM_VIEWS))
  assert not np.any(valid)
  np.testing.assert_array_equal(estimate, 0.0)
  np.testing.assert_array_equal(gradient, 0.0)


def test_triangulate_gradients_are_finite_and_match_finite_differences(rng):
  Ps, points, pixels = _views(rng, 2)
  weights = np.array([1.0, 0.7])
  with jax.enable_x64(True):
    gradient, (estimate, valid) = _triangulation_gradient(pixels, Ps, weights)
    step = 1e-6
    shifted = pixels.copy()
    shifted[1, :, 0] += step
    moved, _ = _triangulate_points(Ps, shifted, weights)
    difference = (np.sum(np.asarray(moved), -1)
                  - np.sum(np.asarray(estimate), -1)) / step
  assert np.all(valid)
  np.testing.assert_allclose(estimate, points, atol=1e-8)
  np.testing.assert_allclose(gradient[:, 1, 0], difference, rtol=1e-4,
                             atol=1e-8)
  # Degenerate views: one camera, twice.
  gradient, (_, valid) = _triangulation_gradient(
      jnp.asarray(pixels[[0, 0]], jnp.float32), Ps[[0, 0]], weights)
  assert not np.any(valid)
  np.testing.assert_array_equal(gradient, 0.0)


def _rotation_error_deg(R, expected):
  return np.rad2deg(Rotation.from_matrix(R @ expected.T).magnitude())


def _car_correspondences(rng):
  """A perturbed car shape, a pose, intrinsics and exact pixels."""
  points = car_lib.CAR.mean_shape * rng.uniform(0.9, 1.1, size=3)
  R, t = _random_pose(rng)
  K = _intrinsics(rng)
  pixels = _project_views(K[None] @ np.c_[R, t], points)[0]
  return points, pixels, K, R, t


def test_solve_pnp_recovers_the_pose_from_exact_projections(rng):
  points, pixels, K, R, t = _car_correspondences(rng)
  result = pnp.solve_pnp(points, pixels, K)
  assert _rotation_error_deg(result.rotation, R) < 0.01
  np.testing.assert_allclose(result.translation, t, rtol=1e-4)
  np.testing.assert_allclose(result.projection,
                             K @ np.c_[result.rotation, result.translation])
  assert result.reprojection_error < 1e-4


def test_solve_pnp_under_one_pixel_noise(rng):
  rotation_errors, translation_errors = [], []
  for _ in range(20):
    points, pixels, K, R, t = _car_correspondences(rng)
    result = pnp.solve_pnp(points, pixels + rng.normal(size=pixels.shape), K)
    rotation_errors.append(_rotation_error_deg(result.rotation, R))
    translation_errors.append(
        np.linalg.norm(result.translation - t) / np.linalg.norm(t))
  print(f'1 px noise: rotation error median {np.median(rotation_errors):.3f} '
        f'max {np.max(rotation_errors):.3f} deg; relative translation error '
        f'median {np.median(translation_errors):.4f}')
  assert np.median(rotation_errors) < 0.5
  assert np.median(translation_errors) < 0.01


def test_solve_pnp_ignores_unlabelled_points(rng):
  points, pixels, K, R, _ = _car_correspondences(rng)
  pixels[:4] = np.nan
  result = pnp.solve_pnp(points, pixels, K)
  assert _rotation_error_deg(result.rotation, R) < 0.01


@pytest.mark.parametrize('case, message', [
    ('three_points', 'at least 4'),
    ('collinear_3d', 'collinear'),
    ('coincident_2d', 'collinear'),
])
def test_solve_pnp_rejects_degenerate_input(rng, case, message):
  points, pixels, K, _, _ = _car_correspondences(rng)
  if case == 'three_points':
    pixels[3:] = np.nan
  elif case == 'collinear_3d':
    points = np.outer(rng.uniform(-2, 2, size=len(points)), rng.normal(size=3))
  else:
    pixels[:] = pixels[0]
  with pytest.raises(pnp.PnPError, match=message):
    pnp.solve_pnp(points, pixels, K)


def test_solve_pnp_rejects_a_pose_behind_the_camera(rng):
  # A camera just in front of the back lights, looking along the car: the
  # exact pose puts the back lights behind it.
  points, _, K, _, _ = _car_correspondences(rng)
  eye = np.array([-1.9, 0.3, 0.0]) + rng.normal(scale=0.1, size=3)
  R, t = cameras.look_at(eye, rng.normal([5.0, 0.0, 0.0], 0.5))
  R, t = np.asarray(R, np.float64), np.asarray(t, np.float64)
  assert np.any(points @ R[2] + t[2] < 0)
  pixels = _project_views(K[None] @ np.c_[R, t], points)[0]
  with pytest.raises(pnp.PnPError, match='behind'):
    pnp.solve_pnp(points, pixels, K)
