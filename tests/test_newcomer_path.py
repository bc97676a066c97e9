"""The README's first commands: data dir, test config, early crop check."""

import os
import re

import pytest

from data_prep import builders
from occnet_jax import configs
from occnet_jax import input_pipeline
from occnet_jax import train
from occnet_jax.configs import default
from occnet_jax.configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('readme', ['README.md',
                                    'data_prep/car_render/README.md'])
def test_readme_builds_where_training_reads(readme):
  with open(os.path.join(ROOT, readme)) as file:
    text = file.read()
  data_dirs = re.findall(
      r'(?:tfds build data_prep/\S+ |dataset_report).*--data_dir=(\S+)', text)
  assert data_dirs
  expected = input_pipeline.resolve_data_dir(default.get_config(),
                                             'workdirs/demo')
  for data_dir in data_dirs:
    assert os.path.abspath(data_dir) == expected


def test_test_config_matches_its_builder_config(tmp_path):
  # The builder's metadata, without a build; registered as launch.train does.
  config = test_config.get_config()
  builders.register(config.data.name)
  builder = input_pipeline.dataset_builder(config, str(tmp_path))
  assert builder.info.features['crops'].shape[-2] == config.data.crop_size
  assert builder.builder_config.num_views >= config.data.num_views


def test_crop_size_checked_before_any_build(tmp_path):
  config = test_config.get_config()
  config.data.builder_config = 'small'
  config.data.data_dir = str(tmp_path / 'tfds')
  builders.register(config.data.name)
  with pytest.raises(configs.ConfigError, match=(
      r'config.data.crop_size = 16: the dataset car_render/small has 64 px '
      'crops')):
    train.train_and_evaluate(config, str(tmp_path / 'workdir'))
  assert not [name for _, _, names in os.walk(config.data.data_dir)
              for name in names]
