"""Tests of data_prep.scenes: intersection layout, traffic and occluders."""

import collections

import numpy as np
import pytest

from data_prep import scenes
from occnet_jax.geometry import cameras as cameras_lib

STREET = scenes.Street()


def test_yaw_pose_is_a_rigid_turn_about_up(rng):
  yaw = rng.uniform(-np.pi, np.pi, 5)
  position = rng.normal(size=(5, 3))
  pose = scenes.yaw_pose(yaw, position)
  rotation = pose[:, :3, :3]
  np.testing.assert_allclose(rotation @ rotation.transpose(0, 2, 1),
                             np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rotation), 1.0)
  np.testing.assert_allclose(rotation[:, :, 1], [[0, 1, 0]] * 5, atol=1e-12)
  forward = rotation[:, :, 0]
  np.testing.assert_allclose(np.arctan2(-forward[:, 2], forward[:, 0]), yaw)
  np.testing.assert_allclose(pose[:, :3, 3], position)
  np.testing.assert_allclose(pose[:, 3], [[0, 0, 0, 1]] * 5)


def test_cameras_look_at_the_intersection_from_outside_the_road(rng):
  num_cameras, image_size = 12, (1920, 1080)
  intrinsics, rotation, translation = scenes.sample_cameras(
      rng, num_cameras, image_size)
  cameras = np.asarray(
      cameras_lib.projection_matrix(intrinsics, rotation, translation))
  centres = -np.einsum('cji,cj->ci', rotation, translation)
  assert np.all((centres[:, 1] >= 3.0) & (centres[:, 1] <= 8.0))
  assert np.all(np.hypot(centres[:, 0], centres[:, 2]) >=
                STREET.half_width + STREET.sidewalk_width)
  # Cameras surround the intersection: every quadrant has one.
  quadrants = set(zip(centres[:, 0] > 0, centres[:, 2] > 0))
  assert len(quadrants) == 4
  # Each optical axis meets the car-centre height (0.5) inside the centre
  # square; that aim point projects to the principal point. (The world
  # origin itself may lie outside a frame aimed at a far corner.)
  axis = rotation[:, 2]
  depth_to_aim = (0.5 - centres[:, 1]) / axis[:, 1]
  aim = centres + depth_to_aim[:, None] * axis
  assert np.all(depth_to_aim > 0)
  assert np.all(np.abs(aim[:, [0, 2]]) <= STREET.half_width + 1e-9)
  pixels, _ = cameras_lib.project(cameras, aim[:, None])
  np.testing.assert_allclose(np.asarray(pixels)[:, 0],
                             np.broadcast_to(np.divide(image_size, 2),
                                             (num_cameras, 2)), atol=1e-2)
  _, depth = cameras_lib.project(cameras, np.zeros((num_cameras, 1, 3)))
  assert np.all(np.asarray(depth) > 0)


def _motion(poses):
  """(position, forward, step, along) of cars on the ground, one heading each.

  Checks that every car stays on the ground with a constant heading;
  `step` is each frame's displacement and `along` its length along the
  heading.
  """
  position = poses[..., :3, 3]
  forward = poses[..., :3, 0]
  np.testing.assert_allclose(position[..., 1], 0.0)
  np.testing.assert_allclose(forward,
                             forward[:, :1].repeat(poses.shape[1], 1))
  step = np.diff(position, axis=1)
  return position, forward, step, np.einsum('nfi,nfi->nf', step,
                                            forward[:, 1:])


def _assert_apart_in_lanes(position, forward, lengths, lane_of, min_gap):
  """Cars with one lane key keep `min_gap` metres bumper to bumper."""
  lanes = collections.defaultdict(list)
  for car, lane in enumerate(lane_of):
    lanes[lane].append(car)
  for cars in lanes.values():
    for i in cars:
      for j in cars:
        if i < j:
          gap = np.abs(np.einsum('fi,fi->f', position[i] - position[j],
                                 forward[i]))
          assert np.all(gap >= (lengths[i] + lengths[j]) / 2 + min_gap - 1e-9)


def test_traffic_keeps_lanes_gaps_and_speeds(rng):
  num_cars, num_frames, interval = 24, 6, 0.5
  lengths = rng.uniform(3.5, 5.5, num_cars)
  poses = scenes.place_traffic(rng, lengths, num_frames, interval)
  assert poses.shape == (num_cars, num_frames, 4, 4)
  # A car's heading is constant and it moves along it at a constant speed.
  position, forward, step, along = _motion(poses)
  np.testing.assert_allclose(np.linalg.norm(step, axis=-1), np.abs(along),
                             atol=1e-9)
  speed = along / interval
  np.testing.assert_allclose(speed, speed[:, :1].repeat(num_frames - 1, 1),
                             atol=1e-9)
  moving = speed[:, 0] > 0
  assert np.all(np.isclose(speed[:, 0], 0) | ((speed[:, 0] >= 4) &
                                              (speed[:, 0] <= 14)))
  # Right-hand traffic: the lane centre is to the right of the road's centre
  # line, on road A (along x) when moving, road B when queued.
  right = np.cross([0.0, 1.0, 0.0], forward[:, 0])
  lateral = np.einsum('ni,ni->n', position[:, 0], right)
  assert np.all((lateral > 0) & (lateral < STREET.half_width))
  np.testing.assert_allclose(np.abs(forward[moving, 0, 0]), 1.0)
  np.testing.assert_allclose(np.abs(forward[~moving, 0, 2]), 1.0)
  # Queued cars stand behind the stop line.
  front = np.einsum('ni,ni->n', position[:, 0], forward[:, 0]) + lengths / 2
  assert np.all(front[~moving] <= -(STREET.half_width + STREET.stop_gap) + 1e-9)
  # Cars of one lane never overlap.
  _assert_apart_in_lanes(
      position, forward, lengths,
      [tuple(np.round(np.r_[forward[car, 0], lateral[car]], 3))
       for car in range(num_cars)], min_gap=1.0)


def test_furniture_and_pedestrians_start_on_the_sidewalks(rng):
  furniture = scenes.place_street_furniture(rng, 30)
  walkers = scenes.walk_pedestrians(rng, 30, 4, 0.5)
  for start in (furniture[:, :3, 3], walkers[:, 0, :3, 3]):
    assert np.all(np.abs(start[:, [0, 2]]) >= STREET.half_width)
    assert np.all(np.abs(start[:, [0, 2]]).min(axis=1) <=
                  STREET.half_width + STREET.sidewalk_width)
  speed = np.linalg.norm(np.diff(walkers[:, :, :3, 3], axis=1), axis=-1) / 0.5
  assert np.all((speed >= 0.8) & (speed <= 1.8))
  np.testing.assert_allclose(
      np.einsum('pfi,pfi->pf', np.diff(walkers[:, :, :3, 3], axis=1),
                walkers[:, 1:, :3, 0]) / 0.5, speed)


@pytest.mark.parametrize('make, heights', [
    (scenes.pole_mesh, (3.0, 7.0)),
    (scenes.sign_mesh, (2.3, 4.0)),
    (scenes.pedestrian_mesh, (1.5, 1.95)),
])
def test_occluders_are_closed_solids_standing_on_the_ground(rng, make, heights):
  occluder = make(rng)
  vertices = occluder.vertices
  assert vertices[:, 1].min() == pytest.approx(0.0, abs=1e-6)
  assert heights[0] - 1e-5 <= vertices[:, 1].max() <= heights[1] + 1e-5
  edges = collections.Counter(
      tuple(sorted(edge)) for face in occluder.faces.tolist()
      for edge in ((face[0], face[1]), (face[1], face[2]), (face[2], face[0])))
  assert set(edges.values()) == {2}
  # Outward winding: the signed volume of a closed solid is positive.
  corners = vertices[occluder.faces].astype(np.float64)
  volume = np.einsum('fi,fi->f', corners[:, 0],
                     np.cross(corners[:, 1], corners[:, 2])).sum() / 6
  assert volume > 0


def test_queues_depart_and_parked_cars_stand_along_the_curbs(rng):
  street = scenes.Street(parking_width=2.5)
  num_cars, num_frames, interval = 40, 12, 0.5
  lengths = rng.uniform(3.5, 5.5, num_cars)
  poses = scenes.place_traffic(rng, lengths, num_frames, interval, street,
                               queues_depart=True, parked_fraction=0.3)
  position, forward, step, along = _motion(poses)
  # Cars only drive forwards, along their heading, at most at 14 m/s.
  np.testing.assert_allclose(np.linalg.norm(step, axis=-1), along, atol=1e-9)
  assert np.all(along / interval <= 14.0 + 1e-9)
  right = np.cross([0.0, 1.0, 0.0], forward[:, 0])
  lateral = np.einsum('ni,ni->n', position[:, 0], right)
  assert np.all((lateral > 0) & (lateral < street.curb))
  parked = lateral > street.half_width
  # Parked cars stand in the strip, clear of the intersection.
  assert np.all(along[parked] == 0)
  distance = np.abs(np.einsum('nfi,nfi->nf', position, forward))[parked]
  assert np.all(distance - lengths[parked, None] / 2 >=
                street.curb + street.stop_gap)
  # Queued cars (road B, along z) stand behind the stop line until they
  # drive off; then they never stop again.
  queued = ~parked & (np.abs(forward[:, 0, 2]) > 0.5)
  front = np.einsum('nfi,nfi->nf', position, forward) + lengths[:, None] / 2
  started = np.cumsum(along > 0, axis=1) > 0
  assert np.all(front[queued, 0] <= -(street.curb + street.stop_gap) + 1e-9)
  assert np.all((along > 0)[queued] == started[queued])
  # Cars of one lane or strip (a strip each side of the crossing) never
  # overlap.
  end = np.sign(np.einsum('ni,ni->n', position[:, 0], forward[:, 0]))
  _assert_apart_in_lanes(
      position, forward, lengths,
      [tuple(np.round(np.r_[forward[car, 0], lateral[car]], 3)) +
       ((end[car],) if parked[car] else ()) for car in range(num_cars)],
      min_gap=0.5)


def test_parked_cars_need_a_parking_strip(rng):
  with pytest.raises(ValueError, match='parking strip'):
    scenes.place_traffic(rng, np.full(3, 4.5), 2, 0.5, parked_fraction=0.5)
