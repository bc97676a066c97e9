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
  config.data.builder_config = 'full'
  config.data.num_views = 4
  config.data.crop_size = 96
  config.data.batch_size = 64
  config.data.read_threads = 8

  config.model.heatmap_features = 128
  config.model.heatmap_size = 48
  config.model.heatmap_layers = 5
  config.model.hidden = 256
  config.model.dropout = 0.2

  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 500

  config.train.num_steps = 60_000
  config.train.heatmap_steps = 20_000
  config.train.graph_steps = 10_000
  config.train.log_every_steps = 200
  config.train.checkpoint_every_steps = 2_000
  config.train.eval_every_steps = 5_000
  config.train.max_checkpoints_to_keep = 3

  config.eval.batch_size = 64
  config.eval.num_gallery = 16
  return config
