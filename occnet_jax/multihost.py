"""Runs of several JAX processes: start-up, barriers and preemption notices.

A multi-host run starts the same program once per host (or per GPU).
`initialize` connects the processes through `jax.distributed`; `barrier`
makes them wait for one another (e.g. while process 0 builds the dataset);
`PreemptionNotice` turns the scheduler's SIGTERM into one training step at
which every process saves a checkpoint. With a single process, all three
work without `jax.distributed`.
"""

import itertools
import signal
import types

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

# Preparing a dataset on process 0 can take hours (CarFusion's PnP per view);
# the others wait that long at its barrier.
BARRIER_TIMEOUT_SECONDS = 24 * 3600
_barrier_count = itertools.count()


def initialize(*, auto_detect: bool, coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None) -> None:
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
  """
  explicit = (coordinator_address, num_processes, process_id)
  if jax.distributed.is_initialized() or not (
      auto_detect or any(value is not None for value in explicit)):
    return
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)


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
