r"""The `default` model on synthetic intersections read as CarFusion.

`python -m data_prep.make_synthetic_carfusion` writes multi-camera traffic
intersections (self, other-vehicle, other-object and truncation occlusions)
in the raw CarFusion layout, and the `carfusion` builder reads them exactly
as it reads the real data, cameras from their calibration. This config
trains the demo's small networks on them on CPU; `carfusion.py` is the
GPU-sized run on the real data. `launch/reproduce.sh` shows the whole
sequence:

    python -m data_prep.make_synthetic_carfusion \
        --output=workdirs/tensorflow_datasets/downloads/manual/carfusion
    python -m launch.train --config=occnet_jax/configs/carfusion_synthetic.py \
        --workdir=workdirs/carfusion_synthetic
"""

import ml_collections

from occnet_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the CPU configuration on synthetic CarFusion intersections."""
  config = default.get_config()
  config.data.name = 'carfusion'
  config.data.builder_config = 'default'
  # The builder's 64 px crops; cars seen by fewer cameras are padded.
  config.data.crop_size = 64
  # The paper's 90-10 train/validation split of the training intersections.
  config.data.train_split = 'train[:90%]'
  config.data.eval_split = 'train[90%:]'
  return config
