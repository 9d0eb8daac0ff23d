"""Errors in what the user gave (config, data, weights, workdir), as opposed to bugs.

``python -m pfml_jax.main`` prints a ``UserInputError`` as one ``error: ...`` line (plus any
lines the message lists) and exits with status 2; ``--verbose`` shows the traceback. Faults of
the run itself (``main.RUN_FAULTS``, a full disk) get one line too, with status 1. Every other
exception is a bug and keeps its traceback. The subclasses also derive from the built-in
type the code raised before (ValueError, FileNotFoundError), so callers catching those still
catch them.
"""

EXIT_STATUS = 2


class UserInputError(Exception):
  """Something the user can fix in the config, the data, the weights or the workdir."""


class ConfigError(UserInputError, ValueError):
  """A config value is invalid; the message names the field and what to set."""


class MissingFileError(UserInputError, FileNotFoundError):
  """A file or folder the config points at (weights, checkpoint, dataset) does not exist."""


class WeightsError(UserInputError, ValueError):
  """A weights file cannot be read or does not match the model."""
