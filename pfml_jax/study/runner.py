"""Runs a study's runs on this machine, one by one or N at a time, as ``pfml_jax.main``
subprocesses started in the current folder (relative data and weights paths mean the same as
for ``pfml_jax.main``).

A run whose ``eval/summary.json`` exists is finished and skipped; any other is started with
its usual command, which resumes a partial run from its last checkpoint. Each run's output is
appended to ``<run>/study_run.log``; a failed run is reported and the others go on.
"""

import concurrent.futures
import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from pfml_jax.config_files import config_file
from pfml_jax.study import manifest as manifest_lib
from pfml_jax.study.commands import Site, main_command
from pfml_jax.study.grid import Run, Study

_CONFIG_FLAG = "--config="
SUMMARY = Path("eval") / "summary.json"
RUN_LOG = "study_run.log"


@dataclasses.dataclass(frozen=True)
class RunReport:
  """What happened to one run: ``skipped`` (already finished), ``finished``, ``stopped``
  (exited cleanly before the end, e.g. on SIGTERM) or ``failed`` (non-zero exit)."""
  folder: str
  status: str
  returncode: int | None = None
  seconds: float = 0.0
  resumed: bool = False  # it started from an earlier run's checkpoints


def is_finished(run_dir: Path) -> bool:
  return (run_dir / SUMMARY).exists()


def has_checkpoints(run_dir: Path) -> bool:
  folder = run_dir / "checkpoints"
  return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def local_config(config: str) -> str:
  """``config`` with its file made absolute: as given from here, else the installed copy of
  ``configs/...`` (``config_files.config_file``)."""
  file, sep, recipe = config_file(config).partition(":")
  return str(Path(file).resolve()) + sep + recipe


def local_command(command: list[str]) -> list[str]:
  """``command`` with an absolute ``--config`` file, so runs find it from any folder."""
  return [_CONFIG_FLAG + local_config(a[len(_CONFIG_FLAG):]) if a.startswith(_CONFIG_FLAG)
          else a for a in command]


def child_environment(parallel: int, base: dict[str, str] | None = None) -> dict[str, str]:
  """The runs' environment: this process's (the same pfml_jax), and with N > 1 runs at a time
  no preallocation of 75 % of each GPU's memory per process [our choice: otherwise the second
  run on a GPU cannot start]."""
  env = dict(os.environ if base is None else base)
  if parallel > 1:
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  return env


def run_study(study: Study, workdir: str | Path, site: Site = Site(), parallel: int = 1,
              env: dict[str, str] | None = None,
              echo: Callable[[str], None] = print) -> list[RunReport]:
  """Runs every unfinished run of ``study`` below ``workdir``; returns a report per run."""
  workdir = Path(workdir).resolve()
  records = manifest_lib.check_same_study(workdir, study)
  runs = study.runs()
  # Built first: a bad site fails before any run starts.
  commands = {run.folder: local_command(main_command(run, workdir, site, python=sys.executable))
              for run in runs}
  manifest_lib.write_manifest(workdir, study, site, records)
  env = child_environment(parallel, env)
  lock = threading.Lock()
  done = []

  def record(report: RunReport) -> RunReport:
    with lock:
      entry = {"status": report.status, "command": commands[report.folder],
               "log": str(Path(report.folder) / RUN_LOG)}
      if report.status != "skipped":  # a skipped run keeps the record of the attempt that ran
        entry.update(returncode=report.returncode, seconds=round(report.seconds, 1),
                     resumed=report.resumed)
      records[report.folder] = {**records.get(report.folder, {}), **entry}
      manifest_lib.write_manifest(workdir, study, site, records)
      done.append(report)
      detail = "" if report.status == "skipped" else f" in {report.seconds:.0f} s"
      if report.returncode:
        detail += f" (exit {report.returncode}; log: {workdir / report.folder / RUN_LOG})"
      echo(f"[{len(done)}/{len(runs)}] {report.folder}: {report.status}{detail}")
    return report

  def execute(run: Run) -> RunReport:
    run_dir = workdir / run.folder
    if is_finished(run_dir):
      return record(RunReport(run.folder, "skipped"))
    resumed = has_checkpoints(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(run_dir / RUN_LOG, "a") as log:
      log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(commands[run.folder])}\n")
      log.flush()
      returncode = subprocess.run(commands[run.folder], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, check=False).returncode
    status = "failed" if returncode else ("finished" if is_finished(run_dir) else "stopped")
    return record(RunReport(run.folder, status, returncode, time.perf_counter() - start,
                            resumed))

  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
    reports = list(pool.map(execute, runs))
  return reports
