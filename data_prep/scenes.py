"""Layout and motion of synthetic traffic-intersection scenes.

A scene is a four-way intersection on the road plane y = 0 (world frame:
y up, metres). Road A runs along world x, road B along world z; each has two
lanes per direction with right-hand traffic, and optionally a parking strip
along each curb. Road A has the green light: its cars drive through over
the frames (and leave the cameras' fields of view); road B's cars queue at
the stop line and, with `queues_depart`, drive off one after another when
its light turns green. Parked cars stand in the parking strips. Poles,
signs and pedestrians stand or walk on the sidewalks and occlude cars.
Cameras are mounted around the intersection a few metres high, as at the
CarFusion intersections.

Everything here is numpy and deterministic given a `np.random.Generator`;
the occluder meshes are built from `occnet_jax.mesh` primitives
(object frame: origin on the ground, y up, x forward), cars come from
`occnet_jax.categories.car`.

Public API:
  Street: road and sidewalk dimensions
  sample_cameras(rng, num_cameras, image_size, street) -> (K, R, t)
  place_traffic(rng, car_lengths, num_frames, frame_interval, street,
                queues_depart, parked_fraction)
      -> (N, F, 4, 4) object -> world poses
  place_street_furniture(rng, num_objects, street) -> (M, 4, 4) poses
  walk_pedestrians(rng, num_pedestrians, num_frames, frame_interval, street)
      -> (P, F, 4, 4) poses
  yaw_pose(yaw, position) -> (..., 4, 4)
  pole_mesh(rng), sign_mesh(rng), cabinet_mesh(rng), pedestrian_mesh(rng)
      -> mesh.Mesh
"""

import dataclasses

import numpy as np

from occnet_jax import mesh
from occnet_jax.geometry import cameras

_UP = np.array([0.0, 1.0, 0.0])
# Turns a z-axis `mesh.cylinder` upright (z -> y).
_Z_TO_Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclasses.dataclass(frozen=True)
class Street:
  """Dimensions of the intersection, metres.

  Attributes:
    lane_width: width of one lane.
    lanes_per_direction: lanes in each driving direction.
    sidewalk_width: width of the sidewalk along each road edge.
    stop_gap: distance from the crossing road's curb to the stop line.
    road_length: lanes extend this far from the centre in each direction.
    parking_width: width of the parking strip between the outer lane and
      the curb (0: none).
  """

  lane_width: float = 3.5
  lanes_per_direction: int = 2
  sidewalk_width: float = 3.0
  stop_gap: float = 2.0
  road_length: float = 60.0
  parking_width: float = 0.0

  @property
  def half_width(self) -> float:
    """Distance from a road's centre line to the edge of its lanes."""
    return self.lane_width * self.lanes_per_direction

  @property
  def curb(self) -> float:
    """Distance from a road's centre line to its curb (parking included)."""
    return self.half_width + self.parking_width


def yaw_pose(yaw, position) -> np.ndarray:
  """Object -> world transforms turning about the up axis, then translating.

  Args:
    yaw: (...) angle in radians; yaw 0 keeps the object's forward axis (x)
      along world x, yaw = pi/2 turns it to world -z.
    position: (..., 3) translation in metres.

  Returns:
    (..., 4, 4) homogeneous transforms.
  """
  yaw = np.asarray(yaw, dtype=np.float64)
  position = np.asarray(position, dtype=np.float64)
  shape = np.broadcast_shapes(yaw.shape, position.shape[:-1])
  cos, sin = np.cos(yaw), np.sin(yaw)
  pose = np.zeros(shape + (4, 4))
  pose[..., 0, 0], pose[..., 0, 2] = cos, sin
  pose[..., 2, 0], pose[..., 2, 2] = -sin, cos
  pose[..., 1, 1] = pose[..., 3, 3] = 1.0
  pose[..., :3, 3] = position
  return pose


def _heading_yaw(heading):
  return np.arctan2(-heading[..., 2], heading[..., 0])


def sample_cameras(rng: np.random.Generator, num_cameras: int,
                   image_size: tuple[int, int],
                   street: Street = Street()):
  """Cameras mounted around the intersection, looking at its centre area.

  Azimuths are spread evenly with jitter so every side is covered; radius,
  height, look-at point and focal length vary per camera.

  Args:
    rng: random generator.
    num_cameras: number of cameras C.
    image_size: (width, height) of the frames.
    street: intersection dimensions.

  Returns:
    (intrinsics (C, 3, 3), rotation (C, 3, 3), translation (C, 3)), float64,
    world -> camera as in docs/design.md.
  """
  width, height = image_size
  azimuth = (np.arange(num_cameras) + rng.uniform(-0.3, 0.3, num_cameras)) * (
      2 * np.pi / num_cameras)
  radius = street.curb + street.sidewalk_width + rng.uniform(
      4.0, 16.0, num_cameras)
  eye = np.stack([radius * np.cos(azimuth),
                  rng.uniform(3.0, 8.0, num_cameras),
                  radius * np.sin(azimuth)], axis=-1)
  target = np.concatenate([
      rng.uniform(-street.half_width, street.half_width, (num_cameras, 1)),
      np.full((num_cameras, 1), 0.5),
      rng.uniform(-street.half_width, street.half_width, (num_cameras, 1)),
  ], axis=-1)
  rotation, translation = cameras.look_at(eye, target)
  focal = rng.uniform(0.55, 1.0, num_cameras) * width
  intrinsics = cameras.intrinsics_matrix(
      focal, np.broadcast_to([width / 2, height / 2], (num_cameras, 2)))
  return (np.asarray(intrinsics, np.float64), np.asarray(rotation, np.float64),
          np.asarray(translation, np.float64))


def _lanes(street: Street):
  """(heading (L, 3), lateral offset point (L, 3), moving (L,)) of each lane."""
  headings, offsets, moving = [], [], []
  for heading, is_green in (((1, 0, 0), True), ((-1, 0, 0), True),
                            ((0, 0, 1), False), ((0, 0, -1), False)):
    heading = np.array(heading, dtype=np.float64)
    right = np.cross(_UP, heading)
    for lane in range(street.lanes_per_direction):
      headings.append(heading)
      offsets.append(right * street.lane_width * (lane + 0.5))
      moving.append(is_green)
  return np.array(headings), np.array(offsets), np.array(moving)


def _queue_departure(rng, num_cars, times):
  """(num_cars, F) distance driven by a queue that departs on green.

  The light turns green at a random moment of the sequence; the queue's
  cars start one after another (the n-th `_START_DELAY` s after the one in
  front of it, so gaps only grow), all with the lane's acceleration up to
  its cruising speed.
  """
  green = rng.uniform(0.0, times[-1] + 1e-9)
  acceleration = rng.uniform(1.5, 3.0)
  cruise = rng.uniform(8.0, 14.0)
  driving = np.maximum(
      times[None] - green - _START_DELAY * np.arange(num_cars)[:, None], 0.0)
  ramp = cruise / acceleration
  return np.where(driving < ramp, 0.5 * acceleration * driving**2,
                  cruise * (driving - ramp / 2))


# Seconds between the starts of consecutive cars of a departing queue.
_START_DELAY = 1.0
# Parked cars stand this far (metres) along the road beyond the stop line,
# or more, so that none stands in the intersection.
_PARKING_CLEARANCE = 3.0


def _parked_poses(rng, car_lengths, num_frames, street: Street):
  """(N, F, 4, 4) poses of cars parked one behind another along the curbs.

  Each strip (road A or B, either side, either end of the intersection) is
  filled from the corner outwards with 0.5-3 m gaps; cars face the lanes'
  driving direction.
  """
  poses = np.zeros((len(car_lengths), num_frames, 4, 4))
  strip_of = rng.integers(0, 8, len(car_lengths))
  start = street.curb + street.stop_gap + _PARKING_CLEARANCE
  for strip in range(8):
    cars = np.flatnonzero(strip_of == strip)
    road_a, side, end = strip & 1, 1 - (strip >> 1 & 1) * 2, 1 - (
        strip >> 2) * 2
    gaps = rng.uniform(0.5, 3.0, len(cars))
    lengths = car_lengths[cars]
    centres = start + np.cumsum(lengths + gaps) - lengths / 2
    along, across = (0, 2) if road_a else (2, 0)
    # Right-hand traffic, as in `_lanes`: on road A's +z side cars head -x,
    # on road B's +x side they head +z.
    heading = np.zeros(3)
    heading[along] = -side if road_a else side
    position = np.zeros((len(cars), 3))
    position[:, along] = end * centres
    position[:, across] = side * (street.half_width +
                                  street.parking_width / 2)
    poses[cars] = yaw_pose(np.full(len(cars), _heading_yaw(heading)),
                           position)[:, None]
  return poses


def place_traffic(rng: np.random.Generator, car_lengths: np.ndarray,
                  num_frames: int, frame_interval: float,
                  street: Street = Street(), *, queues_depart: bool = False,
                  parked_fraction: float = 0.0) -> np.ndarray:
  """Drives cars along the lanes over the frames.

  Each car is parked with probability `parked_fraction` (it needs a street
  with a parking strip), else it goes to a random lane. On road A (green) a
  lane's cars keep one speed of 4-14 m/s with gaps of 4-20 m, starting
  anywhere from far before to just past the intersection, so over the
  frames cars enter and leave the views. On road B (red) cars queue behind
  the stop line, 1-3 m apart, standing still; with `queues_depart` each
  lane's queue drives off when the light turns green at a random moment
  (`_queue_departure`). Parked cars stand in the parking strips.

  Args:
    rng: random generator.
    car_lengths: (N,) length of each car (object x extent), metres; the
      object origin is taken as the car's centre along x.
    num_frames: number of frames F.
    frame_interval: seconds between frames.
    street: intersection dimensions.
    queues_depart: road B's queues drive off during the sequence.
    parked_fraction: share of the cars parked.

  Returns:
    (N, F, 4, 4) object -> world poses on the ground (y = 0 at the origin of
    the object frame; callers lift a car so that its wheels touch y = 0).
  """
  if parked_fraction and not street.parking_width:
    raise ValueError('Parked cars need a street with a parking strip.')
  parked = (rng.random(len(car_lengths)) < parked_fraction if parked_fraction
            else np.zeros(len(car_lengths), bool))
  headings, offsets, moving = _lanes(street)
  lane_of = rng.integers(0, len(headings), len(car_lengths))
  stop_line = -(street.curb + street.stop_gap)
  times = np.arange(num_frames) * frame_interval
  travelled = np.zeros((len(car_lengths), num_frames))
  along = np.zeros(len(car_lengths))
  for lane in range(len(headings)):
    cars = np.flatnonzero((lane_of == lane) & ~parked)
    if moving[lane]:
      front = rng.uniform(-street.road_length / 2, street.half_width)
      gaps = rng.uniform(4.0, 20.0, len(cars))
      travelled[cars] = rng.uniform(4.0, 14.0) * times
    else:
      front = stop_line
      gaps = rng.uniform(1.0, 3.0, len(cars))
      if queues_depart:
        travelled[cars] = _queue_departure(rng, len(cars), times)
    # Cars follow one another: each centre is behind the previous car's rear.
    lengths = car_lengths[cars]
    rears = front - np.cumsum(lengths + gaps) + gaps
    along[cars] = rears + lengths / 2
  s = along[:, None] + travelled
  position = (offsets[lane_of][:, None]
              + headings[lane_of][:, None] * s[..., None])
  yaw = np.broadcast_to(_heading_yaw(headings[lane_of])[:, None], s.shape)
  poses = yaw_pose(yaw, position)
  if parked.any():
    poses[parked] = _parked_poses(rng, car_lengths[parked], num_frames,
                                  street)
  return poses


def _sidewalk_points(rng, count, street: Street, max_from_curb: float):
  """Random points on the sidewalks, outside the crossing itself.

  Args:
    rng: random generator.
    count: number of points.
    street: intersection dimensions.
    max_from_curb: points lie 0.3 m to this far from the road's edge.

  Returns:
    (count, 3) points on the ground.
  """
  side = rng.choice([-1.0, 1.0], (count, 2))
  along = rng.uniform(street.curb, street.road_length / 3, count)
  across = street.curb + rng.uniform(0.3, max_from_curb, count)
  on_road_a = rng.random(count) < 0.5
  x = np.where(on_road_a, side[:, 0] * along, side[:, 0] * across)
  z = np.where(on_road_a, side[:, 1] * across, side[:, 1] * along)
  return np.stack([x, np.zeros(count), z], axis=-1)


def place_street_furniture(rng: np.random.Generator, num_objects: int,
                           street: Street = Street()) -> np.ndarray:
  """Poses of static occluders (poles, signs) along the curbs.

  Args:
    rng: random generator.
    num_objects: number of objects.
    street: intersection dimensions.

  Returns:
    (num_objects, 4, 4) object -> world poses with random yaw.
  """
  return yaw_pose(rng.uniform(0, 2 * np.pi, num_objects),
                  _sidewalk_points(rng, num_objects, street, 1.0))


def walk_pedestrians(rng: np.random.Generator, num_pedestrians: int,
                     num_frames: int, frame_interval: float,
                     street: Street = Street()) -> np.ndarray:
  """Pedestrians walking straight at 0.8-1.8 m/s.

  Half of them walk on the sidewalks in random directions; the others cross
  road B on its crosswalks, between the queue's stop line and road A, where
  they pass in front of the waiting cars.

  Args:
    rng: random generator.
    num_pedestrians: number of pedestrians P.
    num_frames: number of frames F.
    frame_interval: seconds between frames.
    street: intersection dimensions.

  Returns:
    (P, F, 4, 4) object -> world poses; a pedestrian's forward axis (x) is
    its walking direction.
  """
  crossing = rng.random(num_pedestrians) < 0.5
  side = rng.choice([-1.0, 1.0], (num_pedestrians, 2))
  crosswalk_start = np.stack([
      side[:, 0] * (street.curb + rng.uniform(0.3, 2.0, num_pedestrians)),
      np.zeros(num_pedestrians),
      side[:, 1] * (street.curb + street.stop_gap / 2)], axis=-1)
  start = np.where(crossing[:, None], crosswalk_start,
                   _sidewalk_points(rng, num_pedestrians, street,
                                    street.sidewalk_width))
  # Crossing road B (along world z) means walking along world x.
  yaw = np.where(crossing, np.where(side[:, 0] > 0, np.pi, 0.0),
                 rng.uniform(0, 2 * np.pi, num_pedestrians))
  heading = np.stack([np.cos(yaw), np.zeros_like(yaw), -np.sin(yaw)], -1)
  speed = rng.uniform(0.8, 1.8, num_pedestrians)
  times = np.arange(num_frames) * frame_interval
  position = start[:, None] + (
      speed[:, None, None] * times[None, :, None] * heading[:, None])
  return yaw_pose(np.broadcast_to(yaw[:, None], position.shape[:-1]),
                  position)


def _upright_cylinder(radius, height, color) -> mesh.Mesh:
  return mesh.transform(
      mesh.cylinder(radius, (0.0, height), color, segments=8), _Z_TO_Y,
      np.zeros(3))


def pole_mesh(rng: np.random.Generator) -> mesh.Mesh:
  """A lamp or traffic-light pole, 3-7 m high, with a box at the top."""
  height = rng.uniform(3.0, 7.0)
  grey = rng.uniform(0.2, 0.6) * np.ones(3)
  head = mesh.box((0.35, 0.9, 0.35), (0.0, height - 0.45, 0.0),
                  rng.uniform(0.0, 0.3, 3))
  return mesh.merge(
      [_upright_cylinder(rng.uniform(0.08, 0.2), height, grey), head])


def sign_mesh(rng: np.random.Generator) -> mesh.Mesh:
  """A road sign: a thin post and a coloured plate at 1.8-2.8 m."""
  height = rng.uniform(1.8, 2.8)
  plate_size = rng.uniform(0.6, 1.2, 2)
  plate_color = np.array([(0.8, 0.1, 0.1), (0.1, 0.2, 0.8), (0.1, 0.6, 0.2),
                          (0.9, 0.8, 0.1), (0.9, 0.9, 0.9)])[rng.integers(5)]
  plate = mesh.box((0.06, plate_size[1], plate_size[0]),
                   (0.0, height + plate_size[1] / 2, 0.0), plate_color)
  return mesh.merge(
      [_upright_cylinder(0.05, height, (0.5, 0.5, 0.5)), plate])


def cabinet_mesh(rng: np.random.Generator) -> mesh.Mesh:
  """A street cabinet, bin or newspaper box: a box 0.9-1.5 m high."""
  size = (rng.uniform(0.4, 0.8), rng.uniform(0.9, 1.5), rng.uniform(0.5, 1.2))
  return mesh.box(size, (0.0, size[1] / 2, 0.0), rng.uniform(0.1, 0.7, 3))


def pedestrian_mesh(rng: np.random.Generator) -> mesh.Mesh:
  """A blocky person 1.5-1.95 m tall: legs, torso and head boxes."""
  height = rng.uniform(1.5, 1.95)
  legs, torso, head = 0.47 * height, 0.38 * height, 0.15 * height
  trousers, shirt = rng.uniform(0.05, 0.9, (2, 3))
  skin = np.array([0.9, 0.7, 0.55]) * rng.uniform(0.4, 1.0)
  return mesh.merge([
      mesh.box((0.25, legs, 0.35), (0.0, legs / 2, 0.0), trousers),
      mesh.box((0.28, torso, 0.48), (0.0, legs + torso / 2, 0.0), shirt),
      mesh.box((0.2, head, 0.2), (0.0, legs + torso + head / 2, 0.0), skin),
  ])
