"""Tests of occnet_jax.geometry.trifocal on fresh random general cameras."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from occnet_jax.geometry import cameras
from occnet_jax.geometry import trifocal

IMAGE_SIZE = np.array([1920.0, 1080.0])
NUM_POINTS = 16

# Jitted once per dtype and shape: far faster than op-by-op dispatch.
_residual = jax.jit(trifocal.normalized_trifocal_residual)
_transfer = jax.jit(trifocal.normalized_trifocal_transfer)


def _general_camera(rng):
  """A finite camera with skew and non-square pixels, P != [I | 0]."""
  K = np.array([[rng.uniform(800, 2000), rng.uniform(-20, 20), 960.0],
                [0.0, rng.uniform(800, 2000), 540.0],
                [0.0, 0.0, 1.0]])
  K[:2, 2] += rng.uniform(-50, 50, size=2)
  R = Rotation.random(random_state=rng).as_matrix()
  centre = -R[2] * rng.uniform(8.0, 15.0)  # the origin is in front
  return rng.uniform(0.1, 10.0) * K @ np.c_[R, -R @ centre]


def _random_views(rng, num_views=3):
  """float64 cameras and the pixels of random points seen in every view."""
  Ps = [_general_camera(rng) for _ in range(num_views)]
  points = rng.uniform(-1.5, 1.5, size=(NUM_POINTS, 3))
  return Ps, [_project(P, points) for P in Ps], points


def _project(P, points):
  """float64 numpy projection, independent of the code under test."""
  homogeneous = points @ P[:, :3].T + P[:, 3]
  return homogeneous[:, :2] / homogeneous[:, 2:]


def _centre(P):
  return -np.linalg.solve(P[:, :3], P[:, 3])


def _homogeneous_norm(x):
  return np.sqrt(np.sum(np.asarray(x)**2, -1) + 1.0)


def test_true_correspondences_satisfy_the_incidence_relation(rng):
  (P1, P2, P3), (x1, x2, x3), _ = _random_views(rng)
  with jax.enable_x64(True):
    T = trifocal.trifocal_tensor(*map(jnp.asarray, (P1, P2, P3)))
    residual = trifocal.trifocal_point_residual(T, x1, x2, x3)
    scale = (np.linalg.norm(T) * _homogeneous_norm(x1) * _homogeneous_norm(x2)
             * _homogeneous_norm(x3))
    relative = np.linalg.norm(residual, axis=(-2, -1)) / scale
    normalized, valid = _residual(
        P1, P2, P3, x1, x2, x3)
  assert relative.max() < 1e-6
  assert np.all(valid)
  assert np.abs(normalized).max() < 1e-10


def test_perturbed_points_give_a_clearly_nonzero_residual(rng):
  (P1, P2, P3), (x1, x2, x3), _ = _random_views(rng)
  direction = rng.normal(size=x2.shape)
  direction /= np.linalg.norm(direction, axis=-1, keepdims=True)

  def residual_norm(displacement_px):
    residual, _ = _residual(
        P1, P2, P3, x1, x2 + displacement_px * direction, x3)
    return np.linalg.norm(residual, axis=(-2, -1))

  with jax.enable_x64(True):
    one_pixel, two_pixels = residual_norm(1.0), residual_norm(2.0)
  # The residual is linear in x2 and vanishes at the true point.
  np.testing.assert_allclose(two_pixels, 2.0 * one_pixel, rtol=1e-6)
  assert one_pixel.min() > 1e-6
  # Its norm is the displacement in focal lengths of view 2, up to the
  # anisotropy of points away from the principal point (and skew here).
  focal = 1.0 / np.asarray(cameras.normalizing_transform(P2))[0, 0]
  pixels = one_pixel * focal
  assert abs(np.median(pixels) - 1.0) < 0.1
  assert 0.6 < pixels.min() and pixels.max() < 1.6


def test_normalized_residual_is_scale_free(rng):
  (P1, P2, P3), (x1, x2, x3), _ = _random_views(rng)
  x2 = x2 + rng.normal(scale=5.0, size=x2.shape)
  # A new world frame (similarity) and new camera scales.
  similarity = np.eye(4)
  similarity[:3, :3] = rng.uniform(0.1, 10.0) * Rotation.random(
      random_state=rng).as_matrix()
  similarity[:3, 3] = rng.normal(size=3)
  scales = rng.uniform(0.1, 10.0, size=3) * rng.choice([-1.0, 1.0], size=3)
  with jax.enable_x64(True):
    residual, _ = _residual(P1, P2, P3, x1, x2, x3)
    moved, _ = _residual(
        *(s * P @ similarity for s, P in zip(scales, (P1, P2, P3))),
        x1, x2, x3)
  # Invariant up to the sign of the tensor.
  np.testing.assert_allclose(np.abs(moved), np.abs(residual), rtol=1e-8,
                             atol=1e-14)


def _cosine(a, b):
  a, b = np.ravel(a), np.ravel(b)
  return abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))


def test_tensor_is_projectively_invariant_and_scale_independent(rng):
  P1, P2, P3 = rng.normal(size=(3, 3, 4))
  H = rng.normal(size=(4, 4))
  a, b, c = rng.uniform(0.1, 10.0, size=3)
  with jax.enable_x64(True):
    T = np.asarray(trifocal.trifocal_tensor(P1, P2, P3))
    transformed = trifocal.trifocal_tensor(P1 @ H, P2 @ H, P3 @ H)
    rescaled = trifocal.trifocal_tensor(a * P1, b * P2, c * P3)
  np.testing.assert_allclose(transformed, np.linalg.det(H) * T, rtol=1e-7,
                             atol=1e-9 * np.abs(T).max())
  np.testing.assert_allclose(rescaled, a * a * b * c * T, rtol=1e-9)
  assert _cosine(transformed, T) > 1 - 1e-12


def test_transfer_recovers_the_second_view_in_float64(rng):
  (P1, P2, P3), (x1, x2, x3), _ = _random_views(rng)
  with jax.enable_x64(True):
    transferred, valid = _transfer(
        P1, P2, P3, x1, x3)
    raw, raw_valid = trifocal.trifocal_transfer(
        trifocal.trifocal_tensor(P1, P2, P3), x1, x3)
  assert np.all(valid) and np.all(raw_valid)
  assert np.abs(np.asarray(transferred) - x2).max() < 1e-6
  assert np.abs(np.asarray(raw) - x2).max() < 1e-6


def test_transfer_recovers_the_second_view_in_float32_at_full_hd(rng):
  (P1, P2, P3), (x1, x2, x3), _ = _random_views(rng)
  inside = np.all((x2 >= 0) & (x2 <= IMAGE_SIZE), -1)
  as_float32 = lambda a: jnp.asarray(a, jnp.float32)
  transferred, valid = _transfer(*map(as_float32, (P1, P2, P3, x1, x3)))
  assert transferred.dtype == jnp.float32
  assert np.all(valid)
  error = np.abs(np.asarray(transferred, np.float64) - x2)[inside]
  assert error.max() < 1e-2, error.max()


def test_transfer_is_invalid_and_finite_for_degenerate_cameras(rng):
  (P1, P2, _), (x1, _, x3), _ = _random_views(rng)
  # Camera 3 shares camera 1's centre: every x1 is the epipole of view 3.
  R = Rotation.random(random_state=rng).as_matrix()
  K = cameras.intrinsics_matrix(1000.0, IMAGE_SIZE / 2)
  same_centre_as_1 = K @ np.c_[R, -R @ _centre(P1)]

  def transfer_sum(x1):
    x2, valid = _transfer(
        P1, P2, same_centre_as_1, x1, x3)
    return jnp.sum(x2), (x2, valid)

  gradient, (x2, valid) = jax.jit(jax.grad(transfer_sum, has_aux=True))(
      jnp.asarray(x1, jnp.float32))
  assert not np.any(valid)
  assert np.all(np.isfinite(x2)) and np.all(np.isfinite(gradient))

  # All three centres equal: the tensor vanishes.
  same = [same_centre_as_1, P1, same_centre_as_1]
  x2, valid = _transfer(*same, x1, x3)
  residual, residual_valid = _residual(
      *same, x1, x1, x3)
  assert not np.any(valid) and np.all(np.isfinite(x2))
  assert not np.any(residual_valid)
  np.testing.assert_array_equal(residual, 0.0)


def test_zero_cameras_of_padding_views_give_zero_and_finite_gradients(rng):
  (P1, _, P3), (x1, x2, x3), _ = _random_views(rng)
  padding = np.zeros((3, 4))

  def loss(x2):
    residual, valid = _residual(P1, padding, P3, x1, x2, x3)
    return jnp.sum(residual**2), valid

  gradient, valid = jax.grad(loss, has_aux=True)(jnp.asarray(x2, jnp.float32))
  assert not np.any(valid)
  np.testing.assert_array_equal(gradient, 0.0)
  x2, valid = _transfer(P1, padding, P3, x1, x3)
  assert not np.any(valid) and np.all(np.isfinite(x2))


def test_transfer_is_invalid_for_points_on_the_baseline_or_at_infinity(rng):
  (P1, P2, P3), _, _ = _random_views(rng)
  C1, C3 = _centre(P1), _centre(P3)
  on_baseline = C1 + rng.uniform(0.2, 0.8) * (C3 - C1)
  # A point on the principal plane of camera 2 (m3 . X + p34 = 0) projects
  # to infinity there.
  axis, offset = P2[2, :3], P2[2, 3]
  along_plane = rng.normal(size=3)
  along_plane -= (along_plane @ axis) / (axis @ axis) * axis
  on_principal_plane = -offset / (axis @ axis) * axis + along_plane
  points = np.stack([on_baseline, on_principal_plane])
  x1, x3 = _project(P1, points), _project(P3, points)
  with jax.enable_x64(True):
    x2, valid = _transfer(P1, P2, P3, x1, x3)
  assert not np.any(valid)
  assert np.all(np.isfinite(x2))


def test_transfer_is_invalid_and_finite_for_nan_input(rng):
  (P1, P2, P3), (x1, _, x3), _ = _random_views(rng)
  x1 = np.array(x1, np.float32)
  x1[::2, 0] = np.nan
  x2, valid = _transfer(
      *(jnp.asarray(a, jnp.float32) for a in (P1, P2, P3, x1, x3)))
  np.testing.assert_array_equal(valid, np.all(np.isfinite(x1), -1))
  assert np.all(np.isfinite(x2))


def test_tensor_matches_the_determinant_definition(rng):
  # H&Z (17.12) with numpy's LAPACK determinants, on batched cameras.
  P1, P2, P3 = rng.normal(size=(3, 2, 3, 4))
  rows_without = ((1, 2), (0, 2), (0, 1))
  expected = np.empty((2, 3, 3, 3))
  for i, q, r in np.ndindex(3, 3, 3):
    matrices = np.concatenate(
        [P1[:, rows_without[i]], P2[:, q:q + 1], P3[:, r:r + 1]], axis=1)
    expected[:, i, q, r] = (-1)**i * np.linalg.det(matrices)
  with jax.enable_x64(True):
    T = np.asarray(trifocal.trifocal_tensor(P1, P2, P3))
    T_32 = np.asarray(trifocal.trifocal_tensor(
        *(jnp.asarray(P, jnp.float32) for P in (P1, P2, P3))), np.float64)
  scale = np.abs(expected).max()
  np.testing.assert_allclose(T, expected, rtol=0, atol=1e-12 * scale)
  np.testing.assert_allclose(T_32, expected, rtol=0, atol=1e-5 * scale)
