"""Box jitter in evaluation and training (evaluation/box_jitter.py)."""

import jax
import numpy as np

from occnet_jax import boxes as boxes_lib
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


def _blob_batch(rng, num_cars=4, num_views=3, size=32):
  """A batch whose crops show one bright blob, at keypoint 0 (visible).

  Some other keypoints are occluded (visibility 2); the last car's last
  view is padding.
  """
  height, width, num_keypoints = 240, 320, 5
  y, x = np.mgrid[:height, :width] + 0.5  # Pixel centres.
  low = rng.uniform(20, 80, (num_cars, num_views, 2))
  boxes = np.concatenate(
      [low, low + rng.uniform(120, 150, (num_cars, num_views, 2))], -1)
  size_px = boxes[..., 2:] - boxes[..., :2]
  centre = 0.5 * (boxes[..., :2] + boxes[..., 2:])
  keypoints = centre[..., None, :] + rng.uniform(
      -0.3, 0.3, (num_cars, num_views, num_keypoints, 2)) * size_px[
          ..., None, :]
  blob = 5.0
  crops = np.zeros((num_cars, num_views, size, size, 3), np.uint8)
  for car in range(num_cars):
    for view in range(num_views):
      point = keypoints[car, view, 0]
      image = 255 * np.exp(-((x - point[0])**2 + (y - point[1])**2)
                           / (2 * blob**2))
      crops[car, view] = cropping.extract_crop(
          np.repeat(image[..., None], 3, -1).astype(np.uint8),
          boxes[car, view], size)
  visibility = rng.integers(1, 3, (num_cars, num_views, num_keypoints))
  visibility[..., 0] = 1
  view_mask = np.ones((num_cars, num_views), bool)
  view_mask[-1, -1] = False
  return {'crops': crops, 'boxes': boxes.astype(np.float32),
          'keypoints': keypoints.astype(np.float32),
          'visibility': visibility.astype(np.int32),
          'view_mask': view_mask}


def test_train_jitter_moves_the_labels_with_the_box(seed):
  rng = np.random.default_rng(seed)
  batch = _blob_batch(rng)
  jittered = box_jitter.jitter_batch(batch, jax.random.key(seed), 0.05)
  moved = np.asarray(jittered['boxes'])
  real = batch['view_mask']
  assert np.all(np.any(moved != batch['boxes'], -1)[real])
  np.testing.assert_array_equal(moved[~real], batch['boxes'][~real])
  # The labels are full-frame pixels, unchanged; read in the moved box, they
  # still name the same full-frame point.
  np.testing.assert_array_equal(jittered['keypoints'], batch['keypoints'])
  in_box = boxes_lib.to_box_coordinates(batch['keypoints'], moved)
  np.testing.assert_allclose(boxes_lib.from_box_coordinates(in_box, moved),
                             batch['keypoints'], atol=1e-3)
  # The resampled crop shows keypoint 0's blob where the label in the moved
  # box's coordinates says (crop pixel i covers [i, i + 1] of S).
  size = batch['crops'].shape[2]
  expected = (np.asarray(in_box)[..., 0, :] + 1.0) / 2.0 * size - 0.5
  weights = np.asarray(jittered['crops'], np.float64)[..., 0]
  grid = np.arange(size, dtype=np.float64)
  total = weights.sum((-2, -1))
  centroid = np.stack([(weights.sum(-2) * grid).sum(-1),
                       (weights.sum(-1) * grid).sum(-1)], -1) / total[
                           ..., None]
  np.testing.assert_allclose(centroid[real], expected[real], atol=0.35)


def test_train_jitter_never_reads_a_label(seed):
  rng = np.random.default_rng(seed)
  batch = _blob_batch(rng)
  key = jax.random.key(seed)
  jittered = box_jitter.jitter_batch(batch, key, 0.1)
  # Hidden keypoints moved anywhere, visibility codes changed: the crops,
  # the boxes and the visible labels in box coordinates stay as they were.
  other = dict(batch)
  hidden = batch['visibility'] != 1
  other['keypoints'] = np.where(
      hidden[..., None], rng.uniform(-500, 500, batch['keypoints'].shape),
      batch['keypoints']).astype(np.float32)
  again = box_jitter.jitter_batch(other, key, 0.1)
  for name in ('crops', 'boxes'):
    np.testing.assert_array_equal(again[name], jittered[name])
  visible = ~hidden
  np.testing.assert_array_equal(
      np.asarray(boxes_lib.to_box_coordinates(again['keypoints'],
                                              again['boxes']))[visible],
      np.asarray(boxes_lib.to_box_coordinates(jittered['keypoints'],
                                              jittered['boxes']))[visible])
  # Each car's jitter depends on its place in the global batch only: a
  # batch split over two devices jitters as one.
  half = len(batch['boxes']) // 2
  parts = [box_jitter.jitter_batch(
      {name: value[rows] for name, value in batch.items()}, key, 0.1,
      first_car=rows.start) for rows in (slice(0, half), slice(half, None))]
  for name in ('crops', 'boxes'):
    np.testing.assert_array_equal(
        np.concatenate([part[name] for part in parts]), jittered[name])
  other_key = box_jitter.jitter_batch(batch, jax.random.fold_in(key, 1), 0.1)
  assert np.all(np.asarray(other_key['boxes'] != jittered['boxes'])[
      batch['view_mask']])
