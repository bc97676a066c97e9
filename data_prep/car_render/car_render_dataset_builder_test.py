"""TFDS test of the `car_render` builder on annotated shapes (`dummy_data/`).

`dummy_data/car_keypoints_3d.npy` holds 10 cars in the authors' layout
(N, 12, 6) and unit (a car about 0.78 long): the mean car shape scaled per
axis by U(0.85, 1.15). The builder renders them through proxy meshes and
splits them 64/15/21 percent. The procedural path and the values of the
examples are checked in tests/test_car_render_data.py.

The harness reads examples back with `as_dataset`, which TFDS implements for
TFRecord files only, so the builder under test writes TFRecord instead of its
default array_record; the examples are the same.
"""

import numpy as np
import tensorflow_datasets as tfds

from data_prep.car_render import car_render_dataset_builder
from occnet_jax.categories import car as car_lib


class CarRenderTest(tfds.testing.DatasetBuilderTestCase):
  """Builds the `small` config from the dummy manual dir."""

  DATASET_CLASS = car_render_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['small']
  SPLITS = {'train': 6, 'validation': 2, 'test': 2}
  SKIP_CHECKSUMS = True

  def _make_builder(self, config=None):
    return self.dataset_class(data_dir=self.tmp_dir, config=config,
                              version=self.VERSION,
                              file_format=tfds.core.FileFormat.TFRECORD)

  def test_manual_shapes_are_rescaled_to_metres(self):
    path = self.dummy_data / car_render_dataset_builder.shapes_file('car')
    shapes = car_render_dataset_builder.load_manual_shapes(path, car_lib.CAR)
    with path.open('rb') as file:
      raw = np.load(file)
    self.assertEqual(shapes.shape, (10, 12, 3))
    self.assertAlmostEqual(np.ptp(shapes[..., 0], axis=-1).mean(),
                           car_lib.MEAN_CAR_LENGTH_METRES, places=5)
    np.testing.assert_allclose(shapes / shapes[0, 0, 0],
                               raw[..., 3:] / raw[0, 0, 3], rtol=1e-5)

  def test_split_sizes_follow_the_paper(self):
    split_sizes = car_render_dataset_builder.split_sizes
    self.assertEqual(split_sizes(472), (300, 72, 100))
    self.assertEqual(split_sizes(10), (6, 2, 2))
    self.assertEqual(sum(split_sizes(1000)), 1000)


if __name__ == '__main__':
  tfds.testing.test_main()
