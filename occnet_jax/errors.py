"""The exception type of mistakes made by the person running a command.

A `UserError` carries a message written for that person (what is wrong,
in which file or flag, what to do); `occnet_jax.cli.run` prints it as one
line instead of a traceback. Modules subclass it for their own inputs
(`configs.ConfigError`, `input_pipeline.DataError`,
`predict.PredictionInputError`). It is a `ValueError`, so library callers
that catch bad values keep working.
"""


class UserError(ValueError):
  """Bad input from the user; the message says what to fix.

  Attributes:
    exit_status: the command's exit status: 2 for a wrong command line or
      config (like a usage error), 1 for unusable input data.
  """

  exit_status = 1
