r"""CarFusion: real multi-view intersections with human keypoint labels.

CarFusion has no 3D shapes, so no PCA basis can be fitted on it: the 3D
branch uses the category's mean shape unless `shape_basis.path` names a
basis fitted elsewhere (for example on Car-render: `python -m
data_prep.fit_shape_basis`). Cameras are PnP virtual poses (paper 4.1).

    python -m launch.train --config=occnet_jax/configs/carfusion.py \
        --workdir=workdirs/carfusion \
        --config.data.data_dir=/path/to/tensorflow_datasets
"""

import ml_collections

from occnet_jax.configs import car_render


def get_config() -> ml_collections.ConfigDict:
  """Returns the CarFusion configuration."""
  config = car_render.get_config()
  config.data.name = 'carfusion'
  config.data.builder_config = 'default'
  # Views of a car are sampled from its (variable) set of views.
  config.data.num_views = 3
  # The builder's 64 px crops.
  config.data.crop_size = 64
  config.model.heatmap_size = 32
  # The paper's 90-10 train/validation split of the training intersections.
  config.data.train_split = 'train[:90%]'
  config.data.periodic_eval_split = 'train[90%:]'
  # The trifocal weight stays Car-render's. On synthetic CarFusion (noisy
  # labels, PnP cameras) validation chose a tenth of it
  # (`carfusion_synthetic.py`), but that was the CPU-sized model on
  # simulated noise: sweep `loss.trifocal` on this validation split first.
  return config
