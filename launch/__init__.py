"""Command-line entry points (absl flags only): train, evaluate, predict."""

import logging

# Libraries whose INFO records would bury the progress lines.
_QUIET_LIBRARIES = ('orbax', 'tensorflow_datasets', 'grain')


class _LibraryInfoFilter(logging.Filter):
  """Drops INFO (and lower) records logged from the quiet libraries."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        f'/{library}/' in record.pathname for library in _QUIET_LIBRARIES)


def quiet_library_logs() -> None:
  """Keeps this project's INFO logs, warnings and errors of every library."""
  for handler in logging.getLogger().handlers + logging.getLogger(
      'absl').handlers:
    handler.addFilter(_LibraryInfoFilter())
