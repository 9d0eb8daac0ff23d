"""The workdir lock: refused while its holder lives, taken over once it is provably gone."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pfml_jax.training import workdir_lock

REPO = Path(__file__).resolve().parents[2]


def write_lock(workdir, pid: int, host: str, age_seconds: float = 0.0):
  path = workdir / workdir_lock.LOCK_FILE
  since = time.time() - age_seconds
  path.write_text(json.dumps({"pid": pid, "host": host, "since": since}))
  os.utime(path, (since, since))
  return path


def dead_pid() -> int:
  child = subprocess.Popen([sys.executable, "-c", ""])
  child.wait()
  return child.pid


def test_held_refuses_another_process_and_releases(tmp_path):
  second = [sys.executable, "-c", "import sys; from pfml_jax.training import workdir_lock; "
            "workdir_lock.acquire(sys.argv[1])", str(tmp_path)]
  with workdir_lock.held(tmp_path) as path:
    assert json.loads(path.read_text())["pid"] == os.getpid()
    refused = subprocess.run(second, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert refused.returncode != 0
  assert f"in use by another training run (pid {os.getpid()} on host" in refused.stderr
  assert not path.exists()


def test_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
  write_lock(tmp_path, dead_pid(), socket.gethostname())
  path = workdir_lock.acquire(tmp_path)
  assert json.loads(path.read_text())["pid"] == os.getpid()


def test_other_host_lock_is_stale_only_without_a_recent_heartbeat(tmp_path):
  write_lock(tmp_path, 1, "another-host", age_seconds=workdir_lock.STALE_SECONDS / 2)
  with pytest.raises(workdir_lock.WorkdirLockedError, match="pid 1 on host another-host"):
    workdir_lock.acquire(tmp_path)
  write_lock(tmp_path, 1, "another-host", age_seconds=workdir_lock.STALE_SECONDS + 60)
  path = workdir_lock.acquire(tmp_path)
  assert json.loads(path.read_text())["host"] == socket.gethostname()


def test_empty_lock_file_is_taken_over(tmp_path):
  (tmp_path / workdir_lock.LOCK_FILE).write_text("")
  assert json.loads(workdir_lock.acquire(tmp_path).read_text())["pid"] == os.getpid()
