r"""Fits the PCA shape basis of the 3D-KGNN to 3D keypoint shapes.

  python -m data_prep.fit_shape_basis --shapes=FILE.npy --num_components=5 \
      --output=basis.npz [--symmetric] [--category=car]
  python -m data_prep.fit_shape_basis --dataset=car_render/small \
      --split=train --data_dir=workdirs/tensorflow_datasets \
      --output=basis.npz

FILE.npy holds (N, K, 3) xyz shapes, or (N, K, 6) rows whose last three
columns are xyz (the authors' 472-car annotation layout). With --dataset the
shapes are the `shape_3d` of a built TFDS split (examples without one are
skipped): e.g. the Car-render training cars, a basis for CarFusion fitted on
other cars than those evaluated. With --symmetric the basis is made
left/right symmetric with the category's mirror pairs. Prints the explained
variance of each component.
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow_datasets as tfds

from occnet_jax import categories
from occnet_jax import cli
from occnet_jax import errors
from occnet_jax import shape_basis

FLAGS = flags.FLAGS


def split_shapes(dataset: str, split: str, data_dir: str | None) -> np.ndarray:
  """(N, K, 3) known `shape_3d` of a built TFDS split (zeros = unknown)."""
  source = tfds.data_source(dataset, split=split, data_dir=data_dir,
                            download=False)
  shapes = np.stack([np.asarray(source[i]['shape_3d'], np.float64)
                     for i in range(len(source))])
  known = shapes[np.any(shapes != 0, axis=(1, 2))]
  if not len(known):
    raise errors.UserError(f'{dataset} {split}: no example has a 3D shape.')
  return known


def fit_and_save(shapes, num_components, output_path, symmetric, category,
                 source='shapes'):
  """Fits a basis to shapes and saves it.

  Args:
    shapes: (N, K, 3) shapes, or a `.npy` file `shape_basis.load_shapes`
      reads.
    num_components: number of principal components.
    output_path: `.npz` file to write.
    symmetric: whether to enforce left/right symmetry.
    category: a `keypoints.Category`, checked against the shapes.
    source: where the shapes come from, for the error message.

  Returns:
    The fitted `shape_basis.ShapeBasis`.
  """
  if not isinstance(shapes, np.ndarray):
    shapes, source = shape_basis.load_shapes(shapes), str(shapes)
  if shapes.shape[1] != category.num_keypoints:
    raise errors.UserError(
        f'{source}: {shapes.shape[1]} keypoints per shape, but category '
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
  flags.DEFINE_string('dataset', None,
                      'Instead of --shapes: a built TFDS dataset (with its '
                      'builder config) whose shape_3d to fit.')
  flags.DEFINE_string('split', 'train', 'The split of --dataset.')
  flags.DEFINE_string('data_dir', None, 'TFDS data dir of --dataset.')
  flags.DEFINE_integer('num_components', 5,
                       'Number of principal components.')
  flags.DEFINE_string('output', None, 'Output .npz file.')
  flags.DEFINE_bool('symmetric', False,
                    'Enforce left/right symmetry.')
  flags.DEFINE_string('category', 'car',
                      'Keypoint category (for the mirror pairs).')
  flags.mark_flags_as_required(['output'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if (FLAGS.shapes is None) == (FLAGS.dataset is None):
    raise app.UsageError('Give exactly one of --shapes and --dataset.')
  if FLAGS.dataset:
    shapes = split_shapes(FLAGS.dataset, FLAGS.split, FLAGS.data_dir)
    source = f'{FLAGS.dataset} {FLAGS.split}'
  else:
    shapes, source = FLAGS.shapes, FLAGS.shapes
  basis = fit_and_save(shapes, FLAGS.num_components, FLAGS.output,
                       FLAGS.symmetric,
                       categories.get_category(FLAGS.category), source)
  for k, (ratio, stddev) in enumerate(
      zip(basis.explained_variance_ratio, basis.stddevs)):
    print(f'component {k + 1}: explained variance {100 * ratio:5.1f}% '
          f'(stddev {stddev:.4f})')
  print(f'total: {100 * basis.explained_variance_ratio.sum():.1f}%; '
        f'wrote {FLAGS.output}')


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
