"""The files of a training workdir, and evaluation of its checkpoints.

A workdir holds `config.json` (the run's config), `shape_basis.npz` (the
basis the model was built with), `checkpoints/` (Orbax, `checkpointing`),
`metrics.jsonl` + TensorBoard events (`MetricWriter`), `plugins/profile/`
(a `jax.profiler` trace of a few steps, `StepTrace`), `run.json` (one entry
per start of training: `record_run`) and `eval/<split>/` (metrics.json and
figures, `evaluate_workdir`). Training (`train`) writes them through this
module; evaluation and prediction read a workdir back with
`restore_workdir`, which needs nothing but the workdir: the model comes from
its config and shape basis, the state's structure from the checkpoint.

Only process 0 writes the workdir's files; every process takes part in
checkpoint saves and restores.
"""

import contextlib
from collections.abc import Iterator, Mapping
import datetime
import json
import os
import socket
import struct
import time
from typing import Any

from absl import logging
from etils import epath
from flax import traverse_util
import jax
import ml_collections
import numpy as np
import tensorboardX
from tensorboardX.proto import event_pb2

from occnet_jax import categories
from occnet_jax import checkpointing
from occnet_jax import configs
from occnet_jax import errors
from occnet_jax import evaluate
from occnet_jax import input_pipeline
from occnet_jax import machine
from occnet_jax import models
from occnet_jax import multihost
from occnet_jax import paths
from occnet_jax import plots
from occnet_jax import shape_basis as shape_basis_lib

CONFIG_FILE = 'config.json'
# config.json's list of the changes resumed runs made to the config.
CONFIG_HISTORY_KEY = 'history'
SHAPE_BASIS_FILE = 'shape_basis.npz'
METRICS_FILE = 'metrics.jsonl'
# One entry per start of training: its steps, wall time and machine.
RUN_FILE = 'run.json'
LOCK_FILE = 'lock.json'
CHECKPOINT_DIR = 'checkpoints'
# Where training moves checkpoints that fail to restore (never deleted).
UNRESTORABLE_DIR = 'unrestorable_checkpoints'
# Config keys (or key prefixes, ending in '.') that fix the structure or the
# shapes of a checkpoint's arrays: a resumed run may not change them.
CHECKPOINT_KEYS = ('category', 'model.', 'data.num_views', 'data.crop_size',
                   'shape_basis.', 'optimizer.name')


class WorkdirLockedError(errors.UserError):
  """Another trainer owns the workdir; the message says which."""


def is_writer() -> bool:
  """Whether this process writes the workdir's files (process 0)."""
  return jax.process_index() == 0


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec='seconds')


def _write_atomically(path: epath.Path, text: str) -> None:
  """Writes a whole file so that a kill never leaves it half written."""
  partial = path.parent / f'.{path.name}.partial'
  partial.write_text(text)
  partial.replace(path)


def checkpoint_dir(workdir: epath.PathLike) -> epath.Path:
  return epath.Path(workdir) / CHECKPOINT_DIR


class WorkdirLock:
  """One trainer per workdir: `<workdir>/lock.json` names its owner.

  The lock holds the owner's host, pid and start time. It is created with
  O_EXCL on a local disk, so of two trainers starting at once exactly one
  gets it; on a remote file system (gs://), which has no exclusive create,
  only a trainer started after another one has taken the lock is refused.
  A lock whose process no longer runs on this host is stale and taken over
  (a SIGKILLed trainer leaves one); a lock from another host can only be
  told stale by a person, so the error says how to remove it. Process 0
  holds it for all processes. A context manager: it is released however
  training ends.
  """

  def __init__(self, workdir: epath.PathLike):
    self.path = paths.absolute(workdir) / LOCK_FILE
    self._owner = {'host': socket.gethostname(), 'pid': os.getpid(),
                   'started': _now()}

  def __enter__(self) -> 'WorkdirLock':
    if is_writer():
      self._acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    if is_writer() and self._holder() == self._owner:
      self.path.unlink(missing_ok=True)

  def _create(self) -> bool:
    text = json.dumps(self._owner)
    if not paths.is_remote(self.path):
      # Atomic on a local disk; object stores have no O_EXCL.
      try:
        descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                             0o644)
      except FileExistsError:
        return False
      with os.fdopen(descriptor, 'w') as file:
        file.write(text)
      return True
    if self.path.exists():
      return False
    self.path.write_text(text)
    return True

  def _holder(self) -> dict[str, Any] | None:
    try:
      return json.loads(self.path.read_text())
    except (FileNotFoundError, ValueError):
      # Gone, or caught between its creation and its first write.
      return None

  def _acquire(self) -> None:
    for _ in range(3):
      if self._create():
        return
      holder = self._holder()
      if holder is None:
        time.sleep(0.1)
        continue
      if holder.get('host') != self._owner['host'] or _is_running(
          holder.get('pid')):
        raise WorkdirLockedError(
            f'{self.path.parent} is in use by the trainer of process '
            f'{holder.get("pid")} on {holder.get("host")}, started '
            f'{holder.get("started")}. If no such trainer runs, delete '
            f'{self.path}.')
      logging.warning('Taking over the stale lock %s of process %s on %s '
                      '(started %s), which no longer runs.', self.path,
                      holder.get('pid'), holder.get('host'),
                      holder.get('started'))
      self.path.unlink(missing_ok=True)
    raise WorkdirLockedError(f'Could not take the lock {self.path}: other '
                             'trainers keep taking it.')


def _is_running(pid: Any) -> bool:
  """Whether a process of this host runs (a zombie does not)."""
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    with open(f'/proc/{pid}/stat') as stat:
      # The state follows the parenthesised command name.
      return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except FileNotFoundError:
    return False
  except OSError:
    # No /proc: ask the kernel.
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return False
    except PermissionError:
      return True
    return True



def _read_config_file(workdir: epath.PathLike) -> dict[str, Any]:
  return json.loads((epath.Path(workdir) / CONFIG_FILE).read_text())


def _fixes_checkpoint(key: str) -> bool:
  return any(key == fixed or (fixed.endswith('.') and key.startswith(fixed))
             for fixed in CHECKPOINT_KEYS)


def config_changes(config: ml_collections.ConfigDict,
                   workdir: epath.PathLike) -> dict[str, list[Any]]:
  """How `config` differs from the workdir's saved config; checks a resume.

  Args:
    config: the config of the run about to start.
    workdir: its workdir.

  Returns:
    {dotted key: [saved value, new value]} for every changed key (empty for
    a new workdir).

  Raises:
    configs.ConfigError: when a changed key is one of `CHECKPOINT_KEYS`:
      the workdir's checkpoints could not be restored into the new model.
  """
  if not (epath.Path(workdir) / CONFIG_FILE).exists():
    return {}
  saved = _read_config_file(workdir)
  saved.pop(CONFIG_HISTORY_KEY, None)
  saved = traverse_util.flatten_dict(saved, sep='.')
  new = traverse_util.flatten_dict(json.loads(config.to_json()), sep='.')
  changes = {key: [saved.get(key), new.get(key)]
             for key in sorted(saved.keys() | new.keys())
             if saved.get(key) != new.get(key)}
  refused = [key for key in changes if _fixes_checkpoint(key)]
  if refused:
    differences = '; '.join(f'{key}: {changes[key][0]!r} saved, '
                            f'{changes[key][1]!r} now' for key in refused)
    raise configs.ConfigError(
        f'Cannot resume {workdir} with a changed {", ".join(refused)} '
        f'({differences}): its checkpoints hold another model. Resume with '
        f'the saved values (steps, logging and evaluation settings may '
        f'change), or train into a new --workdir.')
  return changes


def save_config(config: ml_collections.ConfigDict, workdir: epath.PathLike,
                changes: Mapping[str, list[Any]] | None = None) -> None:
  """Writes the run's config beside its checkpoints (process 0).

  Args:
    config: the run's config.
    workdir: its workdir.
    changes: `config_changes` of a resumed run, appended (with the time) to
      the config file's `history` list.
  """
  if not is_writer():
    return
  history = []
  if (epath.Path(workdir) / CONFIG_FILE).exists():
    history = _read_config_file(workdir).get(CONFIG_HISTORY_KEY, [])
  if changes:
    history.append({'time': _now(), 'changed': dict(changes)})
  contents = json.loads(config.to_json())
  if history:
    contents[CONFIG_HISTORY_KEY] = history
  _write_atomically(epath.Path(workdir) / CONFIG_FILE,
                    json.dumps(contents, indent=2))


def load_config(workdir: epath.PathLike) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (without its history)."""
  contents = _read_config_file(workdir)
  contents.pop(CONFIG_HISTORY_KEY, None)
  return ml_collections.ConfigDict(contents)


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
  saved = epath.Path(workdir) / SHAPE_BASIS_FILE
  category = categories.get_category(config.category)
  if saved.exists():
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


def _event_records(data: bytes) -> Iterator[tuple[bytes, event_pb2.Event]]:
  """(record bytes, event) of a TensorBoard event file (TFRecord framing)."""
  offset = 0
  while offset + 12 <= len(data):
    (length,) = struct.unpack('<Q', data[offset:offset + 8])
    end = offset + 12 + length + 4
    if end > len(data):
      return  # Cut short by a kill: the rest is lost anyway.
    yield data[offset:end], event_pb2.Event.FromString(
        data[offset + 12:offset + 12 + length])
    offset = end


def _metric_rows_until(path: epath.Path, last_step: int) -> str:
  """metrics.jsonl's complete rows of steps up to `last_step`."""
  if not path.exists():
    return ''
  return ''.join(line for line in path.read_text().splitlines(keepends=True)
                 if line.endswith('\n')
                 and json.loads(line)['step'] <= last_step)


def _drop_events_after(workdir: epath.Path, last_step: int) -> None:
  """Removes the TensorBoard events of steps after `last_step`."""
  for events in workdir.glob('events.out.tfevents.*'):
    data = events.read_bytes()
    kept = b''.join(record for record, event in _event_records(data)
                    if event.step <= last_step)
    if kept != data:
      events.write_bytes(kept)


class _EpathRecordWriter:
  """tensorboardX's event-file writer interface on an `epath` file."""

  def __init__(self, path: str):
    self._file = epath.Path(path).open('wb')

  def write(self, data: bytes) -> None:
    self._file.write(data)

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class _EpathWriterFactory:
  """Event files on any `epath` file system (gs://, ...)."""

  def open(self, path: str) -> _EpathRecordWriter:
    return _EpathRecordWriter(path)

  def directory_check(self, path: str) -> None:
    epath.Path(path).mkdir(parents=True, exist_ok=True)


for _scheme in ('gs', 's3'):
  tensorboardX.record_writer.register_writer_factory(_scheme,
                                                     _EpathWriterFactory())


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


class MetricWriter:
  """Scalars to TensorBoard and a JSON-lines file (process 0 only).

  A context manager: leaving the `with` block, by any path, closes both.
  """

  def __init__(self, workdir: epath.PathLike, resumed_step: int = 0):
    """Opens the logs; a resumed run first drops what it will log again.

    A trainer stopped after logging steps past its last checkpoint logs them
    again when resumed: without dropping them, metrics.jsonl and TensorBoard
    would show them twice. A row cut short by a kill is dropped too. The
    file is rewritten rather than appended to, as object stores (gs://)
    cannot append.

    Args:
      workdir: the run's workdir.
      resumed_step: the restored checkpoint's step (0 for a new run).
    """
    self._enabled = is_writer()
    if self._enabled:
      workdir = epath.Path(workdir)
      kept = _metric_rows_until(workdir / METRICS_FILE, resumed_step)
      _drop_events_after(workdir, resumed_step)
      # Event files are named by the time in seconds and the host; the
      # suffix keeps a restart within the same second from overwriting one.
      self._summary = tensorboardX.SummaryWriter(
          os.fspath(workdir),
          filename_suffix=f'.{os.getpid()}.{resumed_step}')
      self._lines = (workdir / METRICS_FILE).open('w')
      self._lines.write(kept)
      self._lines.flush()

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


class RunRecord:
  """This start of training in run.json, kept current while it runs.

  run.json holds {'segments': [...]}, one per start: 'steps' [first, last
  reached], 'started' (UTC), 'train_seconds', 'eval_seconds', 'machine',
  'finished' (False while running, and for a start that was killed or
  failed; 'error' names an exception). Every update rewrites the file, so a
  killed start keeps its wall time up to its last log or checkpoint
  (process 0 only).
  """

  def __init__(self, workdir: epath.PathLike, first_step: int):
    self._path = epath.Path(workdir) / RUN_FILE
    self._started = time.time()
    self._segments = []
    if is_writer() and self._path.exists():
      self._segments = json.loads(self._path.read_text())['segments']
    self._segment = {'steps': [first_step, first_step], 'started': _now(),
                     'train_seconds': 0.0, 'eval_seconds': 0.0,
                     'machine': machine.machine_info(), 'finished': False}
    self._segments.append(self._segment)
    self._write()

  def _write(self) -> None:
    if is_writer():
      _write_atomically(self._path,
                        json.dumps({'segments': self._segments}, indent=1))

  def trained(self, step: int) -> None:
    """Training has reached `step`."""
    self._segment['steps'][1] = step
    self._segment['train_seconds'] = time.time() - self._started
    self._write()

  @contextlib.contextmanager
  def evaluating(self) -> Iterator[None]:
    """The final evaluation; its time is the segment's eval_seconds."""
    started = time.time()
    try:
      yield
    finally:
      self._segment['eval_seconds'] = time.time() - started
      self._write()

  def __enter__(self) -> 'RunRecord':
    return self

  def __exit__(self, exc_type, exc_value, traceback) -> None:
    if exc_type is None:
      self._segment['finished'] = True
    else:
      self._segment['error'] = exc_type.__name__
    self._write()


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
  if not (epath.Path(workdir) / CONFIG_FILE).exists():
    raise FileNotFoundError(f'{workdir} is not a training workdir (no '
                            f'{CONFIG_FILE}).')
  config = load_config(workdir)
  multihost.initialize(auto_detect=config.distributed)
  mesh = input_pipeline.data_mesh()
  model = models.from_config(config, shape_basis_lib.load(
      epath.Path(workdir) / SHAPE_BASIS_FILE))
  replicated = jax.sharding.NamedSharding(mesh, jax.P())
  with checkpointing.Checkpointer(checkpoint_dir(workdir),
                                  read_only=True) as checkpointer:
    steps = checkpointer.all_steps()
    if step is not None and step not in steps:
      raise FileNotFoundError(f'No complete checkpoint of step {step} in '
                              f'{workdir}; complete steps: {steps}.')
    if not steps:
      raise FileNotFoundError(f'No complete checkpoint in {workdir}.')
    step, state = checkpointer.restore_newest(
        lambda step: checkpointer.restore_state(step, replicated),
        steps=[step] if step is not None else None)
  return config, model, model_variables(state), mesh, step


def model_variables(state: Mapping[str, Any]) -> dict[str, Any]:
  """`model.apply`'s variables of a restored train state."""
  return {'params': state['params'], **state['model_state']}


def evaluate_workdir(workdir: epath.PathLike, *, split: str | None = None,
                     data_dir: str | None = None,
                     step: int | None = None) -> dict[str, Any]:
  """Evaluates a workdir's checkpoint into `<workdir>/eval/<split>/`.

  Writes metrics.json and the plots (process 0); see `evaluate` for the
  metrics.

  Args:
    workdir: a training workdir.
    split: the split (None = the config's `eval.split`).
    data_dir: the TFDS data dir (None = the config's).
    step: the checkpoint step (None = the newest that restores).

  Returns:
    The metrics.
  """
  config, model, variables, mesh, step = restore_workdir(workdir, step)
  split = split or config.eval.split
  data_dir = data_dir or input_pipeline.resolve_data_dir(config, workdir)
  source = input_pipeline.get_source(config, split, data_dir)
  results, predictions = evaluate.evaluate_variables(
      config, evaluate.make_predict_fn(model, config.eval, mesh),
      variables, source, mesh,
      max_instances=config.eval.max_instances,
      num_gallery=config.eval.num_gallery)
  results['step'] = int(step)
  if is_writer():
    directory = epath.Path(evaluate.metrics_path(workdir, split)).parent
    evaluate.write_metrics(directory, results)
    plots.write_all(directory, results, predictions,
                    categories.get_category(config.category), split=split,
                    alphas=config.eval.alphas,
                    noise_sigmas=config.eval.noise_sigmas)
  return results
