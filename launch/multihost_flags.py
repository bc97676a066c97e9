"""`jax.distributed.initialize`'s arguments as flags of train and evaluate.

Give all three to start a run of several processes that JAX cannot detect
by itself (e.g. several local CPU processes, or GPU hosts without Slurm):

    python -m launch.train ... --coordinator_address=10.0.0.1:1234 \
        --num_processes=2 --process_id=0
"""

from absl import flags

from occnet_jax import multihost

COORDINATOR_ADDRESS = flags.DEFINE_string(
    'coordinator_address', None,
    "'host:port' of process 0's coordination service (jax.distributed).")
NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, 'Number of processes of the run (jax.distributed).')
PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, "This process's index, 0 to num_processes - 1 "
    '(jax.distributed).')
LOST_PROCESS_SECONDS = flags.DEFINE_integer(
    'lost_process_seconds', multihost.LOST_PROCESS_SECONDS,
    'After how many seconds without news of a process the others stop, '
    'naming it and the last complete checkpoint.', lower_bound=1)


def initialize(auto_detect: bool = False) -> None:
  """Connects the processes of the run with the flags' arguments, if given.

  Args:
    auto_detect: without the flags, let JAX detect the processes (a config's
      `distributed`).
  """
  multihost.initialize(auto_detect=auto_detect,
                       coordinator_address=COORDINATOR_ADDRESS.value,
                       num_processes=NUM_PROCESSES.value,
                       process_id=PROCESS_ID.value,
                       lost_process_seconds=LOST_PROCESS_SECONDS.value)
