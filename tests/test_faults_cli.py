"""Faults and mistakes through the real command line (docs/faults.md): each gives one
``error:`` line (exit 2 for input, 1 for a fault of the run), or saves and says how to resume.

The runs use the tiny ViT config of tests/training/test_trainer.py on a 12-class colour image
folder; the slow cases share one interrupted run (``interrupted_run``).
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pfml_jax.training import workdir_lock
from tests.colour_images import write_colour_classes

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600


def environment() -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1 "
                       "--xla_backend_optimization_level=0")
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  return env


def command(config: Path | str, workdir: Path, *flags: str) -> list[str]:
  return [sys.executable, "-m", "pfml_jax.main", f"--config={config}", f"--workdir={workdir}",
          *flags]


def run(*args, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run(command(*args, **kwargs), env=environment(), cwd=REPO,
                        capture_output=True, text=True, timeout=TIMEOUT)


def start(*args) -> subprocess.Popen:
  return subprocess.Popen(command(*args), env=environment(), cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def one_error_line(stderr: str, status: int) -> str:
  """The single ``error:`` line, asserted to be the output's last line, with no traceback."""
  lines = [line for line in stderr.splitlines() if line.strip()]
  errors = [line for line in lines if line.startswith("error:")]
  assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  return errors[0]


def wait_for(condition, process: subprocess.Popen, seconds: float = 300) -> None:
  deadline = time.time() + seconds
  while not condition():
    assert process.poll() is None, process.communicate()[0][-3000:]
    assert time.time() < deadline, "timed out"
    time.sleep(0.05)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
  return write_colour_classes(tmp_path_factory.mktemp("images"))


def write_config(path: Path, root: Path, **overrides) -> Path:
  path.write_text(
      "from tests.tiny_run import tiny_config\n\n\n"
      f"def get_config():\n  return tiny_config({str(root)!r}, **{overrides!r})\n")
  return path


@pytest.fixture(scope="module")
def config_file(image_folder, tmp_path_factory) -> Path:
  return write_config(tmp_path_factory.mktemp("configs") / "tiny.py", image_folder)


@pytest.mark.parametrize("flags, expected", [
    (("--config.steps=-5",), "config.steps: must be >= 0"),
    (("--config.data.classes_per_batch=6",),
     "config.data.classes_per_batch: 6 classes per batch, but the training split has 4"),
])
def test_bad_value_for_the_data(config_file, tmp_path, flags, expected):
  result = run(config_file, tmp_path, *flags)
  assert result.returncode == 2
  assert expected in one_error_line(result.stderr, 2)


def test_demo_config_on_a_twelve_class_image_folder(image_folder, tmp_path):
  """The demo recipe holds out 20 validation classes: the folder's 6 training ones are fewer."""
  result = run("configs/demo.py", tmp_path, "--config.data.name=image_folder",
               f"--config.data.root={image_folder}")
  assert result.returncode == 2
  error = one_error_line(result.stderr, 2)
  assert "config.data.val_classes=20" in error and "6 training classes" in error


def test_missing_config_file_with_overrides(tmp_path):
  result = run("configs/no_such.py", tmp_path, "--config.steps=3", "--config.optim.clip=True")
  assert result.returncode == 2
  assert "--config=configs/no_such.py: no such file" in one_error_line(result.stderr, 2)


def test_diverging_run_is_one_line(config_file, tmp_path):
  result = run(config_file, tmp_path, "--config.optim.learning_rate=1e38",
               "--config.optim.warmup_epochs=0")
  assert result.returncode == 1
  assert "not finite" in one_error_line(result.stderr, 1)
  assert "NonFiniteLossError" in (tmp_path / "logs" / "main.process0.log").read_text()


@pytest.fixture(scope="module")
def interrupted_run(config_file, tmp_path_factory):
  """A run refused a second run on its workdir, then got Ctrl-C in the middle of its steps:
  (workdir, output, exit status, the second run's result)."""
  workdir = tmp_path_factory.mktemp("interrupted")
  process = start(config_file, workdir, "--config.steps=400", "--config.log_every_steps=1",
                  "--config.checkpoint.every_steps=100")
  try:
    metrics = workdir / "metrics.jsonl"
    wait_for(metrics.exists, process)
    second = run(config_file, workdir)
    wait_for(lambda: len(metrics.read_text().splitlines()) >= 3, process)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=TIMEOUT)[0]
  finally:
    if process.poll() is None:
      process.kill()
  return workdir, output, process.returncode, second


def test_second_run_on_a_workdir_is_refused(interrupted_run):
  workdir, _, _, second = interrupted_run
  assert second.returncode == 2
  error = one_error_line(second.stderr, 2)
  assert "in use by another training run" in error and "pid" in error
  assert not (workdir / workdir_lock.LOCK_FILE).exists()  # released by the interrupted run


def test_ctrl_c_saves_and_prints_the_resume_command(interrupted_run):
  workdir, output, status, _ = interrupted_run
  assert status == 130, output[-3000:]
  assert "Traceback" not in output, output[-3000:]
  latest = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert 3 <= latest < 400, output[-3000:]
  assert f"Stopped at step {latest}; the checkpoint is saved" in output
  assert "python -m pfml_jax.main --config=" in output and f"--workdir={workdir}" in output


SECOND_CTRL_C = """
import os, signal, time
from pfml_jax.training import preemption
preemption.install_stop_handlers()
loop = preemption.Preemption()  # what the training loop holds
os.kill(os.getpid(), signal.SIGINT)
time.sleep(0.2)
print("requested:", loop.requested, loop.agreed(), flush=True)
os.kill(os.getpid(), signal.SIGINT)
time.sleep(30)
print("still running", flush=True)
"""


def test_second_ctrl_c_exits_at_once():
  """The first Ctrl-C in a loop asks it to save; the second exits at once, status 130."""
  result = subprocess.run([sys.executable, "-c", SECOND_CTRL_C], env=environment(), cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT)
  assert result.returncode == 130, result.stderr
  assert result.stdout == "requested: SIGINT True\n"
  assert result.stderr.strip().splitlines()[-1].startswith("SIGINT: exiting at once")


def test_ctrl_c_during_compilation_exits_at_once(config_file, tmp_path):
  """The set-up is written, the train step compiles: one line, status 130, no segfault; the
  lock left by the immediate exit is stale and taken over."""
  process = start(config_file, tmp_path, "--config.steps=200")
  try:
    wait_for((tmp_path / "run_info.json").exists, process)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=TIMEOUT)[0]
  finally:
    if process.poll() is None:
      process.kill()
  assert process.returncode == 130, output[-3000:]
  assert output.strip().splitlines()[-1].startswith("SIGINT: exiting at once"), output[-3000:]
  assert "Traceback" not in output
  assert workdir_lock.acquire(tmp_path) == tmp_path / workdir_lock.LOCK_FILE


def test_export_into_a_read_only_folder(interrupted_run, tmp_path):
  workdir = interrupted_run[0]
  with read_only_folder(tmp_path / "export") as folder:
    result = subprocess.run(
        [sys.executable, "-m", "pfml_jax.inference", "export", f"--workdir={workdir}",
         "--checkpoint=latest", f"--out={folder}"], env=environment(), cwd=REPO,
        capture_output=True, text=True, timeout=TIMEOUT)
  assert result.returncode == 2
  assert f"--out={folder}: cannot write the export there" in one_error_line(result.stderr, 2)


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
  """A tmpfs mounted at ``path`` with ``options`` (skips where mounting is not allowed)."""
  path.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                    capture_output=True, check=False).returncode:
    pytest.skip(f"cannot mount a tmpfs ({options}) here: needs root")
  try:
    yield path
  finally:
    subprocess.run(["umount", str(path)], check=False)


@contextlib.contextmanager
def read_only_folder(path: Path):
  """An existing folder nobody can write: permission bits, or (root ignores them) a
  read-only tmpfs."""
  if os.geteuid() == 0:
    with tmpfs(path, "ro,size=1m"):
      yield path
    return
  path.mkdir()
  path.chmod(0o555)
  try:
    yield path
  finally:
    path.chmod(0o755)


def small_disk(path: Path, size: str):
  """A tmpfs of ``size`` at ``path``."""
  return tmpfs(path, f"size={size}")


def test_disk_full_during_a_save_is_the_last_line(config_file, tmp_path):
  """Two checkpoints fit, the third does not: its one line is the output's last, and the
  library tracebacks of the failed save are in the log file only."""
  with small_disk(tmp_path / "disk", "5m") as disk:
    result = run(config_file, disk / "run", "--config.checkpoint.every_steps=1",
                 "--config.eval.every_epochs=10")
    log = (disk / "run" / "logs" / "main.process0.log").read_text()
    kept = sorted(p.name for p in (disk / "run" / "checkpoints").iterdir())
  assert result.returncode == 1, result.stderr[-3000:]
  error = one_error_line(result.stderr, 1)
  assert "no space left on the device" in error and "are intact" in error
  shown = [line for line in result.stderr.replace("\r", "\n").splitlines()
           if line.strip() and not line.startswith(("train:", "embedding:"))]
  assert len(shown) <= 15, result.stderr  # a library's records: one line each, no flood
  assert len(kept) >= 1 and all(name.isdigit() for name in kept)
  assert "Traceback" in log


def test_disk_full_at_start_is_one_line(config_file, tmp_path):
  with small_disk(tmp_path / "disk", "16k") as disk:
    with contextlib.suppress(OSError):
      with open(disk / "filler", "wb") as f:
        while True:
          f.write(b"\0" * 4096)
    result = run(config_file, disk / "run")
  assert result.returncode == 1
  assert "no space left on the disk of --workdir=" in one_error_line(result.stderr, 1)


def test_skip_corrupt_leaves_out_a_truncated_jpeg_and_never_writes_the_dataset(
    image_folder, tmp_path):
  """A JPEG cut in half passes the header check; without skip_corrupt it is named, with it
  the run trains without it. The image cache goes to the user cache folder, not the data."""
  data = tmp_path / "data"
  shutil.copytree(image_folder, data)
  broken = data / "class_00" / "0.jpg"
  broken.write_bytes(broken.read_bytes()[:len(broken.read_bytes()) // 2])
  before = sorted(p.relative_to(data) for p in data.rglob("*"))
  config = write_config(tmp_path / "config.py", data, steps=2, **{"eval.every_epochs": 10})
  refused = run(config, tmp_path / "refused")
  assert refused.returncode == 2
  error = one_error_line(refused.stderr, 2)
  assert str(broken) in error and "data.skip_corrupt=True" in error
  cache = Path(os.environ["XDG_CACHE_HOME"]) / "pfml_jax" / "image_cache"
  cached_before = set(cache.glob("*.npy")) if cache.exists() else set()
  finished = run(config, tmp_path / "skipped", "--config.data.skip_corrupt=True")
  assert finished.returncode == 0, finished.stderr[-3000:]
  assert "skipped 1 unreadable image(s)" in finished.stderr + (
      tmp_path / "skipped" / "logs" / "main.process0.log").read_text()
  assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
  assert set(cache.glob("*.npy")) - cached_before  # the cache was written there instead
