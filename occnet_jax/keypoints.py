"""What a keypoint category is: names, order, mirror pairs, types, shape.

A `Category` is plain data. Models, losses, metrics, plots and data tools
read the number of keypoints, their types, mirror pairs and occlusion levels
from it, so another object category is a new `Category` (one file in
`occnet_jax/categories/`), not edits elsewhere. Data preparation reads what
it needs to render the category from `Category.synthesis`: pure numpy, so the
library holds it without importing data preparation.

3D conventions (object frame): x forward, y up, z lateral with the right side
negative; units are metres.
"""

from collections.abc import Callable
import dataclasses
from typing import Any

import numpy as np

# Occlusion levels (numbers of invisible keypoints of a view) start here:
# fewer are hardly occluded. They stop where a view keeps this many visible.
_FEWEST_INVISIBLE = 3
_FEWEST_VISIBLE = 3


def occlusion_levels(num_keypoints: int) -> tuple[int, ...]:
  """The reported numbers of invisible keypoints: 3..9 for the 12 of a car."""
  return tuple(range(_FEWEST_INVISIBLE, num_keypoints - _FEWEST_VISIBLE + 1))


@dataclasses.dataclass(frozen=True)
class Synthesis:
  """What data preparation needs to render a category (pure numpy).

  Attributes:
    random_model: rng -> a procedural model with `mesh` (`occnet_jax.mesh.
      Mesh`, object frame, metres) and `keypoints` ((K, 3) on its surface, in
      model order); a deterministic function of the generator's state.
    triangle_budget: most faces of a `random_model` mesh (the rasteriser
      pads to it and compiles once per budget).
    random_paint: rng -> (3,) albedo of a keypoint-only model's proxy hull.
    proxy_points: (K, 3) keypoints -> (P, 3) points added to their convex
      hull to give a keypoint-only model its volume (`data_prep.rendering.
      proxy_mesh`); each keypoint must stay on the hull.
  """

  random_model: Callable[[np.random.Generator], Any]
  triangle_budget: int
  random_paint: Callable[[np.random.Generator], np.ndarray]
  proxy_points: Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Category:
  """An object category's keypoint definition.

  Attributes:
    name: category name, used to look it up with `get_category`.
    keypoint_names: one name per keypoint, in model order.
    mirror: for each keypoint, the index of its left/right mirror partner
      (itself for keypoints on the symmetry plane).
    types: the type id of each keypoint, the `t_i` node feature of the paper.
      By default each keypoint is its own type.
    skeleton: keypoint index pairs drawn in figures (the graph networks use a
      fully connected graph, not this skeleton).
    mean_shape: (K, 3) mean 3D keypoints in metres, object frame.
    coco_category_id: the COCO category of predictions written as COCO
      keypoint results.
    raw_slot_to_keypoint: the raw dataset's keypoint slots (raw id =
      slot + 1) mapped to model indices, -1 for slots that are dropped;
      None when the category has no raw format.
    synthesis: how data preparation renders it; None if it cannot.
  """

  name: str
  keypoint_names: tuple[str, ...]
  mirror: tuple[int, ...]
  types: tuple[int, ...]
  skeleton: tuple[tuple[int, int], ...]
  mean_shape: np.ndarray = dataclasses.field(repr=False)
  coco_category_id: int
  raw_slot_to_keypoint: tuple[int, ...] | None = None
  synthesis: Synthesis | None = dataclasses.field(default=None, repr=False)

  def __post_init__(self):
    k = len(self.keypoint_names)
    if len(self.mirror) != k or len(self.types) != k:
      raise ValueError(f'{self.name}: mirror and types need {k} entries.')
    if sorted(self.mirror) != list(range(k)) or any(
        self.mirror[self.mirror[i]] != i for i in range(k)):
      raise ValueError(
          f'{self.name}: mirror must be an involution on 0..{k - 1}.')
    if np.shape(self.mean_shape) != (k, 3):
      raise ValueError(f'{self.name}: mean_shape must be ({k}, 3).')
    for i, j in self.skeleton:
      if not (0 <= i < k and 0 <= j < k):
        raise ValueError(f'{self.name}: skeleton edge {(i, j)} out of range.')
    if self.raw_slot_to_keypoint is not None and sorted(
        i for i in self.raw_slot_to_keypoint if i >= 0) != list(range(k)):
      raise ValueError(f'{self.name}: raw_slot_to_keypoint must name each '
                       f'of the {k} keypoints once.')

  @property
  def num_keypoints(self) -> int:
    return len(self.keypoint_names)

  @property
  def num_types(self) -> int:
    return max(self.types) + 1

  @property
  def occlusion_levels(self) -> tuple[int, ...]:
    return occlusion_levels(self.num_keypoints)

  @property
  def keypoint_to_raw_slot(self) -> tuple[int, ...]:
    """The raw slot of each keypoint (`raw_slot_to_keypoint` inverted)."""
    return tuple(self.raw_slot_to_keypoint.index(k)
                 for k in range(self.num_keypoints))
