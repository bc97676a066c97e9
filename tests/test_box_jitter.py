"""Tests of the evaluation's box jitter (evaluation/box_jitter.py)."""

import jax
import numpy as np

from occnet_jax import cropping
from occnet_jax.evaluation import box_jitter


def test_jitter_moves_centre_and_scale_by_sigma(seed):
  rng = np.random.default_rng(seed)
  low = rng.uniform(0, 500, (4000, 2))
  boxes = np.concatenate([low, low + rng.uniform(20, 200, (4000, 2))], -1)
  key = jax.random.key(seed)
  np.testing.assert_allclose(box_jitter.jitter_boxes(boxes, key, 0.0), boxes,
                             atol=1e-3)
  sigma = 0.1
  moved = np.asarray(box_jitter.jitter_boxes(boxes, key, sigma), np.float64)
  size, new_size = boxes[:, 2:] - boxes[:, :2], moved[:, 2:] - moved[:, :2]
  shift = ((moved[:, :2] + moved[:, 2:]) - (boxes[:, :2] + boxes[:, 2:])) / (
      2 * size)
  log_scale = np.log(new_size / size)
  for values in (shift, log_scale):
    np.testing.assert_allclose(values.mean(0), 0.0, atol=0.01)
    np.testing.assert_allclose(values.std(0), sigma, rtol=0.06)


def test_recrop_is_the_crop_of_the_moved_box(seed):
  rng = np.random.default_rng(seed)
  height, width, size = 240, 320, 32
  # A smooth image: bilinear resampling of its crops is close to exact.
  y, x = np.mgrid[:height, :width]
  image = np.stack([x * 0.6, y * 0.8, 100 + 50 * np.sin(x / 40.0)],
                   -1).astype(np.uint8)
  box = np.array([60.0, 50.0, 260.0, 210.0]) + rng.uniform(-5, 5, 4)
  crop = cropping.extract_crop(image, box, size)
  same = box_jitter.recrop(crop[None], box[None], box[None])
  np.testing.assert_array_equal(same[0], crop)
  inner = box + np.array([30.0, 20.0, -40.0, -10.0])
  moved = np.asarray(box_jitter.recrop(crop[None], box[None], inner[None]))[0]
  expected = cropping.extract_crop(image, inner, size).astype(float)
  assert np.abs(moved - expected)[2:-2, 2:-2].max() <= 6
  # Beyond the original box nothing is known: zero.
  beyond = box + np.array([150.0, 0.0, 150.0, 0.0])
  shifted = np.asarray(box_jitter.recrop(crop[None], box[None],
                                         beyond[None]))[0]
  assert not shifted[:, size // 2 + 2:].any()
  assert shifted[:, :size // 4].any()
