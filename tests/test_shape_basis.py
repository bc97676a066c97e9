"""Tests of the PCA shape basis and its fitting tool."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_prep import fit_shape_basis as fit_tool
from occnet_jax import shape_basis
from occnet_jax.categories import car as car_lib
import fake_data

CAR = car_lib.CAR
K = CAR.num_keypoints
NUM_SHAPES = 50


def _mirror(shapes):
  return shapes[..., list(CAR.mirror), :] * np.array([1.0, 1.0, -1.0])


def _planted_shapes(rng, num_shapes, stddevs, noise):
  """Shapes around the mean car along random orthonormal directions."""
  directions = np.linalg.qr(rng.normal(size=(3 * K, len(stddevs))))[0].T
  coefficients = rng.normal(size=(num_shapes, len(stddevs))) * stddevs
  flat = CAR.mean_shape.reshape(-1) + coefficients @ directions
  flat += rng.normal(scale=noise, size=flat.shape)
  return flat.reshape(num_shapes, K, 3), directions


def _flat_components(basis):
  return np.asarray(basis.components, np.float64).reshape(
      basis.num_components, -1)


def test_all_components_reconstruct_the_training_shapes(rng):
  shapes = CAR.mean_shape + rng.normal(scale=0.2, size=(NUM_SHAPES, K, 3))
  basis = shape_basis.fit_shape_basis(shapes, 3 * K)
  flat = _flat_components(basis)
  np.testing.assert_allclose(flat @ flat.T, np.eye(3 * K), atol=1e-5)
  np.testing.assert_allclose(basis.explained_variance_ratio.sum(), 1.0,
                             rtol=1e-5)
  assert np.all(np.diff(basis.stddevs) <= 0)

  coefficients = ((shapes - basis.mean).reshape(NUM_SHAPES, -1) @ flat.T
                  / basis.stddevs)
  # beta is standardised over the training shapes.
  np.testing.assert_allclose(coefficients.std(axis=0, ddof=1), 1.0, rtol=1e-4)
  np.testing.assert_allclose(shape_basis.compose(basis, coefficients), shapes,
                             atol=1e-5)


def test_fit_recovers_planted_directions_and_stddevs(rng):
  stddevs = np.array([0.3, 0.2, 0.1])
  shapes, directions = _planted_shapes(rng, 4000, stddevs, noise=1e-3)
  basis = shape_basis.fit_shape_basis(shapes, 3)
  overlap = np.linalg.svd(_flat_components(basis) @ directions.T,
                          compute_uv=False)
  assert overlap.min() > 0.999  # same subspace
  np.testing.assert_allclose(basis.stddevs, stddevs, rtol=0.05)


def test_one_set_of_shapes_gives_one_basis(rng):
  shapes = CAR.mean_shape + rng.normal(scale=0.2, size=(NUM_SHAPES, K, 3))
  basis = shape_basis.fit_shape_basis(shapes, 5)
  flat = _flat_components(basis)
  # Each component's largest entry is positive (the sign is otherwise
  # arbitrary), so the order of the shapes does not matter.
  assert np.all(flat[np.arange(5), np.argmax(np.abs(flat), axis=1)] > 0)
  shuffled = shape_basis.fit_shape_basis(rng.permutation(shapes), 5)
  np.testing.assert_allclose(_flat_components(shuffled), flat, atol=1e-5)
  np.testing.assert_allclose(shuffled.stddevs, basis.stddevs, rtol=1e-5)


def test_symmetric_fit_gives_symmetric_mean_components_and_shapes(rng):
  shapes = CAR.mean_shape + rng.normal(scale=0.2, size=(NUM_SHAPES, K, 3))
  num_components = 3 * K // 2  # no keypoint of the car is on the plane
  basis = shape_basis.fit_shape_basis(shapes, num_components,
                                      mirror=CAR.mirror)
  np.testing.assert_allclose(_mirror(basis.mean), basis.mean, atol=1e-6)
  np.testing.assert_allclose(_mirror(basis.components), basis.components,
                             atol=1e-5)
  flat = _flat_components(basis)
  np.testing.assert_allclose(flat @ flat.T, np.eye(num_components), atol=1e-5)
  # The symmetric part of the variation is about half of it here.
  assert 0.3 < basis.explained_variance_ratio.sum() < 0.7
  composed = shape_basis.compose(basis, rng.normal(size=(4, num_components)))
  np.testing.assert_allclose(_mirror(np.asarray(composed)), composed,
                             atol=1e-5)
  with pytest.raises(ValueError, match='num_components'):
    shape_basis.fit_shape_basis(shapes, num_components + 1, mirror=CAR.mirror)


def test_compose_batches_and_jits_with_the_basis_as_a_pytree(rng):
  shapes = CAR.mean_shape + rng.normal(scale=0.2, size=(NUM_SHAPES, K, 3))
  basis = shape_basis.fit_shape_basis(shapes, 4)
  beta = rng.normal(size=(2, 3, 4)).astype(np.float32)
  composed = jax.jit(shape_basis.compose)(basis, beta)
  assert composed.shape == (2, 3, K, 3)
  expected = basis.mean + np.einsum('abn,nkd->abkd', beta * basis.stddevs,
                                    basis.components)
  np.testing.assert_allclose(composed, expected, atol=1e-5)
  np.testing.assert_allclose(
      shape_basis.compose(basis, jnp.zeros(4)), basis.mean)
  assert hash(basis) == hash(basis)  # usable as a linen module attribute


def test_save_load_round_trip(rng, tmp_path):
  shapes = CAR.mean_shape + rng.normal(scale=0.2, size=(NUM_SHAPES, K, 3))
  basis = shape_basis.fit_shape_basis(shapes, 5)
  path = str(tmp_path / 'basis.bin')  # no .npz suffix gets added
  shape_basis.save(path, basis)
  # Written beside and renamed onto the path: nothing else is left.
  assert [p.name for p in tmp_path.iterdir()] == ['basis.bin']
  loaded = shape_basis.load(path)
  for field in ('mean', 'components', 'stddevs', 'explained_variance_ratio'):
    np.testing.assert_array_equal(getattr(loaded, field), getattr(basis, field))


def test_a_mean_shape_without_components_loads(tmp_path):
  # What training saves for a split without 3D shapes (CarFusion).
  none = np.zeros((0,), np.float32)
  basis = shape_basis.ShapeBasis(
      mean=np.asarray(CAR.mean_shape, np.float32),
      components=np.zeros((0, K, 3), np.float32), stddevs=none,
      explained_variance_ratio=none)
  path = str(tmp_path / 'mean.npz')
  shape_basis.save(path, basis)
  loaded = shape_basis.load(path)
  assert loaded.components.shape == (0, K, 3)
  np.testing.assert_array_equal(loaded.mean, basis.mean)


def _write_npz(path, **arrays):
  with open(path, 'wb') as f:
    np.savez(f, **arrays)


@pytest.mark.parametrize('case, message', [
    ('garbage', 'Cannot read'),
    ('npy', 'not an .npz'),
    ('missing', 'lacks'),
    ('misshaped', 'components must be'),
    ('not_orthonormal', 'orthonormal'),
    ('nan', 'non-finite'),
])
def test_load_rejects_bad_files_naming_them(tmp_path, case, message):
  path = str(tmp_path / f'{case}.npz')
  good = dict(mean=np.zeros((K, 3)), components=np.eye(3 * K)[:2].reshape(
      2, K, 3), stddevs=np.ones(2), explained_variance_ratio=np.ones(2) / 2)
  if case == 'garbage':
    with open(path, 'wb') as f:
      f.write(b'PK\x03\x04 not a zip archive')
  elif case == 'npy':
    with open(path, 'wb') as f:
      np.save(f, np.zeros(3))
  elif case == 'missing':
    _write_npz(path, mean=good['mean'])
  elif case == 'misshaped':
    _write_npz(path, **{**good, 'components': np.zeros((2, K, 2))})
  elif case == 'not_orthonormal':
    _write_npz(path, **{**good, 'components': 2 * good['components']})
  else:
    _write_npz(path, **{**good, 'stddevs': np.array([1.0, np.nan])})
  with pytest.raises(ValueError, match=message) as error:
    shape_basis.load(path)
  assert path in str(error.value)


def test_load_shapes_reads_xyz_and_the_six_column_layout(rng, tmp_path):
  xyz = rng.normal(size=(5, K, 3))
  np.save(tmp_path / 'xyz.npy', xyz.astype(np.float32))
  np.save(tmp_path / 'six.npy', np.concatenate([rng.normal(size=(5, K, 3)),
                                                xyz], -1))
  np.testing.assert_allclose(shape_basis.load_shapes(tmp_path / 'xyz.npy'),
                             xyz, rtol=1e-6)
  np.testing.assert_array_equal(shape_basis.load_shapes(tmp_path / 'six.npy'),
                                xyz)


@pytest.mark.parametrize('array, message', [
    (np.zeros((5, K, 4)), r'\(N, K, 3\) or \(N, K, 6\)'),
    (np.zeros((5, K * 3)), r'\(N, K, 3\) or \(N, K, 6\)'),
    (np.full((5, K, 3), 'a'), 'dtype'),
    (np.zeros((5, K, 3), np.complex64), 'dtype'),
    (np.full((5, K, 3), np.inf), 'non-finite'),
])
def test_load_shapes_rejects_bad_arrays(tmp_path, array, message):
  path = tmp_path / 'shapes.npy'
  np.save(path, array)
  with pytest.raises(ValueError, match=message):
    shape_basis.load_shapes(path)


def test_fit_and_save_checks_the_category(rng, tmp_path):
  np.save(tmp_path / 'shapes.npy', rng.normal(size=(10, K + 1, 3)))
  with pytest.raises(ValueError, match='keypoints per shape'):
    fit_tool.fit_and_save(tmp_path / 'shapes.npy', 3, tmp_path / 'b.npz',
                          symmetric=False, category=CAR)


def test_command_line_tool_writes_a_symmetric_basis(rng, tmp_path):
  shapes, _ = _planted_shapes(rng, NUM_SHAPES, np.array([0.3, 0.2]), 1e-2)
  np.save(tmp_path / 'shapes.npy', shapes)
  output = tmp_path / 'basis.npz'
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  completed = subprocess.run(
      [sys.executable, '-m', 'data_prep.fit_shape_basis',
       f'--shapes={tmp_path / "shapes.npy"}', '--num_components=3',
       f'--output={output}', '--symmetric'],
      cwd=root, capture_output=True, text=True, check=True, timeout=120)
  assert completed.stdout.count('explained variance') == 3
  basis = shape_basis.load(output)
  assert basis.num_components == 3
  np.testing.assert_allclose(_mirror(basis.mean), basis.mean, atol=1e-6)


def test_shapes_of_a_built_split(tmp_path):
  fake_data.make_dataset(str(tmp_path), num_views=3,
                         split_sizes={'train': 6, 'test': 2})
  shapes = fit_tool.split_shapes(fake_data.NAME, 'train', str(tmp_path))
  assert shapes.shape == (6, K, 3)
  basis = fit_tool.fit_and_save(shapes, 2, tmp_path / 'b.npz',
                                symmetric=False, category=CAR)
  np.testing.assert_allclose(basis.mean, shapes.mean(axis=0), atol=1e-5)
