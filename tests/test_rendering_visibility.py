"""Tests of rendering.visibility: rasterised labels against a ray cast."""

import numpy as np

from data_prep.rendering import proxy_mesh
from data_prep.rendering import visibility
from occnet_jax import labels
from occnet_jax import mesh as mesh_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.geometry import cameras
from tests import rendering_scenes

IMAGE_SIZE = (320, 240)
Kind = labels.OcclusionKind
_VEHICLE_ONLY = np.array([visibility.ObjectKind.VEHICLE], np.int32)


def _views_visibility(*args, image_size):
  return np.asarray(visibility.views_keypoint_visibility(*args, image_size))


def _ray_cast_visibility(*args):
  return np.asarray(visibility.views_keypoint_visibility_by_ray_cast(
      *args, IMAGE_SIZE))


def _look_at_camera(eye, target, focal):
  rotation, translation = cameras.look_at(np.asarray(eye, np.float64),
                                          np.asarray(target, np.float64))
  intrinsics = cameras.intrinsics_matrix(
      focal, np.array(IMAGE_SIZE, np.float64) / 2)
  return np.asarray(cameras.projection_matrix(intrinsics, rotation,
                                              translation), np.float32)


def test_labels_agree_with_ray_cast_on_random_cars_and_views(rng):
  agree = total = 0
  counts = np.zeros(len(Kind), int)
  for kind in car_lib.CAR_KINDS:
    for _ in range(4):
      car = car_lib.random_car(rng, kind)
      triangles = mesh_lib.to_triangles(car.mesh,
                                        car_lib.TRIANGLE_BUDGET)
      views = rendering_scenes.orbit_cameras(
          rng, 16, IMAGE_SIZE, target=(0.0, 0.0, 0.0),
          distance_range=(4.0, 15.0), elevation_range=(-0.2, 1.4),
          focal_range=(150.0, 600.0), aim_jitter=2.0)
      rendered = np.asarray(_views_visibility(
          triangles, views, car.keypoints, 0, _VEHICLE_ONLY,
          image_size=IMAGE_SIZE))
      cast = _ray_cast_visibility(car.mesh, views, car.keypoints, 0,
                                  _VEHICLE_ONLY)
      same = np.all(rendered == cast, axis=0)
      agree += same.sum()
      total += same.size
      counts += np.bincount(cast[1].ravel(), minlength=len(Kind))
  print(f'visibility agreement with the ray cast: {agree / total:.5f} of '
        f'{total} keypoints; kinds {dict(zip(Kind.__members__, counts))}')
  assert agree / total > 0.995
  # The sample holds visible, self-occluded and truncated keypoints.
  assert min(counts[Kind.VISIBLE], counts[Kind.SELF],
             counts[Kind.TRUNCATION]) > 0.02 * total


def test_proxy_mesh_labels_agree_with_ray_cast(rng):
  agree = total = 0
  for _ in range(6):
    shape = car_lib.random_car(rng).keypoints
    hull = proxy_mesh.proxy_mesh(shape, car_lib.CAR, (0.5, 0.5, 0.5))
    triangles = mesh_lib.to_triangles(hull,
                                      proxy_mesh.triangle_budget(car_lib.CAR))
    views = rendering_scenes.orbit_cameras(rng, 16, IMAGE_SIZE,
                                           focal_range=(150.0, 400.0))
    rendered = np.asarray(_views_visibility(
        triangles, views, shape, 0, _VEHICLE_ONLY, image_size=IMAGE_SIZE))
    cast = _ray_cast_visibility(hull, views, shape, 0, _VEHICLE_ONLY)
    same = np.all(rendered == cast, axis=0)
    agree += same.sum()
    total += same.size
    # Around a car every keypoint is seen from some view and hidden in one.
    assert np.all(np.any(cast[1] == Kind.VISIBLE, axis=0))
  print(f'proxy visibility agreement: {agree / total:.5f} of {total}')
  assert agree / total > 0.995


def test_side_and_front_views_see_the_expected_parts(rng):
  car = car_lib.random_car(rng)
  triangles = mesh_lib.to_triangles(car.mesh, car_lib.TRIANGLE_BUDGET)
  views = np.stack([
      _look_at_camera((0.0, 0.0, -12.0), (0.0, 0.0, 0.0), 150.0),  # right
      _look_at_camera((0.0, 0.0, 12.0), (0.0, 0.0, 0.0), 150.0),  # left
      _look_at_camera((14.0, 0.0, 0.0), (0.0, 0.0, 0.0), 150.0),  # front
      _look_at_camera((-14.0, 0.0, 0.0), (0.0, 0.0, 0.0), 150.0),  # back
  ])
  codes, kinds = map(np.asarray, _views_visibility(
      triangles, views, car.keypoints, 0, _VEHICLE_ONLY,
      image_size=IMAGE_SIZE))
  right_wheels, left_wheels = [0, 2], [1, 3]
  headlights, back_lights = [4, 5], [6, 7]
  np.testing.assert_array_equal(kinds[0, right_wheels], Kind.VISIBLE)
  np.testing.assert_array_equal(kinds[0, left_wheels], Kind.SELF)
  np.testing.assert_array_equal(kinds[1, left_wheels], Kind.VISIBLE)
  np.testing.assert_array_equal(kinds[1, right_wheels], Kind.SELF)
  np.testing.assert_array_equal(kinds[2, headlights], Kind.VISIBLE)
  np.testing.assert_array_equal(kinds[2, back_lights], Kind.SELF)
  np.testing.assert_array_equal(kinds[3, back_lights], Kind.VISIBLE)
  np.testing.assert_array_equal(kinds[3, headlights], Kind.SELF)
  np.testing.assert_array_equal(codes, np.where(
      kinds == Kind.VISIBLE, labels.Visibility.VISIBLE,
      labels.Visibility.OCCLUDED))


def test_other_vehicles_objects_and_truncation(rng):
  near_car = car_lib.random_car(rng, object_id=1)
  far_car = car_lib.random_car(rng, object_id=0)
  # The far car at the origin, the near one 5 m towards the camera (+z).
  near_offset = np.array([0.0, 0.0, 5.0])
  eye = np.array([0.0, -far_car.ground_y + 0.4, 16.0])
  # A short post on the line of sight to the near car's left front wheel,
  # below the lines of sight to the far car.
  near_keypoints = near_car.keypoints + near_offset
  wheel = near_keypoints[1]
  post_at = eye + 0.6 * (wheel - eye)
  post = mesh_lib.with_object_id(mesh_lib.box((0.2, 0.3, 0.2), post_at), 2)
  scene = mesh_lib.merge([far_car.mesh, mesh_lib.transform(
      near_car.mesh, np.eye(3), near_offset), post])
  kinds_of_objects = np.array([visibility.ObjectKind.VEHICLE] * 2
                              + [visibility.ObjectKind.SIGN], np.int32)
  triangles = mesh_lib.to_triangles(scene, 2 * car_lib.TRIANGLE_BUDGET
                                    + 12)
  # A wide and a narrow camera at the same place: the narrow one cuts the
  # cars' ends off.
  views = np.stack([_look_at_camera(eye, (0.0, 0.0, 2.0), 120.0),
                    _look_at_camera(eye, (0.0, 0.0, 2.0), 900.0)])
  results = {}
  for object_id, points in ((0, far_car.keypoints), (1, near_keypoints)):
    rendered = np.asarray(_views_visibility(
        triangles, views, points, object_id, kinds_of_objects,
        image_size=IMAGE_SIZE))
    cast = _ray_cast_visibility(scene, views, points, object_id,
                                kinds_of_objects)
    np.testing.assert_array_equal(rendered, cast)
    results[object_id] = rendered[1]
  # Both cars at once give the per-car labels.
  both = _views_visibility(triangles, views,
                           np.stack([far_car.keypoints, near_keypoints]),
                           np.array([0, 1]), kinds_of_objects,
                           image_size=IMAGE_SIZE)
  np.testing.assert_array_equal(both[1], np.stack([results[0], results[1]], 1))
  far_kinds, near_kinds = results[0], results[1]
  # The far car's left wheels are behind the near car.
  np.testing.assert_array_equal(far_kinds[0, [1, 3]], Kind.OTHER_VEHICLE)
  assert near_kinds[0, 1] == Kind.OTHER_OBJECT
  assert near_kinds[0, 3] == Kind.VISIBLE  # left back wheel
  # The narrow view truncates some keypoints and leaves them unlabelled.
  truncated = near_kinds[1] == Kind.TRUNCATION
  assert 0 < truncated.sum() < 12
  pixels, _ = cameras.project(views[1], near_keypoints)
  outside = np.any((np.asarray(pixels) < 0)
                   | (np.asarray(pixels) >= IMAGE_SIZE), axis=-1)
  np.testing.assert_array_equal(truncated, outside)
  np.testing.assert_array_equal(
      np.asarray(_views_visibility(triangles, views, near_keypoints, 1,
                                   kinds_of_objects,
                                   image_size=IMAGE_SIZE))[0, 1][truncated],
      labels.Visibility.UNLABELLED)


def test_keypoints_behind_the_camera_are_truncated(rng):
  car = car_lib.random_car(rng)
  triangles = mesh_lib.to_triangles(car.mesh, car_lib.TRIANGLE_BUDGET)
  # Camera inside the cabin, looking forward: the back of the car is
  # behind it.
  camera = _look_at_camera((-0.2, 0.3, 0.0), (10.0, 0.3, 0.0), 100.0)
  codes, kinds = map(np.asarray, visibility.keypoint_visibility(
      triangles, camera, car.keypoints, 0, _VEHICLE_ONLY, IMAGE_SIZE))
  behind = [2, 3, 6, 7, 10, 11]
  np.testing.assert_array_equal(kinds[behind], Kind.TRUNCATION)
  np.testing.assert_array_equal(codes[behind],
                                labels.Visibility.UNLABELLED)
