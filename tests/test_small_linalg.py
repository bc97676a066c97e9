"""Tests of occnet_jax.geometry.small_linalg against numpy's LAPACK."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from occnet_jax.geometry import small_linalg

BATCH = (2, 5)

_det3 = jax.jit(small_linalg.det3)
_det4 = jax.jit(small_linalg.det4)
_adjugate3 = jax.jit(small_linalg.adjugate3)
_det3_gradient = jax.jit(jax.grad(lambda m: jnp.sum(small_linalg.det3(m))))
_det4_gradient = jax.jit(jax.grad(lambda m: jnp.sum(small_linalg.det4(m))))


def _hadamard_bound(matrix):
  """Product of the row norms: the largest |det| rows of these norms give."""
  return np.prod(np.linalg.norm(matrix, axis=-1), axis=-1)


def _random_matrices(rng, size):
  """Matrices whose entries span a few orders of magnitude."""
  return rng.normal(size=BATCH + (size, size)) * 10.0**rng.uniform(
      -2, 2, size=BATCH + (1, 1))


@pytest.mark.parametrize('size', [3, 4])
def test_det_matches_lapack(rng, size):
  matrix = _random_matrices(rng, size)
  det = {3: _det3, 4: _det4}[size]
  expected = np.linalg.det(matrix)
  bound = _hadamard_bound(matrix)
  with jax.enable_x64(True):
    error_64 = np.abs(np.asarray(det(matrix)) - expected) / bound
  error_32 = np.abs(
      np.asarray(det(jnp.asarray(matrix, jnp.float32)), np.float64)
      - expected) / bound
  assert error_64.max() < 1e-14
  assert error_32.max() < 1e-5
  # Well-conditioned matrices: relative to the determinant itself.
  well_conditioned = np.linalg.cond(matrix) < 100
  relative = error_64 * bound / np.abs(expected)
  assert relative[well_conditioned].max(initial=0.0) < 1e-10


@pytest.mark.parametrize('size', [3, 4])
def test_det_is_zero_for_singular_and_flips_sign_under_row_swaps(rng, size):
  matrix = rng.normal(size=(size, size))
  det = {3: _det3, 4: _det4}[size]
  singular = matrix.copy()
  singular[-1] = rng.normal(size=size - 1) @ matrix[:-1]
  swapped = matrix[[1, 0, *range(2, size)]]
  with jax.enable_x64(True):
    assert abs(float(det(singular))) < 1e-12 * _hadamard_bound(matrix)
    np.testing.assert_allclose(det(swapped), -det(matrix), rtol=1e-12)


def test_adjugate_matches_lapack_and_is_defined_when_singular(rng):
  matrix = _random_matrices(rng, 3)
  with jax.enable_x64(True):
    adjugate = np.asarray(_adjugate3(matrix))
    expected = np.linalg.det(matrix)[..., None, None] * np.linalg.inv(matrix)
    scale = np.abs(expected).max(axis=(-2, -1), keepdims=True)
    np.testing.assert_allclose(adjugate, expected, rtol=0,
                               atol=1e-10 * scale.max())
    identity = np.asarray(_det3(matrix))[..., None, None] * np.eye(3)
    np.testing.assert_allclose(matrix @ adjugate, identity, rtol=0,
                               atol=1e-12 * np.abs(identity).max())
    # Rank 2: adj(M) is rank 1, its columns span the null space of M.
    rank_two = matrix[0, 0].copy()
    rank_two[2] = rng.normal(size=2) @ rank_two[:2]
    adjugate = np.asarray(_adjugate3(rank_two))
  null_vector = np.linalg.svd(rank_two)[2][-1]
  column = adjugate[:, np.argmax(np.linalg.norm(adjugate, axis=0))]
  cosine = abs(column @ null_vector) / np.linalg.norm(column)
  assert cosine > 1 - 1e-12
  np.testing.assert_allclose(rank_two @ adjugate, 0.0,
                             atol=1e-12 * np.abs(rank_two).max()**3)


def test_pair_minors_are_the_2x2_determinants(rng):
  rows = rng.normal(size=BATCH + (2, 4))
  with jax.enable_x64(True):
    minors = np.asarray(small_linalg.pair_minors(rows[..., 0, :],
                                                 rows[..., 1, :]))
  pairs = list(itertools.combinations(range(4), 2))
  expected = np.stack([np.linalg.det(rows[..., list(pair)]) for pair in pairs],
                      -1)
  np.testing.assert_allclose(minors, expected, rtol=1e-12, atol=1e-14)


def test_det4_from_shared_minors_broadcasts(rng):
  upper = rng.normal(size=(2, 4))
  lower = rng.normal(size=(3, 2, 4))
  with jax.enable_x64(True):
    shared = small_linalg.det4_from_minors(
        small_linalg.pair_minors(upper[0], upper[1]),
        small_linalg.pair_minors(lower[:, 0], lower[:, 1]))
  matrices = np.concatenate([np.broadcast_to(upper, (3, 2, 4)), lower], 1)
  np.testing.assert_allclose(shared, np.linalg.det(matrices), rtol=1e-10)


@pytest.mark.parametrize('size', [3, 4])
def test_det_gradient_is_the_cofactor_matrix(rng, size):
  # Jacobi's formula: d det(M) / dM = adj(M)^T = det(M) M^-T.
  matrix = rng.normal(size=BATCH + (size, size))
  gradient_fn = {3: _det3_gradient, 4: _det4_gradient}[size]
  with jax.enable_x64(True):
    gradient = np.asarray(gradient_fn(matrix))
    # Defined at singular matrices too: the zero matrix has zero cofactors.
    at_zero = np.asarray(gradient_fn(np.zeros((size, size))))
  expected = np.linalg.det(matrix)[..., None, None] * np.swapaxes(
      np.linalg.inv(matrix), -1, -2)
  np.testing.assert_allclose(gradient, expected, rtol=1e-9,
                             atol=1e-12 * np.abs(expected).max())
  np.testing.assert_array_equal(at_zero, 0.0)
