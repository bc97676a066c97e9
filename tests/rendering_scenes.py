"""Random cameras and small scenes shared by the rendering tests."""

import numpy as np

from data_prep.rendering import visibility
from occnet_jax import mesh as mesh_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.geometry import cameras


def orbit_cameras(rng, num_views, image_size, *, target=(0.0, 0.0, 0.0),
                  distance_range=(5.0, 14.0), elevation_range=(-0.1, 1.2),
                  focal_range=(300.0, 900.0), aim_jitter=0.5):
  """(num_views, 3, 4) float32 cameras looking at `target` from all around.

  Principal points are at the image centre; the optical axes pass within
  `aim_jitter` metres of the target, so objects are sometimes cut by the
  frame.
  """
  azimuth = rng.uniform(0, 2 * np.pi, num_views)
  elevation = rng.uniform(*elevation_range, num_views)
  distance = rng.uniform(*distance_range, num_views)
  direction = np.stack([np.cos(elevation) * np.cos(azimuth),
                        np.sin(elevation),
                        np.cos(elevation) * np.sin(azimuth)], -1)
  target = np.asarray(target, np.float64)
  eye = target + distance[:, None] * direction
  aim = target + rng.uniform(-aim_jitter, aim_jitter, (num_views, 3))
  rotation, translation = cameras.look_at(eye, aim)
  width, height = image_size
  intrinsics = cameras.intrinsics_matrix(
      rng.uniform(*focal_range, num_views),
      np.broadcast_to([width / 2, height / 2], (num_views, 2)))
  return np.asarray(cameras.projection_matrix(intrinsics, rotation,
                                              translation), np.float32)


def street_scene(rng):
  """Two cars side by side and a pole between them and the +x viewers.

  Returns:
    (mesh, cars keypoints (2, 12, 3), object kinds (3,)): objects 0 and 1
    are the cars, 2 the pole.
  """
  meshes, points = [], []
  for object_id, z in enumerate((-1.4, 1.4)):
    car = car_lib.random_car(rng, object_id=object_id)
    offset = np.array([rng.uniform(-1.0, 1.0), -car.ground_y, z])
    meshes.append(mesh_lib.transform(car.mesh, np.eye(3), offset))
    points.append(car.keypoints + offset)
  pole = mesh_lib.with_object_id(
      mesh_lib.box((0.25, 4.0, 0.25), (3.5, 2.0, 0.0), (0.5, 0.5, 0.5)), 2)
  kinds = np.array([visibility.ObjectKind.VEHICLE] * 2
                   + [visibility.ObjectKind.POLE], np.int32)
  return mesh_lib.merge(meshes + [pole]), np.stack(points), kinds


def pixel_rays(camera, pixels):
  """(origin (3,), directions (N, 3)) of the rays through pixel positions."""
  camera = np.asarray(camera, np.float64)
  origin = np.asarray(cameras.camera_center(camera), np.float64)
  homogeneous = np.concatenate([pixels, np.ones((len(pixels), 1))], -1)
  return origin, np.linalg.solve(camera[:, :3], homogeneous.T).T
