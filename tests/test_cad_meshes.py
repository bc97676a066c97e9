"""Car-render from CAD meshes: procedural cars exported and read back."""

import numpy as np
import pytest

from data_prep import viewpoints
from data_prep.car_render import cad_meshes
from data_prep.car_render import car_render_dataset_builder as builder_lib
from occnet_jax.categories import car as car_lib

CONFIG = builder_lib.CarRenderConfig(name='meshes', num_views=3,
                                     crop_size=32)
CAR = car_lib.CAR


def _render(seed, mesh, keypoints_3d, budget):
  directions = viewpoints.view_directions(
      CONFIG.icosphere_level, CONFIG.min_elevation_deg,
      CONFIG.max_elevation_deg)
  return builder_lib.render_views(np.random.default_rng(seed), mesh,
                                  keypoints_3d, directions, CONFIG, budget)


@pytest.mark.parametrize('suffix', ['.obj', '.glb'])
def test_a_procedural_car_renders_the_same_through_its_mesh_file(
    rng, tmp_path, suffix):
  model = CAR.synthesis.random_model(rng)
  path = tmp_path / f'car{suffix}'
  cad_meshes.export_model(model.mesh, model.keypoints, path, CAR)
  mesh, keypoints_3d = cad_meshes.load_model(path, CAR)
  np.testing.assert_allclose(mesh.corners, model.mesh.corners, atol=1e-6)
  np.testing.assert_array_equal(keypoints_3d, model.keypoints)
  # Files hold 8-bit colours.
  np.testing.assert_allclose(mesh.face_colors, model.mesh.face_colors,
                             atol=0.5 / 255 + 1e-6)
  seed = int(rng.integers(2**31))
  budget = CAR.synthesis.triangle_budget
  today = _render(seed, model.mesh, model.keypoints, budget)
  through_file = _render(seed, mesh, keypoints_3d,
                         cad_meshes.triangle_budget(mesh, budget))
  for view, other in zip(today, through_file):
    np.testing.assert_allclose(other.box, view.box, rtol=1e-5)
    np.testing.assert_array_equal(other.keypoints, view.keypoints)
    np.testing.assert_array_equal(other.visibility, view.visibility)
    # The quantised colours move a pixel by at most one level.
    difference = np.abs(other.crop.astype(int) - view.crop.astype(int))
    assert difference.max() <= 1


def test_a_bad_sidecar_is_named(tmp_path, rng):
  model = CAR.synthesis.random_model(rng)
  path = tmp_path / 'car.glb'
  cad_meshes.export_model(model.mesh, model.keypoints, path, CAR)
  cad_meshes.sidecar(path).write_text('{"keypoints": [[0, 0, 0]]}')
  with pytest.raises(cad_meshes.MeshInputError, match='car.keypoints.json'):
    cad_meshes.load_model(path, CAR)


def test_the_builder_renders_a_folder_of_meshes(tmp_path, rng,
                                                build_car_render):
  folder = tmp_path / 'downloads' / 'manual' / builder_lib.meshes_dir('car')
  folder.mkdir(parents=True)
  count = 5
  keypoints = {}
  for index in range(count):
    model = CAR.synthesis.random_model(rng)
    name = f'cad{index}.obj' if index % 2 else f'cad{index}.glb'
    cad_meshes.export_model(model.mesh, model.keypoints, folder / name, CAR)
    keypoints[f'mesh/{name}'] = model.keypoints
  splits = build_car_render(CONFIG, 'cad', count)
  seen = set()
  for example in (e for split in splits.values() for e in split):
    car_id = example['car_id']
    car_id = car_id.decode() if isinstance(car_id, bytes) else car_id
    seen.add(car_id)
    np.testing.assert_allclose(example['shape_3d'], keypoints[car_id],
                               rtol=1e-6)
    assert np.any(example['visibility'] == 1)
  assert seen == set(keypoints)
