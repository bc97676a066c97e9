"""Runs of several JAX processes: start-up, barriers and preemption notices.

A multi-host run starts the same program once per host (or per GPU).
`initialize` connects the processes through `jax.distributed`; `barrier`
makes them wait for one another (e.g. while process 0 builds the dataset);
`PreemptionNotice` turns the scheduler's SIGTERM into one training step at
which every process saves a checkpoint. With a single process, all three
work without `jax.distributed`.

A lost process (killed, out of memory, its host gone) cannot be recovered:
JAX's coordination service notices that it stopped sending heartbeats and
aborts every survivor (SIGABRT, C++ and gRPC traces; only a Python callback
could replace that, and jaxlib 0.10's `missed_heartbeat_callback` cannot call
one: its status argument fails to convert, std::bad_cast). So `initialize`
also starts a `LostProcessWatch`: every process publishes a counter in the
coordination service's key-value store each second and stops, with one log
line naming the lost process, what `describe_progress` says (the last
complete checkpoint) and the command that resumes, when a peer's counter
stands still for `lost_process_seconds`, before the service's own timeout
(twice as long) aborts it. Process 0 runs the service: when it is lost, the
others abort within a second, before any Python code runs; the command that
resumes is logged at start for that case.
"""

from collections.abc import Callable
import atexit
import itertools
import logging as python_logging
import os
import shlex
import signal
import sys
import threading
import time
import types

from absl import logging
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

# Preparing a dataset on process 0 can take hours (CarFusion's PnP per view);
# the others wait that long at its barrier.
BARRIER_TIMEOUT_SECONDS = 24 * 3600
# How long a process may stay silent before the others stop.
LOST_PROCESS_SECONDS = 60
# The exit status of survivors that stop because a process was lost.
LOST_PROCESS_STATUS = 3
_barrier_count = itertools.count()


def initialize(*, auto_detect: bool, coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               lost_process_seconds: int = LOST_PROCESS_SECONDS) -> None:
  """Connects this process to the others of its run, once.

  Calls `jax.distributed.initialize` with the given arguments when any is
  given, or with none when `auto_detect` is set, so that JAX finds them
  itself (Cloud TPU, Slurm, Open MPI). Does nothing for a single-process run
  or when JAX is already connected.

  Args:
    auto_detect: `config.distributed`.
    coordinator_address: 'host:port' of process 0's coordination service.
    num_processes: how many processes the run has.
    process_id: this process's index, 0 to num_processes - 1.
    lost_process_seconds: after how long without news of a process the
      others stop (`LostProcessWatch`); JAX's own heartbeat timeout (which
      aborts them) and its shutdown barrier's are twice as long.
  """
  explicit = (coordinator_address, num_processes, process_id)
  if jax.distributed.is_initialized() or not (
      auto_detect or any(value is not None for value in explicit)):
    return
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id,
                             heartbeat_timeout_seconds=2 * lost_process_seconds,
                             shutdown_timeout_seconds=2 * lost_process_seconds)
  if jax.process_count() > 1:
    LostProcessWatch(lost_process_seconds).start()
    # Said now: when process 0 is lost, JAX aborts the others at once.
    logging.info('Process %d of %d. If a process of this run is lost, rerun '
                 'on every process (each with its --process_id): %s',
                 jax.process_index(), jax.process_count(), resume_command())


def resume_command() -> str:
  """The command line of this process, which resumes the run."""
  return shlex.join(sys.orig_argv)


# What the lost-process message says about the run's progress.
_progress: list[Callable[[], str]] = []


def describe_progress(describe: Callable[[], str]) -> None:
  """Sets what a lost-process message says of the run (its checkpoint).

  Args:
    describe: called (from another thread) when a process is lost, e.g.
      'The last complete checkpoint is step 400 of ...'.
  """
  _progress[:] = [describe]


class LostProcessWatch(threading.Thread):
  """Stops this process, with one log line, when another one is lost.

  Every `interval` seconds the thread increments this process's counter in
  the coordination service's key-value store and reads the others'. A
  counter that has not moved for `lost_seconds` (or a store that no longer
  answers: process 0, which runs it, is gone) means a lost process: the
  thread logs which, the progress (`describe_progress`) and the command
  that resumes, and exits the process with `LOST_PROCESS_STATUS`.

  A process that ends (normally, or with the error of a collective whose
  peer died: Gloo's 'Connection reset by peer') marks itself done and, at
  exit, before JAX's shutdown barrier, goes on watching until every other
  process is done too, or lost.
  """

  def __init__(self, lost_seconds: float, interval: float = 1.0):
    super().__init__(name='lost_process_watch', daemon=True)
    self._lost_seconds = lost_seconds
    self._interval = min(interval, lost_seconds / 4)
    self._client = ocp.multihost.get_jax_distributed_client()
    self._index = jax.process_index()
    self._count = jax.process_count()
    self._stopped = threading.Event()
    # Each other process: (its last counter or 'done', when it last moved).
    self._seen = {index: (None, time.monotonic())
                  for index in range(self._count) if index != self._index}
    atexit.register(self._at_exit)

  @staticmethod
  def _key(kind: str, index: int) -> str:
    return f'occnet_jax/{kind}/{index}'

  def _peer_state(self, index: int) -> str | None:
    """A peer's counter, 'done', or None before its first publication."""
    for kind in ('done', 'alive'):
      try:
        value = self._client.key_value_try_get(self._key(kind, index))
      except Exception as error:  # pylint: disable=broad-except
        if 'NOT_FOUND' in str(error) or 'not found' in str(error).lower():
          continue
        raise
      return 'done' if kind == 'done' else value
    return None

  def _check(self, beat: int | None) -> None:
    """Publishes `beat` (None: done), reads the others, stops on a loss."""
    try:
      if beat is None:
        self._client.key_value_set(self._key('done', self._index), '1',
                                   allow_overwrite=True)
      else:
        self._client.key_value_set(self._key('alive', self._index),
                                   str(beat), allow_overwrite=True)
      states = {index: self._peer_state(index) for index in self._seen}
    except Exception as error:  # pylint: disable=broad-except
      self._lost(0, f'its coordination service stopped answering '
                 f'({str(error).splitlines()[0][:120]})')
    now = time.monotonic()
    for index, state in states.items():
      if state != self._seen[index][0]:
        self._seen[index] = (state, now)
      elif state != 'done' and now - self._seen[index][1] > self._lost_seconds:
        self._lost(index, f'it has given no sign of life for '
                   f'{now - self._seen[index][1]:.0f} s')

  def run(self) -> None:
    for beat in itertools.count():
      if self._stopped.wait(self._interval):
        return
      self._check(beat)

  def _at_exit(self) -> None:
    """Waits, before JAX shuts down, until every process is done or lost."""
    self._stopped.set()
    self.join()
    while True:
      self._check(None)
      if all(state == 'done' for state, _ in self._seen.values()):
        return
      time.sleep(self._interval)

  def _lost(self, index: int, why: str) -> None:
    progress = ''
    if _progress:
      try:
        progress = f' {_progress[0]()}.'
      except Exception as error:  # pylint: disable=broad-except
        progress = f' (Its progress is unknown: {error}.)'
    message = (
        f'Process {index} of {self._count} was lost ({why}): process '
        f'{self._index} stops too.{progress} Resume by running the same '
        f'command again on every process (each with its --process_id): '
        f'{resume_command()}')
    logging.error(message)
    # absl's handler flushes each record; stderr itself is unbuffered.
    for handler in python_logging.getLogger().handlers:
      handler.flush()
    os._exit(LOST_PROCESS_STATUS)


def barrier(name: str) -> None:
  """Blocks until every process of the run has called it (same order).

  A barrier of the coordination service, not a device collective, so that
  waiting hours for process 0 times out only after
  `BARRIER_TIMEOUT_SECONDS`.

  Args:
    name: what the processes wait for, for error messages.
  """
  barrier_sync = ocp.multihost.get_barrier_sync_fn()
  barrier_sync(key=f'occnet_jax:{name}:{next(_barrier_count)}',
               timeout_ms=BARRIER_TIMEOUT_SECONDS * 1000)


class PreemptionNotice:
  """SIGTERM, the scheduler's preemption notice, as a step to save at.

  With `jax.distributed`, JAX's preemption service catches SIGTERM on any
  process and agrees with the others on the next step that all of them
  reach (`multihost_utils.reached_preemption_sync_point`); alone, a SIGTERM
  handler installed for the duration of the `with` block (main thread only)
  marks the next step. `reached(step)` must be called after every step, by
  every process.
  """

  def __init__(self):
    self._received = False
    self._previous_handler = None

  def __enter__(self) -> 'PreemptionNotice':
    if not jax.distributed.is_initialized():
      self._previous_handler = signal.signal(signal.SIGTERM, self._notice)
    return self

  def __exit__(self, *exception) -> None:
    if self._previous_handler is not None:
      signal.signal(signal.SIGTERM, self._previous_handler)
      self._previous_handler = None

  def _notice(self, signum: int, frame: types.FrameType | None) -> None:
    del signum, frame
    self._received = True

  def reached(self, step: int) -> bool:
    """Whether every process should save at `step` and stop."""
    if jax.distributed.is_initialized():
      return multihost_utils.reached_preemption_sync_point(step)
    return self._received
