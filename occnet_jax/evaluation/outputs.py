"""Where evaluations are kept: `<workdir>/eval/<split>/`.

The final evaluation of a split writes `eval/<split>/metrics.json` and its
figures; the checkpoint watcher writes `eval/<split>/step_<N>/metrics.json`
per checkpoint and its TensorBoard scalars in `eval/<split>/`. Every reader
and writer of these paths goes through this module.
"""

from collections.abc import Mapping
import json
import os
from typing import Any

from absl import logging
from etils import epath

EVAL_DIR = 'eval'
METRICS_FILE = 'metrics.json'
_STEP_PREFIX = 'step_'


def split_directory(workdir: epath.PathLike, split: str) -> epath.Path:
  """`<workdir>/eval/<split>/`: a split's evaluation and figures."""
  return epath.Path(workdir) / EVAL_DIR / split


def metrics_path(workdir: str, split: str) -> str:
  """Where the final evaluation of a split writes its metrics."""
  return os.path.join(workdir, EVAL_DIR, split, METRICS_FILE)


def step_directory(workdir: str, split: str, step: int) -> str:
  """Where the checkpoint watcher writes one checkpoint's metrics."""
  return os.path.join(workdir, EVAL_DIR, split, f'{_STEP_PREFIX}{step}')


def evaluated_steps(workdir: str, split: str) -> list[int]:
  """The steps of a split that already have a metrics file, oldest first."""
  directory = split_directory(workdir, split)
  if not directory.is_dir():
    return []
  return sorted(
      int(path.name[len(_STEP_PREFIX):]) for path in directory.iterdir()
      if path.name.startswith(_STEP_PREFIX)
      and path.name[len(_STEP_PREFIX):].isdigit()
      and (path / METRICS_FILE).exists())


def write_metrics(directory: str, results: Mapping[str, Any]) -> None:
  """Writes `directory/metrics.json` and logs the summary."""
  directory = epath.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  (directory / METRICS_FILE).write_text(
      json.dumps(dict(results), indent=1, sort_keys=True))
  logging.info('Wrote %s/%s.', directory, METRICS_FILE)
