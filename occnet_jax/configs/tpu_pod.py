r"""Multi-host data-parallel training of the paper-sized model.

Every host runs the same command; `jax.distributed.initialize()` discovers
the others, each host reads its own shard of the data and only host 0 writes
logs. The global batch is split over all devices of all hosts.

    python -m launch.train --config=occnet_jax/configs/tpu_pod.py \
        --workdir=gs://bucket/occnet/tpu_pod \
        --config.data.data_dir=gs://bucket/tensorflow_datasets
"""

import ml_collections

from occnet_jax.configs import paper


def get_config() -> ml_collections.ConfigDict:
  """Returns the multi-host configuration."""
  config = paper.get_config()
  config.distributed = True
  config.data.batch_size = 512
  config.data.read_threads = 16
  config.optimizer.learning_rate = 2.5e-4 * 64
  config.train.num_steps = 30_000
  config.train.heatmap_steps = 10_000
  config.train.graph_steps = 5_000
  config.eval.batch_size = 512
  return config
