"""Runs the table of `runs.py`: every run and study behind RESULTS.md.

Each run trains with `launch.train` into `<workdirs>/<name>`, after the
preparations it needs; then the studies run and `launch.report` rewrites
RESULTS.md. Rerunning is resumable: `launch.train` continues a run from its
last checkpoint (a finished one only evaluates again), preparations whose
output exists are skipped and datasets already built are read; the studies
and the benchmark are rerun, since they read what the runs left. With
`committed`, what `launch.report` already copied to docs/results/ is not
rerun at all: a session can add the runs an earlier one had no time for.
"""

from collections.abc import Iterator
import datetime
import os
import subprocess
import sys

from reproduction import report
from reproduction import runs


def commands(workdirs: str, committed: str | None = None
             ) -> Iterator[tuple[str, list[str], str]]:
  """(name, `python -m` arguments, done path or '') in the order they run.

  A preparation comes before the first run that needs it, once.

  Args:
    workdirs: the workdirs tree.
    committed: where `launch.report` keeps its copies (docs/results/), or
      None. Then a run or study already copied there is left out, since the
      report reads it there, and so is a preparation no remaining run needs.
  """
  copies = report.study_files(workdirs, committed or '')

  def is_committed(name: str, copy: str) -> bool:
    if committed and os.path.exists(copy):
      print(f'=== {name}: committed ({copy})', flush=True)
      return True
    return False

  prepared = set()
  for run in runs.RUNS:
    if is_committed(run.name, os.path.join(committed or '', run.name,
                                           report.METRICS_FILE)):
      continue
    for need in run.needs:
      if need not in prepared:
        prepared.add(need)
        step = runs.PREPARATIONS[need]
        yield (step.name, [step.module, *runs.step_flags(step, workdirs)],
               step.done.format(workdirs=workdirs))
    yield run.name, ['launch.train', *runs.train_flags(run, workdirs)], ''
  for step in runs.STUDIES:
    if step.name in copies and is_committed(step.name, copies[step.name][1]):
      continue
    yield (step.name, [step.module, *runs.step_flags(step, workdirs)],
           step.done.format(workdirs=workdirs))
  yield 'report', ['launch.report', f'--workdirs={workdirs}'], ''


def reproduce(workdirs: str, committed: str | None = None) -> None:
  """Runs every command of `commands` whose output is not there yet.

  Raises:
    subprocess.CalledProcessError: for the first command that fails; what
      ran before it is kept, so rerunning continues there.
  """
  for name, arguments, done in commands(workdirs, committed):
    if done and os.path.exists(done):
      print(f'=== {name}: done ({done})', flush=True)
      continue
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f'=== {name} ({now:%H:%M:%S})', flush=True)
    subprocess.run([sys.executable, '-m', *arguments], check=True)
