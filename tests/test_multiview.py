"""Tests of the multi-view correspondence counts (paper Fig. 4 right)."""

import itertools
import math

import numpy as np
import pytest

from occnet_jax import boxes as boxes_lib
from occnet_jax import geometry
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import metric_keys
from occnet_jax.evaluation import multiview
from occnet_jax.evaluation import plots
import synthetic_cars

NUM_CARS = 4
NUM_VIEWS = 5
ALL_SUBSETS = 1000  # More than any car here has: every subset is counted.


@pytest.fixture(scope='module')
def cars(module_seed):
  """Flat views of random cars: exact keypoints, cameras, boxes, car ids."""
  batch = synthetic_cars.make_batch(np.random.default_rng(module_seed),
                                    NUM_CARS, NUM_VIEWS)
  views = {name: batch[name].reshape((-1,) + batch[name].shape[2:])
           for name in ('keypoints', 'cameras', 'boxes', 'visibility')}
  views['car_id'] = np.repeat([f'car{i}' for i in range(NUM_CARS)],
                              NUM_VIEWS)
  views['occlusion_kind'] = np.where(views['visibility'] == 2, 1, 0)
  views['camera_error'] = np.zeros(len(views['car_id']), np.float32)
  for method in evaluate.YAW_METHODS:
    views[f'yaw.{method}'] = np.zeros(len(views['car_id']), np.float32)
  return views


def _counts(cars, points=None, mask=None, **kwargs):
  points = cars['keypoints'] if points is None else points
  mask = np.ones(points.shape[:2], bool) if mask is None else mask
  kwargs.setdefault('max_subsets', ALL_SUBSETS)
  return multiview.correspondence_counts(
      points, cars['cameras'], cars['boxes'], cars['car_id'], mask, **kwargs)


def _scales(cars):
  return np.asarray(boxes_lib.box_scale(cars['boxes']), np.float64)


def test_exact_projections_give_the_full_count_in_any_view_order(cars, rng):
  num_keypoints = cars['keypoints'].shape[1]
  # The views of a car need not be adjacent (evaluation chunks).
  order = rng.permutation(len(cars['car_id']))
  shuffled = {name: value[order] for name, value in cars.items()}
  for results in (_counts(cars), _counts(shuffled)):
    for n in (2, 3, 4, 5):
      assert results[n].mean_count == num_keypoints * n
      assert results[n].mean_fraction == 1.0
      assert results[n].num_subsets == NUM_CARS * math.comb(NUM_VIEWS, n)
    assert results[6] == multiview.Correspondences(None, None, 0)


def test_labels_reach_the_maximum_over_labelled_keypoints(cars, rng):
  mask = rng.uniform(size=cars['visibility'].shape) < 0.6
  # Unlabelled keypoints hold zeros in the dataset: they must not count.
  points = np.where(mask[..., None], cars['keypoints'], 0.0)
  results = _counts(cars, points, mask)
  for n in (2, 3, 4, 5):
    expected = []
    for car in range(NUM_CARS):
      car_mask = mask[car * NUM_VIEWS:(car + 1) * NUM_VIEWS]
      for subset in itertools.combinations(range(NUM_VIEWS), n):
        labelled = car_mask[list(subset)].sum(0)
        expected.append(np.sum(np.where(labelled >= 2, labelled, 0)))
    assert results[n].mean_count == pytest.approx(np.mean(expected))


def _off_epipolar_direction(cameras, pixel, view):
  """A unit direction far from every epipolar line through `pixel`.

  At 22.5 degrees or more from the epipolar lines of the other views in
  `view`: a point moved far along it agrees with no other view's point.
  """
  others = np.delete(np.arange(len(cameras)), view)
  centres = np.asarray(geometry.camera_center(cameras[others]), np.float64)
  epipoles = synthetic_cars.project(cameras[view].astype(np.float64), centres)
  offsets = pixel - epipoles
  angles = np.sort(np.arctan2(offsets[:, 1], offsets[:, 0]) % np.pi)
  gaps = np.diff(np.append(angles, angles[0] + np.pi))
  best = np.argmax(gaps)  # At least pi / 4 wide with 4 lines.
  angle = angles[best] + gaps[best] / 2
  return np.array([np.cos(angle), np.sin(angle)])


def test_a_prediction_moved_far_away_loses_exactly_its_inlier(cars, rng):
  car = rng.integers(NUM_CARS)
  views = slice(car * NUM_VIEWS, (car + 1) * NUM_VIEWS)
  points = cars['keypoints'][views].astype(np.float64)
  num_keypoints = points.shape[1]
  view, keypoint = rng.integers(NUM_VIEWS), rng.integers(num_keypoints)
  direction = _off_epipolar_direction(cars['cameras'][views],
                                      points[view, keypoint], view)
  points[view, keypoint] += (rng.uniform(3.0, 10.0) * rng.choice([-1, 1])
                             * _scales(cars)[views][view] * direction)
  inliers = multiview.pair_inliers(points, cars['cameras'][views],
                                   cars['boxes'][views],
                                   np.ones(points.shape[:2], bool))
  for n in (2, 3, 4, 5):
    subsets = multiview.sample_subsets(NUM_VIEWS, n, ALL_SUBSETS, rng)
    has_view = np.any(subsets == view, axis=1)
    # From 3 views on the others still agree; 2 views have nothing left.
    loss = 1 if n >= 3 else 2
    np.testing.assert_array_equal(
        multiview.subset_counts(inliers, subsets),
        num_keypoints * n - loss * has_view)


def test_noise_far_beyond_alpha_gives_almost_no_correspondences(cars, rng):
  noise = 10.0 * _scales(cars)[:, None, None] * rng.normal(
      size=cars['keypoints'].shape)
  results = _counts(cars, cars['keypoints'] + noise)
  for n in (2, 3, 4, 5):
    assert results[n].mean_fraction < 0.05


@pytest.mark.parametrize('num_views,size,max_subsets',
                         [(6, 3, 19), (24, 6, 100), (5, 2, 10), (5, 2, 50),
                          (3, 4, 5)])
def test_subset_sampling_is_deterministic_and_distinct(num_views, size,
                                                       max_subsets, seed):
  subsets = multiview.sample_subsets(num_views, size, max_subsets,
                                     np.random.default_rng(seed))
  again = multiview.sample_subsets(num_views, size, max_subsets,
                                   np.random.default_rng(seed))
  np.testing.assert_array_equal(subsets, again)
  total = math.comb(num_views, size)
  assert subsets.shape == (min(total, max_subsets), size)
  assert len(np.unique(subsets, axis=0)) == len(subsets)
  assert np.all(np.diff(subsets, axis=1) > 0)
  assert np.all((subsets >= 0) & (subsets < num_views))
  if total <= max_subsets:
    assert {tuple(s) for s in subsets} == set(
        itertools.combinations(range(num_views), size))


def test_cars_with_fewer_views_are_excluded(cars, rng):
  # Car i keeps 2 + i of its views (2, 3, 4, 5), in random positions.
  keep = np.concatenate([car * NUM_VIEWS + rng.choice(
      NUM_VIEWS, 2 + car, replace=False) for car in range(NUM_CARS)])
  fewer = {name: value[keep] for name, value in cars.items()}
  num_keypoints = cars['keypoints'].shape[1]
  max_subsets = int(rng.integers(2, 6))
  results = _counts(fewer, max_subsets=max_subsets)
  for n in (2, 3, 4, 5):
    assert results[n].num_subsets == sum(
        min(math.comb(2 + car, n), max_subsets) for car in range(NUM_CARS))
    assert results[n].mean_count == num_keypoints * n
  assert results[6] == multiview.Correspondences(None, None, 0)
  # The sample is a function of the seed.
  assert _counts(fewer, max_subsets=max_subsets, seed=7) == _counts(
      fewer, max_subsets=max_subsets, seed=7)


def test_compute_metrics_reports_multiview_keys_and_plot(cars, rng,
                                                         tmp_path):
  num_views = len(cars['car_id'])
  noisy = cars['keypoints'] + 10.0 * _scales(cars)[:, None, None] * (
      rng.normal(size=cars['keypoints'].shape))
  predictions = dict(cars, heatmap=noisy, true_keypoints=cars['keypoints'])
  for method in evaluate.METHODS[1:]:
    predictions[method] = cars['keypoints']
  for method in evaluate.METHODS:
    predictions[f'noisy.{method}'] = predictions[method][None]
  for method in evaluate.OCCLUSION_METHODS:
    predictions[f'occlusion.{method}'] = rng.uniform(
        size=cars['visibility'].shape)
  results = evaluate.compute_metrics(predictions, [0.1], [0.0])
  num_keypoints = cars['keypoints'].shape[1]
  for n in multiview.VIEW_COUNTS:
    subsets = results[metric_keys.multiview_subsets(n)]
    assert subsets == NUM_CARS * math.comb(NUM_VIEWS, n)
    for method in evaluate.MULTIVIEW_METHODS:
      count = results[metric_keys.multiview(method, n)]
      fraction = results[metric_keys.multiview(method, n, fraction=True)]
      if not subsets:
        assert count is None and fraction is None
      elif method == 'heatmap':
        assert fraction < 0.05
      else:
        assert count == num_keypoints * n and fraction == 1.0
  assert num_views == results['num_instances']
  path = tmp_path / 'multiview.png'
  plots.multiview_correspondences(results, multiview.VIEW_COUNTS, str(path),
                                  title='test split, checkpoint step 0')
  assert path.stat().st_size > 1000


def test_metrics_score_true_positions_and_noisy_labels_apart(cars, rng):
  scale = _scales(cars)[:, None, None]
  labels = cars['keypoints'] + 0.3 * scale * rng.choice([-1, 1], size=(
      cars['keypoints'].shape))
  predictions = dict(cars, keypoints=labels, true_keypoints=cars['keypoints'])
  for method in evaluate.METHODS:
    predictions[method] = cars['keypoints']
    predictions[f'noisy.{method}'] = predictions[method][None]
    # The first jitter level predicts the labels, the second the truth.
    predictions[f'jitter.{method}'] = np.stack([labels, cars['keypoints']])
  for method in evaluate.OCCLUSION_METHODS:
    predictions[f'occlusion.{method}'] = rng.uniform(
        size=cars['visibility'].shape)
  results = evaluate.compute_metrics(predictions, [0.1], [0.0], [0.05, 0.2])
  for method in evaluate.METHODS:
    assert results[metric_keys.pck(method, 'all', 0.1)] == 1.0
    assert results[metric_keys.label_pck(method, 'all', 0.1)] == 0.0
  for method in evaluate.PERTURBED_METHODS:
    assert results[metric_keys.box_jitter(method, 0.05)] == 0.0
    assert results[metric_keys.box_jitter(method, 0.2)] == 1.0
  assert metric_keys.levels(results, 'pck_box_jitter') == [0.05, 0.2]
