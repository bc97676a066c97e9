"""The files of a training workdir, and evaluation of its checkpoints.

A workdir holds `config.json` (the run's config), `shape_basis.npz` (the
basis the model was built with), `checkpoints/` (Orbax, `checkpointing`),
`metrics.jsonl` + TensorBoard events (`MetricWriter`), `run.json` (one entry
per start of training: `record_run`) and `eval/<split>/` (metrics.json and
figures, `evaluate_workdir`). Training (`train`) writes them through this
module; evaluation and prediction read a workdir back with
`restore_workdir`, which needs nothing but the workdir: the model comes from
its config and shape basis, the state's structure from the checkpoint.

Only process 0 writes the workdir's files; every process takes part in
checkpoint saves and restores.
"""

from collections.abc import Mapping
import json
import os
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np
import tensorboardX

from occnet_jax import checkpointing
from occnet_jax import evaluate
from occnet_jax import input_pipeline
from occnet_jax import keypoints
from occnet_jax import machine
from occnet_jax import models
from occnet_jax import multihost
from occnet_jax import plots
from occnet_jax import shape_basis as shape_basis_lib

CONFIG_FILE = 'config.json'
SHAPE_BASIS_FILE = 'shape_basis.npz'
METRICS_FILE = 'metrics.jsonl'
# One entry per start of training: its steps, wall time and machine.
RUN_FILE = 'run.json'
CHECKPOINT_DIR = 'checkpoints'


def is_writer() -> bool:
  """Whether this process writes the workdir's files (process 0)."""
  return jax.process_index() == 0


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINT_DIR)


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes the run's config beside its checkpoints (process 0)."""
  if is_writer():
    with open(os.path.join(workdir, CONFIG_FILE), 'w') as file:
      file.write(config.to_json(indent=2))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with."""
  with open(os.path.join(workdir, CONFIG_FILE)) as file:
    return ml_collections.ConfigDict(json.load(file))


def prepare_shape_basis(config: ml_collections.ConfigDict, workdir: str,
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
  saved = os.path.join(workdir, SHAPE_BASIS_FILE)
  category = keypoints.get_category(config.category)
  if os.path.exists(saved):
    return shape_basis_lib.load(saved)
  if config.shape_basis.path:
    basis = shape_basis_lib.load(config.shape_basis.path)
  else:
    shapes = np.stack([np.asarray(train_source[index]['shape_3d'])
                       for index in range(len(train_source))])
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
  if is_writer():
    shape_basis_lib.save(saved, basis)
  return basis


class MetricWriter:
  """Scalars to TensorBoard and a JSON-lines file (process 0 only).

  A context manager: leaving the `with` block, by any path, closes both.
  """

  def __init__(self, workdir: str):
    self._enabled = is_writer()
    if self._enabled:
      self._summary = tensorboardX.SummaryWriter(workdir)
      self._lines = open(os.path.join(workdir, METRICS_FILE), 'a')

  def __enter__(self) -> 'MetricWriter':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    """Writes one step's scalars."""
    if not self._enabled:
      return
    for name, value in scalars.items():
      self._summary.add_scalar(name, value, step)
    self._lines.write(json.dumps({'step': step, **scalars}) + '\n')
    self._lines.flush()

  def close(self) -> None:
    if self._enabled:
      self._summary.close()
      self._lines.close()


def record_run(workdir: str, steps: tuple[int, int], train_seconds: float,
               eval_seconds: float) -> None:
  """Appends this invocation's steps, wall times and machine to run.json.

  A resumed run has one entry per invocation, so its total time survives
  preemptions (process 0 only).
  """
  if not is_writer():
    return
  path = os.path.join(workdir, RUN_FILE)
  segments = []
  if os.path.exists(path):
    with open(path) as file:
      segments = json.load(file)['segments']
  segments.append({'steps': list(steps), 'train_seconds': train_seconds,
                   'eval_seconds': eval_seconds,
                   'machine': machine.machine_info()})
  with open(path, 'w') as file:
    json.dump({'segments': segments}, file, indent=1)


def restore_workdir(workdir: str, step: int | None = None):
  """The config, model and replicated variables of a workdir's checkpoint.

  Only finalized checkpoints are listed, so reading a workdir that training
  is still writing never sees a partial checkpoint.

  Args:
    workdir: a training workdir.
    step: the checkpoint step (None = the latest complete one).

  Returns:
    (config, model, variables, mesh, step): `variables` as `model.apply`
    takes them ('params' and the non-parameter collections).

  Raises:
    FileNotFoundError: without the workdir's config or a complete checkpoint.
  """
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    raise FileNotFoundError(f'{workdir} is not a training workdir (no '
                            f'{CONFIG_FILE}).')
  config = load_config(workdir)
  multihost.initialize(auto_detect=config.distributed)
  mesh = input_pipeline.data_mesh()
  model = models.from_config(config, shape_basis_lib.load(
      os.path.join(workdir, SHAPE_BASIS_FILE)))
  with checkpointing.Checkpointer(checkpoint_dir(workdir),
                                  read_only=True) as checkpointer:
    steps = checkpointer.all_steps()
    if step is None and steps:
      step = steps[-1]
    if step not in steps:
      raise FileNotFoundError(f'No complete checkpoint of step {step} in '
                              f'{workdir}; complete steps: {steps}.')
    state = checkpointer.restore_state(
        step, jax.sharding.NamedSharding(mesh, jax.P()))
  return config, model, model_variables(state), mesh, step


def model_variables(state: Mapping[str, Any]) -> dict[str, Any]:
  """`model.apply`'s variables of a restored train state."""
  return {'params': state['params'], **state['model_state']}


def evaluate_workdir(workdir: str, *, split: str | None = None,
                     data_dir: str | None = None,
                     step: int | None = None) -> dict[str, Any]:
  """Evaluates a workdir's checkpoint into `<workdir>/eval/<split>/`.

  Writes metrics.json and the plots (process 0); see `evaluate` for the
  metrics.

  Args:
    workdir: a training workdir.
    split: the split (None = the config's `eval.split`).
    data_dir: the TFDS data dir (None = the config's).
    step: the checkpoint step (None = the latest complete one).

  Returns:
    The metrics.
  """
  config, model, variables, mesh, step = restore_workdir(workdir, step)
  split = split or config.eval.split
  data_dir = data_dir or input_pipeline.resolve_data_dir(config, workdir)
  source = input_pipeline.get_source(config, split, data_dir)
  results, predictions = evaluate.evaluate_variables(
      config, evaluate.make_predict_fn(model, config.eval.noise_sigmas, mesh),
      variables, source, mesh,
      max_instances=config.eval.max_instances,
      num_gallery=config.eval.num_gallery)
  results['step'] = int(step)
  if is_writer():
    directory = os.path.dirname(evaluate.metrics_path(workdir, split))
    evaluate.write_metrics(directory, results)
    plots.write_all(directory, results, predictions,
                    keypoints.get_category(config.category),
                    alphas=config.eval.alphas,
                    noise_sigmas=config.eval.noise_sigmas)
  return results
