"""Other detectors' keypoint layouts, mapped onto a category's keypoints.

A detector that speaks COCO writes K' keypoints per object in its own order
and naming. A `KeypointLayout` says, by name, which of them is which of the
category's K keypoints: keypoint names in, keypoint names out. Keypoints the
layout lacks are given confidence 0 (the graph networks then place them as
they place occluded ones); the detector's extra keypoints are dropped.

Where each layout comes from:

  - `occnet_car_12`: this project's own `car` category in its order (what
    `launch.predict` and `data_prep.export_coco` write).
  - `carfusion_14`: the COCO files of the Occlusion-Net authors' converter,
    github.com/dineshreddy91/carfusion_to_coco, `carfusion2coco.py`: one
    category (id 1) whose 14 keypoints are named '0'..'13', the CarFusion
    slots (slot = raw id - 1). Which slot is which keypoint, and that
    slots 8 (exhaust) and 13 (centre) are not labelled, is the CarFusion
    release's (`categories.car.CAR.raw_slot_to_keypoint`, which this layout
    reuses).
  - `apollocar3d_24`: OpenPifPaf's ApolloCar3D plugin, 24 keypoints:
    github.com/openpifpaf/openpifpaf,
    `src/openpifpaf/plugins/apollocar3d/constants.py`, `CAR_KEYPOINTS_24`
    (names and order; COCO keypoint ids are 1-based there). Its `CAR_POSE_24`
    puts the front at -z, up at +y and the `_left` keypoints at +x, so left
    = forward x up, as in this project's car frame (x forward, y up, left
    +z): a `_left` keypoint is the car's left, the same side as ours.
    Matched by the `KPS_MAPPING` of the same file onto the 66-keypoint
    ApolloCar3D names: `front_up_*` are the top corners of the windscreen
    (our `*_front_top`), `rear_up_*` those of the rear window (`*_back_top`),
    `front_light_*`/`rear_light_*` corners of the lights, `*_wheel_*` the
    wheel centres.
"""

from collections.abc import Mapping
import dataclasses
import types

import numpy as np

from occnet_jax import errors
from occnet_jax import keypoints as keypoints_lib
from occnet_jax.categories import car


@dataclasses.dataclass(frozen=True)
class KeypointLayout:
  """A detector's keypoints and which category keypoint each one is.

  Attributes:
    name: the layout's name (`--keypoint_layout`).
    category: the category it maps onto (`categories.get_category`).
    keypoint_names: the detector's K' names, in its output order.
    to_category: detector keypoint name -> category keypoint name, for the
      detector keypoints that are one of the category's.
  """
  name: str
  category: str
  keypoint_names: tuple[str, ...]
  to_category: Mapping[str, str]

  def __post_init__(self):
    unknown = set(self.to_category) - set(self.keypoint_names)
    if unknown:
      raise ValueError(f'{self.name}: {sorted(unknown)} are not keypoints of '
                       'the layout.')
    targets = list(self.to_category.values())
    if len(set(targets)) != len(targets):
      raise ValueError(f'{self.name}: two keypoints map onto one.')


def map_keypoints(points: np.ndarray, layout: KeypointLayout,
                  category: keypoints_lib.Category) -> np.ndarray:
  """A detector's [x, y, confidence] keypoints as the category's.

  Args:
    points: (..., K', 3) in the layout's order.
    layout: the detector's layout.
    category: the category it maps onto (its K names).

  Returns:
    (..., K, 3) float32: the mapped keypoints; a keypoint the layout lacks is
    [0, 0, 0] (confidence 0).

  Raises:
    ValueError: when the points are not K' triplets or a target name is not
      one of the category's.
  """
  points = np.asarray(points, np.float32)
  if points.shape[-2:] != (len(layout.keypoint_names), 3):
    raise ValueError(
        f'The {layout.name} layout has {len(layout.keypoint_names)} '
        f'keypoints; got {points.shape[-2]} [x, y, v] triplets per object.')
  names = list(category.keypoint_names)
  mapped = np.zeros(points.shape[:-2] + (len(names), 3), np.float32)
  for source, target in layout.to_category.items():
    if target not in names:
      raise ValueError(f'{layout.name}: {target!r} is not a keypoint of '
                       f'{names}.')
    mapped[..., names.index(target), :] = points[
        ..., layout.keypoint_names.index(source), :]
  return mapped


def _same_sides(pairs: Mapping[str, str]) -> dict[str, str]:
  """Both sides of each '<name>_{right,left}' -> '{right,left}_<target>'."""
  return {f'{source}_{side}': f'{side}_{target}'
          for source, target in pairs.items() for side in ('right', 'left')}


_APOLLOCAR3D_24 = (
    'front_up_right', 'front_up_left', 'front_light_right', 'front_light_left',
    'front_low_right', 'front_low_left', 'central_up_left', 'front_wheel_left',
    'rear_wheel_left', 'rear_corner_left', 'rear_up_left', 'rear_up_right',
    'rear_light_left', 'rear_light_right', 'rear_low_left', 'rear_low_right',
    'central_up_right', 'rear_corner_right', 'rear_wheel_right',
    'front_wheel_right', 'rear_plate_left', 'rear_plate_right',
    'mirror_edge_left', 'mirror_edge_right')

LAYOUTS = types.MappingProxyType({layout.name: layout for layout in (
    KeypointLayout('occnet_car_12', 'car', car.CAR.keypoint_names,
                   {name: name for name in car.CAR.keypoint_names}),
    KeypointLayout(
        'carfusion_14', 'car',
        tuple(str(slot) for slot in range(len(car.CAR.raw_slot_to_keypoint))),
        {str(slot): car.CAR.keypoint_names[index]
         for slot, index in enumerate(car.CAR.raw_slot_to_keypoint)
         if index >= 0}),
    KeypointLayout('apollocar3d_24', 'car', _APOLLOCAR3D_24, _same_sides({
        'front_wheel': 'front_wheel', 'rear_wheel': 'back_wheel',
        'front_light': 'front_headlight', 'rear_light': 'back_light',
        'front_up': 'front_top', 'rear_up': 'back_top'})),
)})


def get_layout(name: str) -> KeypointLayout:
  """The layout of that name (a key of `LAYOUTS`).

  Raises:
    errors.UserError: an unknown name; the message lists the known ones.
  """
  if name not in LAYOUTS:
    raise errors.UserError(f'Unknown keypoint layout {name!r}; known: '
                           f'{", ".join(LAYOUTS)}.')
  return LAYOUTS[name]
