"""The command line's error and log handling (see ``main.py``).

Input errors (flags, config, data, weights, workdir) print one ``error: <what to fix>`` line
and exit with status 2; a mistyped config field names the closest existing fields. INFO logs
go to ``<workdir>/logs/``; the terminal shows warnings and errors unless asked for more.
"""

import difflib
import logging as python_logging
import re
import sys
from pathlib import Path

import jax
from absl import flags, logging
from ml_collections import config_dict

from pfml_jax.user_errors import EXIT_STATUS, UserInputError

FLAGS = flags.FLAGS

_OVERRIDE = re.compile(r"--config\.([^=\s]+)")


def fail(message: str) -> None:
  """Prints ``error: message`` to stderr and exits with the input-error status."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_STATUS)


def loaded_config():
  """``--config``'s ConfigDict; a config file that could not be read as an input error."""
  try:
    config = FLAGS.config
    config.keys()  # config_flags defers the error of a config file it could not load
  except OSError as error:
    raise UserInputError(f"--config: {error}") from error
  return config


def _verbose_requested(argv) -> bool:
  """--verbose in argv (read by hand: it must work when parsing the flags fails)."""
  return any(arg in ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1")
             for arg in argv)


def _field_paths(config, prefix: str = "") -> list[str]:
  """The dotted paths of every field and sub-config of ``config``."""
  paths = []
  for name, value in config.items():
    path = f"{prefix}{name}"
    paths.append(path)
    if isinstance(value, (config_dict.ConfigDict, dict)):
      paths += _field_paths(value, path + ".")
  return paths


def _closest(path: str, paths: list[str]) -> list[str]:
  """Up to 4 existing field paths close to the mistyped ``path``."""
  parent, _, name = path.rpartition(".")
  siblings = [p for p in paths if p.rpartition(".")[0] == parent]
  # Abbreviations ("lr" for "learning_rate"): the letters in order, from the same first one.
  abbreviated = [p for p in siblings if _is_abbreviation(name, p.rpartition(".")[2])]
  similar = difflib.get_close_matches(path, [p for p in paths if p != parent], n=4, cutoff=0.6)
  return list(dict.fromkeys(abbreviated + similar))[:4]


def _is_abbreviation(short: str, name: str) -> bool:
  if not short or short[0] != name[0]:
    return False
  letters = iter(name)
  return all(char in letters for char in short)


def _has_field(config, path: str) -> bool:
  node = config
  for name in path.split("."):
    if not isinstance(node, (config_dict.ConfigDict, dict)) or name not in node:
      return False
    node = node[name]
  return True


def _unknown_override_message(argv) -> str | None:
  """``config has no field ...; did you mean ...`` for the first override naming no field."""
  paths = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
  if not paths:
    index = next((i for i, arg in enumerate(argv) if arg == "--config"), None)
    paths = argv[index + 1:index + 2] if index is not None else []
  if not paths:
    return None
  try:
    config = FLAGS["config"].parser.parse(paths[-1])  # the config file, without overrides
    config.keys()  # raises when the file could not be loaded
  except Exception:  # pylint: disable=broad-except
    return None  # the config file itself fails: not a mistyped override
  fields = _field_paths(config)
  for arg in argv:
    match = _OVERRIDE.match(arg)
    if not match or "[" in match.group(1):
      continue
    path = match.group(1)
    if path.startswith("no") and not _has_field(config, path) and _has_field(config, path[2:]):
      continue  # --config.nofield: absl's negated boolean
    if not _has_field(config, path):
      closest = _closest(path, fields)
      hint = f"; did you mean: {', '.join(closest)}?" if closest else (
          "; see the config file for the field names.")
      return f"config has no field {path!r}{hint}"
  return None


def _innermost_user_error(error: BaseException) -> UserInputError | None:
  """The deepest UserInputError among ``error``'s causes and contexts."""
  found, seen = None, set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, UserInputError):
      found = error
    error = error.__cause__ or error.__context__
  return found


def parse_flags(argv):
  """absl's flag parsing, with input errors as one ``error:`` line and exit status 2."""
  try:
    return FLAGS(argv)
  except Exception as error:  # pylint: disable=broad-except
    if _verbose_requested(argv):
      raise
    if isinstance(error, (AttributeError, KeyError)):
      message = _unknown_override_message(argv)
      if message:
        fail(message)
      raise
    user_error = _innermost_user_error(error)
    if user_error is not None:
      fail(str(user_error))
    if isinstance(error, flags.Error) and "Error whilst parsing config file" not in str(error):
      fail(f"{error} (--helpshort lists the flags)")
    raise  # the config file fails in a way that is no input error: a bug, with its traceback


def quiet_terminal() -> None:
  """The terminal shows WARNING and above, unless --verbose or absl's logging flags ask."""
  asked = FLAGS.verbose or FLAGS["verbosity"].present or FLAGS.alsologtostderr or (
      FLAGS.logtostderr)
  if not asked:
    logging.get_absl_handler().setLevel(python_logging.WARNING)


def log_to_workdir(workdir: str) -> None:
  """Every log record (orbax's INFO ones too) to <workdir>/logs/main.process<i>.log."""
  try:
    folder = Path(workdir) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    handler = python_logging.FileHandler(folder / f"main.process{jax.process_index()}.log")
  except OSError as error:
    raise UserInputError(f"--workdir={workdir}: cannot write logs there ({error}).") from error
  handler.setFormatter(logging.PythonFormatter())
  python_logging.getLogger().addHandler(handler)
  logging.info("process %d of %d: %s", jax.process_index(), jax.process_count(),
               " ".join(sys.argv))
