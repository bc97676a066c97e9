"""Keypoint category definitions: names, order, mirror pairs, types, shape.

A `Category` is plain data. Models, losses, metrics and data tools read the
number of keypoints, their types and mirror pairs from it, so another object
category needs a new `Category`, not model edits. `CAR` is the 12-keypoint
vehicle definition of the paper and of CarFusion.

3D conventions (object frame): x forward, y up, z lateral with the right side
negative; units are metres.
"""

import dataclasses

import numpy as np

from occnet_jax import errors


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
  """

  name: str
  keypoint_names: tuple[str, ...]
  mirror: tuple[int, ...]
  types: tuple[int, ...]
  skeleton: tuple[tuple[int, int], ...]
  mean_shape: np.ndarray = dataclasses.field(repr=False)

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

  @property
  def num_keypoints(self) -> int:
    return len(self.keypoint_names)

  @property
  def num_types(self) -> int:
    return max(self.types) + 1


# Mean of 472 ShapeNet cars (right-side points), in a unit where the car is
# about 0.78 long; rescaled below so that the mean car is 4.5 m long.
_REFERENCE_RIGHT_SIDE = {
    'front_wheel': (0.2667, -0.0738, -0.1607),
    'back_wheel': (-0.2504, -0.0731, -0.1611),
    'front_headlight': (0.3806, 0.0038, -0.1345),
    'back_light': (-0.3979, 0.0423, -0.1303),
    'front_top': (0.0527, 0.1129, -0.1140),
    'back_top': (-0.2186, 0.1118, -0.1068),
}
_REFERENCE_LENGTH = 0.3806 + 0.3979
MEAN_CAR_LENGTH_METRES = 4.5


def _car_mean_shape() -> np.ndarray:
  # Model order pairs each right point with its left mirror (z negated), in
  # the order wheels front, wheels back, headlights, back lights, tops.
  rows = []
  for part in ('front_wheel', 'back_wheel', 'front_headlight', 'back_light',
               'front_top', 'back_top'):
    right = np.array(_REFERENCE_RIGHT_SIDE[part])
    rows += [right, right * np.array([1.0, 1.0, -1.0])]
  return np.stack(rows) * (MEAN_CAR_LENGTH_METRES / _REFERENCE_LENGTH)


CAR = Category(
    name='car',
    keypoint_names=(
        'right_front_wheel', 'left_front_wheel',
        'right_back_wheel', 'left_back_wheel',
        'right_front_headlight', 'left_front_headlight',
        'right_back_light', 'left_back_light',
        'right_front_top', 'left_front_top',
        'right_back_top', 'left_back_top',
    ),
    mirror=(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10),
    types=tuple(range(12)),
    skeleton=((0, 2), (1, 3), (0, 1), (2, 3), (8, 10), (9, 11), (8, 9),
              (10, 11), (4, 0), (4, 8), (4, 5), (5, 1), (5, 9), (6, 2),
              (6, 10), (7, 3), (7, 11), (6, 7)),
    mean_shape=_car_mean_shape(),
)

# CarFusion annotates 14 slots (raw ids 1..14 = slot + 1). Exhaust (slot 8)
# and Center (slot 13) are not labelled consistently and are dropped.
CARFUSION_NUM_SLOTS = 14
CARFUSION_SLOT_TO_KEYPOINT = (0, 1, 2, 3, 4, 5, 6, 7, -1, 8, 9, 10, 11, -1)
CARFUSION_KEYPOINT_TO_SLOT = tuple(
    s for s in range(CARFUSION_NUM_SLOTS) if CARFUSION_SLOT_TO_KEYPOINT[s] >= 0)

_CATEGORIES = {'car': CAR}


def register_category(category: Category) -> None:
  """Makes a user-defined category available to `get_category`."""
  _CATEGORIES[category.name] = category


def get_category(name: str) -> Category:
  try:
    return _CATEGORIES[name]
  except KeyError:
    raise errors.UserError(
        f'Unknown keypoint category {name!r}; known: {sorted(_CATEGORIES)}.'
    ) from None
