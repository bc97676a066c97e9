r"""Occlusion mix and views per car of a built dataset split.

    python -m data_prep.dataset_report --data_dir=workdirs/tensorflow_datasets \
        --dataset=car_render/small --split=train

Reads the split with `input_pipeline.open_split` (array_record, no TensorFlow needed)
and prints how many keypoints are visible or occluded by each cause
(`occlusion_kind` of docs/design.md), how many views each car has, and how
many keypoints of a view are hidden (the paper's Fig. 5/6 groups cars by
that number).
"""

from collections.abc import Iterable, Mapping
import dataclasses

from absl import app
from absl import flags
import numpy as np

from occnet_jax import cli
from occnet_jax import input_pipeline
from occnet_jax import labels

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class SplitSummary:
  """Counts over the cars of one split.

  Attributes:
    num_cars: number of examples (car instances).
    kind_counts: keypoints per `labels.OcclusionKind` code.
    views_per_car: {number of views: number of cars}.
    hidden_per_view: {hidden keypoints in a view: number of views}; hidden
      means any kind other than visible.
  """

  num_cars: int
  kind_counts: np.ndarray
  views_per_car: dict[int, int]
  hidden_per_view: dict[int, int]


def _histogram(values) -> dict[int, int]:
  keys, counts = np.unique(np.asarray(values, dtype=np.int64),
                           return_counts=True)
  return dict(zip(keys.tolist(), counts.tolist()))


def summarise(examples: Iterable[Mapping[str, np.ndarray]]) -> SplitSummary:
  """Counts occlusion kinds and views over examples of the dataset record.

  Args:
    examples: dicts with at least `occlusion_kind` (V, K).

  Returns:
    The split's `SplitSummary`.
  """
  kind_counts = np.zeros(len(labels.OcclusionKind), np.int64)
  views, hidden = [], []
  for example in examples:
    kinds = np.asarray(example['occlusion_kind'])
    kind_counts += np.bincount(kinds.ravel(), minlength=len(kind_counts))
    views.append(kinds.shape[0])
    hidden.extend(np.sum(kinds != 0, axis=1))
  return SplitSummary(num_cars=len(views), kind_counts=kind_counts,
                      views_per_car=_histogram(views),
                      hidden_per_view=_histogram(hidden))


def format_summary(summary: SplitSummary) -> str:
  """Human-readable table of a `SplitSummary`."""
  total = max(int(summary.kind_counts.sum()), 1)
  lines = [f'cars: {summary.num_cars}', 'keypoints by occlusion kind:']
  for kind, count in zip(labels.OcclusionKind, summary.kind_counts):
    name = kind.name.lower().replace('_', ' ')
    lines.append(f'  {name:<14} {count:>9d}  {100 * count / total:6.2f}%')
  lines.append('views per car: ' + ', '.join(
      f'{views}: {cars}' for views, cars in summary.views_per_car.items()))
  lines.append('hidden keypoints per view: ' + ', '.join(
      f'{hidden}: {count}'
      for hidden, count in summary.hidden_per_view.items()))
  return '\n'.join(lines)


def _define_flags():
  """Defines the command's flags.

  Only when run as a command: the library functions above stay importable
  next to other commands that use the same flag names.
  """
  flags.DEFINE_string(
      'data_dir', 'workdirs/tensorflow_datasets',
      'TFDS data directory (the default is where training with '
      '--workdir=workdirs/NAME builds).')
  flags.DEFINE_string(
      'dataset', 'car_render/small', 'Dataset name with its builder config.')
  flags.DEFINE_string('split', 'train', 'Split to summarise.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  source = input_pipeline.open_split(FLAGS.dataset, FLAGS.split,
                                     FLAGS.data_dir)
  print(f'{FLAGS.dataset} {FLAGS.split}')
  print(format_summary(summarise(source)))


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
