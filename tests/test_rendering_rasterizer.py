"""Tests of rendering.rasterizer against projection, ray casts and crops."""

import functools

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_prep.rendering import rasterizer
from data_prep.rendering import visibility
from occnet_jax import mesh as mesh_lib
from occnet_jax.categories import car as car_lib
from occnet_jax.geometry import cameras
from tests import rendering_scenes

FRAME_SIZE = (256, 192)
CROP = 64
BUDGET = 2 * car_lib.TRIANGLE_BUDGET + 16


@functools.partial(jax.jit, static_argnames=('size', 'capacity'))
def _rasterize_views(triangles, cameras_, *, size, capacity):
  return jax.vmap(functools.partial(
      rasterizer.rasterize, size=size, capacity=capacity),
                  in_axes=(None, 0))(triangles, cameras_)


def _exact_fragments(triangles, cameras_, size):
  capacity = rasterizer.tile_capacity(triangles, cameras_, size)
  return _rasterize_views(triangles, cameras_, size=size, capacity=capacity)


@pytest.fixture(scope='module')
def scene():
  seed = np.random.SeedSequence().entropy
  print(f'scene seed={seed}')
  rng = np.random.default_rng(seed)
  mesh, _, _ = rendering_scenes.street_scene(rng)
  views = rendering_scenes.orbit_cameras(
      rng, 6, FRAME_SIZE, target=(0.0, 0.8, 0.0), distance_range=(7.0, 14.0),
      focal_range=(120.0, 300.0))
  return mesh, mesh_lib.to_triangles(mesh, BUDGET), views


def _edge_distances(projected, points):
  """(N, T) smallest signed pixel distance of points inside 2D triangles."""
  distances = []
  for i in range(3):
    start, end = projected[:, i], projected[:, (i + 1) % 3]
    edge = end - start
    cross = (edge[None, :, 0] * (points[:, None, 1] - start[None, :, 1])
             - edge[None, :, 1] * (points[:, None, 0] - start[None, :, 0]))
    distances.append(cross / np.linalg.norm(edge, axis=-1))
  distances = np.stack(distances, -1)
  # Either winding: inside means all distances share a sign.
  return np.maximum(distances.min(-1), (-distances).min(-1))


def test_coverage_matches_projected_triangles(scene, rng):
  mesh, triangles, views = scene
  fragments = _exact_fragments(triangles, views, FRAME_SIZE)
  width, height = FRAME_SIZE
  coverage = []
  for v in range(len(views)):
    rows = rng.integers(0, height, 3000)
    columns = rng.integers(0, width, 3000)
    centres = np.stack([columns + 0.5, rows + 0.5], -1)
    pixels, depth = cameras.project(views[v], mesh.vertices)
    projected = np.asarray(pixels, np.float64)[mesh.faces]
    in_front = np.all(np.asarray(depth)[mesh.faces] > 0.1, axis=-1)
    inside = np.where(in_front[None], _edge_distances(projected, centres),
                      -np.inf)
    drawn = np.asarray(fragments.triangle_id[v])[rows, columns]
    hit = drawn >= 0
    # The drawn triangle covers the pixel centre, to 0.01 px.
    assert np.all(inside[np.flatnonzero(hit), drawn[hit]] > -0.01)
    # Background pixels are more than 0.01 px outside every triangle.
    assert np.all(inside[~hit].max(axis=1, initial=-np.inf) < 0.01)
    coverage.append(hit.mean())
  assert 0.05 < np.mean(coverage) < 0.95


def test_marker_centroids_project_where_the_camera_says(rng):
  car = car_lib.random_car(rng)
  view = rendering_scenes.orbit_cameras(rng, 1, FRAME_SIZE,
                                        target=(0.0, 0.0, 0.0))[0]
  intrinsics, rotation = cv2.decomposeProjectionMatrix(
      view.astype(np.float64))[:2]
  pixels, depth = map(np.asarray, cameras.project(view, car.keypoints))
  # A square marker parallel to the image plane, 1 px half-side, at each
  # keypoint: its image is a square centred on the keypoint's projection.
  right, down = rotation[0], rotation[1]
  markers = []
  for point, d in zip(car.keypoints, depth):
    half = d / (intrinsics[0, 0] / intrinsics[2, 2])
    corners = [point + half * (sx * right + sy * down)
               for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    markers.append(mesh_lib.to_triangles(
        mesh_lib.quad(corners, (1.0, 1.0, 1.0)), 4))
  # Each keypoint's 4 x 4 px window rendered 16x magnified, one marker per
  # window so that markers cannot hide one another.
  boxes = np.concatenate([pixels - 2.0, pixels + 2.0], -1)
  _, fragments = rasterizer.render_windows(
      mesh_lib.stack_triangles(markers), np.broadcast_to(view, (12, 3, 4)),
      boxes, CROP, light_direction=np.array([0.0, 1.0, 0.0]))
  for k in range(12):
    rows, columns = np.nonzero(np.asarray(fragments.triangle_id[k]) >= 0)
    assert 600 < len(rows) < 1500  # about the 32 x 32 px marker
    centroid = np.array([columns.mean() + 0.5, rows.mean() + 0.5])
    np.testing.assert_allclose(boxes[k, :2] + centroid * 4.0 / CROP,
                               pixels[k], atol=0.1)


def test_first_hit_matches_ray_cast(scene, rng):
  mesh, triangles, views = scene
  fragments = _exact_fragments(triangles, views, FRAME_SIZE)
  agree = total = 0
  for v in range(len(views)):
    rows = rng.integers(0, FRAME_SIZE[1], 400)
    columns = rng.integers(0, FRAME_SIZE[0], 400)
    centres = np.stack([columns + 0.5, rows + 0.5], -1)
    origin, directions = rendering_scenes.pixel_rays(views[v], centres)
    distance, face = visibility.ray_cast(
        mesh.corners, np.broadcast_to(origin, directions.shape), directions)
    ray_hit = face >= 0
    ray_depth = np.asarray(cameras.project(
        views[v], origin + np.where(ray_hit, distance, 0.0)[:, None]
        * directions)[1])
    hit_depth = np.asarray(fragments.depth[v])[rows, columns]
    drawn = np.isfinite(hit_depth)
    error = np.abs(np.where(drawn, hit_depth, 0.0) - ray_depth)
    same = np.where(ray_hit, drawn & (error < 1e-4 * ray_depth), ~drawn)
    agree += same.sum()
    total += len(same)
  print(f'first hit agreement {agree / total:.5f} of {total} rays')
  assert agree / total > 0.998


def test_tile_capacity_is_exact(scene):
  _, triangles, views = scene
  exact = _exact_fragments(triangles, views, FRAME_SIZE)
  everything = _rasterize_views(triangles, views, size=FRAME_SIZE,
                                capacity=None)
  capacity = rasterizer.tile_capacity(triangles, views, FRAME_SIZE)
  assert capacity < BUDGET
  np.testing.assert_array_equal(exact.triangle_id, everything.triangle_id)
  np.testing.assert_array_equal(exact.depth, everything.depth)


def test_window_equals_crop_of_the_frame(scene, rng):
  _, triangles, views = scene
  view = views[:1]
  frame_image, frame = rasterizer.render(
      triangles, view, FRAME_SIZE, light_direction=np.array([0.2, 1.0, 0.4]))
  # The whole frame, resampled to one crop, is a window too.
  x0, y0 = rng.integers(0, 32, 2)
  scaled_box = np.array([x0, y0, x0 + 2 * CROP, y0 + 2 * CROP], np.float32)
  unit_box = np.array([x0, y0, x0 + CROP, y0 + CROP], np.float32)
  images, windows = rasterizer.render_windows(
      triangles, np.concatenate([view, view]), np.stack([unit_box,
                                                         scaled_box]), CROP,
      light_direction=np.array([0.2, 1.0, 0.4]))
  # Unit scale: the crop camera samples the same pixel centres.
  frame_ids = np.asarray(frame.object_id[0])
  window_ids = frame_ids[y0:y0 + CROP, x0:x0 + CROP]
  assert np.mean(np.asarray(windows.object_id[0]) == window_ids) > 0.999
  # Pixels on a crease may take either face: depths agree but for those.
  assert np.mean(np.isclose(windows.depth[0],
                            frame.depth[0, y0:y0 + CROP, x0:x0 + CROP],
                            rtol=1e-4)) > 0.999
  # Half scale: equal to resampling the frame, but for edge pixels.
  resampled = cv2.resize(frame_ids[y0:y0 + 2 * CROP, x0:x0 + 2 * CROP],
                         (CROP, CROP), interpolation=cv2.INTER_NEAREST)
  assert np.mean(np.asarray(windows.object_id[1]) == resampled) > 0.95
  area = cv2.resize(np.asarray(frame_image[0, y0:y0 + 2 * CROP,
                                           x0:x0 + 2 * CROP]),
                    (CROP, CROP), interpolation=cv2.INTER_AREA)
  assert np.mean(np.abs(np.asarray(images[1]) - area)) < 0.03


def test_window_of_a_huge_frame_needs_no_frame(rng):
  car = car_lib.random_car(rng)
  triangles = mesh_lib.to_triangles(car.mesh, car_lib.TRIANGLE_BUDGET)
  # A 1e6 x 1e6 frame (4 TB of pixels): the car sits near its centre.
  centre = 5e5
  intrinsics = cameras.intrinsics_matrix(rng.uniform(2e3, 4e3),
                                         np.array([centre, centre]))
  rotation, translation = cameras.look_at(
      rng.uniform(6.0, 9.0) * np.array([1.0, 0.5, -0.8]), np.zeros(3))
  huge = cameras.projection_matrix(intrinsics, rotation, translation)
  pixels, _ = cameras.project(huge, car.mesh.vertices)
  box = jnp.concatenate([pixels.min(0) - 5, pixels.max(0) + 5])
  crop_camera = cameras.crop_camera(huge, box, CROP)
  capacity = rasterizer.tile_capacity(triangles, crop_camera[None],
                                      (CROP, CROP))
  render_crop = jax.jit(functools.partial(
      rasterizer.rasterize, size=(CROP, CROP), capacity=capacity))
  compiled = render_crop.lower(triangles, crop_camera).compile()
  assert compiled.memory_analysis().temp_size_in_bytes < 16 * 2**20
  fragments = compiled(triangles, crop_camera)
  # The same window from a small frame whose camera only moves the
  # principal point: identical pixels.
  shift = np.array([[1, 0, 600 - centre], [0, 1, 600 - centre], [0, 0, 1]])
  small = shift @ np.asarray(huge)
  small_box = np.asarray(box) + (600 - centre)
  small_fragments = render_crop(
      triangles, cameras.crop_camera(small, small_box, CROP))
  # float32 crop cameras of the two frames differ by rounding only.
  assert np.mean(np.asarray(fragments.triangle_id)
                 == np.asarray(small_fragments.triangle_id)) > 0.99
  assert 0.2 < np.mean(np.asarray(fragments.triangle_id) >= 0) < 0.95


def test_ground_behind_the_camera_and_near_plane(rng):
  height = rng.uniform(1.0, 3.0)
  ground = mesh_lib.quad([(-50, 0, -50), (-50, 0, 50), (50, 0, 50),
                          (50, 0, -50)], (0.3, 0.3, 0.3))
  near = rasterizer.DEFAULT_NEAR
  # A box wholly nearer than the near plane, right in front of the lens.
  blocker = mesh_lib.box((0.02, 0.02, 0.02), (0.0, height, 0.02))
  triangles = mesh_lib.to_triangles(mesh_lib.merge([ground, blocker]), 32)
  focal = rng.uniform(100.0, 200.0)
  size = (64, 48)
  # Level camera at the centre of the ground, looking along world +z.
  rotation, translation = cameras.look_at(np.array([0.0, height, 0.0]),
                                          np.array([0.0, height, 1.0]))
  camera = cameras.projection_matrix(
      cameras.intrinsics_matrix(focal, np.array([32.0, 24.0])), rotation,
      translation)
  _, fragments = rasterizer.render(triangles, camera, size,
                                   light_direction=np.array([0.0, 1.0, 0.0]))
  depth = np.asarray(fragments.depth)
  rows = np.arange(48)[:, None] + 0.5
  expected = np.broadcast_to(
      np.where(rows > 24.0, height * focal / np.maximum(rows - 24.0, 1e-9),
               np.inf), depth.shape)
  # The ground ends 50 m ahead: compare only nearer points.
  close = expected < 40.0
  assert close.sum() > 100
  np.testing.assert_allclose(expected[close], depth[close], rtol=1e-4)
  assert np.all(np.isinf(depth[:24]))
  assert np.all(depth >= near)
  ids = np.asarray(fragments.triangle_id)
  assert np.all(ids[ids >= 0] < 4)  # ground faces only
  # With a nearer near plane the box hides the middle of the view.
  _, nearer = rasterizer.render(triangles, camera, size, near=0.005,
                                light_direction=np.array([0.0, 1.0, 0.0]))
  assert np.all(np.asarray(nearer.triangle_id)[20:28, 28:36] >= 4)


def test_lambert_shading_and_background(rng):
  albedo = rng.uniform(0.2, 1.0, 3)
  box = mesh_lib.box((2.0, 2.0, 2.0), (0.0, 0.0, 0.0), albedo)
  triangles = mesh_lib.to_triangles(box, 12)
  camera = rendering_scenes.orbit_cameras(
      rng, 1, (48, 48), distance_range=(6.0, 8.0), elevation_range=(0.4, 0.9),
      focal_range=(60.0, 80.0), aim_jitter=0.0)
  ambient = rng.uniform(0.1, 0.5)
  background = rng.uniform(size=(48, 48, 3)).astype(np.float32)
  image, fragments = rasterizer.render(
      triangles, camera, (48, 48), light_direction=np.array([0.0, 2.0, 0.0]),
      ambient=ambient, background=background)
  image, ids = np.asarray(image[0]), np.asarray(fragments.triangle_id[0])
  top = (ids == 6) | (ids == 7)  # +y faces, facing the light
  sides = (ids >= 0) & ~top
  assert top.sum() > 20 and sides.sum() > 20
  np.testing.assert_allclose(image[top], np.broadcast_to(albedo, (top.sum(),
                                                                  3)),
                             rtol=1e-5)
  np.testing.assert_allclose(
      image[sides], np.broadcast_to(ambient * albedo, (sides.sum(), 3)),
      rtol=1e-5)
  np.testing.assert_array_equal(image[ids < 0], background[ids < 0])


def test_batched_cars_match_single_renders(rng):
  cars = [car_lib.random_car(rng, object_id=i) for i in range(2)]
  triangles = [mesh_lib.to_triangles(c.mesh, car_lib.TRIANGLE_BUDGET)
               for c in cars]
  views = rendering_scenes.orbit_cameras(rng, 2, (CROP, CROP))
  light = rng.normal(size=(2, 3))
  images, fragments = rasterizer.render(
      mesh_lib.stack_triangles(triangles), views, (CROP, CROP),
      light_direction=light)
  for i in range(2):
    image, single = rasterizer.render(triangles[i], views[i], (CROP, CROP),
                                      light_direction=light[i])
    np.testing.assert_array_equal(fragments.triangle_id[i],
                                  single.triangle_id)
    np.testing.assert_array_equal(fragments.object_id[i],
                                  np.where(single.triangle_id >= 0, i, -1))
    np.testing.assert_allclose(images[i], image, atol=1e-6)


def test_backgrounds_noise_and_uint8(rng):
  key = jax.random.key(int(rng.integers(2**31)))
  first = rasterizer.random_background(key, (40, 30))
  assert first.shape == (30, 40, 3)
  np.testing.assert_array_equal(first,
                                rasterizer.random_background(key, (40, 30)))
  other = rasterizer.random_background(jax.random.fold_in(key, 1), (40, 30))
  assert np.abs(np.asarray(first) - np.asarray(other)).mean() > 0.05
  assert 0.0 <= float(first.min()) and float(first.max()) <= 1.0
  # Textured: neighbouring pixels differ, distant ones more.
  assert float(jnp.std(first[:, 1:] - first[:, :-1])) > 0.01
  stddev = rng.uniform(0.02, 0.1)
  grey = jnp.full((64, 64, 3), 0.5)
  noisy = rasterizer.add_noise(key, grey, stddev)
  np.testing.assert_allclose(float(jnp.std(noisy)), stddev, rtol=0.1)
  values = jnp.array([0.0, 0.25, 0.6, 1.0, 1.3, -0.2])
  np.testing.assert_array_equal(rasterizer.to_uint8(values),
                                [0, 64, 153, 255, 255, 0])
