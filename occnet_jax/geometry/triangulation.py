"""Multi-view DLT triangulation of one point, weighted and normalised.

Pure jax.numpy, batched over leading axes, jit-able.
"""

import jax.numpy as jnp

from occnet_jax.geometry.cameras import apply_affine
from occnet_jax.geometry.cameras import normalizing_transform


def triangulate(Ps, xs, weights):
  """Triangulates a 3D point from V views by weighted linear DLT.

  Each view contributes the two equations x (p3 . X) - (p1 . X) = 0 and
  y (p3 . X) - (p2 . X) = 0, multiplied by its weight. Hartley
  normalisation: each view's pixels and camera are first mapped by the
  isotropic similarity `normalizing_transform(P)` (principal point to the
  origin, focal length to 1), so every view's equations are O(1) whatever
  the image size; the solution is the right singular vector of the smallest
  singular value.

  `valid` is False, and X = 0, when fewer than two views have a positive
  weight and finite inputs, when the null space is not one-dimensional (e.g.
  coincident camera centres, or the point on the baseline of two views),
  or when the solution is at infinity (parallel rays). Tolerances are
  relative, sqrt(machine epsilon) of the dtype.

  Args:
    Ps: (..., V, 3, 4) cameras.
    xs: (..., V, 2) pixels of the point in each view.
    weights: (..., V) non-negative weights; 0 = not seen.

  Returns:
    (X, valid): (..., 3) point and (...,) bool mask.
  """
  Ps, xs, weights = jnp.asarray(Ps), jnp.asarray(xs), jnp.asarray(weights)
  num_views = Ps.shape[-3]
  seen = (weights > 0) & jnp.all(jnp.isfinite(xs), -1) & jnp.all(
      jnp.isfinite(Ps), axis=(-2, -1))
  weights = jnp.where(seen, weights, 0.0)
  Ps = jnp.where(seen[..., None, None], Ps, 0.0)
  xs = jnp.where(seen[..., None], xs, 0.0)

  transforms = normalizing_transform(Ps)
  normalized_P = transforms @ Ps
  normalized_x = apply_affine(transforms, xs)
  rows = (normalized_x[..., :, None] * normalized_P[..., 2:3, :]
          - normalized_P[..., :2, :])  # (..., V, 2, 4)
  design = (weights[..., None, None] * rows).reshape(
      *rows.shape[:-3], 2 * num_views, 4)
  # At least four rows, so that the last right singular vector spans the
  # null space even for one view; zero rows leave the solution unchanged.
  missing_rows = max(0, 4 - 2 * num_views)
  design = jnp.concatenate(
      [design, jnp.zeros((*design.shape[:-2], missing_rows, 4), design.dtype)],
      axis=-2)
  _, singular_values, right_vectors = jnp.linalg.svd(design,
                                                     full_matrices=False)
  homogeneous = right_vectors[..., -1, :]

  tolerance = jnp.sqrt(jnp.finfo(design.dtype).eps)
  w = homogeneous[..., 3]
  valid = ((jnp.sum(seen, -1) >= 2)
           & (singular_values[..., -2] > tolerance * singular_values[..., 0])
           & (jnp.abs(w) > tolerance * jnp.linalg.norm(homogeneous, axis=-1)))
  safe_w = jnp.where(valid, w, 1.0)
  point = jnp.where(valid[..., None], homogeneous[..., :3] / safe_w[..., None],
                    0.0)
  return point, valid
