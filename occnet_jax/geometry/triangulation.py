"""Multi-view linear triangulation of one point, weighted and normalised.

Pure jax.numpy without LAPACK calls (see `small_linalg`), batched over
leading axes, jit-able.
"""

import jax.numpy as jnp

from occnet_jax.geometry import small_linalg
from occnet_jax.geometry.cameras import apply_affine
from occnet_jax.geometry.cameras import normalizing_transform

# Smallest accepted eigenvalue ratio of the normal equations, in machine
# epsilons: far above the round-off of a singular G (below 1.2 epsilons in
# float32 over 60000 random coincident-centre and on-baseline cases) and
# far below the ratios of the 2 degree baselines the trifocal loss accepts
# (about 1300 epsilons).
_CONDITION_TOLERANCE = 64


def triangulate(Ps, xs, weights):
  """Triangulates a 3D point from V views by weighted linear DLT.

  Each view with pixel (x, y) contributes the DLT equations
  x (p3 . X) - (p1 . X) = 0 and y (p3 . X) - (p2 . X) = 0 in the
  homogeneous point X = (X, 1): planes through the camera centre and the
  ray of the pixel. Scaled to unit normals they give the signed distances
  of X to these planes; multiplied by the view's weight, the point
  minimises the sum of their squares. Hartley normalisation: the pixels and
  camera of each view are first mapped by the isotropic similarity
  `normalizing_transform(P)` (principal point to the origin, focal length
  to 1), so the equations are formed from O(1) numbers whatever the image
  size (the solution does not change, its float32 round-off does).

  The least-squares problem is solved through its 3x3 normal equations
  G X = h, G = sum of w^2 n n^T over the unit normals n, in closed form
  (`small_linalg.adjugate3`), followed by one step of iterative refinement
  on the residuals of the equations, which gives the accuracy of an SVD
  solution. G is singular exactly when the rays do not pin down one finite
  point: fewer than two views, rays on one line (coincident camera centres,
  or the point on the baseline of two views) or parallel rays (a point at
  infinity).

  `valid` is False, and X = 0, when fewer than two views have a positive
  weight and finite inputs, or when G is ill-conditioned: the ratio of its
  smallest to its largest eigenvalue, estimated within a factor 9 by
  det(G) / (tr(G) tr(adj G)), is below `_CONDITION_TOLERANCE` machine
  epsilons of the dtype. For two views whose rays meet at an angle a the
  ratio is about sin(a)^2 / 8: the cut-off is about 0.45 degrees in
  float32. Gradients are finite everywhere.

  Args:
    Ps: (..., V, 3, 4) cameras.
    xs: (..., V, 2) pixels of the point in each view.
    weights: (..., V) non-negative weights; 0 = not seen.

  Returns:
    (X, valid): (..., 3) point and (...,) bool mask.
  """
  Ps, xs, weights = jnp.asarray(Ps), jnp.asarray(xs), jnp.asarray(weights)
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
  # Unit normals make each equation the signed distance of X to its plane.
  normal_norm_sq = jnp.sum(rows[..., :3]**2, -1, keepdims=True)
  has_normal = normal_norm_sq > 0  # False for the zero camera.
  rows *= jnp.where(has_normal, weights[..., None, None] / jnp.sqrt(
      jnp.where(has_normal, normal_norm_sq, 1.0)), 0.0)
  normals, offsets = rows[..., :3], rows[..., 3]
  gram = jnp.einsum('...vri,...vrj->...ij', normals, normals)

  adjugate = small_linalg.adjugate3(gram)
  det = small_linalg.det3(gram)
  trace = jnp.trace(gram, axis1=-2, axis2=-1)
  minors_trace = jnp.trace(adjugate, axis1=-2, axis2=-1)
  tolerance = _CONDITION_TOLERANCE * jnp.finfo(gram.dtype).eps
  valid = (jnp.sum(seen, -1) >= 2) & (det > tolerance * trace * minors_trace)
  inverse = adjugate / jnp.where(valid, det, 1.0)[..., None, None]

  def correction(point):
    """-G^-1 n^T r: the least-squares step from `point` for residuals r."""
    residuals = jnp.einsum('...vri,...i->...vr', normals, point) + offsets
    return -jnp.einsum('...ij,...vrj,...vr->...i', inverse, normals, residuals)

  # Solving from 0, then once more from that solution (iterative
  # refinement), recovers the accuracy that forming G costs: its condition
  # number is the square of that of the equations.
  point = correction(jnp.zeros_like(normals[..., 0, 0, :]))
  point += correction(point)
  return jnp.where(valid[..., None], point, 0.0), valid
