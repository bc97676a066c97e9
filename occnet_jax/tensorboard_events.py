"""TensorBoard event files: dropping the steps a resumed run logs again.

Event files are TFRecord-framed `Event` protos; `drop_events_after` rewrites
them without the events past a step, and `register_file_systems` lets
tensorboardX write them to object stores through `epath`.
"""

from collections.abc import Iterator
import struct

from etils import epath
import tensorboardX
from tensorboardX.proto import event_pb2


def _event_records(data: bytes) -> Iterator[tuple[bytes, event_pb2.Event]]:
  """(record bytes, event) of a TensorBoard event file (TFRecord framing)."""
  offset = 0
  while offset + 12 <= len(data):
    (length,) = struct.unpack('<Q', data[offset:offset + 8])
    end = offset + 12 + length + 4
    if end > len(data):
      return  # Cut short by a kill: the rest is lost anyway.
    yield data[offset:end], event_pb2.Event.FromString(
        data[offset + 12:offset + 12 + length])
    offset = end


def drop_events_after(directory: epath.Path, last_step: int) -> None:
  """Removes the TensorBoard events of steps after `last_step`.

  Args:
    directory: where the event files are (a workdir, `eval/<split>/`).
    last_step: the last step kept.
  """
  for events in directory.glob('events.out.tfevents.*'):
    data = events.read_bytes()
    kept = b''.join(record for record, event in _event_records(data)
                    if event.step <= last_step)
    if kept != data:
      events.write_bytes(kept)


class _EpathRecordWriter:
  """tensorboardX's event-file writer interface on an `epath` file."""

  def __init__(self, path: str):
    self._file = epath.Path(path).open('wb')

  def write(self, data: bytes) -> None:
    self._file.write(data)

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class _EpathWriterFactory:
  """Event files on any `epath` file system (gs://, ...)."""

  def open(self, path: str) -> _EpathRecordWriter:
    return _EpathRecordWriter(path)

  def directory_check(self, path: str) -> None:
    epath.Path(path).mkdir(parents=True, exist_ok=True)


def register_file_systems() -> None:
  """Lets tensorboardX write event files to gs:// and s3:// (by `epath`)."""
  for scheme in ('gs', 's3'):
    tensorboardX.record_writer.register_writer_factory(scheme,
                                                       _EpathWriterFactory())
