"""The chair: a small procedural 10-keypoint category.

It exists to show that a category is one file: it has another keypoint
count than the car and mirror pairs that are not neighbours (the right side
comes first, then the left), and it is rendered, trained and evaluated in
the tests like the car.

A chair is six boxes: four legs, a seat slab and a backrest narrower than
the seat, standing on its rear edge. Keypoints are box corners, where a
depth test can see them: the outer bottom corner of each leg (feet), the
outer top corners of the seat and the outer top corners of the backrest's
rear face. The frame is the car's (x forward, y up, z lateral with the right
side negative, metres), centred on the keypoints' extent.

Public API:
  CHAIR: the `keypoints.Category`
  Chair(mesh, keypoints)
  random_chair(rng) -> Chair
"""

import dataclasses

import numpy as np

from occnet_jax import keypoints
from occnet_jax import mesh as mesh_lib

# (low, high) in metres.
_RANGES = dict(
    depth=(0.40, 0.50), width=(0.40, 0.50), seat_height=(0.42, 0.48),
    seat_thickness=(0.04, 0.06), leg_side=(0.035, 0.05),
    back_height=(0.35, 0.50), back_thickness=(0.03, 0.05),
    back_width=(0.80, 0.95))
# Six boxes of 12 faces.
TRIANGLE_BUDGET = 6 * 12
_PAINTS = ((0.55, 0.35, 0.18), (0.75, 0.60, 0.40), (0.20, 0.20, 0.22),
           (0.85, 0.85, 0.82), (0.45, 0.10, 0.10))


@dataclasses.dataclass(frozen=True)
class Chair:
  """A procedural chair: its mesh and its (10, 3) keypoints in `CHAIR` order."""

  mesh: mesh_lib.Mesh
  keypoints: np.ndarray


def _box(low, high, color, part) -> mesh_lib.Mesh:
  low, high = np.asarray(low), np.asarray(high)
  return mesh_lib.box(high - low, 0.5 * (low + high), color, part)


def _build(size: dict[str, float], color) -> Chair:
  """The chair of the given `_RANGES` dimensions."""
  half_depth, half_width = 0.5 * size['depth'], 0.5 * size['width']
  y_floor = -0.5 * (size['seat_height'] + size['back_height'])
  y_seat = y_floor + size['seat_height']
  y_top = y_seat + size['back_height']
  y_under = y_seat - size['seat_thickness']
  side = size['leg_side']
  back_half_width = size['back_width'] * half_width
  parts = [_box((-half_depth, y_under, -half_width),
                (half_depth, y_seat, half_width), color, mesh_lib.Part.BODY),
           _box((-half_depth, y_seat, -back_half_width),
                (-half_depth + size['back_thickness'], y_top,
                 back_half_width), color, mesh_lib.Part.BODY)]
  for x in (half_depth - side, -half_depth):
    for z in (-half_width, half_width - side):
      parts.append(_box((x, y_floor, z), (x + side, y_under, z + side),
                        color, mesh_lib.Part.OTHER))
  right = np.array([
      (half_depth, y_floor, -half_width), (-half_depth, y_floor, -half_width),
      (half_depth, y_seat, -half_width), (-half_depth, y_seat, -half_width),
      (-half_depth, y_top, -back_half_width)])
  left = right * np.array([1.0, 1.0, -1.0])
  return Chair(mesh=mesh_lib.merge(parts),
               keypoints=np.concatenate([right, left]).astype(np.float32))


def random_chair(rng: np.random.Generator) -> Chair:
  """A chair of random dimensions and paint."""
  size = {name: float(rng.uniform(*bounds))
          for name, bounds in sorted(_RANGES.items())}
  return _build(size, _random_paint(rng))


def _random_paint(rng: np.random.Generator) -> np.ndarray:
  return mesh_lib.random_color(rng, _PAINTS)


_MEAN_SIZE = {name: 0.5 * (low + high) for name, (low, high) in _RANGES.items()}

CHAIR = keypoints.Category(
    name='chair',
    keypoint_names=tuple(f'{side}_{part}' for side in ('right', 'left')
                         for part in ('front_foot', 'back_foot', 'front_seat',
                                      'back_seat', 'back_top')),
    mirror=(5, 6, 7, 8, 9, 0, 1, 2, 3, 4),
    types=tuple(range(10)),
    skeleton=((0, 2), (1, 3), (5, 7), (6, 8), (2, 3), (7, 8), (2, 7), (3, 8),
              (3, 4), (8, 9), (4, 9)),
    mean_shape=_build(_MEAN_SIZE, _PAINTS[0]).keypoints.astype(np.float64),
    coco_category_id=62,
    synthesis=keypoints.Synthesis(
        random_model=random_chair, triangle_budget=TRIANGLE_BUDGET,
        random_paint=_random_paint,
        # Every keypoint is a corner of the keypoints' own hull.
        proxy_points=lambda keypoints_3d: np.zeros((0, 3))),
)
