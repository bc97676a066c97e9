"""Noiseless multi-view car scenes for the model and loss tests (numpy).

Every car is `categories.car.CAR.mean_shape`, slightly scaled per axis, seen by
pinhole cameras placed around it at random azimuths, elevations, distances
and focal lengths, all looking at the car's origin. Visibility is random
(not rendered): each keypoint of each view is occluded with a fixed
probability, labelled 2, with its true position kept as the label.
"""

import numpy as np

from occnet_jax.categories import car as car_lib

IMAGE_SIZE = (1920, 1080)


def camera_from_eye(eye, focal, image_size=IMAGE_SIZE, facing=1.0):
  """A camera (3, 4) at `eye` looking at the origin (facing=-1: away)."""
  eye = np.asarray(eye, np.float64)
  forward = -facing * eye / np.linalg.norm(eye)
  right = np.cross(forward, [0.0, 1.0, 0.0])
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  rotation = np.stack([right, down, forward])
  intrinsics = np.array([[focal, 0.0, image_size[0] / 2],
                         [0.0, focal, image_size[1] / 2], [0.0, 0.0, 1.0]])
  return intrinsics @ np.concatenate([rotation, -rotation @ eye[:, None]], 1)


def random_camera(rng, image_size=IMAGE_SIZE):
  """A random camera around the origin, looking at it, y down."""
  azimuth = rng.uniform(0.0, 2.0 * np.pi)
  elevation = rng.uniform(np.deg2rad(5.0), np.deg2rad(35.0))
  distance = rng.uniform(8.0, 15.0)
  eye = distance * np.array([np.cos(elevation) * np.cos(azimuth),
                             np.sin(elevation),
                             np.cos(elevation) * np.sin(azimuth)])
  return camera_from_eye(eye, rng.uniform(1000.0, 2000.0), image_size)


def project(camera, points):
  """Pixels (K, 2) of points (K, 3)."""
  homogeneous = points @ camera[:, :3].T + camera[:, 3]
  return homogeneous[:, :2] / homogeneous[:, 2:]


def box_around(pixels):
  """The hull of (K, 2) pixels padded by 10% per side, (x0, y0, x1, y1)."""
  low, high = pixels.min(0), pixels.max(0)
  margin = 0.1 * (high - low)
  return np.concatenate([low - margin, high + margin])


def make_batch(rng, num_cars, num_views, occluded_probability=0.3):
  """A batch in the format of docs/design.md, without crops.

  Args:
    rng: a numpy Generator.
    num_cars: B.
    num_views: V, views per car (all real).
    occluded_probability: chance that a keypoint is labelled occluded.

  Returns:
    The batch dict (float32/int32/bool numpy arrays with leading (B, V)),
    plus `shape_3d` per car.
  """
  category = car_lib.CAR
  k = category.num_keypoints
  batch = dict(
      keypoints=np.zeros((num_cars, num_views, k, 2), np.float32),
      visibility=np.zeros((num_cars, num_views, k), np.int32),
      cameras=np.zeros((num_cars, num_views, 3, 4), np.float32),
      boxes=np.zeros((num_cars, num_views, 4), np.float32),
      view_mask=np.ones((num_cars, num_views), bool),
      shape_3d=np.zeros((num_cars, k, 3), np.float32))
  for car in range(num_cars):
    shape = category.mean_shape * rng.uniform(0.9, 1.1, size=3)
    batch['shape_3d'][car] = shape
    for view in range(num_views):
      camera = random_camera(rng)
      pixels = project(camera, shape)
      batch['keypoints'][car, view] = pixels
      batch['cameras'][car, view] = camera
      batch['boxes'][car, view] = box_around(pixels)
      batch['visibility'][car, view] = np.where(
          rng.uniform(size=k) < occluded_probability, 2, 1)
  batch['true_keypoints'] = batch['keypoints'].copy()
  return batch
