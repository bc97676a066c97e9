"""Runs the table of `runs.py`: every run and study behind RESULTS.md.

Each run trains with `launch.train` into `<workdirs>/<name>`, after what it
needs (a preparation, the dataset it reads); then the studies run and
`launch.report` rewrites RESULTS.md. Rerunning is resumable: `launch.train`
continues a run from its last checkpoint (a finished one only evaluates
again), preparations and datasets whose output exists are skipped; the
studies and the benchmark are rerun, since they read what the runs left.
With `committed`, what `launch.report` already copied to docs/results/ is
not rerun at all: a session can add the runs an earlier one had no time
for.
"""

from collections.abc import Iterator
import datetime
import os
import subprocess
import sys
import time
from typing import IO

from occnet_jax.evaluation import outputs
from reproduction import run_inputs
from reproduction import runs

# How often a full set of side-by-side runs is checked for one that ended.
POLL_SECONDS = 5.0
TRAIN_MODULE = 'launch.train'


def commands(workdirs: str, committed: str | None = None
             ) -> Iterator[tuple[str, list[str], str]]:
  """(name, `python -m` arguments, done path or '') in the order they run.

  What a run or study needs comes before the first one that needs it,
  once, each after what it needs in turn.

  Args:
    workdirs: the workdirs tree.
    committed: where `launch.report` keeps its copies (docs/results/), or
      None. Then a run or study already copied there is left out, since the
      report reads it there, and so is what only those need, and a study
      that reads a run left out (`runs.Step.reads`).
  """
  copies = run_inputs.study_files(workdirs, committed or '')

  def is_committed(name: str, copy: str) -> bool:
    if committed and os.path.exists(copy):
      print(f'=== {name}: committed ({copy})', flush=True)
      return True
    return False

  made, left_out = set(), set()

  def make(needs: tuple[str, ...]) -> Iterator[tuple[str, list[str], str]]:
    for need in needs:
      if need not in made:
        made.add(need)
        step = runs.step_named(need)
        yield from make(step.needs)
        yield (step.name, [step.module, *runs.step_flags(step, workdirs)],
               step.done.format(workdirs=workdirs))

  for run in runs.RUNS:
    if is_committed(run.name, os.path.join(committed or '', run.name,
                                           outputs.METRICS_FILE)):
      left_out.add(run.name)
      continue
    yield from make(runs.run_needs(run))
    yield run.name, [TRAIN_MODULE, *runs.train_flags(run, workdirs)], ''
  for step in runs.STUDIES:
    if step.name in copies and is_committed(step.name, copies[step.name][1]):
      continue
    # A run left out is not trained here: no checkpoint to read.
    if set(step.reads) & left_out:
      print(f'=== {step.name}: left out, it reads committed runs '
            f'{sorted(set(step.reads) & left_out)}', flush=True)
      continue
    yield from make(step.needs)
    yield (step.name, [step.module, *runs.step_flags(step, workdirs)],
           step.done.format(workdirs=workdirs))
  yield 'report', ['launch.report', f'--workdirs={workdirs}'], ''


def log_path(workdirs: str, name: str) -> str:
  """Where a run side by side with others writes its output."""
  return os.path.join(workdirs, 'logs', f'{name.replace("/", "_")}.txt')


def reproduce(workdirs: str, committed: str | None = None,
              jobs: int = 1) -> None:
  """Runs every command of `commands` whose output is not there yet.

  Up to `jobs` training runs share the machine: on 2 cores two get through
  about half again as many steps as one, since XLA keeps the cores only
  partly busy with one small model. Every other command runs alone, so a
  dataset is built once before the runs that read it, and the studies and
  the benchmark find the runs finished and the machine quiet. With
  `jobs` > 1 each run's output goes to `log_path`.

  Raises:
    subprocess.CalledProcessError: for the first command that fails, once
      the runs beside it have ended; no command starts after a failure.
      What ran is kept, so rerunning continues there.
  """
  running: dict[str, tuple[subprocess.Popen, IO[str] | None]] = {}
  failures = []

  def wait_until(most: int) -> None:
    while len(running) > most:
      ended = [name for name, (process, _) in running.items()
               if process.poll() is not None]
      if not ended:
        time.sleep(POLL_SECONDS)
      for name in ended:
        process, log = running.pop(name)
        if log:
          log.close()
        if process.returncode:
          failures.append(subprocess.CalledProcessError(process.returncode,
                                                        process.args))
        print(f'=== {name}: ended ({_now()}, exit status '
              f'{process.returncode})', flush=True)

  for name, arguments, done in commands(workdirs, committed):
    if done and os.path.exists(done):
      print(f'=== {name}: done ({done})', flush=True)
      continue
    side_by_side = jobs > 1 and arguments[0] == TRAIN_MODULE
    wait_until(jobs - 1 if side_by_side else 0)
    if failures:
      break
    log = None
    if side_by_side:
      os.makedirs(os.path.dirname(log_path(workdirs, name)), exist_ok=True)
      log = open(log_path(workdirs, name), 'w')
      print(f'=== {name} ({_now()}, output in {log.name})', flush=True)
    else:
      print(f'=== {name} ({_now()})', flush=True)
    running[name] = (subprocess.Popen([sys.executable, '-m', *arguments],
                                      stdout=log, stderr=log), log)
    if not side_by_side:
      wait_until(0)
  wait_until(0)
  if failures:
    raise failures[0]


def _now() -> str:
  return f'{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}'
