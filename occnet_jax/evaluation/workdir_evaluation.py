"""Evaluation of a training workdir's checkpoint into `eval/<split>/`."""

from collections.abc import Sequence
from typing import Any, NamedTuple

from etils import epath
import flax.linen as nn
import jax
import ml_collections

from occnet_jax import categories
from occnet_jax import input_pipeline
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_model
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import outputs
from occnet_jax.evaluation import plots


class RestoredSplit(NamedTuple):
  """A workdir's restored model and the split it is evaluated on.

  Attributes:
    config: the run's config.
    model: the model built from it and the run's shape basis.
    variables: the checkpoint's model variables.
    mesh: the devices' mesh.
    step: the checkpoint's step.
    split: the split's name.
    source: its random-access records.
  """

  config: ml_collections.ConfigDict
  model: nn.Module
  variables: Any
  mesh: jax.sharding.Mesh
  step: int
  split: str
  source: Sequence[Any]


def restore_split(workdir: epath.PathLike, *, split: str | None = None,
                  data_dir: str | None = None,
                  step: int | None = None) -> RestoredSplit:
  """A workdir's checkpoint and a split to evaluate it on.

  Args:
    workdir: a training workdir.
    split: the split (None = the config's `eval.final_split`).
    data_dir: the TFDS data dir (None = the config's).
    step: the checkpoint step (None = the newest that restores).

  Returns:
    The restored model and the split's records.
  """
  config, model, variables, mesh, step = workdir_model.restore_workdir(
      workdir, step)
  split = split or config.eval.final_split
  data_dir = data_dir or input_pipeline.resolve_data_dir(config, workdir)
  return RestoredSplit(config, model, variables, mesh, step, split,
                       input_pipeline.get_source(config, split, data_dir))


def evaluate_workdir(workdir: epath.PathLike, *, split: str | None = None,
                     data_dir: str | None = None,
                     step: int | None = None) -> dict[str, Any]:
  """Evaluates a workdir's checkpoint into `<workdir>/eval/<split>/`.

  Writes the metrics (`outputs`) and the plots (process 0); see `evaluate`
  for the metrics. The arguments are `restore_split`'s.

  Returns:
    The metrics.
  """
  config, model, variables, mesh, step, split, source = restore_split(
      workdir, split=split, data_dir=data_dir, step=step)
  results, predictions = evaluate.evaluate_variables(
      config, evaluate.make_predict_fn(model, config.eval, mesh),
      variables, source, mesh,
      max_instances=config.eval.max_instances,
      num_gallery=config.eval.num_gallery)
  results['step'] = int(step)
  if workdir_lib.is_writer():
    directory = outputs.split_directory(workdir, split)
    outputs.write_metrics(directory, results)
    plots.write_all(directory, results, predictions,
                    categories.get_category(config.category), split=split,
                    alphas=config.eval.alphas,
                    noise_sigmas=config.eval.noise_sigmas)
  return results
