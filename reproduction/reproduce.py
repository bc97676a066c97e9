"""Runs the table of `runs.py`: every run and study behind RESULTS.md.

Each run trains with `launch.train` into `<workdirs>/<name>`, after the
preparations it needs; then the studies run and `launch.report` rewrites
RESULTS.md. Rerunning is resumable: `launch.train` continues a run from its
last checkpoint (a finished one only evaluates again), preparations whose
output exists are skipped and datasets already built are read; the studies
and the benchmark are rerun, since they read what the runs left.
"""

from collections.abc import Iterator
import datetime
import os
import subprocess
import sys

from reproduction import runs


def commands(workdirs: str) -> Iterator[tuple[str, list[str], str]]:
  """(name, `python -m` arguments, done path or '') in the order they run.

  A preparation comes before the first run that needs it, once.
  """
  prepared = set()
  for run in runs.RUNS:
    for need in run.needs:
      if need not in prepared:
        prepared.add(need)
        step = runs.PREPARATIONS[need]
        yield (step.name, [step.module, *runs.step_flags(step, workdirs)],
               step.done.format(workdirs=workdirs))
    yield run.name, ['launch.train', *runs.train_flags(run, workdirs)], ''
  for step in runs.STUDIES:
    yield (step.name, [step.module, *runs.step_flags(step, workdirs)],
           step.done.format(workdirs=workdirs))
  yield 'report', ['launch.report', f'--workdirs={workdirs}'], ''


def reproduce(workdirs: str) -> None:
  """Runs every command of `commands` whose output is not there yet.

  Raises:
    subprocess.CalledProcessError: for the first command that fails; what
      ran before it is kept, so rerunning continues there.
  """
  for name, arguments, done in commands(workdirs):
    if done and os.path.exists(done):
      print(f'=== {name}: done ({done})', flush=True)
      continue
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f'=== {name} ({now:%H:%M:%S})', flush=True)
    subprocess.run([sys.executable, '-m', *arguments], check=True)
