"""Tests of occnet_jax.geometry.cameras on fresh random cameras."""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from occnet_jax.geometry import cameras


def _random_pose(rng):
  eye = rng.normal(size=3)
  eye *= rng.uniform(5.0, 20.0) / np.linalg.norm(eye)
  return cameras.look_at(eye, rng.normal(scale=0.5, size=3)), eye


def _random_intrinsics(rng):
  return cameras.intrinsics_matrix(
      rng.uniform(500.0, 2000.0), rng.uniform([800.0, 400.0], [1100.0, 700.0]))


def test_project_matches_pinhole_formula(rng):
  (R, t), _ = _random_pose(rng)
  K = _random_intrinsics(rng)
  points = rng.normal(size=(7, 3))
  pixels, depth = cameras.project(cameras.projection_matrix(K, R, t), points)

  camera_points = points @ np.asarray(R).T + np.asarray(t)
  K = np.asarray(K)
  expected = K[:2, 2] + K[0, 0] * camera_points[:, :2] / camera_points[:, 2:]
  np.testing.assert_allclose(pixels, expected, rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(depth, camera_points[:, 2], rtol=1e-5)


def test_project_depth_ignores_the_scale_and_sign_of_P(rng):
  (R, t), _ = _random_pose(rng)
  P = cameras.projection_matrix(_random_intrinsics(rng), R, t)
  points = rng.normal(size=(5, 3))
  pixels, depth = cameras.project(P, points)
  scaled_pixels, scaled_depth = cameras.project(-rng.uniform(0.1, 10.0) * P,
                                                points)
  np.testing.assert_allclose(scaled_pixels, pixels, rtol=1e-4)
  np.testing.assert_allclose(scaled_depth, depth, rtol=1e-4)


def test_look_at_points_at_target_with_world_up_up_in_the_image(rng):
  (R, t), eye = _random_pose(rng)
  R = np.asarray(R)
  np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-5)
  target = np.asarray(-t @ R + R[2] * 3.0)  # a point on the optical axis
  P = cameras.projection_matrix(cameras.intrinsics_matrix(1000.0, (960., 540.)),
                                R, t)
  (centre, above), depth = cameras.project(
      P, np.stack([target, target + np.array([0.0, 0.1, 0.0])]))
  np.testing.assert_allclose(centre, [960.0, 540.0], atol=1e-2)
  assert np.all(depth > 0)
  assert above[1] < centre[1]  # y grows downwards in the image.
  np.testing.assert_allclose(cameras.camera_center(P), eye, rtol=1e-4)


def test_look_at_straight_down_is_still_a_rotation():
  R, t = cameras.look_at(jnp.array([0.0, 10.0, 0.0]), jnp.zeros(3))
  assert np.all(np.isfinite(R)) and np.all(np.isfinite(t))
  np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
  np.testing.assert_allclose(R[2], [0.0, -1.0, 0.0], atol=1e-6)


def test_camera_center_is_the_null_vector_of_batched_cameras(rng):
  P = rng.normal(size=(2, 3, 3, 4))
  centre = cameras.camera_center(P)
  homogeneous = np.concatenate([centre, np.ones((2, 3, 1))], -1)
  np.testing.assert_allclose(np.einsum('...ij,...j->...i', P, homogeneous),
                             0.0, atol=1e-4)


def test_crop_camera_maps_box_corners_to_crop_corners(rng):
  (R, t), _ = _random_pose(rng)
  P = cameras.projection_matrix(_random_intrinsics(rng), R, t)
  x0, y0 = rng.uniform(0.0, 800.0, size=2)
  box = np.array([x0, y0, x0 + rng.uniform(50, 400), y0 + rng.uniform(50, 400)])
  crop_size = 64
  # 3D points on the rays through the corners (any depth works).
  corners = np.array([[box[0], box[1]], [box[2], box[3]], [box[0], box[3]]])
  rays = np.linalg.solve(np.asarray(P)[:, :3],
                         (np.c_[corners, np.ones(3)] - np.asarray(P)[:, 3]).T).T
  crop_pixels, _ = cameras.project(cameras.crop_camera(P, box, crop_size), rays)
  np.testing.assert_allclose(
      crop_pixels, [[0.0, 0.0], [crop_size, crop_size], [0.0, crop_size]],
      atol=5e-3)  # float32 round-off of full-frame pixels


@pytest.mark.parametrize('crop_size', [16, 96])  # downscale and upscale
def test_crop_transform_agrees_with_cv2_resize(rng, crop_size):
  # cv2.resize (bilinear) reproduces a linear image exactly away from the
  # border, so sampling the ramp at a crop pixel centre mapped back to the
  # frame must give the resized value.
  height, width = 120, 160
  slope = rng.uniform(-1.0, 1.0, size=2)
  rows, cols = np.mgrid[:height, :width]
  image = (slope[0] * (cols + 0.5) + slope[1] * (rows + 0.5)).astype(np.float32)
  x0, y0 = rng.integers(0, 40, size=2)
  width, height = rng.integers(40, 120), rng.integers(40, 80)
  box = np.array([x0, y0, x0 + width, y0 + height], np.float64)
  crop = image[int(box[1]):int(box[3]), int(box[0]):int(box[2])]
  resized = cv2.resize(crop, (crop_size, crop_size),
                       interpolation=cv2.INTER_LINEAR)

  crop_rows, crop_cols = np.mgrid[:crop_size, :crop_size]
  crop_centres = np.stack([crop_cols + 0.5, crop_rows + 0.5], -1)
  transform = np.linalg.inv(np.asarray(cameras.crop_transform(box, crop_size)))
  frame_points = np.asarray(cameras.apply_affine(transform, crop_centres))
  expected = frame_points @ slope
  inner = slice(crop_size // 8, -crop_size // 8)
  np.testing.assert_allclose(resized[inner, inner], expected[inner, inner],
                             atol=1e-3)


def test_quaternion_to_rotation_matches_scipy_and_ignores_the_norm(rng):
  quaternion = rng.normal(size=(6, 4))
  scale = rng.uniform(0.1, 10.0, size=(6, 1))
  R = cameras.quaternion_to_rotation(quaternion * scale)
  expected = Rotation.from_quat(quaternion, scalar_first=True).as_matrix()
  np.testing.assert_allclose(R, expected, atol=1e-5)
  back = np.asarray(cameras.rotation_to_quaternion(R))
  unit = quaternion / np.linalg.norm(quaternion, axis=-1, keepdims=True)
  np.testing.assert_allclose(np.abs(np.sum(back * unit, -1)), 1.0, atol=1e-5)
  assert np.all(back[:, 0] >= 0)


def test_rotation_to_quaternion_near_half_turns():
  # Rotations by pi make w = 0: the other pivots must take over.
  for axis in np.eye(3):
    R = Rotation.from_rotvec(np.pi * axis).as_matrix()
    q = cameras.rotation_to_quaternion(jnp.asarray(R))
    np.testing.assert_allclose(cameras.quaternion_to_rotation(q), R, atol=1e-6)


def test_quaternion_zero_gives_identity_and_finite_gradient():
  np.testing.assert_allclose(cameras.quaternion_to_rotation(jnp.zeros(4)),
                             np.eye(3))
  gradient = jax.grad(lambda q: jnp.sum(cameras.quaternion_to_rotation(q)))(
      jnp.zeros(4))
  assert np.all(np.isfinite(gradient))


def test_perspective_projection_matches_project(rng):
  points = rng.normal(size=(5, 3))
  quaternion = rng.normal(size=4)
  translation = np.array([*rng.normal(scale=0.3, size=2), rng.uniform(8, 12)])
  focal, aspect = rng.uniform(1.0, 4.0), rng.uniform(0.5, 2.0)
  projected = cameras.perspective_projection(points, focal, quaternion,
                                             translation, aspect)
  K = np.diag([focal, aspect * focal, 1.0])
  P = cameras.projection_matrix(K, cameras.quaternion_to_rotation(quaternion),
                                translation)
  expected, _ = cameras.project(P, points)
  np.testing.assert_allclose(projected, expected, rtol=1e-5, atol=1e-6)


def test_perspective_projection_is_finite_behind_the_camera(rng):
  points = rng.normal(size=(5, 3))
  translation = jnp.array([0.0, 0.0, -3.0])  # all points behind the camera

  def total(translation):
    return jnp.sum(cameras.perspective_projection(
        points, 2.0, jnp.array([1.0, 0.0, 0.0, 0.0]), translation, 1.0))

  value, gradient = jax.value_and_grad(total)(translation)
  assert np.isfinite(value) and np.all(np.isfinite(gradient))
  at_camera = cameras.perspective_projection(
      jnp.zeros((1, 3)), 2.0, jnp.array([1.0, 0, 0, 0]), jnp.zeros(3), 1.0)
  assert np.all(np.isfinite(at_camera))


def test_normalizing_transform_undoes_the_intrinsics(rng):
  (R, t), _ = _random_pose(rng)
  K = _random_intrinsics(rng)
  N = cameras.normalizing_transform(
      rng.uniform(0.1, 10.0) * cameras.projection_matrix(K, R, t))
  np.testing.assert_allclose(N @ K, np.eye(3), atol=1e-5)


def test_camera_center_matches_lapack_in_float64(rng):
  P = rng.normal(size=(4, 3, 4))
  with jax.enable_x64(True):
    centre = np.asarray(cameras.camera_center(P))
  expected = -np.linalg.solve(P[..., :3], P[..., 3:])[..., 0]
  np.testing.assert_allclose(centre, expected, rtol=1e-9,
                             atol=1e-12 * np.abs(expected).max())


def test_camera_center_without_a_finite_centre_is_zero(rng):
  # The zero camera of a padding view, and an affine camera (last row
  # (0, 0, 0, 1) times a scale), whose centre is at infinity.
  affine = rng.normal(size=(3, 4))
  affine[2] = [0.0, 0.0, 0.0, rng.uniform(0.5, 2.0)]
  P = jnp.asarray(np.stack([np.zeros((3, 4)), affine]), jnp.float32)
  centre, vjp = jax.vjp(cameras.camera_center, P)
  (gradient,) = vjp(jnp.ones_like(centre))
  np.testing.assert_array_equal(centre, 0.0)
  np.testing.assert_array_equal(gradient, 0.0)
