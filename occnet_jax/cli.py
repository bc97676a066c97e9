"""The runner of every command of launch/ and data_prep/: one-line errors.

`run(main)` is `absl.app.run(main)` plus two things a person at the command
line needs:

  - A user mistake ends the command with one line on stderr,
    `error: <message>`, no traceback and no usage screen, and exit status 2
    (the command line: flags, config files and overrides, `ConfigError`,
    `app.UsageError`) or 1 (unusable input: other `errors.UserError`s and
    `OSError`s such as a missing file). Any other exception is a bug and
    keeps its traceback.
  - Third-party log noise (INFO records of Orbax, TFDS, grain and JAX, and a
    few known harmless warnings) is dropped; this project's logs and every
    other warning and error stay.
"""

from collections.abc import Callable, Sequence
import functools
import logging
import os
import re
import sys
from typing import NoReturn

from absl import app
from absl import flags

from occnet_jax import errors

USAGE_STATUS = 2
# Installed libraries whose INFO records would bury the progress lines (by
# the path of the logging code: Orbax and TFDS log through absl).
_QUIET_LIBRARIES = re.compile(
    r'[/\\](site|dist)-packages[/\\](orbax|tensorflow_datasets|grain|jax)'
    r'[/\\]')
# Warnings that are expected and say nothing to act on: Orbax reading a
# workdir read-only (evaluation, prediction) or waiting a second for the
# previous asynchronous save; TFDS looking into a data dir before the
# dataset is built.
_NOISE_PREFIXES = (
    'CheckpointManagerOptions.read_only=True',
    'Given directory is read only',
    'Waiting for previous save to complete',
    'Variant folder ',
)


class _LibraryNoiseFilter(logging.Filter):
  """Drops the quiet libraries' INFO records and the known noise."""

  def filter(self, record: logging.LogRecord) -> bool:
    if not _QUIET_LIBRARIES.search(record.pathname):
      return True
    return record.levelno >= logging.WARNING and not str(
        record.msg).startswith(_NOISE_PREFIXES)


def quiet_library_logs() -> None:
  """Keeps this project's logs and the libraries' real warnings and errors."""
  noise_filter = _LibraryNoiseFilter()
  for handler in (logging.getLogger().handlers
                  + logging.getLogger('absl').handlers):
    handler.addFilter(noise_filter)


def _exit(message: str, status: int) -> NoReturn:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(status)


def _innermost_text(error: BaseException) -> str:
  """The message of an exception wrapped in others' args (ml_collections)."""
  while error.args and isinstance(error.args[0], BaseException):
    error = error.args[0]
  text = error.args[0] if error.args and isinstance(error.args[0],
                                                    str) else str(error)
  return '; '.join(line.strip() for line in text.splitlines() if line.strip())


def _unknown_override(error: LookupError | AttributeError,
                      argv: Sequence[str]) -> str:
  """'--config.a.b=1: unknown config key ...' for a bad override."""
  quoted_key, _, hint = _innermost_text(error).partition('; ')
  key = quoted_key.strip('\'"')
  given = [arg for arg in argv[1:] if arg.startswith('-')
           and arg.split('=', 1)[0].endswith(f'.{key}')]
  where = f'{given[0]}: ' if given else ''
  hint = f' ({hint[:1].lower()}{hint[1:]})' if hint else ''
  return f'{where}unknown config key {quoted_key}{hint}'


def _os_error_text(error: OSError) -> str:
  if error.filename and error.strerror:
    return f'{error.filename}: {error.strerror}'
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  # ml_collections puts the cause of a config file that cannot be loaded on
  # the last of several lines.
  return lines[-1] if lines else type(error).__name__


def _parse_command_line(argv: list[str],
                        flag_values: flags.FlagValues = flags.FLAGS,
                        ) -> list[str]:
  """absl's flag parsing, with every failure a one-line usage error."""
  try:
    remaining = flag_values(argv)
  except flags.Error as error:
    _exit(str(error), USAGE_STATUS)
  except (KeyError, AttributeError) as error:
    # ml_collections: an override of a key the config does not have.
    _exit(_unknown_override(error, argv), USAGE_STATUS)
  except (TypeError, ValueError) as error:
    _exit(_innermost_text(error), USAGE_STATUS)
  for name in flag_values:
    # A config flag whose file could not be loaded holds a placeholder that
    # raises its error on any attribute access: raise it now, as a
    # command-line error, rather than somewhere inside main.
    try:
      hasattr(flag_values[name].value, 'to_dict')
    except OSError as error:
      _exit(f'--{name}: {_os_error_text(error)}', USAGE_STATUS)
  return remaining


def _run_main(main: Callable[[list[str]], None], argv: list[str]) -> None:
  quiet_library_logs()
  try:
    main(argv)
  except app.UsageError as error:
    _exit(str(error), USAGE_STATUS)
  except errors.UserError as error:
    _exit(str(error), error.exit_status)
  except OSError as error:
    _exit(_os_error_text(error), 1)


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)` with one-line user errors and quiet libraries."""
  app.run(functools.partial(_run_main, main),
          flags_parser=_parse_command_line)


def directory_path(flag: flags.FlagHolder[str]) -> None:
  """Refuses, while parsing, a flag's path that exists but is no directory."""
  flags.register_validator(
      flag.name,
      lambda path: path is None or not os.path.exists(path)
      or os.path.isdir(path),
      message=f'--{flag.name} names a file, not a directory')
