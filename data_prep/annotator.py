"""A simulated annotator: hand-label noise on true keypoint positions.

Used by the trifocal-label study (`reproduction.label_study`) and by the
synthetic CarFusion generator (`data_prep.make_synthetic_carfusion`), which
can write noisy labels beside the exact positions.

The model (`AnnotatorNoise`, `annotate`)
----------------------------------------

Every labelled keypoint of a view (visibility 1 or 2) moves by isotropic
Gaussian noise, per axis, of standard deviation sigma * L of its view:

  - visible labels: `sigma_visible` = 0.015. COCO's keypoint evaluation
    (cocodataset.org/#keypoints-eval, the OKS constants) gives each keypoint
    the standard deviation of redundant human labels relative to the object
    scale s = sqrt(area); the best-defined points (eyes, nose, ears) have
    0.025 to 0.035 s. A car's s is about 0.6 to 0.9 of L, and per axis the
    deviation is 1/sqrt(2) of the radial one: 0.01 to 0.02 L. Wheel
    centres, lights and roof corners are about as well defined as eyes.
  - occluded labels: `sigma_occluded` = 0.05. An annotator guesses where a
    hidden point is; COCO's least precise points, whose position annotators
    infer under clothing (hips 0.107, knees 0.087, ankles 0.089 s), give
    0.04 to 0.07 L per axis by the same conversion.
  - gross mistakes: an occluded label is put on its left/right mirror
    partner (`Category.mirror`; the partner's true position plus the
    occluded noise) with probability `mirror_swap_rate` = 0.05, when the
    partner is labelled in that view. Left/right confusion is the typical
    gross keypoint error; its rate for hidden car points is an assumption
    (no published measurement we know of), hence a flag.

Unlabelled keypoints (visibility 0) and padding views are left untouched.
The random draws do not depend on the parameters (a standard normal per
coordinate and a uniform per keypoint, always), so results are
deterministic given the generator's seed and vary smoothly with the sigmas.
"""

import dataclasses

import numpy as np

from occnet_jax import boxes as boxes_lib
from occnet_jax import keypoints as keypoints_lib
from occnet_jax import labels

OCCLUDED = labels.Visibility.OCCLUDED
UNLABELLED = labels.Visibility.UNLABELLED


@dataclasses.dataclass(frozen=True)
class AnnotatorNoise:
  """The simulated annotator (module docstring).

  Attributes:
    sigma_visible: per-axis standard deviation of visible labels, in units
      of the view's box scale L.
    sigma_occluded: the same for occluded labels.
    mirror_swap_rate: probability that an occluded label is put on its
      mirror partner.
  """

  sigma_visible: float = 0.015
  sigma_occluded: float = 0.05
  mirror_swap_rate: float = 0.05

  def __post_init__(self):
    if self.sigma_visible < 0 or self.sigma_occluded < 0:
      raise ValueError(f'Noise sigmas must be >= 0: {self}.')
    if not 0.0 <= self.mirror_swap_rate <= 1.0:
      raise ValueError(f'mirror_swap_rate must be in [0, 1]: {self}.')


NOISE_FREE = AnnotatorNoise(0.0, 0.0, 0.0)


def annotate(keypoints: np.ndarray, visibility: np.ndarray,
             boxes: np.ndarray, noise: AnnotatorNoise,
             rng: np.random.Generator,
             category: keypoints_lib.Category,
             ) -> np.ndarray:
  """Simulated hand labels of true keypoints (module docstring).

  Args:
    keypoints: (..., K, 2) true keypoints, pixels.
    visibility: (..., K) labels; 1 visible, 2 occluded, 0 unlabelled.
    boxes: (..., 4) boxes of the views, pixels (L = `boxes.box_scale`).
    noise: the annotator model.
    rng: draws a standard normal per coordinate and a uniform per keypoint.
    category: its `mirror` pairs give the swapped partner.

  Returns:
    (..., K, 2) labels, dtype of `keypoints`; unlabelled keypoints
    unchanged.
  """
  keypoints = np.asarray(keypoints)
  visibility = np.asarray(visibility)
  normal = rng.standard_normal(keypoints.shape)
  swap_draw = rng.uniform(size=visibility.shape)
  mirror = np.asarray(category.mirror)
  occluded = visibility == OCCLUDED
  swapped = (occluded & (visibility[..., mirror] != UNLABELLED)
             & (swap_draw < noise.mirror_swap_rate))
  source = np.where(swapped[..., None], keypoints[..., mirror, :], keypoints)
  scale = np.asarray(boxes_lib.box_scale(np.asarray(boxes, np.float64)))
  sigma = np.where(occluded, noise.sigma_occluded,
                   noise.sigma_visible) * scale[..., None]
  noisy = source + sigma[..., None] * normal
  return np.where((visibility != UNLABELLED)[..., None], noisy,
                  keypoints).astype(keypoints.dtype)
