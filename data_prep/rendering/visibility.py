"""Keypoint visibility and the kind of occlusion, from rendered depth.

A keypoint is tested along its own camera ray: the rasteriser renders the
exact (sub-pixel) position it projects to, i.e. the depth buffer of a
one-pixel window centred on it, and the keypoint is visible when no surface
lies in front of it by more than

    tolerance = absolute_tolerance + relative_tolerance * keypoint depth

(defaults 1 cm + 0.1% of the depth). Keypoints of the procedural cars and of
proxy meshes lie on their surface, so the first surface along a visible
keypoint's ray is the keypoint itself, up to float32 error (about 1e-6 of
the depth); the tolerance absorbs that error and annotations a few
millimetres off the surface, and is far below the thickness of any part that
can hide a keypoint. Testing the ray itself rather than the centre of the
pixel it falls in keeps the label independent of the image resolution.

A keypoint that is not visible is classified by what its ray hits first
(`occlusion_kind` of docs/design.md): its own object (self-occlusion),
another vehicle, or any other object (poles, signs, pedestrians, scenery),
read from the kind that the scene gives each object id. A keypoint that
projects outside the frame or lies behind the camera is truncated and
unlabelled (visibility 0).

`ray_cast` is an independent Moller-Trumbore intersection in float64
numpy, used to check the rasterised labels.

Labels use the dataset codes of `occnet_jax.labels` (`Visibility`,
`OcclusionKind`).

Public API:
  ObjectKind: VEHICLE, POLE, SIGN, PEDESTRIAN, SCENERY (scene object tags)
  keypoint_visibility(triangles, camera, keypoints_3d, object_id,
      object_kinds, image_size, ...) -> (visibility (K,), occlusion_kind (K,))
  views_keypoint_visibility(triangles, cameras, keypoints_3d, object_ids,
      object_kinds, image_size) -> (visibility (V, ..., K), kind (V, ..., K))
  classify_keypoints(in_frame, keypoint_depth, hit_depth, hit_object,
      object_id, object_kinds, ...) -> (visibility, occlusion_kind)
  ray_cast(corners, origins, directions) -> (distance (N,), face (N,))
  keypoint_visibility_by_ray_cast(mesh, camera, keypoints_3d, object_id,
      object_kinds, image_size, ...) -> (visibility, occlusion_kind)
  views_keypoint_visibility_by_ray_cast(mesh, cameras, keypoints_3d,
      object_ids, object_kinds, image_size) -> as views_keypoint_visibility
"""

import enum
import functools

import jax
import jax.numpy as jnp
import numpy as np

from data_prep.rendering import rasterizer
from occnet_jax import labels
from occnet_jax import mesh as mesh_lib
from occnet_jax.geometry import cameras as cameras_lib

ABSOLUTE_TOLERANCE = 0.01
RELATIVE_TOLERANCE = 1e-3


class ObjectKind(enum.IntEnum):
  """What a scene object is; only VEHICLE is told apart when classifying."""
  VEHICLE = 0
  POLE = 1
  SIGN = 2
  PEDESTRIAN = 3
  SCENERY = 4


def classify_keypoints(in_frame, keypoint_depth, hit_depth, hit_object,
                       object_id, object_kinds, *,
                       absolute_tolerance=ABSOLUTE_TOLERANCE,
                       relative_tolerance=RELATIVE_TOLERANCE):
  """Visibility codes from what each keypoint's ray hits first.

  Args:
    in_frame: (K,) bool, the keypoint projects inside the image and lies in
      front of the camera.
    keypoint_depth: (K,) depth of the keypoints.
    hit_depth: (K,) depth of the first surface on each ray (inf for none).
    hit_object: (K,) object id of that surface (any value for none).
    object_id: id of the keypoints' own object, scalar or (K,).
    object_kinds: (num_objects,) `ObjectKind` of each object id.
    absolute_tolerance, relative_tolerance: see the module docstring.

  Returns:
    (visibility (K,) int32 `labels.Visibility`, occlusion_kind (K,) int32
    `labels.OcclusionKind`).
  """
  tolerance = absolute_tolerance + relative_tolerance * keypoint_depth
  visible = hit_depth >= keypoint_depth - tolerance
  object_kinds = jnp.asarray(object_kinds)
  occluder_kind = object_kinds[jnp.clip(hit_object, 0,
                                        object_kinds.shape[0] - 1)]
  occlusion_kind = jnp.select(
      [~in_frame, visible, hit_object == object_id,
       occluder_kind == ObjectKind.VEHICLE],
      [labels.OcclusionKind.TRUNCATION, labels.OcclusionKind.VISIBLE,
       labels.OcclusionKind.SELF, labels.OcclusionKind.OTHER_VEHICLE],
      labels.OcclusionKind.OTHER_OBJECT)
  visibility = jnp.select(
      [~in_frame, visible],
      [labels.Visibility.UNLABELLED, labels.Visibility.VISIBLE],
      labels.Visibility.OCCLUDED)
  return visibility.astype(jnp.int32), occlusion_kind.astype(jnp.int32)


def _project_in_frame(camera, keypoints_3d, image_size, near):
  pixels, depth = cameras_lib.project(camera, keypoints_3d)
  width, height = image_size
  in_frame = ((depth > near) & (pixels[:, 0] >= 0) & (pixels[:, 0] < width)
              & (pixels[:, 1] >= 0) & (pixels[:, 1] < height))
  return pixels, depth, in_frame


def keypoint_visibility(triangles: mesh_lib.Triangles, camera, keypoints_3d,
                        object_id, object_kinds, image_size, *,
                        near=rasterizer.DEFAULT_NEAR,
                        absolute_tolerance=ABSOLUTE_TOLERANCE,
                        relative_tolerance=RELATIVE_TOLERANCE):
  """Visibility of one object's keypoints in one view (pure jax, vmap-able).

  Args:
    triangles: the whole scene as `Triangles` (same frame as the camera).
    camera: (3, 4) full-frame camera.
    keypoints_3d: (K, 3) keypoints in that frame.
    object_id: the keypoints' object id in `triangles.object_ids`, scalar or
      (K,) (keypoints of several objects tested at once).
    object_kinds: (num_objects,) `ObjectKind` per object id.
    image_size: (width, height) of the frame.
    near: near-plane depth of the renderer.
    absolute_tolerance, relative_tolerance: see the module docstring.

  Returns:
    (visibility (K,) int32, occlusion_kind (K,) int32).
  """
  camera = jnp.asarray(camera, jnp.float32)
  keypoints_3d = jnp.asarray(keypoints_3d, jnp.float32)
  pixels, depth, in_frame = _project_in_frame(camera, keypoints_3d,
                                              image_size, near)
  # Behind the camera the projection is meaningless; those rays are not
  # used (in_frame is False).
  pixels = jnp.where(in_frame[:, None], pixels, 0.0)
  hit_triangle, hit_depth = rasterizer.rasterize_points(
      triangles, camera, pixels, near=near)
  hit_object = jnp.asarray(triangles.object_ids)[jnp.maximum(hit_triangle, 0)]
  return classify_keypoints(
      in_frame, depth, hit_depth, jnp.where(hit_triangle >= 0, hit_object, -1),
      object_id, object_kinds, absolute_tolerance=absolute_tolerance,
      relative_tolerance=relative_tolerance)


def _flatten_objects(keypoints_3d, object_ids):
  """(M, 3) points and their (M,) object ids from (..., K, 3) and (...)."""
  object_shape = keypoints_3d.shape[:-1]
  ids = jnp.broadcast_to(jnp.asarray(object_ids)[..., None], object_shape)
  return keypoints_3d.reshape(-1, 3), ids.reshape(-1), object_shape


@functools.partial(jax.jit, static_argnames=('image_size',))
def views_keypoint_visibility(triangles: mesh_lib.Triangles, cameras,
                              keypoints_3d, object_ids, object_kinds,
                              image_size):
  """`keypoint_visibility` of several objects in several views, jitted.

  Views are processed one after the other (`lax.map`): each tests every
  triangle against every keypoint, so memory stays that of one view.

  Args:
    triangles: the whole scene as `Triangles`.
    cameras: (V, 3, 4) full-frame cameras.
    keypoints_3d: (..., K, 3) keypoints, the leading axes index objects.
    object_ids: (...) object id of each keypoint set.
    object_kinds: (num_objects,) `ObjectKind` per object id.
    image_size: (width, height) of the frames (static).

  Returns:
    (visibility (V, ..., K) int32, occlusion_kind (V, ..., K) int32).
  """
  cameras = jnp.asarray(cameras, jnp.float32)
  points, ids, object_shape = _flatten_objects(
      jnp.asarray(keypoints_3d, jnp.float32), object_ids)
  visibility, occlusion_kind = jax.lax.map(
      lambda camera: keypoint_visibility(triangles, camera, points, ids,
                                         object_kinds, image_size),
      cameras)
  return (visibility.reshape(cameras.shape[:1] + object_shape),
          occlusion_kind.reshape(cameras.shape[:1] + object_shape))


def ray_cast(corners, origins, directions, t_min=0.0, eps=1e-12):
  """First intersections of rays with triangles (Moller-Trumbore, float64).

  Both sides of every triangle are hit.

  Args:
    corners: (T, 3, 3) triangle vertices.
    origins: (N, 3) ray origins.
    directions: (N, 3) ray directions (any length: distances are in its
      units).
    t_min: scalar or (N,): hits at t <= t_min are ignored.
    eps: determinant below which a ray is parallel to a triangle.

  Returns:
    (distance (N,) float64: the smallest t > t_min with origin + t direction on
    a triangle, inf if none; face (N,) int64 index of that triangle, -1 if
    none).
  """
  corners = np.asarray(corners, np.float64)
  origins = np.asarray(origins, np.float64)[:, None]
  directions = np.asarray(directions, np.float64)[:, None]
  v0 = corners[None, :, 0]
  edge1 = corners[None, :, 1] - v0
  edge2 = corners[None, :, 2] - v0
  p = np.cross(directions, edge2)
  det = np.sum(edge1 * p, axis=-1)
  parallel = np.abs(det) < eps
  inv_det = 1.0 / np.where(parallel, 1.0, det)
  s = origins - v0
  u = np.sum(s * p, axis=-1) * inv_det
  q = np.cross(s, edge1)
  v = np.sum(directions * q, axis=-1) * inv_det
  t = np.sum(edge2 * q, axis=-1) * inv_det
  t_min = np.broadcast_to(np.asarray(t_min, np.float64), origins.shape[:1])
  hit = (~parallel & (u >= 0) & (v >= 0) & (u + v <= 1)
         & (t > t_min[:, None]))
  t = np.where(hit, t, np.inf)
  face = np.argmin(t, axis=-1)
  distance = np.take_along_axis(t, face[:, None], axis=-1)[:, 0]
  return distance, np.where(np.isfinite(distance), face, -1)


def keypoint_visibility_by_ray_cast(mesh: mesh_lib.Mesh, camera, keypoints_3d,
                                    object_id, object_kinds, image_size, *,
                                    near=rasterizer.DEFAULT_NEAR,
                                    absolute_tolerance=ABSOLUTE_TOLERANCE,
                                    relative_tolerance=RELATIVE_TOLERANCE):
  """`keypoint_visibility` computed by ray casting instead (for checks).

  Args:
    mesh: the whole scene.
    camera: (3, 4) full-frame camera.
    keypoints_3d: (K, 3) keypoints.
    object_id, object_kinds, image_size, near, absolute_tolerance,
      relative_tolerance: as for `keypoint_visibility`.

  Returns:
    (visibility (K,) int32, occlusion_kind (K,) int32).
  """
  camera = np.asarray(camera, np.float64)
  keypoints_3d = np.asarray(keypoints_3d, np.float64)
  _, depth, in_frame = jax.tree.map(
      np.asarray, _project_in_frame(camera, keypoints_3d, image_size, near))
  center = np.asarray(cameras_lib.camera_center(camera), np.float64)
  directions = keypoints_3d - center
  # t is a fraction of the way to the keypoint, whose depth is `depth`;
  # the renderer draws nothing nearer than `near`.
  distance, face = ray_cast(
      mesh.corners, np.broadcast_to(center, directions.shape), directions,
      t_min=near / np.maximum(depth, near))
  hit_depth = np.where(face >= 0, distance * depth, np.inf)
  hit_object = np.where(face >= 0, mesh.object_ids[np.maximum(face, 0)], -1)
  return classify_keypoints(
      in_frame, depth, hit_depth, hit_object, object_id, object_kinds,
      absolute_tolerance=absolute_tolerance,
      relative_tolerance=relative_tolerance)


def views_keypoint_visibility_by_ray_cast(mesh: mesh_lib.Mesh, cameras,
                                          keypoints_3d, object_ids,
                                          object_kinds, image_size):
  """`views_keypoint_visibility` computed by ray casting (for checks).

  Args:
    mesh: the whole scene.
    cameras, keypoints_3d, object_ids, object_kinds, image_size: as for
      `views_keypoint_visibility`.

  Returns:
    (visibility (V, ..., K) int32, occlusion_kind (V, ..., K) int32), numpy.
  """
  points, ids, object_shape = _flatten_objects(
      np.asarray(keypoints_3d, np.float64), object_ids)
  ids = np.asarray(ids)
  visibility, occlusion_kind = np.asarray([
      keypoint_visibility_by_ray_cast(mesh, camera, points, ids, object_kinds,
                                      image_size)
      for camera in cameras]).transpose(1, 0, 2)
  return (visibility.reshape(visibility.shape[:1] + object_shape),
          occlusion_kind.reshape(occlusion_kind.shape[:1] + object_shape))
