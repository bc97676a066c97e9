"""Percentile bootstrap intervals over car instances, vectorised in numpy.

A split's figures are averages over keypoints, but keypoints of one car are
not independent draws: the car, its shape and its camera, is. A resample
therefore draws the split's cars with replacement (`resample_weights`), and
each view, and with it each of its keypoints, enters a resampled figure as
often as its car was drawn. The interval is the central `LEVEL` range of the
figure over `NUM_RESAMPLES` seeded resamples. Every figure is a weighted
statistic of per-view values (`ratio_interval`: PCK and fractions;
`auc_interval`: ROC AUC; `median_interval`: medians), so all resamples are
one matrix product or one cumulative sum, not a Python loop.
"""

from collections.abc import Sequence

import numpy as np

NUM_RESAMPLES = 1000
LEVEL = 0.95
# Resamples per block where a figure needs a (resamples, keypoints) array.
_BLOCK = 64


def resample_weights(groups: Sequence, num_resamples: int = NUM_RESAMPLES,
                     seed: int = 0) -> np.ndarray:
  """How often each example is drawn when its groups are resampled.

  Args:
    groups: (M,) the group (car id) of each example (view); G distinct.
    num_resamples: B.
    seed: the resamples' seed.

  Returns:
    (B, M) float64: in row b, example m's weight is the number of times
    its group was drawn among G draws with replacement.
  """
  _, index = np.unique(np.asarray(groups), return_inverse=True)
  num_groups = int(index.max()) + 1 if index.size else 0
  rng = np.random.default_rng(seed)
  counts = rng.multinomial(num_groups, np.full(num_groups, 1 / num_groups),
                           size=num_resamples) if num_groups else np.zeros(
                               (num_resamples, 0))
  return counts[:, index.reshape(-1)].astype(np.float64)


def percentile_interval(samples: np.ndarray) -> list | None:
  """[low, high]: the central `LEVEL` range of resampled figures.

  Args:
    samples: (B, ...) a figure per resample; NaN where a resample has no
      data (e.g. drew no car with an occluded keypoint), left out.

  Returns:
    Nested lists of [low, high] of shape (..., 2) as floats; None in place
    of an interval without any finite resample.
  """
  samples = np.asarray(samples, np.float64)
  tail = 100 * (1 - LEVEL) / 2
  finite = np.isfinite(samples)
  defined = finite.any(axis=0)
  # Figures without any finite resample get zeros, then None: no warning.
  samples = np.where(finite, samples, np.nan)
  low, high = np.nanpercentile(np.where(defined, samples, 0.0),
                               [tail, 100 - tail], axis=0)
  bounds = np.stack([low, high], axis=-1)

  def to_list(bounds, defined):
    if bounds.ndim == 1:
      return [float(bounds[0]), float(bounds[1])] if defined else None
    return [to_list(b, d) for b, d in zip(bounds, defined)]

  return to_list(bounds, defined)


def ratio_interval(weights: np.ndarray, numerators: np.ndarray,
                   denominators: np.ndarray) -> list | None:
  """Interval of sum(w * numerator) / sum(w * denominator).

  Args:
    weights: (B, M) `resample_weights`.
    numerators: (M, ...) per-view counts (e.g. correct keypoints per alpha).
    denominators: (M,) per-view totals (e.g. keypoints in the subset).

  Returns:
    `percentile_interval` of the ratio, shape (..., 2).
  """
  numerators = np.asarray(numerators, np.float64)
  totals = weights @ np.asarray(denominators, np.float64)  # (B,)
  sums = np.tensordot(weights, numerators, axes=1)  # (B, ...)
  totals = totals.reshape(totals.shape + (1,) * (sums.ndim - 1))
  with np.errstate(divide='ignore', invalid='ignore'):
    return percentile_interval(np.where(totals > 0, sums / totals, np.nan))


def _blocks(weights, views):
  """Per-item weights (b, N) in blocks of resamples; item n of view views[n]."""
  for start in range(0, len(weights), _BLOCK):
    yield weights[start:start + _BLOCK][:, views]


def weighted_auc(weights: np.ndarray, scores: np.ndarray,
                 positives: np.ndarray) -> np.ndarray:
  """ROC AUC (Mann-Whitney, ties count half) under per-item weights.

  Args:
    weights: (B, N) weight of each item in each resample.
    scores: (N,) scores, higher = more likely positive.
    positives: (N,) bool labels.

  Returns:
    (B,) AUCs; NaN where a resample lacks either class.
  """
  order = np.argsort(scores, kind='stable')
  scores, positives = np.asarray(scores)[order], np.asarray(positives)[order]
  start = np.searchsorted(scores, scores, side='left')
  end = np.searchsorted(scores, scores, side='right')
  weights = weights[:, order]
  negative_weights = np.where(positives, 0.0, weights)
  positive_weights = np.where(positives, weights, 0.0)
  cumulative = np.concatenate([np.zeros((len(weights), 1)),
                               np.cumsum(negative_weights, axis=1)], axis=1)
  below = cumulative[:, start]
  tied = cumulative[:, end] - below
  pairs = positive_weights.sum(1) * negative_weights.sum(1)
  with np.errstate(divide='ignore', invalid='ignore'):
    return np.where(pairs > 0, np.sum(positive_weights * (below + 0.5 * tied),
                                      axis=1) / pairs, np.nan)


def auc_interval(weights: np.ndarray, views: np.ndarray, scores: np.ndarray,
                 positives: np.ndarray) -> list | None:
  """Interval of the ROC AUC of keypoint scores, cars resampled.

  Args:
    weights: (B, M) `resample_weights` of the views.
    views: (N,) the view of each scored keypoint.
    scores: (N,) occlusion scores.
    positives: (N,) bool, occluded.
  """
  return percentile_interval(np.concatenate([
      weighted_auc(block, scores, positives)
      for block in _blocks(weights, views)]))


def weighted_median(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
  """Medians under per-item weights; np.median's for unit weights.

  The mean of the lower median (first value whose cumulative weight
  reaches half the total) and the upper one (first to pass it).

  Args:
    weights: (B, N) weights.
    values: (N,) values.

  Returns:
    (B,) medians; NaN where the weights are all zero.
  """
  order = np.argsort(values, kind='stable')
  values = np.asarray(values, np.float64)[order]
  cumulative = np.cumsum(weights[:, order], axis=1)
  half = 0.5 * cumulative[:, -1:]
  lower = np.argmax(cumulative >= half, axis=1)
  upper = np.argmax(cumulative > half, axis=1)
  medians = 0.5 * (values[lower] + values[upper])
  return np.where(half[:, 0] > 0, medians, np.nan)


def median_interval(weights: np.ndarray, views: np.ndarray,
                    values: np.ndarray) -> list | None:
  """Interval of the median of per-item values, cars resampled.

  Args:
    weights: (B, M) `resample_weights` of the views.
    views: (N,) the view of each value.
    values: (N,) values.
  """
  if not len(values):
    return None
  return percentile_interval(np.concatenate([
      weighted_median(block, values) for block in _blocks(weights, views)]))
