"""One trainer per workdir: the lock file `<workdir>/lock.json`."""

import json
import os
import socket
import time
from typing import Any

from absl import logging
from etils import epath

from occnet_jax import errors
from occnet_jax import paths
from occnet_jax import workdir as workdir_lib

LOCK_FILE = 'lock.json'


class WorkdirLockedError(errors.UserError):
  """Another trainer owns the workdir; the message says which."""


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
                   'started': workdir_lib.now()}

  def __enter__(self) -> 'WorkdirLock':
    if workdir_lib.is_writer():
      self._acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    if workdir_lib.is_writer() and self._holder() == self._owner:
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
