"""The car: the paper's and CarFusion's 12-keypoint vehicle category.

Everything the code knows about cars is here: the keypoint definition
(`CAR`: names, mirror pairs, types, skeleton, mean shape), CarFusion's raw
keypoint ids, the COCO category, and what data preparation renders: the
procedural low-poly cars below and the points that give a keypoint-only
car's proxy hull its volume (`proxy_points`).

3D conventions (object frame): x forward, y up, z lateral with the right side
negative; units are metres.

Procedural cars: a car is a few closed solids: a body (a convex side profile
extruded across the car), a glass cabin whose roof is narrower than its base,
four thin light boxes (headlights, tail lights) and four wheels whose hub caps
are coloured differently from the tyres. Dimensions are drawn per kind (sedan,
hatchback, SUV, van, pick-up) from ranges around real cars, so the 12
keypoints come out close to `CAR.mean_shape` for sedans and vary as the kinds
do.

The body is centred on x = 0 and the wheels touch the
ground plane y = `Car.ground_y` (about -0.53 of the height, as in the mean
shape): place a car on a road at height h with a translation of
h - ground_y along y.

Keypoints lie on the surface, where a depth test can see them: wheels at
the centre of the outer hub cap (a mesh vertex), headlights and tail lights
at the centre of the outer face of their light boxes, tops at the roof
corners (mesh vertices).

Everything is numpy and deterministic given the `np.random.Generator`.

Public API:
  CAR: the `keypoints.Category`
  MEAN_CAR_LENGTH_METRES: length of the mean shape
  proxy_points(keypoints_3d) -> (8, 3) ground contacts and bumper corners
  CAR_KINDS: ('sedan', 'hatchback', 'suv', 'van', 'pickup')
  CarShape: sampled dimensions of one car (metres)
  Car(mesh, keypoints, kind, shape, ground_y)
  sample_car_shape(rng, kind) -> CarShape
  build_car(shape, body_color, object_id=0) -> Car
  random_car(rng, kind=None, object_id=0) -> Car
  random_paint(rng) -> (3,) paint colour
  TRIANGLE_BUDGET: upper bound on a car's face count (pad to this)
"""

import dataclasses

import numpy as np

from occnet_jax import keypoints
from occnet_jax import mesh as mesh_lib

CAR_KINDS = ('sedan', 'hatchback', 'suv', 'van', 'pickup')

# Every car has the same topology: body 20 + cabin 12 + four light boxes
# 4 x 12 + four 12-sided wheels 4 x 48 faces.
_WHEEL_SEGMENTS = 12
TRIANGLE_BUDGET = 20 + 12 + 4 * 12 + 4 * 4 * _WHEEL_SEGMENTS

_HEADLIGHT_COLOR = (0.98, 0.93, 0.62)
_TAIL_LIGHT_COLOR = (0.80, 0.04, 0.05)
_WINDOW_COLOR = (0.12, 0.17, 0.23)
_TYRE_COLOR = (0.06, 0.06, 0.06)
_RIM_COLOR = (0.72, 0.73, 0.76)
_UNDERBODY_COLOR = (0.10, 0.10, 0.11)
_PAINTS = (
    (0.92, 0.92, 0.90), (0.70, 0.71, 0.73), (0.35, 0.36, 0.38),
    (0.08, 0.08, 0.09), (0.62, 0.08, 0.08), (0.10, 0.22, 0.55),
    (0.12, 0.32, 0.20), (0.76, 0.70, 0.55), (0.85, 0.70, 0.12),
    (0.40, 0.55, 0.75),
)
# Light boxes stand this far proud of the face they sit on, so that their
# outer face (carrying the keypoint) is the first surface seen.
_LIGHT_PROTRUSION = 0.02
# The outer hub cap sits this far outside the body side.
_WHEEL_OUTSET = 0.04

# Ranges of the dimensions per kind: a column per kind (in `CAR_KINDS`
# order), each dimension's lows over its highs. Lengths along x are
# fractions of the car length; heights are above the ground in metres.
_RANGE_TABLE = dict(
    #                sedan     hatchback suv       van       pickup
    length=        ((4.2,      3.8,      4.4,      4.7,      5.0),
                    (4.8,      4.3,      4.9,      5.3,      5.6)),
    width=         ((1.72,     1.68,     1.80,     1.85,     1.85),
                    (1.86,     1.80,     1.95,     2.00,     2.00)),
    height=        ((1.38,     1.42,     1.65,     1.90,     1.75),
                    (1.50,     1.55,     1.85,     2.20,     1.90)),
    wheelbase=     ((0.63,     0.64,     0.60,     0.58,     0.60),
                    (0.67,     0.68,     0.64,     0.63,     0.65)),
    front_overhang=((0.14,     0.15,     0.16,     0.15,     0.15),
                    (0.17,     0.18,     0.19,     0.18,     0.18)),
    wheel_radius=  ((0.30,     0.29,     0.35,     0.33,     0.37),
                    (0.34,     0.33,     0.40,     0.37,     0.41)),
    clearance=     ((0.13,     0.13,     0.19,     0.16,     0.20),
                    (0.17,     0.17,     0.23,     0.20,     0.25)),
    belt_height=   ((1.06,     1.02,     1.12,     1.05,     1.14),
                    (1.12,     1.10,     1.22,     1.15,     1.24)),
    nose_height=   ((0.86,     0.84,     0.94,     0.92,     1.00),
                    (0.92,     0.90,     1.02,     1.00,     1.08)),
    tail_height=   ((1.02,     0.98,     1.06,     1.02,     1.08),
                    (1.08,     1.04,     1.14,     1.08,     1.12)),
    hood=          ((0.22,     0.21,     0.22,     0.12,     0.20),
                    (0.26,     0.25,     0.26,     0.17,     0.24)),
    roof_front=    ((0.41,     0.40,     0.38,     0.22,     0.36),
                    (0.45,     0.44,     0.42,     0.28,     0.40)),
    roof_rear=     ((0.20,     0.06,     0.03,     0.01,     0.40),
                    (0.24,     0.10,     0.06,     0.03,     0.44)),
    cabin_rear=    ((0.10,     0.0,      0.0,      0.0,      0.38),
                    (0.14,     0.02,     0.01,     0.005,    0.42)),
    roof_taper=    ((0.70,     0.72,     0.76,     0.84,     0.80),
                    (0.78,     0.80,     0.84,     0.90,     0.86)))
# {kind: {dimension: (low, high)}}.
_RANGES = {
    kind: {name: (lows[i], highs[i])
           for name, (lows, highs) in _RANGE_TABLE.items()}
    for i, kind in enumerate(CAR_KINDS)}


@dataclasses.dataclass(frozen=True)
class CarShape:
  """Dimensions of one car, metres (fractions of `length` where noted).

  Attributes:
    kind: one of `CAR_KINDS`.
    length, width, height: overall body size (width without the wheels).
    wheelbase, front_overhang: axle spacing and front end to front axle,
      fractions of the length.
    wheel_radius, clearance: tyre radius; ground to the body's underside.
    belt_height, nose_height, tail_height: heights above the ground of the
      body's top (window line), the top of its front face and of its rear
      face.
    hood: front end to the windscreen base, fraction of the length.
    roof_front: front end to the roof's front edge, fraction of the length.
    roof_rear, cabin_rear: rear end to the roof's rear edge and to the rear
      window's base, fractions of the length.
    roof_taper: roof width over body width.
  """

  kind: str
  length: float
  width: float
  height: float
  wheelbase: float
  front_overhang: float
  wheel_radius: float
  clearance: float
  belt_height: float
  nose_height: float
  tail_height: float
  hood: float
  roof_front: float
  roof_rear: float
  cabin_rear: float
  roof_taper: float


@dataclasses.dataclass(frozen=True)
class Car:
  """A procedural car.

  Attributes:
    mesh: the closed mesh (object frame), faces tagged with `Part`s.
    keypoints: (12, 3) float32 keypoints in `CAR` order.
    kind: one of `CAR_KINDS`.
    shape: the dimensions it was built from.
    ground_y: height of the plane the wheels stand on (negative).
  """

  mesh: mesh_lib.Mesh
  keypoints: np.ndarray
  kind: str
  shape: CarShape
  ground_y: float


def sample_car_shape(rng: np.random.Generator, kind: str) -> CarShape:
  """Draws each dimension uniformly from the ranges of `kind`.

  Args:
    rng: random generator.
    kind: one of `CAR_KINDS`.

  Returns:
    The dimensions.
  """
  if kind not in _RANGES:
    raise ValueError(f'Unknown car kind {kind!r}; known: {CAR_KINDS}.')
  # Sorted keys give the same draws whatever the dict order.
  values = {name: float(rng.uniform(*bounds))
            for name, bounds in sorted(_RANGES[kind].items())}
  return CarShape(kind=kind, **values)


def build_car(shape: CarShape, body_color, object_id: int = 0) -> Car:
  """Builds the mesh and keypoints of a car of the given dimensions.

  Args:
    shape: the dimensions.
    body_color: (3,) paint albedo in [0, 1].
    object_id: id written on every face.

  Returns:
    The car.
  """
  s = shape
  ground_y = -0.53 * s.height
  x_front, x_rear = 0.5 * s.length, -0.5 * s.length
  half_width = 0.5 * s.width
  y_bottom = ground_y + s.clearance
  y_belt = ground_y + s.belt_height
  y_nose = ground_y + s.nose_height
  y_tail = ground_y + s.tail_height
  y_roof = ground_y + s.height

  # Body: side profile (counter-clockwise in x-y) swept across the width.
  # The rounding of the nose and tail is what makes the profile a hexagon.
  nose_round = 0.06 * s.length
  tail_round = 0.03 * s.length
  profile = [(x_rear, y_bottom), (x_front, y_bottom), (x_front, y_nose),
             (x_front - nose_round, y_belt), (x_rear + tail_round, y_belt),
             (x_rear, y_tail)]
  # One colour per side (the first is the underside), then the two caps.
  side_colors = [_UNDERBODY_COLOR] + [body_color] * 7
  body = mesh_lib.extrusion(profile, (-half_width, half_width), side_colors,
                            mesh_lib.Part.BODY)

  # Cabin: base on the belt line, roof narrower (tumblehome); all glass
  # except the roof.
  x_base_front = x_front - s.hood * s.length
  x_base_rear = x_rear + s.cabin_rear * s.length
  x_roof_front = x_front - s.roof_front * s.length
  x_roof_rear = x_rear + s.roof_rear * s.length
  roof_half_width = s.roof_taper * half_width
  base_half_width = 0.97 * half_width
  cabin_corners = np.zeros((2, 2, 2, 3))
  for ix, (x_base, x_top) in enumerate(
      [(x_base_rear, x_roof_rear), (x_base_front, x_roof_front)]):
    for iz, side in enumerate((-1.0, 1.0)):
      cabin_corners[ix, 0, iz] = (x_base, y_belt, side * base_half_width)
      cabin_corners[ix, 1, iz] = (x_top, y_roof, side * roof_half_width)
  cabin = mesh_lib.hexahedron(cabin_corners, _WINDOW_COLOR,
                              mesh_lib.Part.WINDOW)
  # Hexahedron faces come in pairs -x, +x, -y, +y, -z, +z: the floor and
  # the roof (+-y) are painted, the rest is glass.
  is_floor_or_roof = np.repeat([False, False, True, True, False, False], 2)
  cabin = mesh_lib.recolor(cabin, is_floor_or_roof, body_color,
                           mesh_lib.Part.BODY)

  # Lights: thin boxes standing proud of the front and rear faces.
  headlight_size = np.array([0.06, 0.10, 0.26])
  headlight_y = y_nose - 0.05 - 0.5 * headlight_size[1]
  headlight_z = half_width - 0.04 - 0.5 * headlight_size[2]
  tail_light_size = np.array([0.06, 0.14, 0.24])
  tail_light_y = y_tail - 0.06 - 0.5 * tail_light_size[1]
  tail_light_z = half_width - 0.03 - 0.5 * tail_light_size[2]
  headlight_x = x_front + _LIGHT_PROTRUSION - 0.5 * headlight_size[0]
  tail_light_x = x_rear - _LIGHT_PROTRUSION + 0.5 * tail_light_size[0]
  lights = []
  for side in (-1.0, 1.0):
    lights.append(mesh_lib.box(
        headlight_size, (headlight_x, headlight_y, side * headlight_z),
        _HEADLIGHT_COLOR, mesh_lib.Part.HEADLIGHT))
    lights.append(mesh_lib.box(
        tail_light_size, (tail_light_x, tail_light_y, side * tail_light_z),
        _TAIL_LIGHT_COLOR, mesh_lib.Part.TAIL_LIGHT))

  # Wheels: tyres whose outer cap (the hub, a vertex at its centre) stands
  # out of the body side.
  x_front_axle = x_front - s.front_overhang * s.length
  x_back_axle = x_front_axle - s.wheelbase * s.length
  wheel_y = ground_y + s.wheel_radius
  hub_z = half_width + _WHEEL_OUTSET
  tyre_width = 0.22
  wheels = []
  for x_axle in (x_front_axle, x_back_axle):
    for side in (-1.0, 1.0):
      z_range = sorted((side * hub_z, side * (hub_z - tyre_width)))
      tyre = mesh_lib.cylinder(s.wheel_radius, z_range, _TYRE_COLOR,
                               mesh_lib.Part.TYRE, _WHEEL_SEGMENTS)
      normals = mesh_lib.face_normals(tyre.vertices, tyre.faces)
      tyre = mesh_lib.recolor(tyre, np.abs(normals[:, 2]) > 0.5, _RIM_COLOR,
                              mesh_lib.Part.RIM)
      wheels.append(mesh_lib.transform(tyre, np.eye(3), (x_axle, wheel_y, 0)))

  car_mesh = mesh_lib.with_object_id(
      mesh_lib.merge([body, cabin] + lights + wheels), object_id)

  right = np.array([
      (x_front_axle, wheel_y, -hub_z),
      (x_back_axle, wheel_y, -hub_z),
      (x_front + _LIGHT_PROTRUSION, headlight_y, -headlight_z),
      (x_rear - _LIGHT_PROTRUSION, tail_light_y, -tail_light_z),
      (x_roof_front, y_roof, -roof_half_width),
      (x_roof_rear, y_roof, -roof_half_width),
  ])
  # `CAR` order: each right point followed by its left mirror.
  points = np.stack([right, right * np.array([1.0, 1.0, -1.0])], axis=1)
  return Car(mesh=car_mesh, keypoints=points.reshape(-1, 3).astype(np.float32),
             kind=s.kind, shape=s, ground_y=ground_y)


def random_car(rng: np.random.Generator, kind: str | None = None,
               object_id: int = 0) -> Car:
  """A car of a random (or the given) kind, dimensions and paint.

  Args:
    rng: random generator; the car is a deterministic function of its state.
    kind: one of `CAR_KINDS`, or None to draw one uniformly.
    object_id: id written on every face.

  Returns:
    The car.
  """
  if kind is None:
    kind = CAR_KINDS[rng.integers(len(CAR_KINDS))]
  shape = sample_car_shape(rng, kind)
  return build_car(shape, random_paint(rng), object_id)


def random_paint(rng: np.random.Generator) -> np.ndarray:
  """A common car paint colour with a little jitter, (3,) in [0, 1]."""
  return mesh_lib.random_color(rng, _PAINTS)



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


# Indices in `CAR` order.
_WHEELS = (0, 1, 2, 3)
_HEADLIGHTS = (4, 5)
_BACK_LIGHTS = (6, 7)
# Wheel radius over wheelbase, and underbody height over wheel radius, of
# the mean car (radius about 0.33 m, wheelbase 3.0 m, underbody 0.15 m).
_RADIUS_PER_WHEELBASE = 0.11
_UNDERBODY_PER_RADIUS = 0.45
# Ground contacts sit this share of the hub's lateral offset inboard, so
# the hub stays the outermost point.
_CONTACT_INBOARD = 0.05


def proxy_points(keypoints_3d) -> np.ndarray:
  """Ground contacts (4) and bumper corners (4) implied by the keypoints.

  They give a keypoint-only car's proxy hull (`data_prep.rendering.
  proxy_mesh`) a car's volume below the lights. They lie inside the box
  spanned by the keypoints in x and z, so the keypoints stay on the hull
  (tops highest, lights at the ends, hubs outermost).

  Args:
    keypoints_3d: (12, 3) keypoints in `CAR` order, object frame (y up).

  Returns:
    (8, 3) points: contacts under the four wheels (one estimated wheel
    radius below the hub, a little inboard), then corners under the two
    headlights and the two back lights at the height of the underbody.
  """
  points = np.asarray(keypoints_3d, np.float64)
  wheels = points[list(_WHEELS)]
  wheelbase = 0.5 * (np.linalg.norm(wheels[0] - wheels[2])
                     + np.linalg.norm(wheels[1] - wheels[3]))
  radius = _RADIUS_PER_WHEELBASE * wheelbase
  contacts = wheels - np.array([0.0, radius, 0.0])
  contacts[:, 2] *= 1.0 - _CONTACT_INBOARD
  underbody_y = np.mean(contacts[:, 1]) + _UNDERBODY_PER_RADIUS * radius
  lights = points[list(_HEADLIGHTS + _BACK_LIGHTS)]
  bumpers = lights.copy()
  bumpers[:, 1] = np.minimum(lights[:, 1], underbody_y)
  return np.concatenate([contacts, bumpers])


CAR = keypoints.Category(
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
    coco_category_id=3,
    # CarFusion annotates 14 slots (raw ids 1..14 = slot + 1). Exhaust
    # (slot 8) and Center (slot 13) are not labelled consistently and are
    # dropped.
    raw_slot_to_keypoint=(0, 1, 2, 3, 4, 5, 6, 7, -1, 8, 9, 10, 11, -1),
    synthesis=keypoints.Synthesis(
        random_model=random_car, triangle_budget=TRIANGLE_BUDGET,
        random_paint=random_paint, proxy_points=proxy_points),
)
