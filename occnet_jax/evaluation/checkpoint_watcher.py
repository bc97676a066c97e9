"""The checkpoint watcher: each new checkpoint of a run, evaluated once.

`watch` runs beside training (the separate evaluator of TPU-pod setups). It
polls the workdir's finalized checkpoints (Orbax lists only those renamed
into place, never one being written), evaluates the newest it has not
evaluated yet into `eval/<split>/step_<N>/` (`outputs`; the keys of
`evaluate`) and TensorBoard scalars under `eval/<split>/` (also appended to
its `metrics.jsonl`), and stops once it has evaluated the run's last step.

Taking the newest step keeps the evaluator as far as possible from the
checkpoints training deletes (`train.max_checkpoints_to_keep`); steps that
come and go while it evaluates another are not evaluated, and one deleted
before it could be read is skipped. A restarted evaluator continues after the
last step it wrote. With several processes, process 0 reads the checkpoint
list and the others follow it.
"""

from collections.abc import Callable
import time
from typing import Any

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np

from occnet_jax import checkpointing
from occnet_jax import input_pipeline
from occnet_jax import multihost
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_model
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import outputs

_NO_STEP = -1
# How often to list the checkpoints while deletions race the listing.
_LIST_ATTEMPTS = 10


def _wait_until(ready: Callable[[], bool], what: epath.Path,
                poll_seconds: float) -> None:
  logged = False
  while not ready():
    if not logged:
      logging.info('Waiting for %s.', what)
      logged = True
    time.sleep(poll_seconds)


def _reload(checkpointer: checkpointing.Checkpointer) -> None:
  """Lists the steps again, retrying when training deletes one meanwhile."""
  for attempt in range(_LIST_ATTEMPTS):
    try:
      checkpointer.reload()
      return
    except FileNotFoundError:  # Orbax stats each step directory it lists.
      if attempt == _LIST_ATTEMPTS - 1:
        raise
      time.sleep(0.1)


def _newest_step(checkpointer: checkpointing.Checkpointer) -> int:
  """The newest finalized step as process 0 reads it, on every process."""
  _reload(checkpointer)
  steps = checkpointer.all_steps()
  step = steps[-1] if steps else _NO_STEP
  return int(multihost_utils.broadcast_one_to_all(np.int32(step)))


def watch(workdir: str, *, split: str | None = None,
          data_dir: str | None = None,
          poll_seconds: float = 10.0) -> list[int]:
  """Evaluates new checkpoints of `workdir` until its last step's.

  Args:
    workdir: a training workdir (it may not exist yet).
    split: the split (None = the config's `eval.final_split`).
    data_dir: the TFDS data dir (None = the config's).
    poll_seconds: pause between looks at the workdir.

  Returns:
    The steps evaluated by this call.
  """
  config_path = epath.Path(workdir) / workdir_lib.CONFIG_FILE
  _wait_until(config_path.exists, config_path, poll_seconds)
  config = workdir_lib.load_config(workdir)
  multihost.initialize(auto_detect=config.distributed)
  split = split or config.eval.final_split
  data_dir = data_dir or input_pipeline.resolve_data_dir(config, workdir)
  num_steps = config.train.num_steps
  done = outputs.evaluated_steps(workdir, split)
  if num_steps in done:
    logging.info('%s: step %d, the last, is already evaluated.', workdir,
                 num_steps)
    return []

  mesh = input_pipeline.data_mesh()
  model = workdir_model.build_model(config, workdir)
  predict_fn = evaluate.make_predict_fn(model, config.eval, mesh)
  source = input_pipeline.get_source(config, split, data_dir)
  directory = workdir_lib.checkpoint_dir(workdir)
  _wait_until(directory.is_dir, directory, poll_seconds)
  checkpointer = checkpointing.Checkpointer(directory, read_only=True)
  logs = outputs.split_directory(workdir, split)
  logs.mkdir(parents=True, exist_ok=True)
  last = done[-1] if done else _NO_STEP
  # Scalars of steps after `last` (a killed evaluator's) are dropped.
  writer = workdir_lib.MetricWriter(logs, max(last, 0))
  evaluated = []
  try:
    while last < num_steps:
      step = _newest_step(checkpointer)
      if step <= last:
        time.sleep(poll_seconds)
        continue
      variables = restore_variables(checkpointer, step, mesh)
      if variables is None:
        continue
      results, _ = evaluate.evaluate_variables(
          config, predict_fn, variables, source, mesh,
          max_instances=config.eval.max_instances)
      results['step'] = step
      if workdir_lib.is_writer():
        outputs.write_metrics(outputs.step_directory(workdir, split, step),
                              results)
      writer.write(step, evaluate.summary_scalars(results))
      logging.info('Evaluated step %d of %d on %s.', step, num_steps, split)
      evaluated.append(step)
      last = step
  finally:
    writer.close()
    checkpointer.close()
  return evaluated


def restore_variables(checkpointer: checkpointing.Checkpointer, step: int,
                      mesh: jax.sharding.Mesh) -> dict[str, Any] | None:
  """The model variables of `step`, or None when training deleted it.

  Training deletes a step (`max_to_keep`) only once a newer one is final,
  and the step's files go one by one: a failed read of a step that is no
  longer the newest is that deletion; of the newest, an error.
  """
  try:
    return workdir_model.restore_variables(checkpointer, step, mesh)
  except Exception:  # Orbax raises what the file system does.
    _reload(checkpointer)
    steps = checkpointer.all_steps()
    if steps and steps[-1] == step:
      raise
    logging.warning('Checkpoint %d was deleted (max_to_keep) while it was '
                    'read; skipped.', step)
    return None

