"""A workdir of the `test` config trained two steps on the fake car set.

For tests that need a model to run (prediction, scoring its predictions),
not a good one: two steps and no evaluation keep it to seconds.
"""

from occnet_jax import train
from occnet_jax.configs import test as test_config
import fake_data

SPLIT = 'test'


def make_workdir(tmp_path_factory) -> tuple[str, str]:
  """(workdir, data dir of the fake set, `fake_data.NAME`, 3 views)."""
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  fake_data.make_dataset(data_dir, num_views=3)
  config = test_config.get_config()
  config.data.name, config.data.builder_config = fake_data.NAME, ''
  config.data.data_dir = data_dir
  config.train.num_steps = 2
  config.train.heatmap_steps = config.train.graph_steps = 1
  config.train.checkpoint_every_steps = 2
  config.eval.final_split = ''
  workdir = str(tmp_path_factory.mktemp('workdir'))
  train.train_and_evaluate(config, workdir)
  return workdir, data_dir
