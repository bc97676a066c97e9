r"""Tiny config for tests: a few steps of a tiny model, seconds on a CPU.

Reads the `mini` Car-render set (16 px crops; built on first use in about
a minute):

    python -m launch.train --config=occnet_jax/configs/test.py \
        --workdir=/tmp/occnet_test --config.data.data_dir=/tmp/tfds
"""

import ml_collections

from occnet_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the test configuration."""
  config = default.get_config()
  config.data.builder_config = 'mini'
  config.data.num_views = 3
  config.data.crop_size = 16
  config.data.batch_size = 4
  config.data.read_threads = 0

  config.model.heatmap_features = 4
  config.model.heatmap_layers = 1
  config.model.heatmap_size = 8
  config.model.hidden = 8
  config.model.dropout = 0.1

  config.shape_basis.num_components = 2

  config.optimizer.warmup_steps = 2

  config.train.num_steps = 8
  config.train.heatmap_steps = 2
  config.train.graph_steps = 2
  config.train.log_every_steps = 2
  config.train.checkpoint_every_steps = 2
  config.train.eval_every_steps = 4
  config.train.max_checkpoints_to_keep = 2

  config.eval.batch_size = 4
  config.eval.max_instances = 8
  config.eval.noise_sigmas = (0.0, 0.1)
  config.eval.box_jitter = (0.1,)
  # The configured threshold itself: its sweep figure is the encoder fit's
  # own PCK (test_end_to_end), one batch of fits fewer than the default.
  config.eval.encoder_fit_sweep = (config.eval.encoder_fit_threshold,)
  config.eval.num_gallery = 2
  return config
