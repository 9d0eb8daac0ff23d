"""The SLURM job array and the command list: one entry per run, each the run's command."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pfml_jax.study.__main__ import main
from pfml_jax.study.commands import Site
from pfml_jax.study.emit import command_lines, slurm_script
from pfml_jax.study.studies import named_study

REPO = Path(__file__).resolve().parents[2]


def study_cli(capsys, *args) -> tuple[int, str, str]:
  """``python -m pfml_jax.study ARGS`` in this process: (exit status, stdout, stderr)."""
  try:
    status = main(list(args))
  except SystemExit as exit_:
    status = exit_.code
  out, err = capsys.readouterr()
  return status, out, err


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
  monkeypatch.chdir(REPO)


def test_slurm_array_has_one_task_per_run_running_its_command(tmp_path):
  study = named_study("alpha", seeds=[0, 1])
  site = Site("/data", "/weights", ("--config.checkpoint.keep=1",))
  script = tmp_path / "alpha.sbatch"
  script.write_text(slurm_script(study, "/shared/alpha", site))
  runs = study.runs()
  assert f"#SBATCH --array=0-{len(runs) - 1}\n" in script.read_text()
  assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
  # Execute tasks with a stand-in srun that prints what it would run.
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
  (bin_dir / "srun").chmod(0o755)
  venv = tmp_path / "venv"
  (venv / "bin").mkdir(parents=True)
  (venv / "bin" / "activate").write_text("")
  lines = command_lines(study, "/shared/alpha", site)
  assert len(lines) == len(runs)
  for task in (0, 5, len(runs) - 1):
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", VENV=str(venv),
               SLURM_ARRAY_TASK_ID=str(task), SLURM_SUBMIT_DIR=str(tmp_path))
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert printed[:3] == ["--kill-on-bad-exit=1", "python", "-m"]
    assert printed[1:] == shlex.split(lines[task])  # the same pfml_jax.main command
  run = runs[5]
  assert shlex.split(lines[5]) == [
      "python", "-m", "pfml_jax.main", "--config=configs/cars_resnet50.py",
      "--config.loss.pfml.alpha=3", f"--workdir=/shared/alpha/{run.folder}",
      f"--config.seed={run.seed}", "--config.data.root=/data/cars196",
      "--config.model.pretrained=/weights/resnet50.safetensors", "--config.checkpoint.keep=1"]
  # A finished run's task exits without starting it.
  finished = tmp_path / "done"
  (finished / "eval").mkdir(parents=True)
  (finished / "eval" / "summary.json").write_text("{}")
  script.write_text(slurm_script(study, str(tmp_path / "x"), site).replace(
      f"workdir={tmp_path / 'x' / runs[0].folder}", f"workdir={finished}", 1))
  result = subprocess.run(["bash", str(script)], env=dict(env, SLURM_ARRAY_TASK_ID="0"),
                          capture_output=True, text=True)
  assert result.returncode == 0 and "nothing to do" in result.stdout
  assert "--kill-on-bad-exit" not in result.stdout


def test_command_list_from_the_cli_parses_and_covers_every_run(tmp_path, capsys):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run(
      [sys.executable, "-m", "pfml_jax.study", "emit", "label_noise", "--emit=commands",
       "--workdir=runs/noise", "--data_root=/data", "--weights_dir=weights", "--seeds=0,1"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  study = named_study("label_noise", seeds=[0, 1])
  assert len(lines) == len(study.runs())
  for line, run in zip(lines, study.runs()):
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "pfml_jax.main"]
    assert f"--workdir=runs/noise/{run.folder}" in argv
    assert f"--config.seed={run.seed}" in argv
    assert f"--config={run.cell.config}" in argv
    dataset = "CUB_200_2011" if run.cell.stem.startswith("cub") else "cars196"
    assert f"--config.data.root=/data/{dataset}" in argv
  status, out, _ = study_cli(capsys, "emit", "table1", "--emit=commands", "--workdir=gs://b/t1",
                             "--seeds=0", "--launcher=tpu_vm")
  assert status == 0 and shlex.split(out.splitlines()[0]) == [
      "launch/tpu_vm.sh", "configs/cub_resnet50.py", "gs://b/t1/cub_resnet50/seed_0",
      "--config.seed=0"]
  script = tmp_path / "t1.sbatch"
  status, _, err = study_cli(capsys, "emit", "table1", "--emit=slurm", "--workdir=/w",
                             f"--out={script}", "--parallel=4")
  assert status == 0, err
  assert "#SBATCH --array=0-35%4\n" in script.read_text()  # 12 cells x 3 seeds


def test_bad_input_is_one_error_line(tmp_path, capsys):
  cases = [
      (["emit", "--config=configs/demo.py", "--sweep=loss.pfml.alpha=1", "--emit=commands",
        "--workdir=w", "--weights_dir=weights"], "--weights_dir"),
      (["emit", "nope", "--emit=commands", "--workdir=w"], "Unknown study 'nope'"),
      (["emit", "--config=configs/no_such.py", "--sweep=seed=1", "--emit=commands",
        "--workdir=w"], "no such file"),
      (["emit", "--config=configs/demo.py", "--sweep=loss.pfml.alpha", "--emit=commands",
        "--workdir=w"], "FIELD=V1,V2"),
      (["aggregate", f"--workdir={tmp_path}"], "no study.json"),
      (["run", "alpha", "--workdir=w", "--parallel=0"], "--parallel"),
      (["emit", "alpha", "--emit=commands", "--workdir=w", "--bogus=1"], "--bogus"),
      # A mistyped field, swept or set for every run: one error before any run starts.
      (["run", "--config=configs/demo.py", "--config.optim.lr=1", "--workdir=w"],
       "config has no field 'optim.lr'; did you mean: optim.learning_rate"),
      (["emit", "--config=configs/demo.py", "--sweep=loss.pfml.alhpa=1,2", "--emit=commands",
        "--workdir=w"], "config has no field 'loss.pfml.alhpa'"),
  ]
  for args, expected in cases:
    status, _, err = study_cli(capsys, *args)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert status == 2 and len(errors) == 1 and expected in errors[0], err


def test_the_documented_emit_prints_one_command_per_table1_config(capsys):
  """docs/studies.md's command for Table 1's rows prints one training command per paper config."""
  command = "python -m pfml_jax.study emit table1 --emit=commands --seeds=0"
  lines = (REPO / "docs" / "studies.md").read_text().splitlines()
  documented = next(line.strip() for line in lines if line.strip().startswith(command))
  status, out, _ = study_cli(capsys, *shlex.split(documented)[3:])
  assert status in (0, None)
  configs = sorted(path.name for path in (REPO / "configs").glob("[a-z]*_*.py"))
  printed = sorted(shlex.split(line)[3].removeprefix("--config=configs/")
                   for line in out.splitlines())
  assert printed == configs
