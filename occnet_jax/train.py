"""Training: staged schedule, data-parallel steps, checkpoints and logging.

`train_step` is the per-device step of the pmap programming model: it runs
inside `jax.shard_map` over a one-axis mesh ('data'), each device on its
slice of the global batch, with gradients, losses and any non-parameter
model state averaged by `lax.pmean`. The step is jitted once with the state
donated; the stage of the schedule (heatmap head alone, then the graph
networks on the frozen head, then end to end) is read from the step counter
inside the step, so every stage runs the same compiled program.

A stage selects loss terms (weights times 0 or 1) and parameter groups: a
frozen group's gradients are zeroed and its learning rate is 0, so its
parameters do not move at all. A batch with a non-finite loss or gradient
never changes the state; the host then stops the run (naming the step and
the term) or, with `config.train.skip_nonfinite`, counts it and goes on.

`train_and_evaluate` is the whole run: dataset and shape basis on first use,
restore from the latest complete checkpoint (exactly resuming the data order
and randomness), train, evaluate periodically, and finally evaluate the
configured split into `<workdir>/eval/<split>/`. The workdir's files are
`occnet_jax.workdir`'s. A SIGTERM (preemption notice) saves a checkpoint at
the next step all processes reach and ends the run early; the same command
resumes it.
"""

from collections.abc import Callable, Mapping
import functools
import os
import time
from typing import Any

from absl import logging
from etils import epath
import flax
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from occnet_jax import checkpointing
from occnet_jax import configs
from occnet_jax import input_pipeline
from occnet_jax import losses
from occnet_jax import models
from occnet_jax import multihost
from occnet_jax import workdir as workdir_lib
from occnet_jax import workdir_lock
from occnet_jax import workdir_model
from occnet_jax.evaluation import box_jitter
from occnet_jax.evaluation import evaluate
from occnet_jax.evaluation import outputs
from occnet_jax.evaluation import workdir_evaluation

AXIS = input_pipeline.DEVICE_AXIS
PARAM_GROUPS = ('heatmap', 'graph')
# Parameters under a top-level module whose name starts with this belong to
# the heatmap head; all others to the graph networks (docs/design.md).
HEATMAP_MODULE_PREFIX = 'HeatmapHead'
# The loss terms each stage (heatmap, graph, end to end) trains, by name;
# the others weigh 0 in it.
_STAGE_LOSS_TERMS = (('keypoints',), ('edge', 'visible', 'trifocal', 'reproj'),
                     losses.LOSS_TERMS)
# {loss term: (stages,) 1 where the stage trains it, else 0}.
_STAGE_LOSS_MASKS = {
    term: np.array([term in terms for terms in _STAGE_LOSS_TERMS], np.float32)
    for term in losses.LOSS_TERMS}
# Rows: the stages. Columns: PARAM_GROUPS that are trained.
_STAGE_PARAM_GROUPS = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
# The step key's fold_in index of the box-jitter stream: indices 0..D-1 are
# the D devices' dropout streams (`train_step`), so it lies beyond any
# device count.
BOX_JITTER_STREAM = 2**31 - 1


@flax.struct.dataclass
class TrainState:
  """Everything a training step reads and writes.

  Attributes:
    step: completed steps (skipped batches included).
    params: the model parameters.
    model_state: non-parameter variable collections (empty without them).
    opt_state: optimizer state.
    num_skipped: batches skipped for a non-finite loss or gradient.
  """

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  num_skipped: jax.Array


class NonFiniteError(RuntimeError):
  """Training produced a non-finite loss or gradient."""


def stage_starts(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """First step of the heatmap, graph and end-to-end stages."""
  graph_start = config.train.heatmap_steps
  return 0, graph_start, graph_start + config.train.graph_steps


def stage_index(step: jax.Array, config: ml_collections.ConfigDict,
                ) -> jax.Array:
  """0 (heatmap), 1 (graph) or 2 (end to end) for a step."""
  _, graph_start, joint_start = stage_starts(config)
  return (step >= graph_start).astype(jnp.int32) + (step >= joint_start)


def param_labels(params: Any) -> Any:
  """The `PARAM_GROUPS` name of every parameter leaf."""
  return {
      name: jax.tree.map(
          lambda _, group=('heatmap' if name.startswith(HEATMAP_MODULE_PREFIX)
                           else 'graph'): group, subtree)
      for name, subtree in params.items()
  }


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           group: str) -> optax.Schedule:
  """A parameter group's learning rate: warmup (+ cosine) in its stages.

  Every stage in which the group trains restarts the warmup (and the cosine
  decay over the stage); the rate is 0 in stages in which it is frozen.

  Args:
    config: the experiment config.
    group: one of `PARAM_GROUPS`.

  Returns:
    The optax schedule of that group, a function of the update count.
  """
  starts = stage_starts(config)
  ends = starts[1:] + (config.train.num_steps,)
  schedules, boundaries = [], []
  for stage, (start, end) in enumerate(zip(starts, ends)):
    if end <= start:
      continue
    if not _STAGE_PARAM_GROUPS[stage, PARAM_GROUPS.index(group)]:
      schedule = optax.constant_schedule(0.0)
    else:
      warmup = min(config.optimizer.warmup_steps, end - start - 1)
      peak = config.optimizer.learning_rate
      if config.optimizer.cosine_decay:
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup, end - start)
      else:
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, peak, warmup),
             optax.constant_schedule(peak)], [warmup])
    if schedules:
      boundaries.append(start)
    schedules.append(schedule)
  return optax.join_schedules(schedules, boundaries)


def create_optimizer(config: ml_collections.ConfigDict,
                     params: Any) -> optax.GradientTransformation:
  """Clipping, then Adam(W) or SGD with momentum per parameter group.

  A group's optimizer statistics (momentum, Adam moments) only advance in
  the stages that train it. Adam's bias correction divides by 1 - b^t
  with t the number of updates; counted from step 0, a group frozen for
  the first stage would start training with t in the thousands but moments
  built from a handful of gradients, and its first updates would be up to
  1 / sqrt(1 - 0.999), ~30 times too large.

  Args:
    config: the experiment config.
    params: the parameters (their tree gives the groups).

  Returns:
    The optimizer.
  """
  def group_optimizer(group):
    schedule = learning_rate_schedule(config, group)
    column = PARAM_GROUPS.index(group)
    trained = lambda step: jnp.asarray(_STAGE_PARAM_GROUPS)[
        stage_index(step, config), column] > 0
    # The chains of optax.sgd / optax.adamw, with the optimizer's statistics
    # frozen outside the stages that train the group; the schedule keeps
    # counting every step.
    if config.optimizer.name == 'sgd':
      return optax.chain(
          optax.add_decayed_weights(config.optimizer.weight_decay),
          optax.transforms.conditionally_mask(
              optax.trace(decay=config.optimizer.momentum), trained),
          optax.scale_by_learning_rate(schedule))
    return optax.chain(
        optax.transforms.conditionally_mask(optax.scale_by_adam(), trained),
        optax.add_decayed_weights(config.optimizer.weight_decay),
        optax.scale_by_learning_rate(schedule))

  optimizer = optax.multi_transform(
      {group: group_optimizer(group) for group in PARAM_GROUPS},
      param_labels(params))
  if config.optimizer.grad_clip_norm > 0:
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.optimizer.grad_clip_norm), optimizer)
  return optimizer


def example_car(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """A blank car with the config's input shapes, for initialisation."""
  views, size = config.data.num_views, config.data.crop_size
  return {'crops': np.zeros((1, views, size, size, 3), np.uint8),
          'boxes': np.tile(input_pipeline.PADDING_BOX, (1, views, 1))}


def init_variables(model: nn.Module, rng: jax.Array,
                   example: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """The model's variables, initialised on one example car."""
  crops, boxes = input_pipeline.flatten_views(example)
  return model.init({'params': rng}, crops, boxes, train=False)


def create_train_state(model: nn.Module, optimizer_fn: Callable[
    [Any], optax.GradientTransformation], rng: jax.Array,
                       example: Mapping[str, np.ndarray],
                       ) -> tuple[TrainState, optax.GradientTransformation]:
  """A fresh train state (unplaced) and its optimizer.

  The initialisation is one jitted program: run op by op, it compiled
  hundreds of small programs, twice the time of the one on a CPU.

  Args:
    model: the model.
    optimizer_fn: params -> optimizer (`create_optimizer` bound to a config).
    rng: initialisation key.
    example: one car (leading axes (1, V)) fixing the input shapes.

  Returns:
    (state, optimizer).
  """

  def init(rng):
    variables = dict(init_variables(model, rng, example))
    params = variables.pop('params')
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      model_state=variables,
                      opt_state=optimizer_fn(params).init(params),
                      num_skipped=jnp.zeros((), jnp.int32))

  state = jax.jit(init)(rng)
  return state, optimizer_fn(state.params)


def _all_finite(tree: Any) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf))
                            for leaf in jax.tree.leaves(tree)]))


def dropout_key(step_key: jax.Array, impl: str) -> jax.Array:
  """The step's dropout key, of the PRNG implementation `impl`.

  Only the dropout stream changes implementation: the run's base key (the
  one checkpointed) stays a default-implementation key, and a different
  `impl` is seeded with random bits of the step's key, so a run is as
  deterministic and as exactly resumable with any `impl`.

  Args:
    step_key: this step's (and device's) key.
    impl: a `jax.random` PRNG implementation name
      (`config.train.dropout_prng`).

  Returns:
    `step_key` itself if it has that implementation, else a key of it.
  """
  if str(jax.random.key_impl(step_key)) == impl:
    return step_key
  key_shape = jax.eval_shape(
      lambda: jax.random.key_data(jax.random.key(0, impl=impl))).shape
  return jax.random.wrap_key_data(
      jax.random.bits(step_key, key_shape, jnp.uint32), impl=impl)


def train_step(state: TrainState, batch: Mapping[str, jax.Array],
               rng: jax.Array, *, model: nn.Module,
               optimizer: optax.GradientTransformation,
               config: ml_collections.ConfigDict,
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimisation step on one device's slice of the batch.

  Runs inside `jax.shard_map` over the mesh axis `AXIS`; gradients, loss
  terms and non-parameter state are averaged over it.

  Args:
    state: the replicated train state.
    batch: this device's cars, leading axes (B_device, V).
    rng: the run's base key; the step's key is `fold_in(rng, step)`.
      With `config.train.box_jitter`, the batch's boxes are moved and their
      crops resampled first (`box_jitter.jitter_batch`): on the device, a
      pure function of the step's key, so a run stays deterministic and
      resumes exactly from the checkpointed base key, and the input
      pipeline needs no random state of its own.
    model: the model.
    optimizer: from `create_optimizer`.
    config: the experiment config.

  Returns:
    (new state, metrics): metrics are replicated scalars: 'loss', every
    loss term, 'grad_norm', 'finite' (1 when the update was applied) and
    'num_skipped'.
  """
  step_rng = jax.random.fold_in(jax.random.fold_in(rng, state.step),
                                lax.axis_index(AXIS))
  stage = stage_index(state.step, config)
  loss_config = ml_collections.ConfigDict({
      **config.loss.to_dict(),
      **{term: config.loss[term] * jnp.asarray(mask)[stage]
         for term, mask in _STAGE_LOSS_MASKS.items()}})
  if config.train.box_jitter:
    batch = box_jitter.jitter_batch(
        batch, jax.random.fold_in(jax.random.fold_in(rng, state.step),
                                  BOX_JITTER_STREAM),
        config.train.box_jitter,
        first_car=lax.axis_index(AXIS) * batch['boxes'].shape[0])
  crops, boxes = input_pipeline.flatten_views(batch)
  dropout_rng = dropout_key(step_rng, config.train.dropout_prng)

  def loss_fn(params):
    outputs, model_state = model.apply(
        {'params': params, **state.model_state}, crops, boxes, train=True,
        rngs={'dropout': dropout_rng}, mutable=list(state.model_state))
    loss, terms = losses.total_loss(outputs, batch, loss_config)
    return loss, (terms, model_state)

  (loss, (terms, model_state)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  loss, terms, grads, model_state = lax.pmean(
      (loss, terms, grads, model_state), AXIS)
  trained = jnp.asarray(_STAGE_PARAM_GROUPS)[stage]
  grads = jax.tree.map(lambda grad, group: grad * trained[
      PARAM_GROUPS.index(group)], grads, param_labels(grads))
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  finite = jnp.isfinite(loss) & _all_finite(grads)
  updated = state.replace(params=optax.apply_updates(state.params, updates),
                          model_state=model_state, opt_state=opt_state)
  # A non-finite batch leaves the state as it was (only the counters move).
  new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                           updated, state)
  new_state = new_state.replace(
      step=state.step + 1, num_skipped=state.num_skipped + (~finite))
  metrics = {'loss': loss, **terms, 'grad_norm': optax.tree.norm(grads),
             'finite': finite.astype(jnp.float32),
             'num_skipped': new_state.num_skipped}
  return new_state, metrics


def make_train_step(model: nn.Module, optimizer: optax.GradientTransformation,
                    config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                    ) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
  """`train_step` data parallel over `mesh`, jitted, state donated."""
  replicated, sharded = jax.P(), jax.P(AXIS)
  step = jax.shard_map(
      functools.partial(train_step, model=model, optimizer=optimizer,
                        config=config),
      mesh=mesh, in_specs=(replicated, sharded, replicated),
      out_specs=(replicated, replicated))
  return jax.jit(step, donate_argnums=0)


def shard_batch(batch: Mapping[str, np.ndarray],
                mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """This process's batch -> global arrays split over the mesh's devices."""
  sharding = jax.NamedSharding(mesh, jax.P(AXIS))
  return {name: jax.make_array_from_process_local_data(sharding, value)
          for name, value in batch.items()}


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Places a pytree, the same on every process, on every device of the mesh.

  `jax.device_put` reaches only this process's devices; a global array is
  assembled from every process's copy instead (typed PRNG keys through their
  raw key data).
  """
  sharding = jax.NamedSharding(mesh, jax.P())

  def place(leaf):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(place(jax.random.key_data(leaf)),
                                      impl=jax.random.key_impl(leaf))
    return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))

  return jax.tree.map(place, tree)


class StepTrace:
  """A `jax.profiler` trace of a few training steps, into the workdir.

  The trace lands in `<workdir>/plugins/profile/<time>/`, where TensorBoard
  (`tensorboard --logdir=<workdir>`, with the `tensorboard-plugin-profile`
  package) shows it beside the run's scalars, in its Profile tab. It starts
  one step after `first_step`, so that it shows the compiled step running
  rather than its compilation. A context manager: leaving the `with` block
  ends a trace still running (a run that stopped early).
  """

  def __init__(self, workdir: epath.PathLike, first_step: int,
               num_steps: int):
    """Sets which steps to trace.

    Args:
      workdir: the run's workdir.
      first_step: the first step this run executes (the trace starts at the
        next one).
      num_steps: steps traced; 0 traces nothing.
    """
    self._workdir = os.fspath(workdir)
    self._start = first_step + 1
    self._stop = self._start + num_steps
    self._running = False

  def __enter__(self) -> 'StepTrace':
    return self

  def __exit__(self, *exc_info) -> None:
    if self._running:
      jax.profiler.stop_trace()
      self._running = False

  def before(self, step: int) -> None:
    """Called before step `step` is dispatched: starts the trace there."""
    if step == self._start and self._stop > self._start:
      jax.profiler.start_trace(self._workdir)
      self._running = True

  def after(self, step: int, outputs: Any) -> None:
    """Called with step `step`'s outputs: ends the trace after its last step.

    Waits for `outputs` first, so that the trace holds the device's work.
    """
    if self._running and step + 1 == self._stop:
      jax.block_until_ready(outputs)
      jax.profiler.stop_trace()
      self._running = False
      logging.info('Wrote a profile of steps %d to %d to %s/plugins/profile.',
                   self._start, self._stop - 1, self._workdir)


def _nonfinite_message(step: int, metrics: Mapping[str, float]) -> str:
  bad = [name for name in ('loss',) + losses.LOSS_TERMS
         if name in metrics and not np.isfinite(metrics[name])]
  what = (f'loss term(s) {", ".join(bad)}' if bad
          else 'gradients (every loss term is finite)')
  return (f'Non-finite {what} at step {step}: stopping; the last complete '
          'checkpoint is kept. Set config.train.skip_nonfinite=True to skip '
          'such batches instead.')


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: epath.PathLike) -> TrainState:
  """Trains (resuming if the workdir has checkpoints), then evaluates.

  The workdir is locked for the whole run (`workdir_lock.WorkdirLock`). A resume
  is checked against the saved config before anything is written, and the
  config is saved only once the checkpoint has restored.

  Args:
    config: the experiment config (validated first).
    workdir: checkpoints, logs, config, shape basis and evaluation results
      (a local path or a URI such as gs://bucket/run).

  Returns:
    The final train state: of an earlier step than `config.train.num_steps`
    when a SIGTERM stopped the run.

  Raises:
    configs.ConfigError: for a config that cannot run, a dataset whose crops
      are not `config.data.crop_size` pixels (checked before a build), or a
      config that changes what the workdir's checkpoints hold.
    workdir_lock.WorkdirLockedError: while another trainer owns the workdir.
    checkpointing.CheckpointError: when no checkpoint of the workdir
      restores.
    checkpointing.DiskFullError: when the workdir's disk fills up.
    checkpointing.StoreError: when a remote workdir's store fails a write
      after its retries.
    NonFiniteError: for a non-finite loss or gradient, unless
      `config.train.skip_nonfinite`.
  """
  multihost.initialize(auto_detect=config.distributed)
  configs.validate(config, jax.device_count())
  workdir = os.fspath(workdir)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  with (workdir_lock.WorkdirLock(workdir),
        checkpointing.storage_errors(workdir,
                                     workdir_lib.checkpoint_dir(workdir))):
    changes = workdir_lib.config_changes(config, workdir)
    mesh = input_pipeline.data_mesh()
    data_dir = input_pipeline.resolve_data_dir(config, workdir)
    input_pipeline.check_crop_size(config, data_dir)
    input_pipeline.prepare_dataset(config, data_dir)
    train_source = input_pipeline.get_source(config, config.data.train_split,
                                             data_dir)
    basis = workdir_model.prepare_shape_basis(config, workdir, train_source)
    model = models.from_config(config, basis)
    num_steps = config.train.num_steps
    with checkpointing.Checkpointer(
        workdir_lib.checkpoint_dir(workdir),
        max_to_keep=config.train.max_checkpoints_to_keep) as checkpointer:
      multihost.describe_progress(
          lambda: checkpointing.last_complete(checkpointer.directory))
      start, state, optimizer, train_rng, iterator = _restore_or_init(
          config, workdir, model, mesh, checkpointer, train_source)
      workdir_lib.save_config(config, workdir, changes)
      if start < num_steps:
        with workdir_lib.RunRecord(workdir, start) as record:
          state, done = _train_steps(
              config, workdir, start, state, model, optimizer, train_rng,
              iterator, mesh, checkpointer, record, data_dir)
          checkpointer.wait_until_finished()
          if config.eval.final_split and done == num_steps:
            with record.evaluating():
              workdir_evaluation.evaluate_workdir(
                  workdir, split=config.eval.final_split,
                  data_dir=data_dir)
      elif config.eval.final_split and not epath.Path(outputs.metrics_path(
          workdir, config.eval.final_split)).exists():
        workdir_evaluation.evaluate_workdir(
            workdir, split=config.eval.final_split, data_dir=data_dir)
  return state


def _restore_or_init(config, workdir, model, mesh, checkpointer,
                     train_source):
  """(start step, state, optimizer, rng, iterator) of a new or resumed run.

  A resumed run restores the newest checkpoint that restores; newer ones
  that do not are moved to `<workdir>/unrestorable_checkpoints/` (kept, and
  out of the way of the saves that replace them).
  """
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  state, optimizer = create_train_state(
      model, functools.partial(create_optimizer, config), init_rng,
      example_car(config))
  state = replicate(state, mesh)
  iterator = input_pipeline.create_train_iterator(train_source, config,
                                                  config.seed)
  start = 0
  if checkpointer.all_steps():
    abstract = abstract_train_state(config, model, mesh)
    start, (state, train_rng, data_state) = checkpointer.restore_newest(
        lambda step: checkpointer.restore(step, abstract))
    iterator.set_state(data_state['iterator'])
    unrestorable = [step for step in checkpointer.all_steps() if step > start]
    if unrestorable and workdir_lib.is_writer():
      checkpointer.set_aside(unrestorable, epath.Path(workdir) /
                             workdir_lib.UNRESTORABLE_DIR)
    logging.info('Resumed from the checkpoint of step %d.', start)
  return start, state, optimizer, replicate(train_rng, mesh), iterator


def _train_steps(config, workdir, start, state, model, optimizer, train_rng,
                 iterator, mesh, checkpointer, record, data_dir):
  """Steps `start` to `config.train.num_steps`: log, save, evaluate.

  Returns:
    (state, the number of completed steps): fewer than
    `config.train.num_steps` when a SIGTERM stopped the run after saving.
  """
  num_steps = config.train.num_steps
  step_fn = make_train_step(model, optimizer, config, mesh)
  eval_source = input_pipeline.get_source(
      config, config.data.periodic_eval_split, data_dir)
  predict_fn = evaluate.make_predict_fn(model, config.eval, mesh)
  history, tick, tick_step = [], time.time(), start
  done = start
  # Steps dispatched but not yet checked for a non-finite update. Reading a
  # step's flag waits for that step, so it is read only once the next step
  # is dispatched (the device never idles while the host reads input), or
  # at a step whose state is logged, saved or evaluated.
  unchecked = []
  logging.info('Compiling the train step (the first log line follows the '
               'first %d steps).', config.train.log_every_steps)
  with (workdir_lib.MetricWriter(workdir, start) as writer,
        multihost.PreemptionNotice() as preemption,
        StepTrace(workdir, start,
                              config.train.profile_steps) as trace):
    for step in range(start, num_steps):
      trace.before(step)
      state, metrics = step_fn(state, shard_batch(next(iterator), mesh),
                               train_rng)
      trace.after(step, state)
      unchecked.append((step, metrics))
      done = step + 1
      preempted = preemption.reached(done)
      logged = (done % config.train.log_every_steps == 0
                or done == num_steps or preempted)
      saved = (done % config.train.checkpoint_every_steps == 0
               or done == num_steps or preempted)
      evaluated = done % config.train.eval_every_steps == 0 and done < num_steps
      while len(unchecked) > (0 if logged or saved or evaluated else 1):
        checked_step, checked = unchecked.pop(0)
        if checked['finite']:
          history.append(checked)
          continue
        message = _nonfinite_message(checked_step,
                                     jax.tree.map(float, checked))
        if not config.train.skip_nonfinite:
          raise NonFiniteError(message)
        logging.warning('Skipped: %s', message)
      if history and logged:
        means = {f'train_{name}': float(np.mean([m[name] for m in history]))
                 for name in history[0]}
        steps_per_second = (done - tick_step) / (time.time() - tick)
        means['train_steps_per_second'] = steps_per_second
        writer.write(done, means)
        logging.info('step %d/%d  loss %.4f  %.2f steps/s  ETA %.0f s', done,
                     num_steps, means['train_loss'], steps_per_second,
                     (num_steps - done) / steps_per_second)
        history, tick, tick_step = [], time.time(), done
      if saved:
        # Every process is at the same iterator position (one local batch
        # per step), so the position saved by process 0 restores them all.
        checkpointer.save(done, state, train_rng,
                          {'iterator': iterator.get_state(), 'step': done})
      if logged or saved:
        record.trained(done)
      if preempted:
        logging.warning('Preempted (SIGTERM): saved the checkpoint of step '
                        '%d of %d; the same command resumes the run.', done,
                        num_steps)
        break
      if evaluated:
        results, _ = evaluate.evaluate_variables(
            config, predict_fn,
            workdir_model.model_variables(state.params, state.model_state),
            eval_source, mesh,
            max_instances=config.eval.max_instances)
        writer.write(done, {f'eval_{name}': value
                            for name, value in evaluate.summary_scalars(
                                results).items()})
  return state, done


def abstract_train_state(config: ml_collections.ConfigDict, model: nn.Module,
                         mesh: jax.sharding.Mesh) -> TrainState:
  """The train state's structure, replicated on `mesh`, without compute."""
  abstract = jax.eval_shape(lambda: create_train_state(
      model, functools.partial(create_optimizer, config), jax.random.key(0),
      example_car(config))[0])
  replicated = jax.NamedSharding(mesh, jax.P())
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape, x.dtype, sharding=replicated), abstract)
