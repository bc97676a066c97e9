"""The paper's numbers and the reproduction's targets, as data.

`report.py` sets the measured numbers beside these and marks each target
met or missed (`speed_table.evaluate_goals` the speed goals). Targets are
those of issue 6, in fractions (PCK) or AUC.
"""

import dataclasses

from occnet_jax.categories import car as car_lib

TARGET_AUC = 0.95
TARGET_AUC_MARGIN = 0.05
TARGET_LEVEL_GAIN = 0.10
TARGET_VISIBLE_LOSS = 0.01

# Occlusion AUC (Fig. 3): Mask R-CNN confidence vs the 2D-KGNN encoder.
PAPER_AUC = {'heatmap': 0.83, 'kgnn2d': 0.95}
# Gain of the 2D-KGNN over the baseline on occluded keypoints at alpha 0.1
# by number of invisible keypoints (Sec. 4, "Accuracy Analysis"; Figs. 5,
# 6, 8, 9).
PAPER_LEVEL_GAINS = {
    'car_render': {3: '+22', 9: '+10'},
    'carfusion': {**{level: '>= +6' for level in car_lib.CAR.occlusion_levels},
                  4: 'about +25', 5: 'about +12'},
}
# Hand-labelled occluded CarFusion points within alpha 0.1 of the trifocal
# transfer (Fig. 4 left).
PAPER_LABEL_FRACTION_AT_0_1 = '~90'
# Table 1, the paper's own row: PCK@0.1 (%) of *visible* KITTI-3D keypoints
# grouped by how the whole car is occluded, and the 3D yaw error (degrees)
# on unoccluded cars. Not the quantity of our occlusion-kind table (occluded
# keypoints by why each is hidden), and not testable without KITTI-3D.
PAPER_TABLE1_PCK = {'full': 89.73, 'truncation': 87.41, 'car_occluded': 81.68,
                    'other_occluded': 86.45}
PAPER_TABLE1_YAW_ERROR_DEG = 1.9
# The box error (`config.eval.box_jitter`, in box sizes) at which the
# detector-error claim is judged: a good detector's, not a failed one's.
BOX_JITTER_SIGMA = 0.05

# The verdicts of the paper's claims.
REPRODUCED = 'reproduced'
NOT_REPRODUCED = 'not reproduced'
NOT_TESTABLE = 'not testable here'


@dataclasses.dataclass(frozen=True)
class Claim:
  """A claim of the paper, as the report tests it.

  Attributes:
    name: what the paper says, for the table.
    source: where it says it.
    rule: how the report decides, for the table.
    check: the report's test of it (a key of `claim_rules.CLAIM_CHECKS`), ''
      for a claim not testable here.
  """

  name: str
  source: str
  rule: str
  check: str = ''


CLAIMS = (
    Claim('the 2D-KGNN encoder tells occluded from visible keypoints better '
          'than the detector\'s confidence (AUC 0.95 against 0.83)',
          'Fig. 3', 'the 2D-KGNN\'s AUC interval lies above the heatmap\'s',
          'occlusion_auc'),
    Claim('the 2D-KGNN places occluded keypoints better than the detector '
          'trained on visible keypoints', 'Sec. 4, Figs. 5, 6, 8, 9',
          'the 2D-KGNN\'s occluded PCK@0.1 interval lies above the '
          'heatmap\'s', 'occluded_pck'),
    Claim('the 3D-KGNN is more robust to noise in its input keypoints than '
          'the 2D-KGNN', 'Fig. 10',
          'at the largest noise, the 3D-KGNN\'s PCK@0.1 interval lies above '
          'the 2D-KGNN\'s', 'robustness'),
    Claim('the 3D-KGNN finds more multi-view correspondences than the '
          '2D-KGNN and the detector', 'Fig. 4 right',
          'more mean correspondences at every number of views (a mean over '
          'view subsets, no interval)', 'multiview'),
    Claim('the 2D-KGNN\'s keypoints stay better than the detector\'s when '
          'the box comes from a detector that errs', 'Sec. 3 ("a ROI '
          'region from any detector")',
          f'at box jitter σ {BOX_JITTER_SIGMA:g}, the 2D-KGNN\'s PCK@0.1 '
          'interval on all keypoints lies above the heatmap\'s',
          'box_jitter'),
    Claim('nearly 90% of hand-labelled occluded keypoints lie within alpha '
          '0.1 of the trifocal transfer', 'Fig. 4 left',
          'needs human labels; ours come from a simulated annotator'),
    Claim(f'PCK@0.1 {PAPER_TABLE1_PCK["full"]:g} on visible KITTI-3D '
          f'keypoints of unoccluded cars, {PAPER_TABLE1_YAW_ERROR_DEG:g} '
          'degrees of yaw error', 'Table 1',
          'needs KITTI-3D, which is not here'),
)


@dataclasses.dataclass(frozen=True)
class Goal:
  """A throughput or efficiency (at least `target`) or compile-time target.

  Attributes:
    name: what the goal says, for the table.
    target: cars/s (throughput), a fraction (efficiency) or seconds
      (compile).
    size: model size of the measurement ('' for the compile goal).
    pipeline: one of `benchmark.PIPELINES` (measurement goals).
    mode: one of `benchmark.MODES` (measurement goals).
    batch: cars per call (measurement goals).
    quantity: the measurement's field that meets the target:
      'cars_per_second' (its median), or 'fraction_of_ceiling_beside'.
  """

  name: str
  target: float
  size: str = ''
  pipeline: str = ''
  mode: str = ''
  batch: int = 0
  quantity: str = 'cars_per_second'


# The speed goals of the 2-core CPU demo machine (issue 6).
SPEED_GOALS = (
    Goal('paper graph stages, inference, batch 64 >= 200 cars/s', 200.0,
         'paper', 'graph', 'inference', 64),
    Goal('paper graph stages, train step, batch 64 >= 70 cars/s', 70.0,
         'paper', 'graph', 'train', 64),
    # Issue 15. Judged against the matmuls timed beside the step, because
    # this virtual machine's matmul rate moves by 2x within a minute.
    Goal('paper graph stages, train step, batch 64 >= 60% of the matmul '
         'ceiling timed beside it', 0.6, 'paper', 'graph', 'train', 64,
         quantity='fraction_of_ceiling_beside'),
    Goal('default full pipeline, inference, batch 64 >= 500 cars/s', 500.0,
         'default', 'full', 'inference', 64),
    Goal('every train step compiles in < 30 s', 30.0),
)
