"""Every entry point speaks absl flags the same way: ``--help`` lists its flags and exits 0; an
unknown flag is one ``error:`` line and exit status 2."""

import importlib
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# (module, the arguments before the flags): each module's main(argv), in this process.
IN_PROCESS = [
    ("pfml_jax.study.__main__", ["run"]), ("pfml_jax.study.__main__", ["tune"]),
    ("pfml_jax.inference.__main__", ["embed"]), ("pfml_jax.inference.__main__", ["export"]),
    ("pfml_jax.viz.__main__", ["field"]), ("pfml_jax.viz.__main__", ["plots"]),
    ("pfml_jax.analysis.force_report", []), ("pfml_jax.evaluation.evaluate_saved", []),
    ("pfml_jax.models.export_weights", []), ("tools.build_demo_set", []),
    ("tools.build_pretrain_set", []), ("tools.pretrain_backbone", []),
    ("tools.forces_table", []), ("tools.diagnostics_table", []),
    ("tools.effects_table", []), ("tools.noise_curve", []), ("tools.strongest_losses", []),
    ("tools.tuning_table", []),
]
# app.run entry points (global absl flags), as a user runs them.
SUBPROCESS = ["pfml_jax.main", "pfml_jax.aot"]


def _run_main(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
  try:
    importlib.import_module(module).main(argv)
    status = 0
  except SystemExit as exit_:
    status = exit_.code or 0
  out, err = capsys.readouterr()
  return status, out, err


@pytest.mark.parametrize("module,command", IN_PROCESS, ids=lambda v: str(v))
def test_help_and_an_unknown_flag(module, command, capsys):
  status, out, _ = _run_main(module, [*command, "--help"], capsys)
  assert status == 0 and "flags:" in out, out
  status, _, err = _run_main(module, [*command, "--no_such_flag=1"], capsys)
  assert status == 2
  assert err.strip().splitlines() == ["error: unknown flag --no_such_flag (--help lists the "
                                      "flags)"], err


@pytest.mark.parametrize("module", ["pfml_jax.study.__main__", "pfml_jax.inference.__main__",
                                    "pfml_jax.viz.__main__"])
def test_commands_are_listed_and_an_unknown_one_named(module, capsys):
  status, out, _ = _run_main(module, ["--help"], capsys)
  assert status == 0 and "commands:" in out
  status, _, err = _run_main(module, ["nope"], capsys)
  assert status == 2 and err.startswith("error: name a command: ") and "'nope'" in err


@pytest.mark.parametrize("module", SUBPROCESS)
def test_app_entry_points_help_and_unknown_flag(module):
  def run(*args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={"PATH": "", "JAX_PLATFORMS": "cpu"})
  shown = run("--help")
  assert shown.returncode == 0 and "--config" in shown.stdout, shown.stderr
  refused = run("--no_such_flag=1", "--config=configs/demo.py", "--workdir=/nonexistent/w",
                *(["--topology=v5e-8"] if module == "pfml_jax.aot" else []))
  assert refused.returncode == 2
  assert refused.stderr.strip().splitlines()[-1] == ("error: unknown flag --no_such_flag "
                                                     "(--help lists the flags)"), refused.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "benchmarks").glob("*.py")))
def test_benchmark_scripts_help_and_unknown_flag(script, monkeypatch, capsys):
  module = runpy.run_path(str(REPO / "benchmarks" / script), run_name="benchmark")
  for argv, status in (["--help"], 0), (["--no_such_flag=1"], 2):
    monkeypatch.setattr(sys, "argv", [script, *argv])
    with pytest.raises(SystemExit) as exit_info:
      module["main"]()
    assert (exit_info.value.code or 0) == status
  out, err = capsys.readouterr()
  assert "flags:" in out and err.strip() == ("error: unknown flag --no_such_flag (--help lists "
                                             "the flags)")
