"""Tests of PCK, occlusion ROC/AUC and mean pixel error."""

import jax
import numpy as np
import pytest

from occnet_jax import cropping
from occnet_jax.evaluation import scores as scores_lib


def test_pck_counts_hand_computed_case():
  # Tight box 100 x 50, padded by 25% a side to 150 x 75 (a padding that
  # leaves L exact in floats): L = 100, so alpha 0.1 -> 10 px and alpha
  # 0.2 -> 20 px.
  box = np.array([[-5.0, 17.5, 145.0, 92.5]])
  padding = 0.25
  gt = np.full((1, 5, 2), 50.0)
  offsets = np.array([5.0, 10.0, 15.0, 30.0, 0.0])
  pred = gt + np.stack([offsets * 0.6, offsets * 0.8], -1)  # |offset| px away
  pred[0, 4] = np.nan  # a failed prediction counts as wrong
  mask = np.array([[True, True, True, True, True]])
  num_correct, num_total = scores_lib.pck_counts(pred, gt, box, mask,
                                                 [0.1, 0.2], padding)
  np.testing.assert_array_equal(num_correct, [2, 3])  # the boundary counts
  assert num_total == 5
  mask[0, 0] = False
  num_correct, num_total = scores_lib.pck_counts(pred, gt, box, mask,
                                                 [0.1, 0.2], padding)
  np.testing.assert_array_equal(num_correct, [1, 2])
  assert num_total == 4


def test_pck_counts_aggregate_over_batches_and_jit(rng):
  gt = rng.uniform(0, 500, size=(6, 3, 12, 2))
  pred = gt + rng.normal(scale=20.0, size=gt.shape)
  corner = rng.uniform(0, 300, size=(6, 3, 2))
  boxes = np.concatenate([corner, corner + rng.uniform(50, 200, (6, 3, 2))], -1)
  mask = rng.random((6, 3, 12)) < 0.5
  alphas = np.array([0.05, 0.1, 0.2])
  pck = jax.jit(scores_lib.pck_counts)
  num_correct, num_total = pck(pred, gt, boxes, mask, alphas)
  first = pck(pred[:2], gt[:2], boxes[:2], mask[:2], alphas)
  rest = pck(pred[2:], gt[2:], boxes[2:], mask[2:], alphas)
  np.testing.assert_array_equal(num_correct, first[0] + rest[0])
  assert num_total == first[1] + rest[1] == mask.sum()
  assert np.all(np.diff(np.asarray(num_correct)) >= 0)  # monotone in alpha
  distance = np.linalg.norm(pred - gt, axis=-1)
  scale = np.max(boxes[..., 2:] - boxes[..., :2], axis=-1)[..., None] / (
      1 + 2 * cropping.BOX_PADDING)
  expected = [np.sum((distance <= a * scale) & mask) for a in alphas]
  np.testing.assert_array_equal(num_correct, expected)


def test_pck_scale_is_the_tight_box_side_whatever_the_padding(rng):
  # Random cars' points; L' is the longer side of their tight box.
  num_views, num_keypoints = 50, 12
  points = rng.uniform(0, 400, (num_views, 1, 2)) + rng.uniform(
      20, 300, (num_views, 1, 2)) * rng.uniform(
          0, 1, (num_views, num_keypoints, 2))
  side = np.max(points.max(1) - points.min(1), axis=-1)
  alpha = rng.uniform(0.05, 0.3)
  angle = rng.uniform(0, 2 * np.pi, points.shape[:2])
  direction = np.stack([np.cos(angle), np.sin(angle)], -1)
  mask = np.ones(points.shape[:2], bool)
  for padding in (cropping.BOX_PADDING, rng.uniform(0, 0.5)):
    boxes = np.stack([cropping.padded_box(p, padding) for p in points])
    np.testing.assert_allclose(cropping.pck_scale(boxes, padding), side,
                               rtol=1e-5)
    # Every prediction alpha * L' away, in a random direction: a hair
    # inside counts, a hair outside does not, whatever the padding.
    for factor, expected in ((1 - 1e-3, mask.sum()), (1 + 1e-3, 0)):
      predicted = points + factor * alpha * side[:, None, None] * direction
      hits, totals = scores_lib.pck_hits(predicted, points, boxes, mask,
                                         [alpha], padding)
      assert int(np.sum(hits)) == expected
      assert int(np.sum(totals)) == mask.sum()


def test_mean_pixel_error():
  gt = np.zeros((2, 3, 2))
  pred = np.array([[[3.0, 4.0], [6.0, 8.0], [np.nan, 0.0]],
                   [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]])
  mask = np.array([[True, True, False], [True, False, False]])
  np.testing.assert_allclose(scores_lib.mean_pixel_error(pred, gt, mask),
                             (5.0 + 10.0 + 1.0) / 3)
  assert np.isnan(scores_lib.mean_pixel_error(pred, gt, np.zeros_like(mask)))


def test_occlusion_roc_hand_computed_case():
  roc = scores_lib.occlusion_roc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
  # Of the 4 (occluded, visible) pairs, 3 are ranked correctly.
  assert roc.is_defined
  assert roc.auc == pytest.approx(0.75)
  assert roc.fpr[0] == 0 and roc.tpr[-1] == 1 and roc.fpr[-1] == 1
  assert scores_lib.occlusion_roc([0.2, 0.9], [False, True]).auc == 1.0
  assert scores_lib.occlusion_roc([0.9, 0.2], [False, True]).auc == 0.0
  # A tie between an occluded and a visible keypoint counts half.
  tied = scores_lib.occlusion_roc([0.5, 0.5, 0.1], [1, 0, 0])
  assert tied.auc == 0.75
  np.testing.assert_array_equal(tied.thresholds, [np.inf, 0.5, 0.1])


def test_occlusion_roc_is_the_rank_statistic(rng):
  labels = rng.random(200) < 0.3
  scores = rng.normal(size=200) + labels
  positive, negative = scores[labels], scores[~labels]
  expected = np.mean(positive[:, None] > negative[None, :])
  roc = scores_lib.occlusion_roc(scores.reshape(10, 20), labels.reshape(10, 20))
  assert roc.auc == pytest.approx(expected)
  # The curve climbs from (0, 0) to (1, 1), one point per distinct score.
  assert np.all(np.diff(roc.fpr) >= 0) and np.all(np.diff(roc.tpr) >= 0)
  assert len(roc.fpr) == len(np.unique(scores)) + 1
  # At each threshold, the rates of what scores at least it.
  for fpr, tpr, threshold in zip(roc.fpr[1:], roc.tpr[1:], roc.thresholds[1:]):
    called = scores >= threshold
    assert tpr == pytest.approx(called[labels].mean())
    assert fpr == pytest.approx(called[~labels].mean())


def test_occlusion_roc_single_class_is_undefined():
  roc = scores_lib.occlusion_roc([0.1, 0.5, 0.7], [1, 1, 1])
  assert not roc.is_defined and np.isnan(roc.auc)
  assert roc.fpr.size == roc.tpr.size == roc.thresholds.size == 0
  assert not scores_lib.occlusion_roc([], []).is_defined
