"""Pinhole cameras: intrinsics, poses, projection, ROI crops, quaternions.

Conventions (docs/design.md): OpenCV axes (camera looks along +z, x right,
y down), `P = K [R | t]`, pixel centres at integer + 0.5 so that pixel edges
lie on integers. Every function is pure jax.numpy, batches over leading axes
and is differentiable.
"""

import jax.numpy as jnp

from occnet_jax.geometry import small_linalg


def intrinsics_matrix(focal, principal_point):
  """Builds K = [[f, 0, cx], [0, f, cy], [0, 0, 1]].

  Args:
    focal: focal length in pixels, shape (...).
    principal_point: (cx, cy) in pixels, shape (..., 2).

  Returns:
    (..., 3, 3) intrinsics matrices, batch shape broadcast from the inputs.
  """
  focal = jnp.asarray(focal)
  principal_point = jnp.asarray(principal_point)
  batch = jnp.broadcast_shapes(focal.shape, principal_point.shape[:-1])
  focal = jnp.broadcast_to(focal, batch)
  principal_point = jnp.broadcast_to(principal_point, (*batch, 2))
  cx, cy = principal_point[..., 0], principal_point[..., 1]
  zero = jnp.zeros_like(focal)
  one = jnp.ones_like(focal)
  rows = [jnp.stack([focal, zero, cx], -1),
          jnp.stack([zero, focal, cy], -1),
          jnp.stack([zero, zero, one], -1)]
  return jnp.stack(rows, -2)


def _normalize(vector, eps=1e-12):
  norm_sq = jnp.sum(vector * vector, axis=-1, keepdims=True)
  # Clamping the squared norm keeps the gradient finite at 0.
  return vector / jnp.sqrt(jnp.maximum(norm_sq, eps))


def look_at(eye, target, up=(0.0, 1.0, 0.0)):
  """World-to-camera pose of a camera at `eye` looking at `target`.

  The image y axis points along -up, so world-up appears up in the image.
  When the viewing direction is parallel to `up` the roll is undefined; the
  world axis least aligned with the viewing direction replaces `up` then.

  Args:
    eye: camera centre, shape (..., 3).
    target: point the optical axis passes through, shape (..., 3).
    up: world up direction, shape (..., 3).

  Returns:
    (R, t): rotation (..., 3, 3) and translation (..., 3) with
    x_cam = R X + t.
  """
  eye = jnp.asarray(eye)
  target = jnp.asarray(target)
  up = jnp.broadcast_to(jnp.asarray(up, eye.dtype), eye.shape)
  forward = _normalize(target - eye)
  right = jnp.cross(forward, up)
  fallback_up = jnp.eye(3, dtype=forward.dtype)[
      jnp.argmin(jnp.abs(forward), axis=-1)]
  parallel = jnp.sum(right * right, -1, keepdims=True) < 1e-12 * jnp.sum(
      up * up, -1, keepdims=True)
  right = _normalize(
      jnp.where(parallel, jnp.cross(forward, fallback_up), right))
  down = jnp.cross(forward, right)
  rotation = jnp.stack([right, down, forward], axis=-2)
  translation = -jnp.einsum('...ij,...j->...i', rotation, eye)
  return rotation, translation


def projection_matrix(K, R, t):
  """P = K [R | t], shapes (..., 3, 3), (..., 3, 3), (..., 3) -> (..., 3, 4)."""
  R, t = jnp.asarray(R), jnp.asarray(t)
  batch = jnp.broadcast_shapes(R.shape[:-2], t.shape[:-1])
  Rt = jnp.concatenate([jnp.broadcast_to(R, (*batch, 3, 3)),
                        jnp.broadcast_to(t, (*batch, 3))[..., None]], axis=-1)
  return K @ Rt


def project(P, points):
  """Projects 3D points with camera matrices.

  The depth is computed as in Hartley & Zisserman (6.15): the signed
  distance along the principal axis, sign(det M) w / ||m3||, which is the
  camera z for P = K [R | t] and does not depend on the scale of P.

  Args:
    P: (..., 3, 4) camera matrices.
    points: (..., N, 3) points.

  Returns:
    (pixels (..., N, 2), depth (..., N)); depth is positive in front of the
    camera. Points with zero depth project to infinity: mask them by depth.
  """
  M = P[..., :3]
  homogeneous = jnp.einsum('...ij,...nj->...ni', M, points) + P[..., None, :, 3]
  w = homogeneous[..., 2]
  pixels = homogeneous[..., :2] / w[..., None]
  principal_axis_norm = jnp.linalg.norm(M[..., 2, :], axis=-1)
  depth = (jnp.sign(small_linalg.det3(M)) / principal_axis_norm)[..., None] * w
  return pixels, depth


def camera_center(P):
  """Centres C of finite cameras, the null vectors P [C; 1] = 0.

  C = -M^-1 p4 = -adj(M) p4 / det(M) with M = P[..., :3] and p4 the last
  column, in closed form (`small_linalg`). A camera with singular M (a
  camera at infinity, or the zero camera of a padding view) has no finite
  centre: it gets C = 0, with zero gradient.

  Args:
    P: (..., 3, 4) cameras.

  Returns:
    (..., 3) centres.
  """
  M, p4 = P[..., :3], P[..., 3]
  det = small_linalg.det3(M)
  finite = det != 0
  safe_det = jnp.where(finite, det, 1.0)
  centre = -jnp.einsum('...ij,...j->...i', small_linalg.adjugate3(M), p4)
  return jnp.where(finite[..., None], centre / safe_det[..., None], 0.0)


def normalizing_transform(P):
  """Isotropic similarity N that makes N P well conditioned.

  Reads the principal point (cx, cy) and focal length f from the camera:
  with M = P[:, :3] = K R (up to scale), M M^T = K K^T gives
  cx = m1.m3 / |m3|^2, cy = m2.m3 / |m3|^2 and
  fx^2 = (|m1|^2 |m3|^2 - (m1.m3)^2) / |m3|^4 (non-negative by
  Cauchy-Schwarz), likewise fy; f = sqrt((fx^2 + fy^2) / 2) (1 if that is
  0). Then
  N = [[1/f, 0, -cx/f], [0, 1/f, -cy/f], [0, 0, 1]] and, for P = K [R | t]
  with square pixels and no skew, N P = [R | t] (times the scale of P).
  For other cameras N is
  still a valid similarity, just not an exact calibration.

  Args:
    P: (..., 3, 4) cameras.

  Returns:
    (..., 3, 3) similarities acting on homogeneous pixel columns.
  """
  P = jnp.asarray(P)
  m1, m2, m3 = P[..., 0, :3], P[..., 1, :3], P[..., 2, :3]
  tiny = jnp.finfo(P.dtype).tiny
  m3_sq = jnp.maximum(jnp.sum(m3 * m3, -1), tiny)
  m13, m23 = jnp.sum(m1 * m3, -1), jnp.sum(m2 * m3, -1)
  cx, cy = m13 / m3_sq, m23 / m3_sq
  fx_sq = (jnp.sum(m1 * m1, -1) * m3_sq - m13**2) / m3_sq**2
  fy_sq = (jnp.sum(m2 * m2, -1) * m3_sq - m23**2) / m3_sq**2
  focal_sq = 0.5 * (fx_sq + fy_sq)
  # A camera without focal length (e.g. the zero camera of a padding view)
  # gets the identity scale rather than an overflowing one.
  has_focal = focal_sq > 0
  inverse_focal = jnp.where(
      has_focal, 1.0 / jnp.sqrt(jnp.where(has_focal, focal_sq, 1.0)), 1.0)
  zero = jnp.zeros_like(cx)
  return jnp.stack([
      jnp.stack([inverse_focal, zero, -cx * inverse_focal], -1),
      jnp.stack([zero, inverse_focal, -cy * inverse_focal], -1),
      jnp.stack([zero, zero, jnp.ones_like(cx)], -1),
  ], -2)


def apply_affine(transform, points):
  """Applies (..., 3, 3) affine transforms to (..., 2) points (broadcast)."""
  return jnp.einsum('...ij,...j->...i', transform[..., :2, :2], points) + (
      transform[..., :2, 2])


def crop_transform(box, crop_size):
  """Affine map from full-frame pixels to a crop_size x crop_size ROI crop.

  Pixel-edge aligned: the box corner (x0, y0) maps to (0, 0) and (x1, y1) to
  (S, S), so pixel centres map to pixel centres as in `cv2.resize`.

  Args:
    box: (..., 4) boxes (x0, y0, x1, y1) in full-frame pixels.
    crop_size: S, side of the square crop in pixels.

  Returns:
    (..., 3, 3) homogeneous transforms acting on (x, y, 1) column vectors;
    map keypoints with `apply_affine`.
  """
  box = jnp.asarray(box)
  scale_x = crop_size / (box[..., 2] - box[..., 0])
  scale_y = crop_size / (box[..., 3] - box[..., 1])
  zero = jnp.zeros_like(scale_x)
  one = jnp.ones_like(scale_x)
  rows = [jnp.stack([scale_x, zero, -scale_x * box[..., 0]], -1),
          jnp.stack([zero, scale_y, -scale_y * box[..., 1]], -1),
          jnp.stack([zero, zero, one], -1)]
  return jnp.stack(rows, -2)


def crop_camera(P, box, crop_size):
  """Camera of an ROI crop: `crop_transform(box, crop_size) @ P`.

  Args:
    P: (..., 3, 4) full-frame cameras.
    box: (..., 4) boxes (x0, y0, x1, y1) in full-frame pixels.
    crop_size: S, side of the square crop in pixels.

  Returns:
    (..., 3, 4) cameras mapping 3D points to crop pixels.
  """
  return crop_transform(box, crop_size) @ P


def quaternion_to_rotation(quaternion, eps=1e-12):
  """Rotation matrices of quaternions (w, x, y, z), normalised inside.

  Uses the homogeneous form R = I + (2 / |q|^2) (...), which needs no square
  root; |q|^2 is clamped to `eps`, so q = 0 gives the identity with finite
  gradients.

  Args:
    quaternion: (..., 4) quaternions (w, x, y, z), any non-zero norm.
    eps: lower bound on |q|^2.

  Returns:
    (..., 3, 3) rotation matrices.
  """
  w, x, y, z = jnp.moveaxis(quaternion, -1, 0)
  s = 2.0 / jnp.maximum(w * w + x * x + y * y + z * z, eps)
  rows = [
      jnp.stack([1 - s * (y * y + z * z), s * (x * y - z * w),
                 s * (x * z + y * w)], -1),
      jnp.stack([s * (x * y + z * w), 1 - s * (x * x + z * z),
                 s * (y * z - x * w)], -1),
      jnp.stack([s * (x * z - y * w), s * (y * z + x * w),
                 1 - s * (x * x + y * y)], -1),
  ]
  return jnp.stack(rows, -2)


def rotation_to_quaternion(rotation):
  """Unit quaternions (w, x, y, z) with w >= 0 of rotation matrices.

  Shepperd's method: of the four algebraically equivalent formulas the one
  with the largest pivot 4 q_i^2 is used, which keeps the division stable.

  Args:
    rotation: (..., 3, 3) rotation matrices.

  Returns:
    (..., 4) unit quaternions.
  """
  r = rotation
  r00, r11, r22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
  pivots = jnp.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22,
                      1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1)
  d21, d02, d10 = (r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0],
                   r[..., 1, 0] - r[..., 0, 1])
  s10, s02, s21 = (r[..., 1, 0] + r[..., 0, 1], r[..., 0, 2] + r[..., 2, 0],
                   r[..., 2, 1] + r[..., 1, 2])
  # Row i is 4 q_i times the quaternion.
  candidates = jnp.stack([
      jnp.stack([pivots[..., 0], d21, d02, d10], -1),
      jnp.stack([d21, pivots[..., 1], s10, s02], -1),
      jnp.stack([d02, s10, pivots[..., 2], s21], -1),
      jnp.stack([d10, s02, s21, pivots[..., 3]], -1),
  ], -2)
  best = jnp.argmax(pivots, axis=-1)
  quaternion = jnp.take_along_axis(candidates, best[..., None, None], -2)[
      ..., 0, :]
  quaternion = _normalize(quaternion)
  return jnp.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def perspective_projection(points_3d, focal, quaternion, translation, aspect,
                           min_depth=1e-3):
  """The 3D branch's camera (paper 3.2) in box-normalised coordinates.

  (X, Y, Z) = R(q) W + t, projected to (f X / Z, aspect f Y / Z) with the
  principal point at the box centre. Z is clamped from below to `min_depth`
  before the division, so points at or behind the camera give large but
  finite values (and finite gradients) instead of NaN or inf; the clamp has
  zero gradient with respect to Z there, so losses should start from a pose
  in front of the camera.

  Args:
    points_3d: (..., K, 3) object-frame points W.
    focal: (...,) focal length in box-normalised units.
    quaternion: (..., 4) rotation (w, x, y, z), normalised inside.
    translation: (..., 3) object position in the camera frame.
    aspect: (...,) box width / height.
    min_depth: smallest depth used in the division, object-frame units.

  Returns:
    (..., K, 2) box-normalised image coordinates.
  """
  rotation = quaternion_to_rotation(quaternion)
  camera = jnp.einsum('...ij,...kj->...ki', rotation, points_3d) + (
      translation[..., None, :])
  depth = jnp.maximum(camera[..., 2], min_depth)
  focal = jnp.asarray(focal)[..., None]
  aspect = jnp.asarray(aspect)[..., None]
  return jnp.stack([focal * camera[..., 0] / depth,
                    aspect * focal * camera[..., 1] / depth], -1)


def pose_center(quaternion, translation):
  """Camera centres C = -R(q)^T t of poses x_cam = R(q) X + t, (..., 3)."""
  rotation = quaternion_to_rotation(quaternion)
  return -jnp.einsum('...ji,...j->...i', rotation, translation)


def viewing_yaw(center):
  """Azimuth (radians, in (-pi, pi]) of camera centres about the car.

  The object frame of docs/design.md has x forward, y up and z lateral: the
  yaw is the angle about y from the front (+x) towards +z, whatever the
  camera's elevation, distance or principal point.

  Args:
    center: (..., 3) camera centres in the object frame.

  Returns:
    (...) yaws.
  """
  return jnp.arctan2(center[..., 2], center[..., 0])
