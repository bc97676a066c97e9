"""PCA shape basis of 3D keypoints (paper 3.2): fit, compose, save and load.

A shape W (K, 3) is modelled as W = b0 + sum_k beta_k sigma_k b_k, with the
mean shape b0, orthonormal principal components b_k (as flattened 3K
vectors) and their standard deviations sigma_k, so that beta ~ N(0, I) over
the training shapes. The basis is fitted with scikit-learn's PCA on numpy;
`compose` is jax.numpy and runs inside the model.
"""

import dataclasses
import zipfile

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

from occnet_jax import errors

_FIELDS = ('mean', 'components', 'stddevs', 'explained_variance_ratio')


# eq=False: identity equality and hashing, so that a basis can be an
# attribute of a linen module (numpy arrays compare elementwise and are not
# hashable).
@dataclasses.dataclass(frozen=True, eq=False)
class ShapeBasis:
  """A PCA basis of K 3D keypoints with n components (a jax pytree).

  Attributes:
    mean: (K, 3) mean shape b0.
    components: (n, K, 3) principal components b_k, orthonormal as
      flattened 3K vectors, by decreasing variance.
    stddevs: (n,) standard deviation sigma_k of the data along b_k.
    explained_variance_ratio: (n,) fraction of the total variance of the
      fitted shapes that each component explains.
  """

  mean: np.ndarray
  components: np.ndarray
  stddevs: np.ndarray
  explained_variance_ratio: np.ndarray

  def __post_init__(self):
    arrays = {name: getattr(self, name) for name in _FIELDS}
    # Only concrete bases are checked: jax rebuilds the pytree with tracers
    # and other leaves inside transformations.
    if all(isinstance(a, np.ndarray) for a in arrays.values()):
      problem = _shape_problem(arrays)
      if problem:
        raise ValueError(f'Invalid ShapeBasis: {problem}')

  @property
  def num_components(self) -> int:
    return self.components.shape[0]

  @property
  def num_keypoints(self) -> int:
    return self.mean.shape[0]


# A pytree, so that a basis can be passed to jitted functions as arrays.
jax.tree_util.register_dataclass(ShapeBasis, data_fields=list(_FIELDS),
                                 meta_fields=[])


def _shape_problem(arrays):
  """Describes what is wrong with the shapes of basis arrays, or returns ''."""
  mean, components = np.shape(arrays['mean']), np.shape(arrays['components'])
  if len(mean) != 2 or mean[1] != 3:
    return f'mean must be (K, 3), got {mean}.'
  if len(components) != 3 or components[1:] != mean:
    return f'components must be (n, {mean[0]}, 3), got {components}.'
  for name in ('stddevs', 'explained_variance_ratio'):
    if np.shape(arrays[name]) != components[:1]:
      return (f'{name} must be ({components[0]},), got '
              f'{np.shape(arrays[name])}.')
  return ''


def _mirror_shapes(shapes, mirror):
  """Left/right mirror images: keypoints swapped with partners, z negated."""
  return shapes[..., list(mirror), :] * np.array([1.0, 1.0, -1.0])


def fit_shape_basis(shapes, num_components, mirror=None):
  """Fits a PCA shape basis to 3D keypoint shapes.

  With `mirror`, left/right symmetry is enforced: the shapes are augmented
  with their mirror images (`mirror[i]` is the partner of keypoint i, z is
  negated), which makes the mean symmetric, and the principal components
  are taken in the subspace of symmetric deformations (each component b
  satisfies mirror(b) = b), so every composed shape is symmetric. The
  explained variance ratios stay relative to the total variance of the
  augmented shapes, so they show how much variation symmetry leaves out.

  Args:
    shapes: (N, K, 3) keypoint shapes in the object frame.
    num_components: n, at most N - 1 and at most the dimension of the
      (symmetric) shape space.
    mirror: optional length-K mirror permutation (`Category.mirror`).

  Returns:
    A float32 `ShapeBasis`.

  Raises:
    ValueError: bad shapes or too many components.
  """
  shapes = np.asarray(shapes, np.float64)
  if shapes.ndim != 3 or shapes.shape[-1] != 3 or len(shapes) < 2:
    raise ValueError(f'Expected (N >= 2, K, 3) shapes, got {shapes.shape}.')
  num_shapes, num_keypoints, _ = shapes.shape
  dimension = 3 * num_keypoints
  if mirror is not None:
    if sorted(mirror) != list(range(num_keypoints)):
      raise ValueError(f'mirror must be a permutation of 0..{num_keypoints-1}.')
    shapes = np.concatenate([shapes, _mirror_shapes(shapes, mirror)])
    # Mirror-invariant coordinates: x and y of every keypoint, z of pairs.
    num_on_plane = sum(i == j for i, j in enumerate(mirror))
    dimension = (dimension + num_on_plane) // 2
  max_components = min(num_shapes - 1, dimension)
  if not 1 <= num_components <= max_components:
    raise ValueError(
        f'num_components must be in [1, {max_components}] for {num_shapes} '
        f'shapes of {num_keypoints} keypoints, got {num_components}.')

  mean = shapes.mean(axis=0)
  deviations = shapes - mean
  total_variance = np.sum(deviations**2) / (len(shapes) - 1)
  if mirror is not None:
    deviations = 0.5 * (deviations + _mirror_shapes(deviations, mirror))
  # PCA of the deviations (centred: their mirror images average to zero
  # too) by SVD: the rows of Vt are the components, S^2 / (n - 1) the
  # variances along them.
  _, singular_values, vt = np.linalg.svd(
      deviations.reshape(len(shapes), -1), full_matrices=False)
  components = vt[:num_components]
  # A component's sign is arbitrary: fix it so its largest entry is
  # positive, so one set of shapes always gives one basis.
  largest = np.argmax(np.abs(components), axis=1)
  signs = np.sign(components[np.arange(num_components), largest])
  components *= signs[:, None]
  variances = singular_values[:num_components]**2 / (len(shapes) - 1)
  return ShapeBasis(
      mean=mean.astype(np.float32),
      components=components.reshape(-1, num_keypoints, 3).astype(np.float32),
      stddevs=np.sqrt(variances).astype(np.float32),
      explained_variance_ratio=(variances / total_variance).astype(
          np.float32))


def compose(basis, beta):
  """W = b0 + sum_k beta_k sigma_k b_k, batched over beta's leading axes.

  Args:
    basis: a `ShapeBasis`.
    beta: (..., n) shape coefficients.

  Returns:
    (..., K, 3) shapes.
  """
  weights = beta * jnp.asarray(basis.stddevs)
  return jnp.asarray(basis.mean) + jnp.einsum(
      '...n,nkd->...kd', weights, jnp.asarray(basis.components))


def save(path, basis):
  """Writes a basis to an `.npz` file at exactly `path`, all at once.

  The file is written beside `path` and renamed onto it: the other
  processes of a multi-process run read `path` as soon as it exists, and a
  half-written file is not a zip file.
  """
  path = epath.Path(path)
  partial = path.with_name(path.name + '.partial')
  with partial.open('wb') as f:
    np.savez(f, **{name: getattr(basis, name) for name in _FIELDS})
  partial.replace(path)


def _read_npz(path):
  """The basis arrays found in an `.npz` file (float32), None if not `.npz`."""
  # The file is opened here so that it is closed even when numpy fails.
  try:
    with epath.Path(path).open('rb') as f:
      data = np.load(f, allow_pickle=False)
      if not isinstance(data, np.lib.npyio.NpzFile):
        return None
      return {name: np.asarray(data[name], np.float32)
              for name in _FIELDS if name in data.files}
  except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
    raise ValueError(
        f'Cannot read a shape basis from {path}: {error}') from error


def load(path):
  """Reads a basis written by `save`.

  Args:
    path: `.npz` file.

  Returns:
    The float32 `ShapeBasis`.

  Raises:
    errors.UserError: naming the file, when it is not a readable `.npz`, lacks an
      array, has mis-shaped or non-finite arrays, or components that are not
      orthonormal.
  """
  arrays = _read_npz(path)
  if arrays is None:
    raise errors.UserError(f'{path} is not an .npz archive.')
  missing = [name for name in _FIELDS if name not in arrays]
  if missing:
    raise errors.UserError(f'Shape basis {path} lacks the arrays {missing}.')
  problem = _shape_problem(arrays)
  if problem:
    raise errors.UserError(f'Shape basis {path}: {problem}')
  if not all(np.all(np.isfinite(a)) for a in arrays.values()):
    raise errors.UserError(f'Shape basis {path} has non-finite values.')
  components = arrays['components']
  # Explicit sizes: a basis without components (the mean shape alone, e.g.
  # for a split without 3D shapes) has none to infer -1 from.
  flat = components.reshape(len(components),
                            int(np.prod(components.shape[1:])))
  if not np.allclose(flat @ flat.T, np.eye(len(flat)), atol=1e-4):
    raise errors.UserError(f'Shape basis {path}: components are not orthonormal.')
  return ShapeBasis(**arrays)


def load_shapes(path):
  """Reads 3D keypoint shapes from a `.npy` file.

  Args:
    path: `.npy` file holding (N, K, 3) xyz, or (N, K, 6) whose last three
      columns are xyz (the layout of the authors' 472-car annotations).

  Returns:
    (N, K, 3) float64 shapes.

  Raises:
    errors.UserError: naming the file, for unreadable files, other shapes,
      non-numeric dtypes or non-finite values.
  """
  try:
    with epath.Path(path).open('rb') as f:
      shapes = np.load(f, allow_pickle=False)
  except (OSError, ValueError) as error:
    raise errors.UserError(f'Cannot read shapes from {path}: {error}') from error
  if not (np.issubdtype(shapes.dtype, np.floating)
          or np.issubdtype(shapes.dtype, np.integer)):
    raise errors.UserError(f'{path}: expected a real numeric array, got '
                           f'dtype {shapes.dtype}.')
  if shapes.ndim != 3 or shapes.shape[-1] not in (3, 6):
    raise errors.UserError(f'{path}: expected (N, K, 3) or (N, K, 6) shapes, '
                           f'got {shapes.shape}.')
  shapes = shapes[..., -3:].astype(np.float64)
  if not np.all(np.isfinite(shapes)):
    raise errors.UserError(f'{path}: shapes contain non-finite values.')
  return shapes

