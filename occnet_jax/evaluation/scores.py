"""Evaluation metrics: PCK, occlusion ROC/AUC and mean pixel error.

`pck_hits` (per view), `pck_counts` and `mean_pixel_error` are jax.numpy
(jit-able; numpy arrays work too); PCK returns counts so that results
aggregate exactly over batches (and resample per view, `bootstrap`).
`occlusion_roc` is numpy and runs once on the scores gathered over a whole
split.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from occnet_jax import cropping


def _distances(pred, gt):
  return jnp.linalg.norm(jnp.asarray(pred) - jnp.asarray(gt), axis=-1)


def pck_hits(pred, gt, boxes, mask, alphas,
             padding: float = cropping.BOX_PADDING):
  """Per-view counts of keypoints within alpha * L of the ground truth.

  A keypoint is correct when ||pred - gt|| <= alpha * L, with L the longer
  side of the tight box of what is visible of the car (the paper's;
  `cropping.pck_scale`), not of the padded box. Non-finite predictions
  count as wrong.

  Args:
    pred: (..., K, 2) predicted pixels.
    gt: (..., K, 2) ground-truth pixels.
    boxes: (..., 4) the records' padded boxes (x0, y0, x1, y1) in pixels.
    mask: (..., K) bool, the keypoints to evaluate (e.g. occluded ones).
    alphas: (A,) thresholds.
    padding: the padding the boxes were made with (`cropping.padded_box`).

  Returns:
    (num_correct, num_total): int32 counts per view, shapes (..., A) and
    (...).
  """
  mask = jnp.asarray(mask, bool)
  scale = cropping.pck_scale(jnp.asarray(boxes), padding)[..., None, None]
  thresholds = jnp.asarray(alphas) * scale  # (..., 1, A)
  correct = (_distances(pred, gt)[..., None] <= thresholds) & mask[..., None]
  return (jnp.sum(correct, axis=-2, dtype=jnp.int32),
          jnp.sum(mask, axis=-1, dtype=jnp.int32))


def pck_counts(pred, gt, boxes, mask, alphas,
               padding: float = cropping.BOX_PADDING):
  """Counts keypoints within alpha * L of the ground truth (PCK, paper 4.2).

  `pck_hits` (same arguments) summed over every view: PCK@alpha =
  num_correct / num_total, summed over batches first.

  Returns:
    (num_correct, num_total): int32 counts, shapes (A,) and ().
  """
  correct, total = pck_hits(pred, gt, boxes, mask, alphas, padding)
  return (jnp.sum(correct.reshape(-1, correct.shape[-1]), axis=0,
                  dtype=jnp.int32), jnp.sum(total, dtype=jnp.int32))


def mean_pixel_error(pred, gt, mask):
  """Mean distance in pixels over the masked keypoints (NaN if none).

  Args:
    pred: (..., K, 2) predicted pixels.
    gt: (..., K, 2) ground-truth pixels.
    mask: (..., K) bool, the keypoints to average over.

  Returns:
    A scalar.
  """
  mask = jnp.asarray(mask, bool)
  distances = jnp.where(mask, _distances(pred, gt), 0.0)
  count = jnp.sum(mask)
  return jnp.where(count > 0, jnp.sum(distances) / jnp.maximum(count, 1),
                   jnp.nan)


class OcclusionRoc(NamedTuple):
  """ROC curve of an occlusion score (occluded = positive class).

  `is_defined` is False when the labels hold a single class (or none): no
  ROC exists then, the curve arrays are empty and `auc` is NaN.
  """

  fpr: np.ndarray
  tpr: np.ndarray
  thresholds: np.ndarray
  auc: float
  is_defined: bool


def occlusion_roc(scores, labels):
  """ROC and its area for predicting occlusion from a score.

  Args:
    scores: (...) occlusion scores, higher = more likely occluded.
    labels: (...) bool or 0/1, True = occluded; same shape as scores.

  Returns:
    An `OcclusionRoc`.
  """
  scores = np.asarray(scores, np.float64).reshape(-1)
  labels = np.asarray(labels).reshape(-1).astype(bool)
  if scores.shape != labels.shape:
    raise ValueError(
        f'scores and labels differ in size: {scores.shape} vs {labels.shape}.')
  if len(np.unique(labels)) < 2:
    empty = np.zeros(0)
    return OcclusionRoc(empty, empty, empty, float('nan'), False)
  # One ROC point per distinct score, from the highest down: what is called
  # occluded at a threshold is everything scoring at least it. The curve's
  # area by trapezoids counts ties as half (the Mann-Whitney statistic).
  order = np.argsort(-scores, kind='stable')
  scores, labels = scores[order], labels[order]
  last_of_score = np.append(np.flatnonzero(np.diff(scores)), len(scores) - 1)
  true_positives = np.cumsum(labels)[last_of_score]
  false_positives = last_of_score + 1 - true_positives
  fpr = np.append(0.0, false_positives / false_positives[-1])
  tpr = np.append(0.0, true_positives / true_positives[-1])
  thresholds = np.append(np.inf, scores[last_of_score])
  return OcclusionRoc(fpr, tpr, thresholds, float(np.trapezoid(tpr, fpr)),
                      True)
