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
  config.data.update(builder_config='mini', num_views=3, crop_size=16,
                     batch_size=4, read_threads=0)
  config.model.update(heatmap_features=4, heatmap_layers=1, heatmap_size=8,
                      hidden=8, dropout=0.1)
  config.shape_basis.num_components = 2
  config.optimizer.warmup_steps = 2
  config.train.update(num_steps=8, heatmap_steps=2, graph_steps=2,
                      log_every_steps=2, checkpoint_every_steps=2,
                      eval_every_steps=4, max_checkpoints_to_keep=2)
  config.eval.update(batch_size=4, max_instances=8, noise_sigmas=(0.0, 0.1),
                     box_jitter=(0.1,), num_gallery=2)
  # The configured threshold itself: its sweep figure is the encoder fit's
  # own PCK (test_end_to_end), one batch of fits fewer than the default.
  config.eval.encoder_fit_sweep = (config.eval.encoder_fit_threshold,)
  # Likewise the model's own gate: its sweep figure is the 2D-KGNN's PCK.
  config.eval.decoder_gate_sweep = (config.model.decoder_gate_threshold,)
  return config
