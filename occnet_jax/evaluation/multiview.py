"""Multi-view correspondences of single-view keypoints (paper Fig. 4 right).

The paper counts how many predicted keypoints agree across the views of a
car: a method whose keypoints (occluded ones included) are consistent with
one 3D point in several views gives multi-view reconstruction more
correspondences. Every view is predicted on its own; the cameras are known.

Procedure, per car (the views sharing a `car_id`, in any order), per number
of views n (`VIEW_COUNTS`) and per keypoint:

  1. View subsets: every n-view subset of the car's views when there are at
     most `max_subsets` of them, otherwise `max_subsets` distinct ones drawn
     at random (deterministic given the seed). Cars with fewer than n views
     have none.
  2. Exhaustive RANSAC over the subset's view pairs: each pair's two
     predicted points give a 3D point by linear triangulation with the known
     cameras (`geometry.triangulate`).
  3. The point is reprojected into every view of the subset; a view is an
     inlier when the point lies in front of it and of the pair's two cameras
     and the prediction is within alpha * L of the reprojection (L = the
     view's PCK length, `cropping.pck_scale`, as in PCK).
  4. The keypoint's inliers are those of its best pair when there are at
     least 2 (a correspondence needs two views), else 0.

A subset's correspondence count is the sum of its keypoints' inliers (at most
K * n). Only keypoints labelled in a view take part (the `mask`): unlabelled
ones neither triangulate nor count, for every method alike, so ground-truth
labels on exact cameras reach the largest possible count.

The triangulated points of all view pairs of a car, and their inliers in
all its views, are computed once (one jitted float64 jax function); each
subset then only gathers its pairs and views.
"""

from collections.abc import Mapping, Sequence
import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from occnet_jax import cropping
from occnet_jax.geometry import cameras as cameras_lib
from occnet_jax.geometry import triangulation

VIEW_COUNTS = (2, 3, 4, 5, 6)
ALPHA = 0.1
MAX_SUBSETS = 100


class Correspondences(NamedTuple):
  """Correspondence statistics of the n-view subsets of a split.

  `mean_count` and `mean_fraction` are None when no car has n views.
  """

  mean_count: float | None  # Mean correspondence count per subset.
  mean_fraction: float | None  # Mean of count / (K * n).
  num_subsets: int


@jax.jit
def _pair_inliers(points, cameras, scales, mask, alpha):
  """`pair_inliers` on arrays (see there); scales (V,) box scales."""
  num_views = points.shape[0]
  first, second = jnp.meshgrid(jnp.arange(num_views), jnp.arange(num_views),
                               indexing='ij')
  pairs = jnp.stack([first, second], -1)  # (V, V, 2)
  # (V, V, 2, K, ...) -> (V, V, K, 2, ...): keypoints are the batch axis.
  pair_points = jnp.moveaxis(points[pairs], 2, 3)
  pair_weights = jnp.moveaxis(mask[pairs], 2, 3).astype(points.dtype)
  pair_cameras = cameras[pairs][:, :, None]  # (V, V, 1, 2, 3, 4)
  point, valid = triangulation.triangulate(pair_cameras, pair_points,
                                           pair_weights)  # (V, V, K, 3)
  # Reprojection of every pair's point into every view: (V, V, V, K).
  pixels, depth = cameras_lib.project(cameras[None, None],
                                      point[:, :, None])
  in_front = depth > 0
  in_front_of_pair = (in_front[first, second, first]
                      & in_front[first, second, second])  # (V, V, K)
  distance = jnp.linalg.norm(pixels - points, axis=-1)
  close = distance <= alpha * scales[:, None]
  return ((valid & in_front_of_pair)[:, :, None] & in_front & close
          & mask[None, None])


def pair_inliers(points: np.ndarray, cameras: np.ndarray, boxes: np.ndarray,
                 mask: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
  """Inliers of the points triangulated from each view pair of one car.

  Float64 whatever the jax default.

  Args:
    points: (V, K, 2) predicted pixels of the car's V views.
    cameras: (V, 3, 4) cameras, car object frame -> pixels.
    boxes: (V, 4) boxes (x0, y0, x1, y1) in pixels.
    mask: (V, K) bool, the keypoints labelled in each view.
    alpha: inlier threshold, a fraction of the box scale.

  Returns:
    (V, V, V, K) bool: [i, j, v, k] is True when keypoint k of view v is an
    inlier of the point triangulated from views i and j (False for i = j,
    for a degenerate pair and for unlabelled points).
  """
  with jax.enable_x64(True):
    points, cameras, boxes = (np.asarray(a, np.float64)
                              for a in (points, cameras, boxes))
    return np.asarray(_pair_inliers(
        points, cameras, np.asarray(cropping.pck_scale(boxes)),
        np.asarray(mask, bool), np.float64(alpha)))


def sample_subsets(num_views: int, subset_size: int, max_subsets: int,
                   rng: np.random.Generator) -> np.ndarray:
  """Distinct view subsets of one car: all of them, or a random sample.

  Args:
    num_views: the car's number of views.
    subset_size: n, views per subset.
    max_subsets: at most this many subsets.
    rng: the generator of the sample (unused when all subsets are taken).

  Returns:
    (S, n) int view indices, each row increasing, no row repeated;
    S = min(C(num_views, n), max_subsets) (0 when num_views < n).
  """
  if math.comb(num_views, subset_size) <= max_subsets:
    return np.array(list(itertools.combinations(range(num_views),
                                                subset_size)),
                    np.int64).reshape(-1, subset_size)
  subsets = np.empty((0, subset_size), np.int64)
  while len(subsets) < max_subsets:
    # A random permutation per row; its first n entries are a subset.
    draws = np.argsort(rng.random((max_subsets, num_views)), axis=1)
    subsets = np.concatenate([subsets,
                              np.sort(draws[:, :subset_size], axis=1)])
    # Drops repeats, keeping first draws in order (determinism).
    _, first = np.unique(subsets, axis=0, return_index=True)
    subsets = subsets[np.sort(first)]
  return subsets[:max_subsets]


def subset_counts(inliers: np.ndarray, subsets: np.ndarray) -> np.ndarray:
  """Correspondence counts of view subsets of one car.

  Args:
    inliers: (V, V, V, K) `pair_inliers` of the car.
    subsets: (S, n) view indices, n >= 2.

  Returns:
    (S,) int counts: per keypoint the best pair's inliers among the subset's
    views if at least 2, else 0, summed over keypoints.
  """
  first, second = np.triu_indices(subsets.shape[1], 1)
  # (S, pairs, n, K): each pair's inliers in each view of the subset.
  gathered = inliers[subsets[:, first, None], subsets[:, second, None],
                     subsets[:, None, :]]
  best = gathered.sum(2).max(1)  # (S, K)
  return np.where(best >= 2, best, 0).sum(-1)


def correspondence_counts(
    points: np.ndarray, cameras: np.ndarray, boxes: np.ndarray,
    car_ids: np.ndarray, mask: np.ndarray, *,
    view_counts: Sequence[int] = VIEW_COUNTS, alpha: float = ALPHA,
    max_subsets: int = MAX_SUBSETS,
    seed: int = 0) -> Mapping[int, Correspondences]:
  """Multi-view correspondence counts of a split (module docstring).

  Args:
    points: (M, K, 2) predicted pixels of M views, each predicted alone.
    cameras: (M, 3, 4) cameras, car object frame -> pixels.
    boxes: (M, 4) boxes in pixels.
    car_ids: (M,) car of each view; the views of a car need not be adjacent.
    mask: (M, K) bool, the keypoints labelled in each view.
    view_counts: the subset sizes n (each >= 2).
    alpha: inlier threshold, a fraction of the box scale.
    max_subsets: at most this many subsets per car and n.
    seed: seed of the subset sample; the same for every method evaluated,
      so that they are compared on the same subsets.

  Returns:
    {n: Correspondences} for each n of `view_counts`.
  """
  if min(view_counts) < 2:
    raise ValueError(f'Subsets need at least 2 views, got {view_counts}.')
  num_keypoints = points.shape[1]
  cars, car_index = np.unique(np.asarray(car_ids), return_inverse=True)
  counts = {n: [] for n in view_counts}
  for car in range(len(cars)):
    views = np.flatnonzero(car_index == car)
    inliers = None
    for n in view_counts:
      # A generator per car and n: a car's subsets do not depend on others.
      subsets = sample_subsets(len(views), n, max_subsets,
                               np.random.default_rng([seed, n, car]))
      if not len(subsets):
        continue
      if inliers is None:
        inliers = pair_inliers(points[views], cameras[views], boxes[views],
                               mask[views], alpha)
      counts[n].append(subset_counts(inliers, subsets))
  results = {}
  for n, values in counts.items():
    values = np.concatenate(values) if values else np.zeros(0)
    mean = float(np.mean(values)) if len(values) else None
    results[n] = Correspondences(
        mean_count=mean,
        mean_fraction=None if mean is None else mean / (num_keypoints * n),
        num_subsets=len(values))
  return results
