"""Evaluation of a training workdir's checkpoint into `eval/<split>/`."""

from typing import Any

from etils import epath

from occnet_jax import categories
from occnet_jax import input_pipeline
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_model
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import outputs
from occnet_jax.evaluation import plots


def evaluate_workdir(workdir: epath.PathLike, *, split: str | None = None,
                     data_dir: str | None = None,
                     step: int | None = None) -> dict[str, Any]:
  """Evaluates a workdir's checkpoint into `<workdir>/eval/<split>/`.

  Writes the metrics (`outputs`) and the plots (process 0); see `evaluate`
  for the metrics.

  Args:
    workdir: a training workdir.
    split: the split (None = the config's `eval.final_split`).
    data_dir: the TFDS data dir (None = the config's).
    step: the checkpoint step (None = the newest that restores).

  Returns:
    The metrics.
  """
  config, model, variables, mesh, step = workdir_model.restore_workdir(
      workdir, step)
  split = split or config.eval.final_split
  data_dir = data_dir or input_pipeline.resolve_data_dir(config, workdir)
  source = input_pipeline.get_source(config, split, data_dir)
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
