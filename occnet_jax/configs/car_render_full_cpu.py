r"""The `default` model on the full Car-render set: the CPU reproduction run.

The paper's 472 cars (300/72/100), 24 views each at 96 px, with the demo's
small networks and step count, so that it trains on two CPU cores in about
twenty minutes. Its test split (100 cars x 24 views) is large enough to
report PCK at every occlusion level; `car_render.py` is the GPU-sized run.

    python -m launch.train --config=occnet_jax/configs/car_render_full_cpu.py \
        --workdir=workdirs/car_render_full_cpu
"""

import ml_collections

from occnet_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the CPU configuration on Car-render `full`."""
  config = default.get_config()
  config.data.builder_config = 'full'
  config.data.crop_size = 96
  # 96 / 48: the heatmap stride of the demo (64 / 32).
  config.model.heatmap_size = 48
  return config
