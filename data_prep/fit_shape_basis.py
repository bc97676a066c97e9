r"""Fits the PCA shape basis of the 3D-KGNN to a file of 3D keypoint shapes.

  python -m data_prep.fit_shape_basis --shapes=FILE.npy --num_components=5 \
      --output=basis.npz [--symmetric] [--category=car]

FILE.npy holds (N, K, 3) xyz shapes, or (N, K, 6) rows whose last three
columns are xyz (the authors' 472-car annotation layout). With --symmetric
the basis is made left/right symmetric with the category's mirror pairs.
Prints the explained variance of each component.
"""

from absl import app
from absl import flags

from occnet_jax import cli
from occnet_jax import errors
from occnet_jax import keypoints
from occnet_jax import shape_basis

FLAGS = flags.FLAGS


def fit_and_save(shapes_path, num_components, output_path, symmetric,
                 category):
  """Fits a basis to the shapes in `shapes_path` and saves it.

  Args:
    shapes_path: `.npy` shapes, as `shape_basis.load_shapes` reads them.
    num_components: number of principal components.
    output_path: `.npz` file to write.
    symmetric: whether to enforce left/right symmetry.
    category: a `keypoints.Category`, checked against the shapes.

  Returns:
    The fitted `shape_basis.ShapeBasis`.
  """
  shapes = shape_basis.load_shapes(shapes_path)
  if shapes.shape[1] != category.num_keypoints:
    raise errors.UserError(
        f'{shapes_path}: {shapes.shape[1]} keypoints per shape, but category '
        f'{category.name!r} has {category.num_keypoints}.')
  basis = shape_basis.fit_shape_basis(
      shapes, num_components, mirror=category.mirror if symmetric else None)
  shape_basis.save(output_path, basis)
  return basis


def _define_flags():
  """Defines the command's flags.

  Only when run as a command: the library functions above stay importable
  next to other commands that use the same flag names.
  """
  flags.DEFINE_string('shapes', None,
                      '.npy file of 3D keypoint shapes.')
  flags.DEFINE_integer('num_components', 5,
                       'Number of principal components.')
  flags.DEFINE_string('output', None, 'Output .npz file.')
  flags.DEFINE_bool('symmetric', False,
                    'Enforce left/right symmetry.')
  flags.DEFINE_string('category', 'car',
                      'Keypoint category (for the mirror pairs).')
  flags.mark_flags_as_required(['shapes', 'output'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  basis = fit_and_save(FLAGS.shapes, FLAGS.num_components, FLAGS.output,
                       FLAGS.symmetric,
                       keypoints.get_category(FLAGS.category))
  for k, (ratio, stddev) in enumerate(
      zip(basis.explained_variance_ratio, basis.stddevs)):
    print(f'component {k + 1}: explained variance {100 * ratio:5.1f}% '
          f'(stddev {stddev:.4f})')
  print(f'total: {100 * basis.explained_variance_ratio.sum():.1f}%; '
        f'wrote {FLAGS.output}')


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
