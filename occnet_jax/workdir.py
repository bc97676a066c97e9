"""The files of a training workdir.

A workdir holds `config.json` (the run's config and its history),
`shape_basis.npz` (the basis the model was built with), `checkpoints/`
(Orbax, `checkpointing`), `metrics.jsonl` + TensorBoard events
(`MetricWriter`), `run.json` (one entry per start of training: `RunRecord`),
`lock.json` (`workdir_lock`) and `eval/<split>/` (`evaluation.outputs`).
Training writes them through this module; `workdir_model` reads the model
back.

Only process 0 writes the workdir's files; every process takes part in
checkpoint saves and restores.
"""

import contextlib
from collections.abc import Iterator, Mapping
import datetime
import json
import os
import time
from typing import Any

from etils import epath
from flax import traverse_util
import jax
import ml_collections
import tensorboardX

from occnet_jax import configs
from occnet_jax import machine
from occnet_jax import tensorboard_events

CONFIG_FILE = 'config.json'
# config.json's list of the changes resumed runs made to the config.
CONFIG_HISTORY_KEY = 'history'
SHAPE_BASIS_FILE = 'shape_basis.npz'
METRICS_FILE = 'metrics.jsonl'
# One entry per start of training: its steps, wall time and machine.
RUN_FILE = 'run.json'
CHECKPOINT_DIR = 'checkpoints'
# Where training moves checkpoints that fail to restore (never deleted).
UNRESTORABLE_DIR = 'unrestorable_checkpoints'
# Config keys (or key prefixes, ending in '.') that fix the structure or the
# shapes of a checkpoint's arrays: a resumed run may not change them.
CHECKPOINT_KEYS = ('category', 'model.', 'data.num_views', 'data.crop_size',
                   'shape_basis.', 'optimizer.name')


def is_writer() -> bool:
  """Whether this process writes the workdir's files (process 0)."""
  return jax.process_index() == 0


def now() -> str:
  """The UTC time, to the second, as the workdir's files record it."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec='seconds')


def _write_atomically(path: epath.Path, text: str) -> None:
  """Writes a whole file so that a kill never leaves it half written."""
  partial = path.parent / f'.{path.name}.partial'
  partial.write_text(text)
  partial.replace(path)


def checkpoint_dir(workdir: epath.PathLike) -> epath.Path:
  return epath.Path(workdir) / CHECKPOINT_DIR


def _read_config_file(workdir: epath.PathLike) -> dict[str, Any]:
  return configs.with_current_keys(
      json.loads((epath.Path(workdir) / CONFIG_FILE).read_text()))


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
    history.append({'time': now(), 'changed': dict(changes)})
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


def _metric_rows_until(path: epath.Path, last_step: int) -> str:
  """metrics.jsonl's complete rows of steps up to `last_step`."""
  if not path.exists():
    return ''
  return ''.join(line for line in path.read_text().splitlines(keepends=True)
                 if line.endswith('\n')
                 and json.loads(line)['step'] <= last_step)


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
      tensorboard_events.drop_events_after(workdir, resumed_step)
      tensorboard_events.register_file_systems()
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
      try:
        self._summary.close()
      finally:  # Even when the disk is full: the file is closed.
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
    self._segment = {'steps': [first_step, first_step], 'started': now(),
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
