r"""Every run behind RESULTS.md, then the report of their workdirs.

    python -m launch.reproduce [--workdirs=workdirs] [--skip_committed] [--jobs=2]

The runs and studies are the table of reproduction/runs.py, whose
docstring says what they cost; rerunning skips what is finished
(reproduction/reproduce.py says what is rerun).
"""

import subprocess

from absl import app
from absl import flags

from occnet_jax import cli
from occnet_jax import errors
from reproduction import reproduce
from reproduction import run_inputs

_WORKDIRS = flags.DEFINE_string('workdirs', 'workdirs',
                                'Where the runs\' workdirs and data go.')
cli.directory_path(_WORKDIRS)
_SKIP_COMMITTED = flags.DEFINE_bool(
    'skip_committed', False,
    'Leave out the runs and studies whose copies docs/results/ already '
    'holds (the report reads them there), to add only what is missing; '
    'a study that reads a run left out is left out too.')
_JOBS = flags.DEFINE_integer(
    'jobs', 1, 'How many training runs share the machine at once (2 gets '
    'about 1.5x the steps of 1 on a 2-core CPU); everything else runs '
    'alone.', lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    reproduce.reproduce(
        _WORKDIRS.value,
        run_inputs.COMMITTED if _SKIP_COMMITTED.value else None,
        jobs=_JOBS.value)
  except subprocess.CalledProcessError as error:
    raise errors.UserError(
        f'`{" ".join(error.cmd[1:])}` failed (exit status '
        f'{error.returncode}); rerun to continue there.') from None


if __name__ == '__main__':
  cli.run(main)
