"""Experiment configs (one `get_config()` per file) and their validation.

`validate` runs before any work starts, so a wrong key or value fails in a
second with a message that names it, not an hour later inside a jit trace.
`with_current_keys` reads a saved config (a workdir's, a committed copy's)
written before a key was renamed, or before an evaluation setting existed.
"""

from collections.abc import Mapping
import copy
import json
from typing import Any

import ml_collections

from occnet_jax import categories
from occnet_jax import errors
from occnet_jax import losses
from occnet_jax.configs import default
from occnet_jax.models import kgnn2d

_OPTIMIZERS = ('adam', 'sgd')
# Old config key -> its current name, for configs saved before the rename.
RENAMED_KEYS = {'data.eval_split': 'data.periodic_eval_split',
                'eval.split': 'eval.final_split'}
# Groups that say how to evaluate, not what was trained: a key added to one
# since a config was saved takes today's default (evaluation reads every key
# directly, as an old workdir is still evaluated with today's code).
_EVALUATION_GROUPS = ('eval',)
_PRNG_IMPLS = ('threefry2x32', 'rbg', 'unsafe_rbg')
_MODEL_DTYPES = ('float32', 'bfloat16')


class ConfigError(errors.UserError):
  """A config that cannot run; the message names the offending key."""

  exit_status = 2


def with_current_keys(contents: Mapping[str, Any]) -> dict[str, Any]:
  """A saved config's nested dict in today's keys.

  Args:
    contents: a config as config.json holds it (nested dicts).

  Returns:
    A copy whose old keys carry their current names (a current key that is
    already there wins), with the default of every key of
    `_EVALUATION_GROUPS` it lacks.
  """
  contents = copy.deepcopy(dict(contents))
  for old, new in RENAMED_KEYS.items():
    (old_group, old_key), (new_group, new_key) = (old.split('.'),
                                                  new.split('.'))
    group = contents.get(old_group)
    if isinstance(group, dict) and old_key in group:
      value = group.pop(old_key)
      contents.setdefault(new_group, {}).setdefault(new_key, value)
  defaults = json.loads(default.get_config().to_json())
  for group in _EVALUATION_GROUPS:
    for key, value in defaults[group].items():
      contents.setdefault(group, {}).setdefault(key, value)
  return contents


def _flat_keys(config: ml_collections.ConfigDict | Mapping,
               prefix: str = '') -> dict[str, type]:
  keys = {}
  for name, value in config.items():
    if isinstance(value, (ml_collections.ConfigDict, Mapping)):
      keys.update(_flat_keys(value, f'{prefix}{name}.'))
    else:
      keys[f'{prefix}{name}'] = type(value)
  return keys


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Checks a config against the default's keys and the runnable ranges.

  Args:
    config: the experiment config.
    num_devices: the global number of devices the batch is split over.

  Raises:
    ConfigError: naming the first key that is unknown, missing or out of
      range.
  """
  expected = _flat_keys(default.get_config())
  given = _flat_keys(config)
  unknown = sorted(set(given) - set(expected))
  if unknown:
    raise ConfigError(f'Unknown config keys {unknown}; known keys are those '
                      'of occnet_jax/configs/default.py.')
  missing = sorted(set(expected) - set(given))
  if missing:
    raise ConfigError(f'Missing config keys {missing}.')

  def require(condition: bool, key: str, what: str) -> None:
    if not condition:
      value = config
      for part in key.split('.'):
        value = value[part]
      raise ConfigError(f'config.{key} = {value!r}: {what}.')

  try:
    categories.get_category(config.category)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  data, train, evaluation = config.data, config.train, config.eval
  require(bool(data.name), 'data.name', 'name a TFDS dataset')
  require(data.num_views >= 1, 'data.num_views', 'need at least one view')
  require(data.crop_size >= 8, 'data.crop_size', 'need at least 8 pixels')
  require(data.read_threads >= 0, 'data.read_threads', 'must be >= 0')
  for key, batch in (('data.batch_size', data.batch_size),
                     ('eval.batch_size', evaluation.batch_size)):
    require(batch >= 1, key, 'must be positive')
    require(batch % num_devices == 0, key,
            f'must be divisible by the {num_devices} devices')
  require(config.model.hidden >= 1, 'model.hidden', 'must be positive')
  require(config.model.heatmap_size >= 1
          and data.crop_size % config.model.heatmap_size == 0,
          'model.heatmap_size',
          f'must divide data.crop_size {data.crop_size}')
  require(0.0 <= config.model.dropout < 1.0, 'model.dropout',
          'must be in [0, 1)')
  require(config.model.decoder_gate in kgnn2d.DECODER_GATES,
          'model.decoder_gate', f'must be one of {kgnn2d.DECODER_GATES}')
  require(0.0 < config.model.decoder_gate_threshold < 1.0,
          'model.decoder_gate_threshold',
          'must be in (0, 1): occlusion scores lie in [0, 1]')
  require(config.model.use_encoder or config.model.decoder_gate != 'hard',
          'model.decoder_gate', 'the hard gate needs the encoder '
          '(model.use_encoder): without it every score is 0.5, and the gate '
          'is shut or open for every keypoint alike')
  require(0.0 <= config.model.decoder_gate_open_rate < 1.0,
          'model.decoder_gate_open_rate', 'must be in [0, 1)')
  require(config.model.decoder_gate != 'none'
          or not config.model.decoder_gate_open_rate,
          'model.decoder_gate_open_rate', 'opens gates, and the ungated '
          'decoder (model.decoder_gate=none) has none')
  require(config.train.profile_steps >= 0, 'train.profile_steps',
          'must be >= 0')
  require(0.0 <= evaluation.encoder_fit_threshold <= 1.0,
          'eval.encoder_fit_threshold', 'occlusion scores lie in [0, 1]')
  require(all(0.0 <= t <= 1.0 for t in evaluation.encoder_fit_sweep),
          'eval.encoder_fit_sweep', 'occlusion scores lie in [0, 1]')
  require(config.model.decoder_gate != 'hard' or all(
      config.model.decoder_gate_threshold <= t < 1.0
      for t in evaluation.decoder_gate_sweep), 'eval.decoder_gate_sweep',
          'each must lie in [model.decoder_gate_threshold, 1): the '
          'evaluation can shut gates the model opened, not open ones it '
          'shut')
  require(config.model.dtype in _MODEL_DTYPES, 'model.dtype',
          f'must be one of {_MODEL_DTYPES}')
  for name in losses.LOSS_TERMS:
    require(config.loss[name] >= 0.0, f'loss.{name}', 'must be >= 0')
  require(config.loss.trifocal_mode in losses.TRIFOCAL_MODES,
          'loss.trifocal_mode', f'must be one of {losses.TRIFOCAL_MODES}')
  require(config.loss.trifocal == 0.0 or data.num_views >= 3, 'loss.trifocal',
          'the trifocal loss needs data.num_views >= 3 (one target and two '
          'support views)')
  require(config.shape_basis.num_components >= 0,
          'shape_basis.num_components', 'must be >= 0')
  require(config.optimizer.name in _OPTIMIZERS, 'optimizer.name',
          f'must be one of {_OPTIMIZERS}')
  require(config.optimizer.learning_rate > 0.0, 'optimizer.learning_rate',
          'must be positive')
  require(config.optimizer.warmup_steps >= 0, 'optimizer.warmup_steps',
          'must be >= 0')
  require(config.optimizer.grad_clip_norm >= 0.0, 'optimizer.grad_clip_norm',
          'must be >= 0 (0 = no clipping)')
  require(train.num_steps >= 1, 'train.num_steps', 'must be positive')
  require(train.heatmap_steps >= 0 and train.graph_steps >= 0
          and train.heatmap_steps + train.graph_steps <= train.num_steps,
          'train.heatmap_steps', 'the heatmap and graph stages must be >= 0 '
          'and fit in train.num_steps')
  require(0.0 <= train.box_jitter <= 1.0, 'train.box_jitter',
          'must be in [0, 1] (a fraction of the box size)')
  require(train.dropout_prng in _PRNG_IMPLS, 'train.dropout_prng',
          f'must be one of {_PRNG_IMPLS}')
  for name in ('log_every_steps', 'checkpoint_every_steps', 'eval_every_steps',
               'max_checkpoints_to_keep'):
    require(train[name] >= 1, f'train.{name}', 'must be positive')
  require(evaluation.max_instances >= 0, 'eval.max_instances', 'must be >= 0')
  require(len(evaluation.alphas) >= 1, 'eval.alphas', 'need at least one')
  for alpha in evaluation.alphas:
    require(0.0 < alpha < 1.0, 'eval.alphas', 'each alpha must be in (0, 1)')
  require(len(evaluation.noise_sigmas) >= 1, 'eval.noise_sigmas',
          'need at least one (0 measures the noiseless PCK)')
  for sigma in evaluation.noise_sigmas:
    require(sigma >= 0.0, 'eval.noise_sigmas', 'each sigma must be >= 0')
  for sigma in evaluation.box_jitter:
    require(0.0 <= sigma <= 1.0, 'eval.box_jitter',
            'each sigma must be in [0, 1] (fractions of the box size)')
  require(evaluation.num_gallery >= 0, 'eval.num_gallery', 'must be >= 0')
