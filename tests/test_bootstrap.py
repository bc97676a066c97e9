"""Tests of the bootstrap intervals on fresh random data."""

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from occnet_jax.evaluation import bootstrap


def _fractions(rng, num_cars, views_per_car=3, keypoints=12, p=0.6):
  """Per-view hit counts of Bernoulli(p) keypoints, views grouped by car."""
  groups = np.repeat(np.arange(num_cars), views_per_car)
  totals = rng.integers(1, keypoints + 1, len(groups))
  hits = rng.binomial(totals, p)
  return groups, hits, totals


def test_weights_resample_whole_cars(rng, seed):
  groups = rng.permutation(np.repeat(rng.permutation(40), 3))
  weights = bootstrap.resample_weights(groups, 200, seed)
  assert weights.shape == (200, len(groups))
  # Every view of a car has its car's count, and each resample draws 40.
  for car in range(40):
    assert np.all(weights[:, groups == car] == weights[:, groups == car][:, :1])
  np.testing.assert_array_equal(weights.sum(1), 40 * 3)
  np.testing.assert_array_equal(
      weights, bootstrap.resample_weights(groups, 200, seed))


def test_ratio_interval_contains_the_estimate_and_shrinks_as_one_over_root_n(
    rng, seed):
  widths = []
  for num_cars in (100, 1600):
    groups, hits, totals = _fractions(rng, num_cars)
    weights = bootstrap.resample_weights(groups, 1000, seed)
    low, high = bootstrap.ratio_interval(weights, hits, totals)
    assert low <= hits.sum() / totals.sum() <= high
    widths.append(high - low)
  # 16 times the cars: a quarter of the width. Each width varies with its
  # data and the resamples' percentiles (a ratio 1.32 times a quarter came
  # up once in CI): 1.6 is about six standard deviations of the ratio.
  assert 0.25 / 1.6 < widths[1] / widths[0] < 0.25 * 1.6


def test_ratio_interval_matches_the_binomial_width_and_covers(rng, seed):
  # One keypoint per car: the bootstrap of a Bernoulli(p) mean, whose 95%
  # interval is about +-1.96 sqrt(p (1 - p) / n), and covers p 95% of the
  # time over fresh data sets.
  num_cars, p, trials = 400, 0.3, 100
  groups = np.arange(num_cars)
  weights = bootstrap.resample_weights(groups, 1000, seed)
  covered, widths = 0, []
  for _ in range(trials):
    hits = rng.binomial(1, p, num_cars)
    low, high = bootstrap.ratio_interval(weights, hits, np.ones(num_cars))
    covered += low <= p <= high
    widths.append(high - low)
  expected = 2 * 1.96 * np.sqrt(p * (1 - p) / num_cars)
  assert np.mean(widths) == pytest.approx(expected, rel=0.1)
  assert covered >= 86  # P(<86 of 100 | 95%) < 1e-3.


def test_ratio_interval_per_column_and_empty_subsets(rng, seed):
  groups, hits, totals = _fractions(rng, 50)
  weights = bootstrap.resample_weights(groups, 300, seed)
  two = np.stack([hits, totals - hits], axis=1)
  (low_a, high_a), (low_b, high_b) = bootstrap.ratio_interval(
      weights, two, totals)
  # The two fractions sum to 1 in every resample.
  assert low_a + high_b == pytest.approx(1) and high_a + low_b == (
      pytest.approx(1))
  assert bootstrap.ratio_interval(weights, 0 * hits, 0 * totals) is None


def test_weighted_auc_equals_sklearn_with_weights(rng):
  scores = rng.integers(0, 8, 300).astype(float)  # Many ties.
  positives = rng.random(300) < 0.4
  weights = rng.integers(0, 4, (3, 300)).astype(float)
  for row, auc in zip(weights, bootstrap.weighted_auc(weights, scores,
                                                       positives)):
    assert auc == pytest.approx(sklearn_metrics.roc_auc_score(
        positives, scores, sample_weight=row))


def test_auc_interval_contains_the_auc(rng, seed):
  groups = np.repeat(np.arange(60), 2)
  views = np.repeat(np.arange(len(groups)), 12)
  positives = rng.random(len(views)) < 0.3
  scores = rng.normal(size=len(views)) + positives
  weights = bootstrap.resample_weights(groups, 1000, seed)
  low, high = bootstrap.auc_interval(weights, views, scores, positives)
  assert low < sklearn_metrics.roc_auc_score(positives, scores) < high
  assert 0.5 < low


def test_weighted_median_is_numpys_median_of_repeated_values(rng):
  values = rng.normal(size=int(rng.integers(5, 40)))
  weights = rng.integers(0, 4, (20, len(values))).astype(float)
  weights[:, 0] += 1
  for row, median in zip(weights, bootstrap.weighted_median(weights, values)):
    assert median == pytest.approx(np.median(np.repeat(values,
                                                       row.astype(int))))
  groups = np.arange(len(values))
  low, high = bootstrap.median_interval(
      bootstrap.resample_weights(groups, 500), groups, values)
  assert low <= np.median(values) <= high
