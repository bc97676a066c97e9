r"""The full synthetic Car-render benchmark (paper section 4.1, Figs. 5/6).

472 procedural CAD-like cars (300 train / 72 validation / 100 test), many
views each; a GPU-sized model trained in stages, then end to end.

    python -m launch.train --config=occnet_jax/configs/car_render.py \
        --workdir=workdirs/car_render
"""

import ml_collections

from occnet_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the full Car-render configuration."""
  config = default.get_config()
  config.data.update(builder_config='full', crop_size=96, batch_size=64,
                     read_threads=8)
  config.model.update(heatmap_features=128, heatmap_size=48, heatmap_layers=5,
                      hidden=256, dropout=0.2)
  config.optimizer.update(learning_rate=1e-3, warmup_steps=500)
  config.train.update(num_steps=60_000, heatmap_steps=20_000,
                      graph_steps=10_000, log_every_steps=200,
                      checkpoint_every_steps=2_000, eval_every_steps=5_000,
                      max_checkpoints_to_keep=3)
  config.eval.update(batch_size=64, num_gallery=16)
  return config
