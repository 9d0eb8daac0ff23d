"""The command line's error and log handling (see ``main.py``).

Input errors (flags, config, data, weights, workdir) print one ``error: <what to fix>`` line
and exit with status 2; a mistyped config field names the closest existing fields. INFO logs
go to ``<workdir>/logs/``; the terminal shows warnings and errors unless asked for more, a
library's records as one line each, and tracebacks (ours after an ``error:`` line, the ones
libraries print themselves) only in the log file.
"""

import contextlib
import copy
import difflib
import io
import logging as python_logging
import re
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import jax
from absl import app, flags, logging
from ml_collections import config_dict

from pfml_jax.config_files import config_file
from pfml_jax.user_errors import EXIT_STATUS, UserInputError

FLAGS = flags.FLAGS

_OVERRIDE = re.compile(r"--config\.([^=\s]+)")
_CONFIG = "--config="
_HELP = ("-h", "--help", "--helpshort", "--helpfull")
_REQUIRED = re.compile(r"Flag (--\w+) must have a value other than None")
_log_file: python_logging.Handler | None = None  # set by log_to_workdir
_PACKAGE = str(Path(__file__).resolve().parent)


def fail(message: str, status: int = EXIT_STATUS) -> None:
  """Prints ``error: message`` to stderr and exits with ``status`` (default: input error)."""
  # A failed background save leaves asyncio futures that report themselves when collected at
  # exit; the line below already names that failure, so it stays the output's last line.
  python_logging.getLogger("asyncio").disabled = True
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(status)


def parse_tool_flags(flag_values: flags.FlagValues, argv: Sequence[str] | None,
                     usage: str) -> list[str]:
  """Parses a tool's own absl flags (its own ``FlagValues``, so tools imported into one process
  never clash) from ``argv`` (``sys.argv[1:]`` when None) and returns the positional arguments.

  ``--help`` prints ``usage`` and the flags and exits 0; an unknown flag, a missing required
  one or a bad value prints one ``error:`` line and exits with status 2.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  if any(arg in _HELP for arg in argv):
    print(f"{usage.strip()}\n\nflags:\n{flag_values.get_help(include_special_flags=False)}")
    sys.exit(0)
  flag_values.unparse_flags()  # a tool's main may run more than once in a process (tests)
  try:
    return flag_values(["", *argv])[1:]
  except flags.UnrecognizedFlagError as error:
    fail(f"unknown flag --{error.flagname} (--help lists the flags)")
  except flags.Error as error:
    missing = _REQUIRED.search(str(error))
    fail(f"{missing.group(1)} is required (--help lists the flags)" if missing else
         f"{error} (--help lists the flags)")
  return []


def parse_subcommand(argv: Sequence[str] | None, program: str, commands: dict[str, str],
                     define: Callable[[str, flags.FlagValues], None],
                     overview: str) -> tuple[str, flags.FlagValues, list[str]]:
  """``PROGRAM COMMAND [ARGS] [--flags]``: (the command, its parsed flags, its positional
  arguments). ``commands`` maps each command to its help line; ``define(command, values)``
  defines that command's flags. ``--help`` alone prints ``overview`` and the commands; after a
  command, that command's flags."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] not in commands:
    listing = "\n".join(f"  {name}: {text}" for name, text in commands.items())
    if argv and argv[0] in _HELP:
      print(f"{overview.strip()}\n\ncommands:\n{listing}\n({program} COMMAND --help lists "
            "a command's flags)")
      sys.exit(0)
    fail(f"name a command: {', '.join(commands)}" + (f"; got {argv[0]!r}" if argv else "") +
         " (--help describes them)")
  command, values = argv[0], flags.FlagValues()
  define(command, values)
  positional = parse_tool_flags(values, argv[1:], f"{program} {command}: {commands[command]}")
  return command, values, positional


def log_traceback(error: BaseException) -> None:
  """Writes ``error``'s traceback to the workdir's log file only (not to the terminal)."""
  if _log_file is None:
    return
  record = python_logging.LogRecord("pfml_jax", python_logging.ERROR, __file__, 0,
                                    "%s: %s", (type(error).__name__, error),
                                    (type(error), error, error.__traceback__))
  _log_file.handle(record)


def loaded_config():
  """``--config``'s ConfigDict; a config file that could not be read as an input error."""
  try:
    config = FLAGS.config
    config.keys()  # config_flags defers the error of a config file it could not load
  except OSError as error:
    message = missing_config_file_message(sys.argv)
    raise UserInputError(message or f"--config: {error}") from error
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


def _config_argument(argv) -> str | None:
  """The value of the last --config flag in ``argv`` (file[:recipe]), or None."""
  paths = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
  if not paths:
    index = next((i for i, arg in enumerate(argv) if arg == "--config"), None)
    paths = argv[index + 1:index + 2] if index is not None else []
  return paths[-1] if paths else None


def missing_config_file_message(argv) -> str | None:
  """``--config=PATH: no such file ...`` when the --config flag names no existing file."""
  argument = _config_argument(argv)
  if argument is None:
    return None
  path = Path(argument.split(":", 1)[0])
  if path.is_file():
    return None
  return (f"--config={argument}: no such file {str(path)!r} (relative paths start at "
          f"{Path.cwd()}); the shipped configs are in configs/.")


def _unknown_override_message(argv) -> str | None:
  """``config has no field ...; did you mean ...`` for the first override naming no field."""
  argument = _config_argument(argv)
  if argument is None:
    return None
  try:
    config = FLAGS["config"].parser.parse(argument)  # the config file, without overrides
    config.keys()  # raises when the file could not be loaded
  except Exception:  # pylint: disable=broad-except
    return None  # the config file itself fails: not a mistyped override
  return unknown_override_message(config, argv)


def unknown_override_message(config, arguments: Sequence[str]) -> str | None:
  """``config has no field ...; did you mean ...`` for the first ``--config.<field>=<value>``
  of ``arguments`` that names no field of ``config``; None when all do."""
  fields = _field_paths(config)
  for arg in arguments:
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
  """absl's flag parsing for ``app.run``, with input errors as one ``error:`` line and exit
  status 2, and ``--help`` (the main module's doc and flags) exiting 0 as every tool's does."""
  if any(arg in _HELP for arg in argv[1:]):
    app.usage(shorthelp="--helpfull" not in argv, writeto_stdout=True, exitcode=0)
  argv = [_CONFIG + config_file(arg[len(_CONFIG):]) if arg.startswith(_CONFIG) else arg
          for arg in argv]  # the shipped configs/... from any folder
  try:
    return FLAGS(argv)
  except Exception as error:  # pylint: disable=broad-except
    if _verbose_requested(argv):
      raise
    if isinstance(error, (AttributeError, KeyError, OSError)):
      message = missing_config_file_message(argv) or _unknown_override_message(argv)
      if message:
        fail(message)
      raise
    user_error = _innermost_user_error(error)
    if user_error is not None:
      fail(str(user_error))
    if isinstance(error, flags.UnrecognizedFlagError):
      fail(f"unknown flag --{error.flagname} (--help lists the flags)")
    if isinstance(error, flags.Error) and "Error whilst parsing config file" not in str(error):
      fail(f"{error} (--help lists the flags)")
    raise  # the config file fails in a way that is no input error: a bug, with its traceback


class _TerminalFormatter(logging.PythonFormatter):
  """absl's format; a library's record (orbax's, jax's) shows its first line only, without
  its traceback: the full record is in the log file."""

  _cut = 200  # characters of a library record's line

  def format(self, record: python_logging.LogRecord) -> str:
    if record.pathname.startswith(_PACKAGE):
      return super().format(record)
    short = copy.copy(record)
    short.exc_info = short.exc_text = short.stack_info = None
    line = (record.getMessage().strip().splitlines() or [""])[0]
    short.msg, short.args = line[:self._cut] + (" ..." if len(line) > self._cut else ""), None
    return super().format(short)


def quiet_terminal() -> None:
  """The terminal shows WARNING and above, a library's records as one line each (see
  ``_TerminalFormatter``), unless --verbose or absl's logging flags ask for more."""
  asked = FLAGS.verbose or FLAGS["verbosity"].present or FLAGS.alsologtostderr or (
      FLAGS.logtostderr)
  if not asked:
    terminal = logging.get_absl_handler()
    terminal.setLevel(python_logging.WARNING)
    terminal.python_handler.setFormatter(_TerminalFormatter())
    terminal.addFilter(_actionable)


# orbax's notices that ask nothing of the user: reading checkpoints read-only (evaluation,
# plots) and a save between evaluations (no metrics yet). They stay in the log file.
_NOT_ACTIONABLE = ("CheckpointManagerOptions.read_only=True", "Given directory is read only",
                   "Requested `tracked_metric`; did not provide metrics")


def _actionable(record: python_logging.LogRecord) -> bool:
  return not str(record.msg).startswith(_NOT_ACTIONABLE)


class _LogFile(python_logging.FileHandler):
  """The workdir's log file; a record it cannot write (a full disk) is dropped silently, not
  reported with a traceback on the terminal (what is wrong reaches the terminal anyway)."""

  def handleError(self, record: python_logging.LogRecord) -> None:
    del record


def log_to_workdir(workdir: str) -> None:
  """Every log record (orbax's INFO ones too) to <workdir>/logs/main.process<i>.log."""
  try:
    folder = Path(workdir) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    handler = _LogFile(folder / f"main.process{jax.process_index()}.log")
  except OSError as error:
    raise UserInputError(f"--workdir={workdir}: cannot write logs there ({error}).") from error
  global _log_file
  handler.setFormatter(logging.PythonFormatter())
  python_logging.getLogger().addHandler(handler)
  _log_file = handler
  logging.info("process %d of %d: %s", jax.process_index(), jax.process_count(),
               " ".join(sys.argv))


class _TracebacksToLog(io.TextIOBase):
  """A stderr that passes text through, except tracebacks printed straight to it (by library
  threads and C callbacks, e.g. asyncio's "Event loop is closed" after a failed save), which it
  writes to the log file."""

  _STARTS = ("Traceback (most recent call last):", "During handling of the above exception",
             "The above exception was the direct cause", "Exception in thread",
             "Exception ignored in")

  def __init__(self, terminal, log_file: python_logging.StreamHandler):
    super().__init__()
    self._terminal, self._log_file = terminal, log_file
    self._diverting, self._line = False, ""

  def write(self, text: str) -> int:
    for piece in text.splitlines(keepends=True):
      if not self._diverting and not piece.startswith(self._STARTS):
        self._terminal.write(piece)
        continue
      self._diverting = True
      self._line += piece
      if not piece.endswith("\n"):
        continue
      line, self._line = self._line, ""
      with self._log_file.lock:  # threads' records go to the same file
        self._log_file.stream.write(line)
      if line.strip() and not line[0].isspace() and not line.startswith(self._STARTS):
        self._diverting = False  # the exception's own line ends the traceback
    return len(text)

  def flush(self) -> None:
    self._terminal.flush()
    self._log_file.flush()

  def isatty(self) -> bool:
    return self._terminal.isatty()

  def fileno(self) -> int:
    return self._terminal.fileno()


@contextlib.contextmanager
def library_tracebacks_to_log() -> Iterator[None]:
  """Tracebacks printed straight to stderr inside the block go to the log file (see
  ``_TracebacksToLog``); an exception leaving the block keeps its traceback. Without a log
  file (a gs:// workdir) they stay on the terminal."""
  if _log_file is None:
    yield
    return
  terminal = sys.stderr
  sys.stderr = _TracebacksToLog(terminal, _log_file)
  try:
    yield
  finally:
    sys.stderr = terminal
