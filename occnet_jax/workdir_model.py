"""The model a training workdir holds: its shape basis, build and variables.

Training prepares the shape basis here; evaluation, the checkpoint watcher
and prediction build a workdir's model and read its variables here, from
nothing but the workdir: the model comes from its config and shape basis,
the state's structure from the checkpoint.
"""

from collections.abc import Mapping
from typing import Any

from absl import logging
from etils import epath
import flax.linen as nn
import jax
import ml_collections
import numpy as np

from occnet_jax import categories
from occnet_jax import checkpointing
from occnet_jax import input_pipeline
from occnet_jax import models
from occnet_jax import multihost
from occnet_jax import shape_basis as shape_basis_lib
from occnet_jax import workdir as workdir_lib


def prepare_shape_basis(config: ml_collections.ConfigDict,
                        workdir: epath.PathLike,
                        train_source: Any) -> shape_basis_lib.ShapeBasis:
  """The run's shape basis, saved in the workdir for evaluation/prediction.

  A basis saved by an earlier start of the run wins (so a restart uses the
  same basis), then `config.shape_basis.path`, then a PCA fitted on the
  training split's `shape_3d`; a split without 3D shapes (CarFusion) gets
  the category's mean shape without components.

  Args:
    config: the experiment config.
    workdir: the run's directory.
    train_source: random-access training records.

  Returns:
    The shape basis.
  """
  saved = epath.Path(workdir) / workdir_lib.SHAPE_BASIS_FILE
  category = categories.get_category(config.category)
  if saved.exists():
    return shape_basis_lib.load(saved)
  if config.shape_basis.path:
    basis = shape_basis_lib.load(config.shape_basis.path)
  else:
    records = (train_source[index] for index in range(len(train_source)))
    # None: a record skipped as unreadable (config.data.skip_corrupt).
    shapes = np.stack([np.asarray(record['shape_3d']) for record in records
                       if record is not None])
    known = np.any(shapes != 0, axis=(1, 2))
    if known.sum() > config.shape_basis.num_components:
      basis = shape_basis_lib.fit_shape_basis(
          shapes[known], config.shape_basis.num_components,
          mirror=category.mirror)
    else:
      logging.info('The training split has no 3D shapes: the 3D branch uses '
                   'the %s mean shape without components.', category.name)
      no_components = np.zeros((0,), np.float32)
      basis = shape_basis_lib.ShapeBasis(
          mean=np.asarray(category.mean_shape, np.float32),
          components=np.zeros((0, category.num_keypoints, 3), np.float32),
          stddevs=no_components, explained_variance_ratio=no_components)
  if workdir_lib.is_writer():
    shape_basis_lib.save(saved, basis)
  return basis


def build_model(config: ml_collections.ConfigDict,
                workdir: epath.PathLike) -> nn.Module:
  """The model of a workdir's config and saved shape basis."""
  return models.from_config(config, shape_basis_lib.load(
      epath.Path(workdir) / workdir_lib.SHAPE_BASIS_FILE))


def model_variables(params: Any, model_state: Mapping[str, Any]
                    ) -> dict[str, Any]:
  """The variables `model.apply` takes: 'params' and the other collections.

  Args:
    params: a train state's parameters.
    model_state: its other collections (batch statistics).

  Returns:
    {'params': params, **model_state}.
  """
  return {'params': params, **model_state}


def restore_variables(checkpointer: checkpointing.Checkpointer, step: int,
                      mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """The model variables of checkpoint `step`, replicated over `mesh`."""
  state = checkpointer.restore_state(step, jax.NamedSharding(mesh, jax.P()))
  return model_variables(state['params'], state['model_state'])


def restore_workdir(workdir: epath.PathLike, step: int | None = None):
  """The config, model and replicated variables of a workdir's checkpoint.

  Only finalized checkpoints are listed, so reading a workdir that training
  is still writing never sees a partial checkpoint. Without a step, a
  checkpoint that fails to restore is logged and the next older one read.

  Args:
    workdir: a training workdir.
    step: the checkpoint step (None = the newest that restores).

  Returns:
    (config, model, variables, mesh, step): `variables` as `model.apply`
    takes them ('params' and the non-parameter collections).

  Raises:
    FileNotFoundError: without the workdir's config or a complete checkpoint.
    checkpointing.CheckpointError: when no (or not the given) checkpoint
      restores.
  """
  if not (epath.Path(workdir) / workdir_lib.CONFIG_FILE).exists():
    raise FileNotFoundError(f'{workdir} is not a training workdir (no '
                            f'{workdir_lib.CONFIG_FILE}).')
  config = workdir_lib.load_config(workdir)
  multihost.initialize(auto_detect=config.distributed)
  mesh = input_pipeline.data_mesh()
  model = build_model(config, workdir)
  with checkpointing.Checkpointer(workdir_lib.checkpoint_dir(workdir),
                                  read_only=True) as checkpointer:
    steps = checkpointer.all_steps()
    if step is not None and step not in steps:
      raise FileNotFoundError(f'No complete checkpoint of step {step} in '
                              f'{workdir}; complete steps: {steps}.')
    if not steps:
      raise FileNotFoundError(f'No complete checkpoint in {workdir}.')
    step, variables = checkpointer.restore_newest(
        lambda step: restore_variables(checkpointer, step, mesh),
        steps=[step] if step is not None else None)
  return config, model, variables, mesh, step
