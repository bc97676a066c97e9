"""Tests of occnet_jax.mesh, the categories' procedural models and proxy_mesh.

Numpy only.
"""

import collections

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_prep.rendering import proxy_mesh
from occnet_jax import categories
from occnet_jax import mesh as mesh_lib
from occnet_jax.categories import car as car_lib


def _directed_edge_counts(faces):
  edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]],
                          faces[:, [2, 0]]])
  return collections.Counter(map(tuple, edges))


def assert_closed_and_oriented(mesh):
  """Every edge has exactly two faces, which traverse it in opposite ways."""
  counts = _directed_edge_counts(mesh.faces)
  assert all(n == 1 for n in counts.values()), 'an edge repeats a direction'
  assert all((b, a) in counts for a, b in counts), 'an edge has one face'


def signed_volume(mesh):
  corners = mesh.corners.astype(np.float64)
  return np.sum(np.einsum('fi,fi->f', corners[:, 0],
                          np.cross(corners[:, 1], corners[:, 2]))) / 6.0


def distance_to_surface(points, mesh):
  """Distance from each point to the nearest face (exact, float64)."""
  corners = mesh.corners.astype(np.float64)
  a, b, c = corners[None, :, 0], corners[None, :, 1], corners[None, :, 2]
  p = np.asarray(points, np.float64)[:, None]
  normal = np.cross(b - a, c - a)
  normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
  height = np.sum((p - a) * normal, axis=-1)
  foot = p - height[..., None] * normal
  inside = np.ones(height.shape, bool)
  for u, v in ((a, b), (b, c), (c, a)):
    inside &= np.sum(np.cross(v - u, foot - u) * normal, axis=-1) >= -1e-9
  # Outside a face, the nearest point is on one of its edges.
  def edge_distance(u, v):
    t = np.clip(np.sum((p - u) * (v - u), -1) / np.sum((v - u) ** 2, -1), 0, 1)
    return np.linalg.norm(p - (u + t[..., None] * (v - u)), axis=-1)
  outside = np.minimum(np.minimum(edge_distance(a, b), edge_distance(b, c)),
                       edge_distance(c, a))
  return np.min(np.where(inside, np.abs(height), outside), axis=1)


def test_primitives_are_closed_outward_solids(rng):
  size = rng.uniform(0.5, 3.0, 3)
  box = mesh_lib.box(size, rng.normal(size=3))
  radius, z0 = rng.uniform(0.2, 1.0), rng.normal()
  cylinder = mesh_lib.cylinder(radius, (z0, z0 + 0.7), (1, 0, 0), segments=9)
  angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
  profile = np.stack([np.cos(angles), np.sin(angles)], -1)
  extrusion = mesh_lib.extrusion(profile, (-0.4, 0.6), (0, 1, 0))
  for solid in (box, cylinder, extrusion):
    assert_closed_and_oriented(solid)
  np.testing.assert_allclose(signed_volume(box), np.prod(size), rtol=1e-5)
  np.testing.assert_allclose(
      signed_volume(cylinder), 0.7 * 4.5 * radius**2 * np.sin(2 * np.pi / 9),
      rtol=1e-5)
  following = np.roll(profile, -1, 0)
  polygon_area = 0.5 * np.sum(profile[:, 0] * following[:, 1]
                              - profile[:, 1] * following[:, 0])
  np.testing.assert_allclose(signed_volume(extrusion), polygon_area,
                             rtol=1e-5)
  # Face normals point away from the solid's centre.
  normals = mesh_lib.face_normals(box.vertices, box.faces)
  outward = box.corners.mean(1) - box.vertices.mean(0)
  assert np.all(np.sum(normals * outward, -1) > 0)


def test_quad_is_a_closed_two_sided_sheet(rng):
  corners = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)]) + rng.normal(
      size=3)
  sheet = mesh_lib.quad(corners, (0.5, 0.5, 0.5))
  assert_closed_and_oriented(sheet)
  normals = mesh_lib.face_normals(sheet.vertices, sheet.faces)
  np.testing.assert_allclose(normals[:2], [[0, 0, 1]] * 2, atol=1e-6)
  np.testing.assert_allclose(normals[2:], [[0, 0, -1]] * 2, atol=1e-6)


def test_merge_transform_and_padding(rng):
  first = mesh_lib.with_object_id(mesh_lib.box((1, 2, 3)), 4)
  second = mesh_lib.with_object_id(mesh_lib.cylinder(0.5, (0, 1), (0, 0, 1)), 7)
  merged = mesh_lib.merge([first, second])
  assert_closed_and_oriented(merged)
  np.testing.assert_array_equal(merged.corners[:first.num_faces],
                                first.corners)
  np.testing.assert_array_equal(merged.corners[first.num_faces:],
                                second.corners)
  np.testing.assert_array_equal(
      merged.object_ids, [4] * first.num_faces + [7] * second.num_faces)

  rotation = Rotation.random(random_state=rng).as_matrix()
  translation = rng.normal(size=3)
  moved = mesh_lib.transform(merged, rotation, translation)
  np.testing.assert_allclose(moved.vertices,
                             merged.vertices @ rotation.T + translation,
                             atol=1e-5)
  np.testing.assert_allclose(signed_volume(moved), signed_volume(merged),
                             rtol=1e-4)

  budget = merged.num_faces + int(rng.integers(1, 20))
  triangles = mesh_lib.to_triangles(merged, budget)
  assert triangles.corners.shape == (budget, 3, 3)
  np.testing.assert_array_equal(triangles.valid,
                                np.arange(budget) < merged.num_faces)
  np.testing.assert_array_equal(triangles.corners[:merged.num_faces],
                                merged.corners)
  with pytest.raises(ValueError, match='budget'):
    mesh_lib.to_triangles(merged, merged.num_faces - 1)


@pytest.fixture(scope='module')
def cars():
  seed = np.random.SeedSequence().entropy
  print(f'cars seed={seed}')
  rng = np.random.default_rng(seed)
  return [car_lib.random_car(rng, kind)
          for kind in car_lib.CAR_KINDS for _ in range(8)]


def test_cars_are_closed_within_budget(cars):
  for car in cars:
    assert car.mesh.num_faces <= car_lib.TRIANGLE_BUDGET
    assert_closed_and_oriented(car.mesh)
    assert signed_volume(car.mesh) > 0.5 * car.shape.length * car.shape.width


def test_car_keypoints_lie_on_their_parts(cars):
  expected_parts = (
      [mesh_lib.Part.RIM] * 4 + [mesh_lib.Part.HEADLIGHT] * 2
      + [mesh_lib.Part.TAIL_LIGHT] * 2 + [mesh_lib.Part.WINDOW] * 4)
  for car in cars:
    distance = distance_to_surface(car.keypoints, car.mesh)
    assert np.all(distance < 1e-5), distance
    for point, part in zip(car.keypoints, expected_parts):
      on_part = car.mesh.part_ids == part
      part_mesh = mesh_lib.Mesh(
          car.mesh.vertices, car.mesh.faces[on_part],
          car.mesh.face_colors[on_part], car.mesh.object_ids[on_part],
          car.mesh.part_ids[on_part])
      assert distance_to_surface(point[None], part_mesh)[0] < 1e-5, part
    # The wheels stand on the ground plane.
    np.testing.assert_allclose(car.mesh.vertices[:, 1].min(), car.ground_y,
                               atol=1e-5)


def test_cars_are_mirror_symmetric(cars):
  mirror = np.array([1.0, 1.0, -1.0])
  for car in cars:
    np.testing.assert_allclose(
        car.keypoints[list(car_lib.CAR.mirror)], car.keypoints * mirror,
        atol=1e-6)
    # Right side is negative z.
    assert np.all(car.keypoints[0::2, 2] < 0)
    vertices = np.unique(np.round(car.mesh.vertices, 4), axis=0)
    mirrored = np.unique(np.round(car.mesh.vertices * mirror, 4), axis=0)
    np.testing.assert_allclose(vertices, mirrored, atol=2e-4)


def test_car_proportions_are_near_the_mean_shape(cars):
  mean_shape = car_lib.CAR.mean_shape
  sedans = np.stack([c.keypoints for c in cars if c.kind == 'sedan'])
  sedan_error = np.linalg.norm(sedans.mean(0) - mean_shape, axis=-1)
  print('sedan mean keypoint error (m):', sedan_error.round(3))
  assert np.sqrt(np.mean(sedan_error**2)) < 0.15
  for car in cars:
    assert np.linalg.norm(car.keypoints - mean_shape, axis=-1).max() < 1.6
  # Kinds differ the way real cars do.
  height = {kind: np.mean([c.keypoints[8, 1] - c.ground_y for c in cars
                           if c.kind == kind])
            for kind in car_lib.CAR_KINDS}
  assert height['sedan'] < height['suv'] < height['van']


def test_cars_are_deterministic(rng):
  seed = int(rng.integers(2**31))
  first = car_lib.random_car(np.random.default_rng(seed))
  second = car_lib.random_car(np.random.default_rng(seed))
  other = car_lib.random_car(np.random.default_rng(seed + 1))
  np.testing.assert_array_equal(first.keypoints, second.keypoints)
  np.testing.assert_array_equal(first.mesh.vertices, second.mesh.vertices)
  np.testing.assert_array_equal(first.mesh.face_colors,
                                second.mesh.face_colors)
  assert not np.array_equal(first.mesh.vertices, other.mesh.vertices)


def test_proxy_mesh_is_a_closed_hull_through_the_keypoints(cars, rng):
  shapes = [car_lib.CAR.mean_shape] + [c.keypoints for c in cars]
  # Annotated cars are not perfectly symmetric.
  shapes += [car_lib.CAR.mean_shape * rng.uniform(0.85, 1.15, 3)
             + rng.normal(scale=0.02, size=(12, 3)) for _ in range(10)]
  for shape in shapes:
    hull = proxy_mesh.proxy_mesh(shape, car_lib.CAR, (0.4, 0.5, 0.6),
                                 object_id=3)
    assert hull.num_faces <= proxy_mesh.triangle_budget(car_lib.CAR)
    assert_closed_and_oriented(hull)
    assert signed_volume(hull) > 0
    np.testing.assert_array_equal(hull.object_ids, 3)
    assert np.all(distance_to_surface(shape, hull) < 1e-5)
    # The hull reaches down to the ground under the wheels.
    ground = car_lib.proxy_points(shape)[:4, 1]
    np.testing.assert_allclose(hull.vertices[:, 1].min(), ground.min(),
                               atol=1e-5)


SYNTHESISED = [categories.get_category(name) for name in categories.names()
               if categories.get_category(name).synthesis is not None]


@pytest.mark.parametrize('category', SYNTHESISED, ids=lambda c: c.name)
def test_every_category_makes_closed_symmetric_models(category, rng):
  synthesis = category.synthesis
  seed = int(rng.integers(2**31))
  models = [synthesis.random_model(np.random.default_rng(seed + i))
            for i in range(12)]
  again = synthesis.random_model(np.random.default_rng(seed))
  np.testing.assert_array_equal(again.keypoints, models[0].keypoints)
  np.testing.assert_array_equal(again.mesh.vertices, models[0].mesh.vertices)
  mirror = np.array([1.0, 1.0, -1.0])
  for model in models:
    assert model.keypoints.shape == (category.num_keypoints, 3)
    assert model.mesh.num_faces <= synthesis.triangle_budget
    assert_closed_and_oriented(model.mesh)
    assert signed_volume(model.mesh) > 0
    assert np.all(distance_to_surface(model.keypoints, model.mesh) < 1e-5)
    np.testing.assert_allclose(model.keypoints[list(category.mirror)],
                               model.keypoints * mirror, atol=1e-6)
  # The mean shape is a typical model's: the mean keypoints of many models
  # lie near it. The car's kinds put their mean up to 0.09 of its size
  # from it, with a spread of up to 0.16 of its size per keypoint; the mean
  # of 400 models (a few ms each) errs by a twentieth of that spread, so
  # the bound holds for every seed (the mean of 12 broke it for some).
  size = np.ptp(category.mean_shape, axis=0).max()
  mean = np.mean([synthesis.random_model(np.random.default_rng(
      seed + i)).keypoints for i in range(400)], axis=0)
  assert np.linalg.norm(mean - category.mean_shape, axis=-1).max() < 0.2 * size
  # Keypoint-only models of the category keep every keypoint on their hull.
  for shape in [category.mean_shape] + [model.keypoints for model in models]:
    hull = proxy_mesh.proxy_mesh(shape, category, synthesis.random_paint(rng))
    assert hull.num_faces <= proxy_mesh.triangle_budget(category)
    assert_closed_and_oriented(hull)
    assert np.all(distance_to_surface(shape, hull) < 1e-5)
