r"""Regenerates every table and figure of RESULTS.md from the workdirs.

    python -m launch.report [--workdirs=workdirs] [--results=RESULTS.md] \
        [--figures=docs/results] [--blocks=speed,targets]

Rewrites only what lies between RESULTS.md's `<!-- report:NAME -->` and
`<!-- /report:NAME -->` markers, copies the figures and metrics into
--figures, and prints the blocks that changed. Runs, label studies or the
benchmark that are missing are logged and reported as "not run". See
reproduction/report.py for the inputs and tables.
"""

from absl import app
from absl import flags

from occnet_jax import cli
from reproduction import report
from reproduction import run_inputs

_WORKDIRS = flags.DEFINE_string(
    'workdirs', 'workdirs', 'The runs of launch.reproduce.')
_RESULTS = flags.DEFINE_string(
    'results', 'RESULTS.md', 'The markdown file whose blocks are rewritten.')
_FIGURES = flags.DEFINE_string(
    'figures', run_inputs.COMMITTED,
    'Where figures, metrics.json files and bench.json are copied.')
_BLOCKS = flags.DEFINE_list(
    'blocks', [],
    'Rewrite only these blocks (e.g. `speed` after a benchmark on a machine '
    'without the runs); default: every block.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    updated = report.write_report(_WORKDIRS.value, _RESULTS.value,
                                  _FIGURES.value, _BLOCKS.value)
  except ValueError as error:
    raise app.UsageError(f'{_RESULTS.value}: {error}') from None
  print(f'Updated blocks of {_RESULTS.value}: '
        f'{", ".join(updated) if updated else "none (already current)"}.')


if __name__ == '__main__':
  cli.run(main)
