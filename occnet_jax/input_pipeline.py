"""TFDS `data_source` + grain -> batches of cars with a fixed number of views.

Records are read with TFDS's `as_data_source` (array_record, no TensorFlow
in the loop; a missing dataset or split is a one-line `DataError`, and the
crop size is checked against the builder's metadata before any build) and
batched as docs/design.md describes: leading axes (B, V), every car
with exactly `config.data.num_views` views, sampled without replacement when
a car has more and padded (`view_mask` False) when it has fewer.

Training batches come from an infinite grain pipeline that is deterministic
given the seed, and whose position (`iterator.get_state()`, a small JSON-able
dict) is saved with checkpoints. Its sampling order (shuffle and views) is
global: every process reads its slice of each global batch, so a step sees
the same cars whatever the number of processes.
Evaluation walks a whole split once in order, every view of every car, in
chunks of `num_views` views; every process reads all of it, and
`evaluate.collect_predictions` splits the work between processes and
gathers the predictions.

A record that cannot be read (a flipped byte fails its chunk's hash, a
truncated shard loses its index) is a `DataError` naming the shard file;
with `config.data.skip_corrupt` it is skipped and counted instead: an
all-padding car in its training batch (no loss), absent from evaluation.
"""

from collections.abc import Iterator, Mapping, Sequence
import functools
import itertools
import os
from typing import Any

from absl import logging
import grain
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from occnet_jax import boxes as boxes_lib
from occnet_jax import configs
from occnet_jax import errors
from occnet_jax import multihost
from occnet_jax import paths
from occnet_jax.models import graphs

Batch = dict[str, np.ndarray]

# The mesh axis over which the cars of a batch are split between devices.
DEVICE_AXIS = 'data'

# Per-view fields of a record (leading axis V), padded for missing views.
VIEW_FIELDS = ('crops', 'boxes', 'keypoints', 'true_keypoints', 'visibility',
               'occlusion_kind', 'cameras', 'camera_error', 'image_size')
# Fields that only evaluation reads: training batches never hold them.
EVALUATION_ONLY_FIELDS = ('true_keypoints',)
# A padding view's box: any non-degenerate box keeps box coordinates finite.
PADDING_BOX = boxes_lib.UNIT_BOX


def data_mesh() -> jax.sharding.Mesh:
  """Every device of every process on `DEVICE_AXIS` (data parallelism)."""
  return jax.make_mesh((jax.device_count(),), (DEVICE_AXIS,))


class DataError(errors.UserError):
  """A dataset or split that is not where the command looks for it."""


def resolve_data_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  """The TFDS data dir: `config.data.data_dir`, else beside the workdir."""
  if config.data.data_dir:
    return config.data.data_dir
  return os.fspath(paths.absolute(workdir).parent / 'tensorflow_datasets')


def dataset_name(config: ml_collections.ConfigDict) -> str:
  """The TFDS name, with the builder config when there is one."""
  if config.data.builder_config:
    return f'{config.data.name}/{config.data.builder_config}'
  return config.data.name


def _not_built(name: str, data_dir: str) -> DataError:
  package, _, builder_config = name.partition('/')
  config_flag = f' --config={builder_config}' if builder_config else ''
  return DataError(
      f'{name} is not built in {os.path.abspath(data_dir)}: check the data '
      f'dir and the dataset name, or build it with `tfds build '
      f'data_prep/{package}{config_flag} --data_dir={data_dir}`.')


def _builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """`tfds.builder`, or `DataError` naming the dataset and the data dir."""
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    # TFDS's own message lists every dataset it knows, hundreds of lines.
    raise _not_built(name, data_dir) from None
  except ValueError as error:  # An unknown builder config, for one.
    raise DataError(f'{name}: {str(error).splitlines()[0]}') from None


def open_split(name: str, split: str,
               data_dir: str) -> Sequence[Mapping[str, Any]]:
  """A random-access source of a prepared split (decoded numpy dicts).

  Args:
    name: the TFDS name with its builder config ('car_render/small').
    split: the split (TFDS slicing allowed).
    data_dir: the TFDS data dir.

  Returns:
    The source; nothing is built (reading never starts a build).

  Raises:
    DataError: when the dataset is not prepared in `data_dir` or has no
      such split: one line naming the data dir, not TFDS's listing of
      every dataset it knows.
  """
  builder = _builder(name, data_dir)
  if not builder.is_prepared():
    raise _not_built(name, data_dir)
  try:
    return builder.as_data_source(split=split)
  except ValueError as error:  # 'Unknown split ...', with the known ones.
    raise DataError(f'{name} in {os.path.abspath(data_dir)}: '
                    f'{error}') from None


def dataset_builder(config: ml_collections.ConfigDict,
                    data_dir: str) -> tfds.core.DatasetBuilder:
  """The configured dataset's TFDS builder (metadata only, nothing built).

  A dataset already prepared in `data_dir` is read from its files; to build
  one, its builder must be registered with TFDS first (the project's by
  `data_prep.builders.register`, which the entry points call).

  Args:
    config: the experiment config (`config.data.name`, `builder_config`).
    data_dir: the TFDS data dir.

  Raises:
    DataError: for a dataset that is neither built nor buildable.
  """
  return _builder(dataset_name(config), data_dir)


def check_crop_size(config: ml_collections.ConfigDict, data_dir: str) -> None:
  """Compares `config.data.crop_size` with the builder's metadata.

  Runs in seconds, before any build.

  Raises:
    configs.ConfigError: when the dataset's crops have another size.
    DataError: for a dataset that is neither built nor buildable.
  """
  crop_size = dataset_builder(config, data_dir).info.features['crops'].shape[-2]
  if crop_size != config.data.crop_size:
    raise configs.ConfigError(
        f'config.data.crop_size = {config.data.crop_size}: the dataset '
        f'{dataset_name(config)} has {crop_size} px crops.')


def prepare_dataset(config: ml_collections.ConfigDict, data_dir: str) -> None:
  """Builds the configured TFDS dataset in `data_dir` unless it is there.

  Process 0 builds it; the other processes wait for it at a barrier (they
  read the same `data_dir`).

  Args:
    config: the experiment config (`config.data.name`, `builder_config`).
    data_dir: the TFDS data dir.

  Raises:
    DataError: for a dataset that is neither built nor buildable.
  """
  if jax.process_index() == 0:
    builder = dataset_builder(config, data_dir)
    if not builder.is_prepared():
      logging.info('Preparing %s in %s (first use).', dataset_name(config),
                   data_dir)
      builder.download_and_prepare(
          file_format=tfds.core.FileFormat.ARRAY_RECORD)
  multihost.barrier(f'{dataset_name(config)} prepared')


class CheckedSource(Sequence):
  """A split's records, each unreadable one named by its file or skipped.

  `source[index]` is the record, or for one that cannot be read a
  `DataError` naming the shard file and the reader's error, or (`skip`)
  None, logged with the number of records skipped so far.
  """

  def __init__(self, source: Any, name: str, *, skip: bool):
    """Wraps a TFDS data source.

    Args:
      source: `open_split`'s source.
      name: the dataset and split, for messages.
      skip: return None for unreadable records instead of raising.
    """
    self._source = source
    self._name = name
    self._skip = skip
    self._files = source.dataset_info.splits[source.split].file_instructions
    self._skipped = itertools.count(1)

  def __len__(self) -> int:
    return len(self._source)

  def _file(self, index: int) -> str:
    """The shard file that holds record `index` of the split."""
    for instruction in self._files:
      if index < instruction.take:
        return instruction.filename
      index -= instruction.take
    return '?'

  def __getitem__(self, index: int) -> Mapping[str, Any] | None:
    # An index past the end is the end of the sequence (iteration stops at
    # IndexError), not a damaged file.
    if not -len(self) <= index < len(self):
      raise IndexError(f'record {index} of {self._name}: {len(self)} records')
    try:
      return self._source[index]
    # array_record raises RuntimeError for a hash mismatch, TFDS ValueError
    # for the missing bytes of a truncated shard; any failure to read or
    # decode one record is the same fault for the user.
    except Exception as error:  # pylint: disable=broad-except
      reason = f'{type(error).__name__}: {str(error).splitlines()[0][:200]}'
      where = f'record {index} of {self._name} in {self._file(index)}'
      if not self._skip:
        raise DataError(
            f'Cannot read {where} ({reason}): the file is damaged; copy it '
            'again or rebuild the dataset, or set '
            'config.data.skip_corrupt=True to skip unreadable records.'
        ) from None
      logging.warning('Skipped unreadable %s (%s); %d skipped so far.',
                      where, reason, next(self._skipped))
      return None


def get_source(config: ml_collections.ConfigDict, split: str,
               data_dir: str) -> CheckedSource:
  """A random-access source of one split's records (`open_split`).

  Unreadable records raise a `DataError` naming their file, or with
  `config.data.skip_corrupt` read as None (`CheckedSource`).
  """
  name = dataset_name(config)
  return CheckedSource(open_split(name, split, data_dir), f'{name} {split}',
                       skip=config.data.skip_corrupt)


def select_views(record: Mapping[str, Any], views: np.ndarray,
                 num_views: int) -> Batch:
  """One car with the given views, padded to `num_views` views.

  Args:
    record: a dataset record (docs/design.md).
    views: indices of the views to keep, at most `num_views`.
    num_views: V of the batch.

  Returns:
    The car's fields with a leading view axis of `num_views` (padding views
    are zero, with a unit box), its `shape_3d` and a `view_mask`.
  """
  pad = num_views - len(views)
  example = {}
  for name in VIEW_FIELDS:
    field = np.asarray(record[name])[views]
    padding = np.zeros((pad,) + field.shape[1:], field.dtype)
    if name == 'boxes':
      padding[:] = PADDING_BOX
    example[name] = np.concatenate([field, padding])
  example['shape_3d'] = np.asarray(record['shape_3d'], np.float32)
  example['view_mask'] = np.arange(num_views) < len(views)
  return example


def sample_views(record: Mapping[str, Any], rng: np.random.Generator,
                 num_views: int) -> Batch:
  """A random subset of `num_views` views of a car (all of them if fewer)."""
  total = len(record['boxes'])
  views = np.sort(rng.choice(total, min(total, num_views), replace=False))
  return select_views(record, views, num_views)


def _training_views(record: Mapping[str, Any] | None,
                    rng: np.random.Generator, num_views: int) -> Batch | None:
  """`sample_views` without the fields that only evaluation may read.

  A skipped (unreadable) record stays None.
  """
  if record is None:
    return None
  example = sample_views(record, rng, num_views)
  for name in EVALUATION_ONLY_FIELDS:
    del example[name]
  return example


def stack(examples: Sequence[Batch]) -> Batch:
  """Stacks examples of equal structure into a batch."""
  return {name: np.stack([example[name] for example in examples])
          for name in examples[0]}


def padding_example(like: Batch) -> Batch:
  """An all-padding car shaped like `like`, filling a last partial batch."""
  example = {name: np.zeros_like(value) for name, value in like.items()}
  example['boxes'][:] = PADDING_BOX
  return example


def _stack_readable(examples: Sequence[Batch | None]) -> Batch:
  """`stack`, with an all-padding car for each skipped (None) record."""
  readable = [example for example in examples if example is not None]
  if not readable:
    raise DataError('Every record of a training batch is unreadable (see '
                    'the warnings above): the split is damaged throughout.')
  padding = padding_example(readable[0])
  return stack([padding if example is None else example
                for example in examples])


def local_batch_size(global_batch_size: int,
                     process_count: int | None = None) -> int:
  """A process's share of a global batch (default: of this run's processes)."""
  process_count = process_count or jax.process_count()
  if global_batch_size % process_count:
    raise ValueError(f'Batch {global_batch_size} is not divisible by the '
                     f'{process_count} processes.')
  return global_batch_size // process_count


def create_train_iterator(source: Sequence[Mapping[str, Any]],
                          config: ml_collections.ConfigDict, seed: int, *,
                          process_index: int | None = None,
                          process_count: int | None = None,
                          ) -> grain.DatasetIterator:
  """An endless, shuffled, checkpointable iterator of training batches.

  One sampling order of cars and views, a function of the seed only, is cut
  into global batches of `config.data.batch_size`; process p of P reads the
  p-th of the P equal slices of each. Concatenated in process order, the
  processes' batches are the global batch of one process, so training does
  not depend on how many processes share the devices.

  Args:
    source: random-access training records.
    config: the experiment config (`data.batch_size`, `num_views`,
      `read_threads`).
    seed: seeds the shuffle (reshuffled every epoch) and the view sampling.
    process_index: this process's slice (default: `jax.process_index()`).
    process_count: slices per global batch (default: `jax.process_count()`).

  Returns:
    A grain iterator of this process's batches, (B / processes, V, ...);
    `get_state()`/`set_state()` save and restore its position.
  """
  if process_index is None:
    process_index = jax.process_index()
  process_count = process_count or jax.process_count()
  if not len(source):
    raise ValueError('The training split has no records.')
  dataset = grain.MapDataset.source(source).shuffle(seed=seed).repeat()
  # View sampling is seeded by the car's position in the global order.
  dataset = dataset.random_map(
      functools.partial(_training_views, num_views=config.data.num_views),
      seed=seed)
  # Global batch g is local batches gP, ..., gP + P - 1, in process order.
  dataset = dataset.batch(
      local_batch_size(config.data.batch_size, process_count),
      drop_remainder=True,
      batch_fn=_stack_readable)[process_index::process_count]
  read_options = grain.ReadOptions(
      num_threads=config.data.read_threads,
      prefetch_buffer_size=2 * max(config.data.read_threads, 1))
  return iter(dataset.to_iter_dataset(read_options))


def eval_batches(source: Sequence[Mapping[str, Any]], num_views: int,
                 batch_size: int, max_instances: int = 0,
                 ) -> Iterator[tuple[Batch, list[str]]]:
  """Every view of every car of a split, once, in order.

  A car with more than `num_views` views is split into several examples of
  consecutive views; the last batch is completed with all-padding cars.

  Args:
    source: random-access records of the split.
    num_views: V of the batch.
    batch_size: number of examples per batch.
    max_instances: stop after this many cars (0 = all).

  Yields:
    (batch, car_ids): a batch and one car id per example ('' for padding
    examples).
  """
  count = len(source) if max_instances <= 0 else min(len(source),
                                                     max_instances)
  examples, car_ids = [], []
  for index in range(count):
    record = source[index]
    if record is None:  # Skipped: unreadable (`CheckedSource`).
      continue
    car_id = record['car_id']
    car_id = car_id.decode() if isinstance(car_id, bytes) else str(car_id)
    total = len(record['boxes'])
    for start in range(0, total, num_views):
      views = np.arange(start, min(start + num_views, total))
      examples.append(select_views(record, views, num_views))
      car_ids.append(car_id)
      if len(examples) == batch_size:
        yield stack(examples), car_ids
        examples, car_ids = [], []
  if examples:
    padding = padding_example(examples[0])
    car_ids += [''] * (batch_size - len(examples))
    examples += [padding] * (batch_size - len(examples))
    yield stack(examples), car_ids


def flatten_views(batch: Mapping[str, Any]) -> tuple[Any, Any]:
  """(B, V, ...) crops and boxes -> (B*V, ...), the model's input."""
  return (graphs.views_to_nodes(batch['crops']),
          graphs.views_to_nodes(batch['boxes']))
