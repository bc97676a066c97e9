"""Tests of data_prep.viewpoints: icosphere viewpoints, Car-render cameras."""

import cv2
import numpy as np
import pytest

from data_prep import viewpoints
from occnet_jax.categories import car as car_lib


@pytest.mark.parametrize('level', [0, 1, 2, 3])
def test_icosphere_is_a_uniform_unit_sphere_sampling(level):
  vertices = viewpoints.icosphere_vertices(level)
  assert vertices.shape == (10 * 4**level + 2, 3)
  np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0, atol=1e-12)
  cosines = vertices @ vertices.T
  np.fill_diagonal(cosines, -1.0)
  nearest = np.arccos(np.clip(cosines.max(axis=1), -1, 1))
  # Distinct vertices, and geodesic subdivision keeps spacing near-uniform.
  assert nearest.min() > 0
  assert nearest.max() / nearest.min() < 1.4
  # Centrally symmetric like the icosahedron: the mean is the centre.
  np.testing.assert_allclose(vertices.mean(axis=0), 0.0, atol=1e-12)


def test_view_directions_keep_the_upper_band_of_the_level5_sphere():
  sphere = viewpoints.icosphere_vertices(5)
  directions = viewpoints.view_directions(5, -10.0, 75.0)
  elevation = np.degrees(np.arcsin(directions[:, 1]))
  assert elevation.min() >= -10.0 and elevation.max() <= 75.0
  sphere_elevation = np.degrees(np.arcsin(np.clip(sphere[:, 1], -1, 1)))
  expected = np.sum((sphere_elevation >= -10) & (sphere_elevation <= 75))
  assert len(directions) == expected
  # Near-horizontal views are present, as the paper's Car-render needs.
  assert np.sum(np.abs(elevation) < 2.0) > 100


def test_sampled_cameras_frame_the_object_within_the_ranges(rng):
  sampling = viewpoints.ViewSampling(image_size=(640, 480))
  directions = viewpoints.view_directions(3)
  shape = car_lib.CAR.mean_shape * rng.uniform(0.8, 1.2)
  num_views = 16
  cameras = viewpoints.sample_view_cameras(
      rng, directions, num_views, shape, sampling)
  assert cameras.shape == (num_views, 3, 4)
  homogeneous = np.einsum('vij,kj->vki', cameras[..., :3], shape) + (
      cameras[:, None, :, 3])
  width, height = sampling.image_size
  assert np.all(homogeneous[..., 2] > 0)
  centre = (shape.min(0) + shape.max(0)) / 2
  # The object's centre is in the frame (its ends may leave it: close,
  # steep views of a long car, see `sample_view_cameras`).
  projected = cameras[..., :3] @ centre + cameras[..., 3]
  centre_pixels = projected[:, :2] / projected[:, 2:]
  assert np.all((centre_pixels >= 0) & (centre_pixels < (width, height)))
  extent = np.max(shape.max(0) - shape.min(0))
  for camera in cameras:
    intrinsics, _, centre_h = cv2.decomposeProjectionMatrix(camera)[:3]
    intrinsics /= intrinsics[2, 2]
    focal = intrinsics[0, 0] / width
    assert sampling.focal_range[0] <= focal <= sampling.focal_range[1]
    np.testing.assert_allclose(intrinsics[1, 1], intrinsics[0, 0], rtol=1e-4)
    np.testing.assert_allclose(intrinsics[:2, 2], (width / 2, height / 2),
                               atol=1e-2)
    offset = centre_h[:3, 0] / centre_h[3, 0] - centre
    distance = np.linalg.norm(offset)
    fill = intrinsics[0, 0] * extent / (distance * min(width, height))
    # The look-at jitter moves the camera by at most ~jitter * extent.
    slack = 1 + 2 * sampling.target_jitter * extent / distance
    assert sampling.fill_range[0] / slack <= fill <= (
        sampling.fill_range[1] * slack)
    # Seen from the object centre, the jittered look-at point (at most
    # sqrt(3) * jitter * extent away) tilts the elevation by up to `tilt`.
    tilt = np.degrees(np.arcsin(min(
        1.0, np.sqrt(3) * sampling.target_jitter * extent / distance)))
    elevation = np.degrees(np.arcsin(offset[1] / distance))
    assert -10 - tilt <= elevation <= 75 + tilt, (elevation, tilt)
