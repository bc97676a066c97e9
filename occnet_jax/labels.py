"""The keypoint label codes of the dataset record (docs/design.md).

Every producer (the TFDS builders, the CarFusion reader and writer, the
renderer's visibility test) and every consumer (input pipeline, metrics,
reports) reads the `visibility` and `occlusion_kind` features through these
two enums.
"""

import enum


class Visibility(enum.IntEnum):
  """`visibility` codes: only VISIBLE keypoints supervise training."""
  UNLABELLED = 0
  VISIBLE = 1
  OCCLUDED = 2


class OcclusionKind(enum.IntEnum):
  """`occlusion_kind` codes: why a keypoint is hidden."""
  VISIBLE = 0
  SELF = 1
  OTHER_VEHICLE = 2
  OTHER_OBJECT = 3
  TRUNCATION = 4
  UNKNOWN = 5
