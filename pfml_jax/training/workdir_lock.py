"""One training run per workdir: ``<workdir>/run.lock``, held while the run trains.

The lock file is created with O_EXCL and holds the holder's pid, host and start time; a thread
touches it every ``HEARTBEAT_SECONDS`` while it is held, and it is removed on any exit Python
sees (an error, Ctrl-C, SIGTERM, the end). A lock left behind (kill -9, a crashed host) is
stale, and taken over, when its holder is provably gone: on the same host when its pid is no
longer alive; from another host (a shared filesystem) when its heartbeat is older than
``STALE_SECONDS``; a lock file that stays unreadable for 0.1 s (empty after a full disk) is
stale too. Two runs that find the same stale lock at the same instant can both take it over
(the window is one rename); any other second run is refused with one line naming the holder.
"""

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from pfml_jax.user_errors import UserInputError

LOCK_FILE = "run.lock"
# Our choice: a heartbeat every minute costs nothing; 10 minutes without one is far beyond a
# slow shared filesystem's delay, yet a resubmitted job on another host waits at most that.
HEARTBEAT_SECONDS = 60.0
STALE_SECONDS = 600.0


class WorkdirLockedError(UserInputError):
  """Another run holds the workdir's lock; the message names it."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, owned by another user
    return True
  return True


def _read_holder(path: Path) -> dict | None:
  """The holder recorded in ``path``, or None when the file is gone or unreadable."""
  try:
    holder = json.loads(path.read_text())
    holder["heartbeat"] = path.stat().st_mtime
    return holder
  except (OSError, ValueError):
    return None


def _is_stale(holder: dict) -> bool:
  if holder.get("host") == socket.gethostname():
    pid = int(holder.get("pid", -1))
    return pid == os.getpid() or not _alive(pid)  # our own pid: a previous life's lock
  return time.time() - holder["heartbeat"] > STALE_SECONDS


def _describe(holder: dict) -> str:
  since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(holder.get("since", 0)))
  return f"pid {holder.get('pid')} on host {holder.get('host')}, since {since}"


def _create(path: Path) -> bool:
  """Creates the lock file naming this process; False when it already exists."""
  try:
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  try:
    with os.fdopen(descriptor, "w") as f:
      json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}, f)
  except OSError:  # a full disk: leave no empty lock behind
    path.unlink(missing_ok=True)
    raise
  return True


def acquire(workdir: str | Path) -> Path:
  """Takes ``<workdir>/run.lock`` (taking over a stale one); returns its path.

  Raises:
    WorkdirLockedError: a live run holds it.
  """
  path = Path(workdir) / LOCK_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  while not _create(path):
    holder = _read_holder(path)
    if holder is None:  # removed, or being written right now: look again
      time.sleep(0.1)
      holder = _read_holder(path)
    if holder is not None and not _is_stale(holder):
      raise WorkdirLockedError(
          f"--workdir={workdir} is in use by another training run ({_describe(holder)}; "
          f"{path}). Wait for it to end or stop it; use another --workdir for a second run. "
          f"Remove {path} only if that run is gone.")
    stale = path.with_name(f"{LOCK_FILE}.stale.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
      os.replace(path, stale)
      stale.unlink()
  return path


def _heartbeat(path: Path, stop: threading.Event) -> None:
  while not stop.wait(HEARTBEAT_SECONDS):
    with contextlib.suppress(OSError):
      os.utime(path)


@contextlib.contextmanager
def held(workdir: str | Path) -> Iterator[Path]:
  """Holds the workdir's lock (see the module docstring) for the ``with`` block."""
  path = acquire(workdir)
  stop = threading.Event()
  beat = threading.Thread(target=_heartbeat, args=(path, stop), daemon=True,
                          name="workdir-lock-heartbeat")
  beat.start()
  try:
    yield path
  finally:
    stop.set()
    holder = _read_holder(path)
    if holder is not None and holder.get("pid") == os.getpid() and (
        holder.get("host") == socket.gethostname()):
      path.unlink(missing_ok=True)
