"""Registers the project's TFDS builders, which live in `data_prep.<name>`.

The library reads and builds datasets through TFDS by name
(`occnet_jax.input_pipeline`) and never imports data preparation, so the
entry points that may build a dataset on first use (`launch.train`, the
label study) register its builder here first. A dataset already prepared in
its data dir is read from its files without any builder code.
"""

import importlib
import importlib.util

from absl import logging


def register(name: str) -> None:
  """Imports `data_prep.<name>`, registering its TFDS builder, if it exists.

  Args:
    name: the TFDS dataset name (`config.data.name`).
  """
  module = f'{__package__}.{name}'
  if importlib.util.find_spec(module) is None:
    logging.info('No builder code %s; reading prepared files.', module)
    return
  importlib.import_module(module)
