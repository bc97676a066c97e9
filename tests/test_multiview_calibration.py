"""Tests of `data_prep.multiview_calibration` on generated intersections.

A scene: `scenes.sample_cameras` cameras (focal lengths 0.55-1.0 image
widths) around an intersection and procedural cars of every kind at random
places and headings on its roads, at several frames. Each car's keypoints
are projected into every camera; a view counts when the car is in front and
at least 8 of its keypoints are inside the image, and each of those is
visible with probability 0.75, labelled with Gaussian noise of 0.015 L per
axis (the simulated annotator's visible spread) or exactly.

The views of one camera at one frame are one shot (`CarView.shot`).

The tolerances, each with a margin of about 1.5-2x over the worst of 30
seeds measured with the bundle adjustment (noisy labels: hidden keypoints
at most 1.4% of L median, 4.2% 90th percentile; focal lengths at most 3.2%
median; exact labels: 0.23% median, 3.1% 90th percentile, focal lengths
0.0% median; failed views at most 6.6%; with the second adjustment
seeds 7000-7029 pass too; seed 1297824896 failed 7 of 54 views, a car
the incremental poses left with 4 triangulated keypoints, until the
scene's cars were triangulated again before the second adjustment, after
which it and seeds 8000-8029 and 9000-9029 pass):
- cameras: the true car, placed in the reconstruction's frame (a
  similarity), projects its hidden keypoints through the recovered cameras
  a median of at most 2.5% of L (noisy labels; the issue's target for the
  trifocal targets is 3%) or 0.5% (exact labels) from their true
  positions, with a 90th percentile of at most 8% of L;
- focal lengths: median relative error over the cameras at most 6% (noisy
  labels) or 1% (exact labels);
- at most 10% of the views fail to converge.
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
            visible=visible, image_size=IMAGE_SIZE, shot=(c, frame)))
        true_cameras.append((camera, pixels, scale))
  focal = {str(c): intrinsics[c, 0, 0] for c in range(NUM_CAMERAS)}
  return views, true_cameras, shapes, focal


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


def _focal_errors(focal, calibration):
  return np.array([abs(calibration.focal_lengths[camera] / value - 1)
                   for camera, value in focal.items()])


@pytest.fixture(scope='module')
def noisy(module_seed):
  """A scene with noisy labels and two bad views, and its calibration."""
  rng = np.random.default_rng(module_seed)
  views, true_cameras, shapes, focal = _scene(rng)
  good = views[0]
  # A view of labels anywhere in the image, and one with 3 visible labels.
  scattered = multiview_calibration.CarView(
      camera='scattered', car=good.car,
      keypoints=rng.uniform(0, IMAGE_SIZE, good.keypoints.shape),
      visible=np.ones(len(good.visible), bool), image_size=IMAGE_SIZE)
  few = multiview_calibration.CarView(
      camera='few', car=good.car, keypoints=good.keypoints,
      visible=np.arange(len(good.visible)) < 3, image_size=IMAGE_SIZE)
  calibration = multiview_calibration.calibrate(
      views + [scattered, few], MEAN_SHAPE)
  return views, true_cameras, shapes, focal, calibration


@pytest.fixture(scope='module')
def exact(module_seed):
  """A scene with exact labels and its calibration."""
  rng = np.random.default_rng(module_seed + 1)
  views, true_cameras, shapes, focal = _scene(rng, label_sigma=0.0)
  return views, true_cameras, shapes, focal, multiview_calibration.calibrate(
      views, MEAN_SHAPE)


@pytest.mark.parametrize('scene, max_median, max_focal_median', [
    ('noisy', 0.025, 0.06), ('exact', 0.005, 0.01)])
def test_cameras_and_focal_lengths_are_recovered(request, scene, max_median,
                                                 max_focal_median):
  views, true_cameras, shapes, focal, calibration = request.getfixturevalue(
      scene)
  errors = _hidden_errors(views, true_cameras, shapes, calibration)
  focal_errors = _focal_errors(focal, calibration)
  print(f'hidden keypoints: median {np.median(errors):.4f} L, 90th '
        f'percentile {np.percentile(errors, 90):.4f} L; focal errors '
        f'{np.round(focal_errors, 3)}')
  assert np.median(errors) <= max_median
  assert np.percentile(errors, 90) <= 0.08
  assert np.median(focal_errors) <= max_focal_median
  # The noisy scene's two bad views come after its generated ones.
  failed = [index for index in calibration.failures if index < len(views)]
  assert len(failed) <= 0.1 * len(views)


def test_bad_views_are_reported_and_skipped(noisy):
  views, _, _, _, calibration = noisy
  scattered, few = len(views), len(views) + 1
  assert calibration.failures[scattered] in ('not_converged', 'pnp_failed')
  assert calibration.failures[few] == 'too_few_points'
  assert scattered not in calibration.cameras
  assert few not in calibration.cameras
  # A camera with too few views keeps the first focal length.
  assert calibration.focal_lengths['scattered'] == IMAGE_SIZE[0]


def test_converged_views_reproject_their_labels(noisy):
  views, _, _, _, calibration = noisy
  assert set(calibration.cameras) | set(calibration.failures) == set(
      range(len(views) + 2))
  for index, camera in calibration.cameras.items():
    view = views[index]
    shape = calibration.shapes[view.car]
    homogeneous = shape @ camera[:, :3].T + camera[:, 3]
    pixels = homogeneous[:, :2] / homogeneous[:, 2:]
    error = np.linalg.norm(pixels - view.keypoints, axis=-1)[view.visible]
    np.testing.assert_allclose(error.mean(),
                               calibration.reprojection_errors[index],
                               rtol=1e-6)
    assert error.mean() <= multiview_calibration.MAX_REPROJECTION_ERROR * (
        view.scale)
