"""Every config validates; bad configs fail early naming the key."""

import importlib

from absl import flags
from ml_collections import config_flags
import numpy as np
import pytest

from occnet_jax import configs
from occnet_jax.configs import default

CONFIG_NAMES = ('default', 'car_render', 'carfusion', 'paper', 'tpu_pod',
                'test')


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_every_config_validates(name):
  module = importlib.import_module(f'occnet_jax.configs.{name}')
  config = module.get_config()
  configs.validate(config, num_devices=1)
  assert f'--config=occnet_jax/configs/{name}.py' in module.__doc__


def test_batches_fit_the_hardware_targets():
  configs.validate(importlib.import_module(
      'occnet_jax.configs.tpu_pod').get_config(), num_devices=256)
  configs.validate(importlib.import_module(
      'occnet_jax.configs.test').get_config(), num_devices=4)


def _mutated(key, value):
  config = default.get_config()
  *parents, leaf = key.split('.')
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value
  return config


@pytest.mark.parametrize('key,value,num_devices,message', [
    ('data.batch_size', 6, 4, 'data.batch_size'),
    ('eval.batch_size', 10, 4, 'eval.batch_size'),
    ('data.num_views', 0, 1, 'data.num_views'),
    ('data.num_views', 2, 1, 'loss.trifocal'),
    ('eval.alphas', (0.1, 1.0), 1, 'eval.alphas'),
    ('eval.alphas', (0.0, 0.1), 1, 'eval.alphas'),
    ('model.heatmap_size', 24, 1, 'model.heatmap_size'),
    ('model.dropout', 1.0, 1, 'model.dropout'),
    ('model.decoder_gate', 'sigmoid', 1, 'model.decoder_gate'),
    ('model.decoder_gate_threshold', 1.0, 1, 'model.decoder_gate_threshold'),
    ('model.decoder_gate_threshold', 0.0, 1, 'model.decoder_gate_threshold'),
    ('model.decoder_gate_open_rate', 1.0, 1, 'model.decoder_gate_open_rate'),
    ('model.decoder_gate_open_rate', -0.1, 1, 'model.decoder_gate_open_rate'),
    ('train.box_jitter', -0.05, 1, 'train.box_jitter'),
    ('train.box_jitter', 1.5, 1, 'train.box_jitter'),
    ('model.dtype', 'float16', 1, 'model.dtype'),
    ('train.profile_steps', -1, 1, 'train.profile_steps'),
    ('loss.edge', -1.0, 1, 'loss.edge'),
    ('loss.visible', -0.5, 1, 'loss.visible'),
    ('loss.trifocal_mode', 'exact', 1, 'loss.trifocal_mode'),
    ('optimizer.name', 'lamb', 1, 'optimizer.name'),
    ('optimizer.learning_rate', 0.0, 1, 'optimizer.learning_rate'),
    ('train.heatmap_steps', 4_500, 1, 'train.heatmap_steps'),
    ('train.num_steps', 0, 1, 'train.num_steps'),
    ('category', 'bicycle', 1, 'bicycle'),
])
def test_bad_values_are_named(key, value, num_devices, message):
  with pytest.raises(configs.ConfigError, match=message.replace('.', r'\.')):
    configs.validate(_mutated(key, value), num_devices=num_devices)


def test_the_hard_gate_needs_the_encoder():
  config = _mutated('model.use_encoder', False)
  for gate in ('none', 'soft'):
    config.model.decoder_gate = gate
    configs.validate(config, num_devices=1)
  config.model.decoder_gate = 'hard'
  with pytest.raises(configs.ConfigError, match=r'model\.decoder_gate'):
    configs.validate(config, num_devices=1)


def test_only_a_gated_decoder_opens_gates_at_random(rng):
  config = _mutated('model.decoder_gate_open_rate', float(rng.uniform(0.01,
                                                                      0.99)))
  for gate in ('soft', 'hard'):
    config.model.decoder_gate = gate
    configs.validate(config, num_devices=1)
  config.model.decoder_gate = 'none'
  with pytest.raises(configs.ConfigError,
                     match=r'model\.decoder_gate_open_rate'):
    configs.validate(config, num_devices=1)


def test_a_gate_sweep_only_raises_a_hard_gate(rng):
  threshold = float(rng.uniform(0.1, 0.9))
  config = _mutated('model.decoder_gate_threshold', threshold)
  config.eval.decoder_gate_sweep = (threshold, (threshold + 1.0) / 2)
  configs.validate(config, num_devices=1)
  config.eval.decoder_gate_sweep = (threshold / 2,)
  with pytest.raises(configs.ConfigError, match=r'eval\.decoder_gate_sweep'):
    configs.validate(config, num_devices=1)
  # The soft gate and the ungated decoder have no sweep to refuse.
  for gate in ('none', 'soft'):
    config.model.decoder_gate = gate
    configs.validate(config, num_devices=1)


def test_unknown_and_missing_keys_are_named():
  config = default.get_config()
  config.train.num_stepz = 3
  with pytest.raises(configs.ConfigError, match='train.num_stepz'):
    configs.validate(config, num_devices=1)
  config = default.get_config()
  del config.eval['num_gallery']
  with pytest.raises(configs.ConfigError, match='eval.num_gallery'):
    configs.validate(config, num_devices=1)


def test_divisibility_holds_for_random_device_counts():
  seed = np.random.SeedSequence().entropy % 2**32
  rng = np.random.default_rng(seed)
  for num_devices in rng.integers(1, 64, size=5):
    config = default.get_config()
    config.data.batch_size = config.eval.batch_size = int(
        num_devices * rng.integers(1, 4))
    configs.validate(config, num_devices=int(num_devices))
    config.data.batch_size += 1 if num_devices > 1 else 0
    if num_devices > 1:
      with pytest.raises(configs.ConfigError):
        configs.validate(config, num_devices=int(num_devices))


def test_command_line_overrides_are_locked():
  path = 'occnet_jax/configs/test.py'

  def parse(override):
    argv = ['prog', f'--config={path}', override]
    flag_values = flags.FlagValues()
    # Override flags are defined from `sys_argv` when the flag is defined.
    config_flags.DEFINE_config_file('config', flag_values=flag_values,
                                    lock_config=True, sys_argv=argv)
    flag_values(argv)
    return flag_values.config

  assert parse('--config.train.num_steps=3').train.num_steps == 3
  with pytest.raises((flags.Error, AttributeError, KeyError),
                     match='num_stepz'):
    parse('--config.train.num_stepz=3')
