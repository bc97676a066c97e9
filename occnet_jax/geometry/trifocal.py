"""The trifocal tensor of three cameras: incidence residual and point transfer.

Notation of Hartley & Zisserman (2nd ed., ch. 15-17): `T[..., i, j, k]` is
T_i^{jk}; index i contracts with the point x in the first view, j with the
second view and k with the third. For a true correspondence x <-> x' <-> x''

    [x']_x (sum_i x^i T_i) [x'']_x = 0 (a 3x3 matrix of zeros).

The paper's loss (Eq. 9) puts the occluded view second: T is built from
(visible view, occluded view, other visible view).

Conditioning. In pixel coordinates of a 1920x1080 image the entries of T and
of the homogeneous points span many orders of magnitude, which costs float32
most of its precision. The `normalized_*` functions take cameras and pixels
and first map each view's pixels by an isotropic similarity N = "subtract
the principal point, divide by the focal length" read from the camera
itself (`normalizing_transform`), so N P is close to [R | t] and image
points are O(1). The tensor of the normalised cameras is divided by its
Frobenius norm, which removes the arbitrary scale of each P (and of the world
frame). The residual is then scale-free: it does not change when pixels are
rescaled, when a P is multiplied by a constant, or when the world frame is
moved; divided by its growth per unit displacement of x'
(`normalized_trifocal_residual`), its norm is the displacement of x' in
units of the second view's focal length.

Degenerate input never gives NaN silently: the transfer functions return
`(x2, valid)` and `normalized_trifocal_residual` returns `(residual,
valid)`, with zeros where valid is False; divisions are guarded with
`jnp.where` before dividing, so gradients stay finite too.

All functions are pure jax.numpy, batch over (broadcast) leading axes and
are differentiable.
"""

import functools

import jax.numpy as jnp

from occnet_jax.geometry import small_linalg
from occnet_jax.geometry.cameras import apply_affine
from occnet_jax.geometry.cameras import normalizing_transform

# Rows of the first camera kept in the 4x4 determinant of T_i (row i is
# left out), and the sign (-1)^(i+1) of H&Z (17.12) with 1-based i.
_ROWS_WITHOUT = ((1, 2), (0, 2), (0, 1))
_SIGNS = (1.0, -1.0, 1.0)


def trifocal_tensor(P1, P2, P3):
  """The trifocal tensor of three general cameras (H&Z 17.12).

  T_i^{qr} = (-1)^(i+1) det([~a^i; b^q; c^r]), where ~a^i is P1 without row
  i and b^q, c^r are rows of P2 and P3. Valid for any cameras, not only
  P1 = [I | 0]. Under P -> P H for a 4x4 H the tensor is multiplied by
  det(H); scaling P1, P2, P3 by a, b, c multiplies it by a^2 b c.

  The 27 determinants are Laplace expansions along their first two rows,
  so the 2x2 minors of the three row pairs of P1 and of the nine pairs
  (b^q, c^r) are computed once (`small_linalg`).

  Args:
    P1: (..., 3, 4) first camera (contracts with index i).
    P2: (..., 3, 4) second camera (index j).
    P3: (..., 3, 4) third camera (index k).

  Returns:
    (..., 3, 3, 3) tensor T[..., i, j, k].
  """
  rows_without = P1[..., _ROWS_WITHOUT, :]  # (..., 3, 2, 4)
  first_minors = small_linalg.pair_minors(rows_without[..., 0, :],
                                          rows_without[..., 1, :])
  other_minors = small_linalg.pair_minors(P2[..., :, None, :],
                                          P3[..., None, :, :])
  minors = small_linalg.det4_from_minors(
      first_minors[..., :, None, None, :], other_minors[..., None, :, :, :])
  signs = jnp.asarray(_SIGNS, minors.dtype)[:, None, None]
  return signs * minors


def _homogeneous(points):
  return jnp.concatenate([points, jnp.ones_like(points[..., :1])], axis=-1)


def _skew(vector):
  """[v]_x, the cross-product matrix, (..., 3) -> (..., 3, 3)."""
  x, y, z = vector[..., 0], vector[..., 1], vector[..., 2]
  zero = jnp.zeros_like(x)
  return jnp.stack([jnp.stack([zero, -z, y], -1),
                    jnp.stack([z, zero, -x], -1),
                    jnp.stack([-y, x, zero], -1)], -2)


def _contract_first(T, x1):
  """sum_i x1^i T_i for pixels x1 (..., 2) -> (..., 3, 3)."""
  return jnp.einsum('...i,...ijk->...jk', _homogeneous(x1), T)


def trifocal_point_residual(T, x1, x2, x3):
  """Point-point-point incidence residual [x2]_x (sum_i x1^i T_i) [x3]_x.

  Zero for a true correspondence. Computed in whatever coordinates T and
  the points share, without normalisation: use
  `normalized_trifocal_residual` for pixels and losses.

  Args:
    T: (..., 3, 3, 3) trifocal tensor.
    x1: (..., 2) point in the first view.
    x2: (..., 2) point in the second view.
    x3: (..., 2) point in the third view.

  Returns:
    (..., 3, 3) residual matrix.
  """
  return _skew(_homogeneous(x2)) @ _contract_first(T, x1) @ _skew(
      _homogeneous(x3))


def trifocal_transfer(T, x1, x3):
  """Transfers a point from views 1 and 3 to view 2 (H&Z 15.1.4).

  With M = sum_i x1^i T_i, the epipolar line of x1 in view 3 is the right
  null vector of M. The line l'' through x3 perpendicular to it is never
  the epipolar line, and x2 = M l'' (x2^j = x1^i l''_k T_i^{jk}).

  Validity: `valid` is False, and x2 = 0, when an input is not finite, when
  M has rank < 2 (x1 at the epipole of view 3: the 3D point lies on the
  baseline of cameras 1 and 3, or cameras 1 and 3 share their centre), when
  the epipolar line is undefined, or when x2 is at (or numerically near)
  infinity (the 3D point on the principal plane of camera 2). Tolerances are
  relative, sqrt(machine epsilon) of the dtype, so T and the points should
  be well scaled (O(1) coordinates); `normalized_trifocal_transfer` does
  that for pixels.

  Args:
    T: (..., 3, 3, 3) trifocal tensor.
    x1: (..., 2) point in the first view.
    x3: (..., 2) corresponding point in the third view.

  Returns:
    (x2, valid): (..., 2) transferred point in view 2 and a (...,) bool mask.
  """
  finite = (jnp.all(jnp.isfinite(T), axis=(-3, -2, -1))
            & jnp.all(jnp.isfinite(x1), -1) & jnp.all(jnp.isfinite(x3), -1))
  T = jnp.where(finite[..., None, None, None], T, 0.0)
  x1 = jnp.where(finite[..., None], x1, 0.0)
  x3 = jnp.where(finite[..., None], x3, 0.0)
  tolerance = jnp.sqrt(jnp.finfo(T.dtype).eps)

  M = _contract_first(T, x1)
  # Right null vector of a rank-2 M: the largest cross product of two rows.
  candidates = jnp.cross(M, jnp.roll(M, -1, axis=-2))  # (..., 3, 3)
  norms_sq = jnp.sum(candidates**2, axis=-1)
  best = jnp.argmax(norms_sq, axis=-1)
  epipolar_line = jnp.take_along_axis(candidates, best[..., None, None], -2)[
      ..., 0, :]
  line_norm_sq = jnp.take_along_axis(norms_sq, best[..., None], -1)[..., 0]
  m_norm_sq = jnp.sum(M**2, axis=(-2, -1))
  normal_sq = jnp.sum(epipolar_line[..., :2]**2, -1)
  rank_two = line_norm_sq > tolerance**2 * m_norm_sq**2
  line_is_finite = normal_sq > tolerance**2 * line_norm_sq

  a, b = epipolar_line[..., 0], epipolar_line[..., 1]
  perpendicular = jnp.stack(
      [b, -a, a * x3[..., 1] - b * x3[..., 0]], axis=-1)
  x2_homogeneous = jnp.einsum('...jk,...k->...j', M, perpendicular)
  w = x2_homogeneous[..., 2]
  finite_point = w**2 > tolerance**2 * jnp.sum(x2_homogeneous**2, -1)
  valid = finite & rank_two & line_is_finite & finite_point
  safe_w = jnp.where(valid, w, 1.0)
  x2 = jnp.where(valid[..., None], x2_homogeneous[..., :2] / safe_w[..., None],
                 0.0)
  return x2, valid


def _normalized_views(P1, P2, P3):
  """Normalising similarities, the unit-norm tensor and its validity.

  The tensor is degenerate when it vanishes relative to the Hadamard bound
  ||P1n||^2 ||P2n|| ||P3n|| of its 4x4 minors (Pn = N P, about [R | t] in
  the object frame). This happens when the three camera centres coincide:
  random triplets of cameras 10 m from the origin give ratios of about
  2e-3 (baseline angle 90 deg) down to 4e-7 (0.01 deg), and coincident
  centres about 3e-10 in float32; the threshold is 8 machine epsilons.
  A degenerate or non-finite tensor is replaced by zeros.
  """
  transforms = [normalizing_transform(P) for P in (P1, P2, P3)]
  normalized = [N @ P for N, P in zip(transforms, (P1, P2, P3))]
  T = trifocal_tensor(*normalized)
  norm_sq = jnp.sum(T**2, axis=(-3, -2, -1))
  row_norm_sq = [jnp.sum(P**2, axis=(-2, -1)) for P in normalized]
  hadamard_sq = row_norm_sq[0]**2 * row_norm_sq[1] * row_norm_sq[2]
  eps = jnp.finfo(T.dtype).eps
  valid = norm_sq > (8 * eps)**2 * hadamard_sq  # False for NaN too.
  safe_norm = jnp.sqrt(jnp.where(valid, norm_sq, 1.0))[..., None, None, None]
  T = jnp.where(valid[..., None, None, None], T / safe_norm, 0.0)
  return T, transforms, valid


def _finite_points(*points):
  """Points with non-finite entries replaced by 0, and the finite mask."""
  finite = functools.reduce(
      jnp.logical_and, [jnp.all(jnp.isfinite(x), -1) for x in points])
  return [jnp.where(finite[..., None], x, 0.0) for x in points], finite


def normalized_trifocal_residual(P1, P2, P3, x1, x2, x3):
  """Incidence residual of pixel correspondences in view-2 focal units.

  [x2n]_x M / s with M = (sum_i x1n^i Tn_i) [x3n]_x, where xvn = N_v xv are
  the pixels normalised by `normalizing_transform(P_v)` and Tn is the tensor
  of the cameras N_v P_v divided by its Frobenius norm (see the module
  docstring). The residual is linear in x2: moving x2n by d = (dx, dy, 0)
  adds [d]_x M, so s = sqrt(mean over d = e_x, e_y of ||[d]_x M||_F^2) is
  its growth per unit of displacement, and the residual's Frobenius norm is
  the distance of x2 from the point where it vanishes, in units of the
  second view's focal length, to first order and up to the anisotropy of
  [d]_x M (a few percent near the principal point). Unnormalised, that
  growth depends on the three views' geometry (the issue measured 0.08 to
  0.52 of the displacement on Car-render). s reads only x1, x3 and the
  cameras. `valid` is False where the three camera centres coincide (the
  tensor vanishes), where s vanishes, or where an input is not finite; the
  residual is 0 there, with finite gradients.

  Args:
    P1: (..., 3, 4) first camera (a visible view in the paper's Eq. 9).
    P2: (..., 3, 4) second camera (the occluded view).
    P3: (..., 3, 4) third camera (another visible view).
    x1: (..., 2) pixels in view 1.
    x2: (..., 2) pixels in view 2 (the prediction in Eq. 9).
    x3: (..., 2) pixels in view 3.

  Returns:
    (residual, valid): (..., 3, 3) residual, whose Frobenius norm is the
    loss term, and a (...,) bool mask.
  """
  T, (N1, N2, N3), tensor_valid = _normalized_views(P1, P2, P3)
  (x1, x2, x3), finite = _finite_points(x1, x2, x3)
  lines = _contract_first(T, apply_affine(N1, x1)) @ _skew(
      _homogeneous(apply_affine(N3, x3)))
  rows_sq = jnp.sum(lines**2, axis=-1)  # (..., 3)
  # ||[e_x]_x M||^2 = |M_1|^2 + |M_2|^2 and ||[e_y]_x M||^2 = |M_0|^2 +
  # |M_2|^2 (rows M_j).
  scale_sq = 0.5 * (rows_sq[..., 0] + rows_sq[..., 1]) + rows_sq[..., 2]
  eps = jnp.finfo(scale_sq.dtype).eps
  valid = tensor_valid & finite & (scale_sq > eps**2)
  scale = jnp.sqrt(jnp.where(valid, scale_sq, 1.0))[..., None, None]
  residual = _skew(_homogeneous(apply_affine(N2, x2))) @ lines / scale
  return jnp.where(valid[..., None, None], residual, 0.0), valid


def normalized_trifocal_transfer(P1, P2, P3, x1, x3):
  """Transfers pixels x1 (view 1) and x3 (view 3) to view 2 (well conditioned).

  The "trifocal ground truth" of an occluded point: `trifocal_transfer` in
  the normalised coordinates of `normalizing_transform`, mapped back to the
  pixels of view 2. Also invalid where the tensor is degenerate (the three
  camera centres coincide).

  Args:
    P1: (..., 3, 4) first camera.
    P2: (..., 3, 4) second camera (the view to transfer into).
    P3: (..., 3, 4) third camera.
    x1: (..., 2) pixels in view 1.
    x3: (..., 2) corresponding pixels in view 3.

  Returns:
    (x2, valid): (..., 2) pixels in view 2 (0 where invalid) and a (...,)
    bool mask, as in `trifocal_transfer`.
  """
  T, (N1, N2, N3), _ = _normalized_views(P1, P2, P3)
  # A degenerate tensor is 0 here, which trifocal_transfer reports invalid.
  x2_normalized, valid = trifocal_transfer(T, apply_affine(N1, x1),
                                           apply_affine(N3, x3))
  focal = 1.0 / N2[..., 0, 0]
  principal_point = -N2[..., :2, 2] * focal[..., None]
  x2 = principal_point + focal[..., None] * x2_normalized
  return jnp.where(valid[..., None], x2, 0.0), valid
