"""Tests of `data_prep.multiview_calibration` on generated intersections.

A scene: `scenes.sample_cameras` cameras (focal lengths 0.55-1.0 image
widths) around an intersection and procedural cars of every kind at random
places and headings on its roads, at several frames. Each car's keypoints
are projected into every camera; a view counts when the car is in front and
at least 8 of its keypoints are inside the image, and each of those is
visible with probability 0.75, labelled with Gaussian noise of 0.015 L per
axis (the simulated annotator's visible spread).
"""

import cv2
import numpy as np
import pytest

from data_prep import multiview_calibration
from data_prep import scenes
from occnet_jax.categories import car as car_lib

IMAGE_SIZE = (1280, 720)
NUM_CAMERAS = 6
NUM_FRAMES = 3
CARS_PER_FRAME = 4
LABEL_SIGMA = 0.015
MEAN_SHAPE = np.asarray(car_lib.CAR.mean_shape, np.float64)


def _scene(rng, label_sigma=LABEL_SIGMA):
  """(views, true cameras by view, true shapes by car, true focal lengths)."""
  intrinsics, rotation, translation = scenes.sample_cameras(
      rng, NUM_CAMERAS, IMAGE_SIZE)
  street = scenes.Street()
  views, true_cameras, shapes = [], [], {}
  for frame in range(NUM_FRAMES):
    for car in range(CARS_PER_FRAME):
      keypoints = car_lib.random_car(rng).keypoints.astype(np.float64)
      yaw = rng.uniform(0, 2 * np.pi)
      position = np.append(rng.uniform(-street.half_width, street.half_width,
                                       2), 0.0)[[0, 2, 1]]
      pose = scenes.yaw_pose(yaw, position)
      shapes[frame, car] = keypoints
      for c in range(NUM_CAMERAS):
        camera_rotation = rotation[c] @ pose[:3, :3]
        camera = intrinsics[c] @ np.concatenate([
            camera_rotation,
            (rotation[c] @ pose[:3, 3] + translation[c])[:, None]], 1)
        homogeneous = keypoints @ camera[:, :3].T + camera[:, 3]
        if np.any(homogeneous[:, 2] <= 0):
          continue
        pixels = homogeneous[:, :2] / homogeneous[:, 2:]
        inside = np.all((pixels >= 0) & (pixels < IMAGE_SIZE), axis=-1)
        if inside.sum() < 8:
          continue
        visible = inside & (rng.random(len(pixels)) < 0.75)
        scale = np.ptp(pixels[inside], axis=0).max()
        labels = pixels + rng.normal(0.0, label_sigma * scale, pixels.shape)
        views.append(multiview_calibration.CarView(
            camera=str(c), car=(frame, car), keypoints=labels,
            visible=visible, image_size=IMAGE_SIZE))
        true_cameras.append((camera, pixels, scale))
  focal = {str(c): intrinsics[c, 0, 0] for c in range(NUM_CAMERAS)}
  return views, true_cameras, shapes, focal


@pytest.fixture(scope='module')
def calibrated(module_seed):
  rng = np.random.default_rng(module_seed)
  views, true_cameras, shapes, focal = _scene(rng)
  return views, true_cameras, shapes, focal, multiview_calibration.calibrate(
      views, MEAN_SHAPE)


def _hidden_errors(views, true_cameras, shapes, calibration):
  """Reprojection errors (in L) of the true hidden keypoints, by view."""
  errors = []
  for index, camera in calibration.cameras.items():
    view = views[index]
    _, true_pixels, scale = true_cameras[index]
    estimate, true = calibration.shapes[view.car], shapes[view.car]
    # The true car in the reconstruction's frame: images cannot tell its
    # frame and size.
    transform, size = cv2.estimateAffine3D(true, estimate, force_rotation=True)
    aligned = size * true @ transform[:, :3].T + transform[:, 3]
    homogeneous = aligned @ camera[:, :3].T + camera[:, 3]
    pixels = homogeneous[:, :2] / homogeneous[:, 2:]
    errors.append(np.linalg.norm(pixels - true_pixels, axis=-1)[~view.visible]
                  / scale)
  return np.concatenate(errors)
