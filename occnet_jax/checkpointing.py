"""Orbax checkpoints of a training run: state, rng and data position.

One checkpoint holds three items: `state` (params, optimizer state, step;
`StandardSave` and restored against an abstract state so arrays land with
their shardings), `rng` (the run's base key as raw key data) and `data` (the
grain iterator position and run metadata, JSON). Together they make a
restart replay exactly the steps an uninterrupted run would have taken.

Orbax writes a step into `<step>.orbax-checkpoint-tmp-*` and renames it when
complete, so a run killed mid-save leaves only a temporary directory. A
writer logs such leftovers when it starts (and lets Orbax clean them up);
restores, and readers (evaluation of a workdir that is still training),
only ever list finalized steps.

A finalized step can still fail to restore (a flipped byte, a truncated
file): `restore_newest` logs which step failed and why and falls back to
the next older step. Nothing is ever deleted; a writer moves the steps that
fail aside (`set_aside`), so that training can save those steps again.

A disk (or quota) that fills up during a save leaves only that step's
temporary directory, and an object store that fails a write after its
client's retries (gcsfs and TensorStore retry 5xx answers and timeouts with
exponential backoff) leaves the object as it was: `storage_errors` turns
either failure, wherever it surfaces (a save, a log, run.json), into one
message naming the workdir (its free space) and the last complete step,
which the same command resumes.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
import contextlib
import errno
import os
import shutil
from typing import Any, TypeVar

from absl import logging
from etils import epath
import jax
import orbax.checkpoint as ocp

from occnet_jax import errors
from occnet_jax import paths

_STATE, _RNG, _DATA = 'state', 'rng', 'data'
# What a full disk or quota looks like in errors that lost their errno
# (TensorStore's, wrapped by Orbax in ValueError).
_FULL_DISK_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
# The packages whose errors are an object store's failure once retried:
# gcsfs (HttpError) and the HTTP and auth clients under it.
_STORE_ERROR_PACKAGES = ('gcsfs', 'aiohttp', 'requests', 'google.auth',
                         'google.api_core')
# TensorStore's status codes of a store that stopped answering.
_STORE_ERROR_TEXTS = ('UNAVAILABLE:', 'DEADLINE_EXCEEDED:')
_Restored = TypeVar('_Restored')


class CheckpointError(errors.UserError):
  """No checkpoint could be restored; the message names each and why."""


def _first_line(error: Exception) -> str:
  """The error's type and first line, without TensorStore's long spec."""
  lines = str(error).strip().splitlines()
  line = lines[0].split(' [tensorstore_spec=')[0] if lines else ''
  return f'{type(error).__name__}: {line}'



class DiskFullError(errors.UserError):
  """The workdir's disk or quota filled up; the message says what to do."""


class StoreError(errors.UserError):
  """The workdir's object store failed a write after its retries."""


def _causes(error: BaseException | None) -> Iterator[BaseException]:
  """An error and those it was raised from or during."""
  while error is not None:
    yield error
    error = error.__cause__ or error.__context__


def _is_full_disk(error: BaseException) -> bool:
  """Whether an error, or one it was raised from, is a full disk/quota."""
  return any(
      (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC,
                                                      errno.EDQUOT))
      or any(text in str(cause) for text in _FULL_DISK_TEXTS)
      for cause in _causes(error))


def _store_failure(error: BaseException) -> BaseException | None:
  """The object store's error among an error's causes, if any."""
  for cause in _causes(error):
    if (type(cause).__module__.startswith(_STORE_ERROR_PACKAGES)
        or any(text in str(cause) for text in _STORE_ERROR_TEXTS)):
      return cause
  return None


def _free_space(directory: epath.Path) -> str:
  try:
    return f'{shutil.disk_usage(directory).free / 2**20:.1f} MiB free'
  except OSError:
    return 'free space unknown'


def last_complete(directory: epath.PathLike) -> str:
  """'The last complete checkpoint is step N of <directory>' (a sentence).

  Finalized step directories only: Orbax names a step being written
  `<step>.orbax-checkpoint-tmp-*`.
  """
  try:
    steps = [int(path.name) for path in epath.Path(directory).glob('*')
             if path.name.isdigit()]
  # The store that failed may not list either (gs://).
  except Exception as error:  # pylint: disable=broad-except
    return f'{directory} cannot be listed ({_first_line(error)})'
  if not steps:
    return f'No checkpoint of {directory} is complete yet'
  return f'The last complete checkpoint is step {max(steps)} of {directory}'


@contextlib.contextmanager
def storage_errors(workdir: epath.PathLike,
                   checkpoints: epath.PathLike) -> Iterator[None]:
  """Turns a full disk or a failing object store in the block into errors.

  Args:
    workdir: the training workdir.
    checkpoints: its checkpoint directory.

  Yields:
    Nothing; the block runs as is.

  Raises:
    DiskFullError: naming the workdir, its free space and its last
      complete checkpoint, when the block fails for lack of space.
    StoreError: naming the workdir, the store's error and the last
      complete checkpoint, when a remote workdir's store fails a request
      after its retries.
  """
  try:
    yield
  except Exception as error:  # pylint: disable=broad-except
    workdir = paths.absolute(workdir)
    resume = (f'{last_complete(checkpoints)}; the step being written was '
              'dropped.')
    if _is_full_disk(error):
      raise DiskFullError(
          f'No space left for {workdir} ({_free_space(workdir)}): {resume} '
          'Free space (or raise the quota), then rerun the same command to '
          'resume.') from None
    failure = _store_failure(error) if paths.is_remote(workdir) else None
    if failure is None:
      raise
    raise StoreError(
        f'The object store of {workdir} failed after its retries '
        f'({_first_line(failure)}): {resume} Rerun the same command to '
        'resume once the store answers.') from None


def incomplete_checkpoints(directory: epath.PathLike) -> list[str]:
  """Paths of checkpoints that were being written when their run stopped."""
  return sorted(str(path.get()) for path in
                ocp.path.step.all_temporary_paths(directory))


class Checkpointer:
  """Saves and restores training checkpoints in `<workdir>/checkpoints`.

  A context manager: leaving the `with` block, by any path, finishes
  pending saves and releases the manager.
  """

  def __init__(self, directory: epath.PathLike, *, max_to_keep: int = 2,
               read_only: bool = False):
    """Opens (and for a writer, creates) the checkpoint directory.

    Args:
      directory: where the numbered step directories live.
      max_to_keep: how many finalized checkpoints a writer keeps.
      read_only: open for restoring only (evaluation while training runs).
    """
    directory = paths.absolute(directory)
    self.directory = directory
    if not read_only:
      for path in incomplete_checkpoints(directory):
        logging.warning('Ignoring incomplete checkpoint %s (the run was '
                        'stopped while writing it).',
                        path)
    self._manager = ocp.CheckpointManager(
        directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only),
        item_handlers={_STATE: ocp.StandardCheckpointHandler(),
                       _RNG: ocp.StandardCheckpointHandler(),
                       _DATA: ocp.JsonCheckpointHandler()})

  def __enter__(self) -> 'Checkpointer':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def latest_step(self) -> int | None:
    """The newest finalized step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Every finalized step, oldest first."""
    return sorted(self._manager.all_steps())

  def reload(self) -> None:
    """Lists the steps again (a reader beside a running writer)."""
    self._manager.reload()

  def restore_newest(self, restore: Callable[[int], _Restored], *,
                     steps: Sequence[int] | None = None,
                     ) -> tuple[int, _Restored]:
    """The newest step that restores, falling back past those that fail.

    Args:
      restore: step -> restored items (`restore`, `restore_state`).
      steps: the steps to try (None = every finalized step).

    Returns:
      (step, restore(step)).

    Raises:
      CheckpointError: when none restores (naming each step and its error).
    """
    failures = []
    for step in sorted(self.all_steps() if steps is None else steps,
                       reverse=True):
      try:
        restored = restore(step)
      # Orbax and TensorStore raise many types for unreadable data (DATA_LOSS
      # as ValueError, truncated files as OSError, bad metadata as KeyError,
      # ...); the message is logged and kept.
      except Exception as error:  # pylint: disable=broad-except
        failures.append((step, _first_line(error)))
        logging.error('The checkpoint of step %d in %s does not restore: '
                      '%s', step, self.directory, failures[-1][1])
        continue
      if failures:
        logging.warning('Fell back to the checkpoint of step %d: newer steps '
                        '%s do not restore.', step, [s for s, _ in failures])
      return step, restored
    raise CheckpointError(
        f'No checkpoint in {self.directory} restores: ' + '; '.join(
            f'step {step}: {error}' for step, error in failures) +
        '. Move the damaged step directories away to start afresh.')

  def set_aside(self, steps: Sequence[int],
                destination: epath.PathLike) -> None:
    """Moves finalized steps (that fail to restore) into `destination`.

    The steps are kept, not deleted, and leave the manager's view, so
    training can save them again.
    """
    destination = paths.absolute(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for step in steps:
      target = destination / str(step)
      suffix = 0
      while target.exists():
        suffix += 1
        target = destination / f'{step}.{suffix}'
      (self.directory / str(step)).rename(target)
      logging.warning('Moved the checkpoint of step %d, which does not '
                      'restore, to %s.', step, target)
    self.reload()

  def save(self, step: int, state: Any, rng: jax.Array,
           data: Mapping[str, Any]) -> None:
    """Starts an asynchronous save of a step (returns before it is written).

    Args:
      step: the number of completed training steps.
      state: the train state pytree.
      rng: the run's base PRNG key (typed key).
      data: JSON-able data iterator position and metadata.
    """
    self._manager.save(step, args=ocp.args.Composite(**{
        _STATE: ocp.args.StandardSave(state),
        _RNG: ocp.args.StandardSave({'key_data': jax.random.key_data(rng)}),
        _DATA: ocp.args.JsonSave(dict(data)),
    }))

  def restore(self, step: int, abstract_state: Any,
              ) -> tuple[Any, jax.Array, dict[str, Any]]:
    """Restores a finalized step.

    Args:
      step: a finalized step (`latest_step()`).
      abstract_state: the state's structure as `jax.ShapeDtypeStruct`s with
        shardings, e.g. from `jax.eval_shape`.

    Returns:
      (state, rng, data) as saved.
    """
    restored = self._manager.restore(step, args=ocp.args.Composite(**{
        _STATE: ocp.args.StandardRestore(abstract_state),
        _RNG: ocp.args.StandardRestore(),
        _DATA: ocp.args.JsonRestore(),
    }))
    rng = jax.random.wrap_key_data(restored[_RNG]['key_data'])
    return restored[_STATE], rng, restored[_DATA]

  def restore_state(self, step: int, sharding: jax.sharding.Sharding) -> Any:
    """Restores only the train state of a finalized step (evaluation).

    The state's structure comes from the checkpoint's own metadata, so a
    reader needs no optimizer to restore it.

    Args:
      step: a finalized step.
      sharding: where every array goes (e.g. replicated on a mesh).

    Returns:
      The state as a tree of dicts (the train state's fields as keys).
    """
    metadata = self._manager.item_metadata(step)[_STATE].tree
    abstract = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                          sharding=sharding), metadata)
    restored = self._manager.restore(step, args=ocp.args.Composite(**{
        _STATE: ocp.args.StandardRestore(abstract)}))
    return restored[_STATE]

  def wait_until_finished(self) -> None:
    """Blocks until every started save is written and finalized."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Finishes pending saves and releases the manager."""
    self._manager.close()
