r"""The authors' release sizes on CarFusion (a reference point, not a spec).

Hidden 512 and dropout 0.5 in the graph networks, a 512-feature heatmap head
(the release: 8 convs, 56x56 heatmaps; here 32x32 on the datasets' 64x64
crops), SGD with momentum 0.9 and learning rate 2.5e-4,
all losses with weight 1 (paper Eq. 11). Unlike the release, the heatmap
loss uses visible keypoints only and dropout is off at evaluation.

    python -m launch.train --config=occnet_jax/configs/paper.py \
        --workdir=workdirs/paper \
        --config.data.data_dir=/path/to/tensorflow_datasets
"""

import ml_collections

from occnet_jax.configs import carfusion


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration with the release's sizes."""
  config = carfusion.get_config()
  config.model.heatmap_features = 512
  config.model.heatmap_layers = 8
  config.model.hidden = 512
  config.model.dropout = 0.5

  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 2.5e-4
  config.optimizer.momentum = 0.9
  config.optimizer.warmup_steps = 1_000
  config.optimizer.cosine_decay = False
  return config
