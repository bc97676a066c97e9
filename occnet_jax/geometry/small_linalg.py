"""Closed-form determinants and adjugates of 3x3 and 4x4 matrices.

`jnp.linalg.det`, `solve`, `inv` and `svd` lower to LAPACK custom calls on
the CPU (getrf, gesdd, ...), which run outside XLA's fusion and, on a
two-core host, deadlocked the training step: two such calls occupied both
threads of XLA's CPU pool while waiting for sub-tasks queued on that same
pool. Multi-view geometry only needs these operations on fixed, tiny
matrices, where closed forms are exact polynomials in the entries: plain
elementwise ops that XLA fuses, batch over any leading axes, cost a few
dozen flops and have finite gradients everywhere, singular matrices
included.

Column pairs of a 4-column matrix are indexed in lexicographic order
(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3); the complement of pair s is
pair 5 - s.
"""

import jax.numpy as jnp
import numpy as np

_PAIRS = np.array([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])
# Sign (-1)^(1 + 2 + j + k) (1-based rows 1, 2 and columns j, k) of each
# term of the Laplace expansion along the first two rows.
_LAPLACE_SIGNS = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])


def det3(matrix):
  """Determinants of (..., 3, 3) matrices: the triple product of the rows.

  Args:
    matrix: (..., 3, 3) matrices.

  Returns:
    (...) determinants.
  """
  return jnp.sum(matrix[..., 0, :] * jnp.cross(matrix[..., 1, :],
                                               matrix[..., 2, :]), axis=-1)


def adjugate3(matrix):
  """Adjugates adj(M) of (..., 3, 3) matrices, M adj(M) = det(M) I.

  Column i of adj(M) is the cross product of the two rows of M other than
  i (in cyclic order), which is orthogonal to both and has dot product
  det(M) with row i. adj(M) is defined, and smooth, for singular M too: for
  rank 2 its columns span the null space of M.

  Args:
    matrix: (..., 3, 3) matrices.

  Returns:
    (..., 3, 3) adjugates.
  """
  rows = [matrix[..., i, :] for i in range(3)]
  return jnp.stack([jnp.cross(rows[1], rows[2]), jnp.cross(rows[2], rows[0]),
                    jnp.cross(rows[0], rows[1])], axis=-1)


def pair_minors(row_a, row_b):
  """The six 2x2 minors of the 2x4 matrices [row_a; row_b].

  Args:
    row_a: (..., 4) first rows.
    row_b: (..., 4) second rows (broadcast against row_a).

  Returns:
    (..., 6) minors a_j b_k - a_k b_j over the column pairs (j, k) in
    lexicographic order (module docstring).
  """
  j, k = _PAIRS[:, 0], _PAIRS[:, 1]
  return row_a[..., j] * row_b[..., k] - row_a[..., k] * row_b[..., j]


def det4_from_minors(upper_minors, lower_minors):
  """Determinants of 4x4 matrices from the pair minors of their row halves.

  The Laplace expansion along the first two rows: det = sum over column
  pairs s of sign_s upper_s lower_(5 - s). Callers that share a row pair
  between many matrices compute its minors once.

  Args:
    upper_minors: (..., 6) `pair_minors` of rows 0 and 1.
    lower_minors: (..., 6) `pair_minors` of rows 2 and 3 (broadcast).

  Returns:
    (...) determinants.
  """
  signs = jnp.asarray(_LAPLACE_SIGNS, upper_minors.dtype)
  return jnp.sum(signs * upper_minors * lower_minors[..., ::-1], axis=-1)


def det4(matrix):
  """Determinants of (..., 4, 4) matrices by the two-row Laplace expansion.

  Args:
    matrix: (..., 4, 4) matrices.

  Returns:
    (...) determinants.
  """
  return det4_from_minors(
      pair_minors(matrix[..., 0, :], matrix[..., 1, :]),
      pair_minors(matrix[..., 2, :], matrix[..., 3, :]))
