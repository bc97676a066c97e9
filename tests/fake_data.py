"""A tiny, geometrically exact multi-view car dataset for tests (TFDS).

Each car is the category's mean shape scaled per axis, seen by cameras on a
ring around it; keypoints are exact projections, a keypoint is occluded when
it faces away from the camera (its side of the car, front or back, points
away), and the crops show a coloured dot on every visible keypoint, so a
heatmap head can learn something in a few steps. Records are written with
`data_prep.records` (the builders' own record), as array_record files that
`tfds.data_source` reads from files: the builder is not registered, so
subprocesses read the dataset without importing this module.
"""

import cv2
import numpy as np
import tensorflow_datasets as tfds

from data_prep import records
from occnet_jax import cropping
from occnet_jax import geometry
from occnet_jax import labels
from occnet_jax.categories import car as car_lib

IMAGE_SIZE = (160, 120)
FOCAL = 120.0
NAME = 'fake_cars'


def _car_views(rng: np.random.Generator, num_views: int,
               crop_size: int) -> tuple[list[records.View], np.ndarray]:
  category = car_lib.CAR
  shape = category.mean_shape * rng.uniform(0.9, 1.1, size=3)
  width, height = IMAGE_SIZE
  intrinsics = np.asarray(geometry.intrinsics_matrix(
      FOCAL, np.array([width / 2, height / 2])))
  colours = (np.stack(np.meshgrid([60, 160, 250], [60, 250], [90, 250]),
                      -1).reshape(-1, 3)[:category.num_keypoints])
  views = []
  azimuths = rng.uniform(0, 2 * np.pi) + np.arange(num_views) * (
      2 * np.pi / num_views) + rng.uniform(-0.3, 0.3, num_views)
  for azimuth in azimuths:
    elevation = rng.uniform(0.15, 0.5)
    distance = rng.uniform(10.0, 13.0)
    eye = distance * np.array([np.cos(azimuth) * np.cos(elevation),
                               np.sin(elevation),
                               np.sin(azimuth) * np.cos(elevation)])
    rotation, translation = geometry.look_at(eye, np.zeros(3))
    camera = np.asarray(geometry.projection_matrix(
        intrinsics, rotation, translation), np.float32)
    pixels, _ = geometry.project(camera, shape)
    pixels = np.asarray(pixels, np.float32)
    # Outward direction of a keypoint: its lateral side and its end.
    outward = shape * np.array([1.0 / 2.25, 0.0, 1.0 / 0.9])
    facing = np.sum(outward * (eye - shape), -1) > 0
    visibility = np.where(facing, labels.Visibility.VISIBLE,
                          labels.Visibility.OCCLUDED).astype(np.int32)
    image = np.full((height, width, 3), 40, np.uint8)
    for point, colour, seen in zip(pixels, colours, facing):
      if seen:
        cv2.circle(image, tuple(np.round(point).astype(int)), 3,
                   tuple(int(c) for c in colour), -1)
    box = cropping.padded_box(pixels)
    views.append(records.View(
        crop=cropping.extract_crop(image, box, crop_size), box=box,
        keypoints=pixels, visibility=visibility,
        occlusion_kind=np.where(facing, labels.OcclusionKind.VISIBLE,
                                labels.OcclusionKind.SELF).astype(np.int32),
        camera=camera, camera_error=0.0, image_size=IMAGE_SIZE))
  return views, shape


class FakeCars(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Tiny synthetic multi-view cars (module docstring)."""

  VERSION = tfds.core.Version('1.0.0')

  def __init__(self, *, num_views: int, crop_size: int,
               split_sizes: dict[str, int], seed: int, **kwargs):
    self._num_views = num_views
    self._crop_size = crop_size
    self._split_sizes = split_sizes
    self._seed = seed
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, features=records.features(
        self._num_views, car_lib.CAR.num_keypoints, self._crop_size))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(index, size)
            for index, (split, size) in enumerate(self._split_sizes.items())}

  def _generate_examples(self, split_index: int, size: int):
    rng = np.random.default_rng([self._seed, split_index])
    for index in range(size):
      views, shape = _car_views(rng, self._num_views, self._crop_size)
      car_id = f'car{split_index}_{index}'
      yield car_id, records.make_example(car_id, views, shape)


def make_dataset(data_dir: str, *, num_views: int = 4, crop_size: int = 16,
                 split_sizes: dict[str, int] | None = None,
                 seed: int = 0) -> str:
  """Writes the dataset into `data_dir`; returns its TFDS name."""
  builder = FakeCars(num_views=num_views, crop_size=crop_size,
                     split_sizes=split_sizes or {'train': 12, 'validation': 4,
                                                 'test': 6},
                     seed=seed, data_dir=data_dir,
                     file_format=tfds.core.FileFormat.ARRAY_RECORD)
  builder.download_and_prepare()
  return NAME
