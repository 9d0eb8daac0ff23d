"""`study tune` through the command line on the tiny study setup: a 3-trial search that is
killed during its second trial and rerun finishes that trial with the same values and stops
at the budget; every objective is the run's validation Recall@1; the chosen setting is the
best trial and its command runs; bad input is one `error:` line with exit status 2."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest

from tests.study.tiny_study import REPO, study_cli, study_environment, write_tiny_setup

BUDGET = 3
FLAGS = ("--config.eval.protocol=validated", "--config.data.val_classes=4",
         "--config.eval.diagnostics=false", "--config.plots=false")


def stored_search(workdir) -> optuna.Study:
  """The search in ``workdir``'s journal, opened with optuna itself."""
  path = str(workdir / "optuna_journal.log")
  storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
      path, optuna.storages.journal.JournalFileOpenLock(path)))
  return optuna.load_study(study_name="tune", storage=storage)


def stored_trials(workdir):
  """{number: (state, params, value)} read straight from the search's journal."""
  return {t.number: (t.state.name, t.params, t.value)
          for t in stored_search(workdir).get_trials()}


def run_folder(workdir, number):
  (folder,) = (workdir / f"trial_{number:04d}").glob("*/seed_0")
  return folder


@pytest.fixture(scope="module")
def search(tmp_path_factory):
  """Starts a search, kills it once its second trial's run has started, reruns it twice."""
  base = tmp_path_factory.mktemp("tune")
  config = write_tiny_setup(base, classes=16)  # 8 training classes: 4 train, 4 validate
  workdir = base / "search"
  args = ["tune", f"--config={config}", "--loss=pfml", f"--trials={BUDGET}",
          f"--workdir={workdir}", "--sampler_seed=7", *FLAGS]
  process = subprocess.Popen([sys.executable, "-m", "pfml_jax.study", *args], cwd=REPO,
                             env=study_environment(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
  deadline = time.monotonic() + 300
  while not list((workdir / "trial_0001").glob("*/seed_0/study_run.log")):
    assert process.poll() is None and time.monotonic() < deadline, "trial 1 never started"
    time.sleep(0.1)
  os.killpg(process.pid, signal.SIGKILL)  # tune and its run, as a lost machine would
  process.wait()
  killed = stored_trials(workdir)
  first_summary = run_folder(workdir, 0) / "eval" / "summary.json"
  first_mtime = first_summary.stat().st_mtime_ns
  resumed = study_cli(*args, "--parallel=2")  # the interrupted trial beside a new one
  again = study_cli(*args)
  return dict(workdir=workdir, args=args, killed=killed, first_mtime=first_mtime,
              first_summary=first_summary, resumed=resumed, again=again,
              trials=stored_trials(workdir))


def test_a_killed_search_resumes_its_trial_and_stops_at_the_budget(search):
  killed, trials, workdir = search["killed"], search["trials"], search["workdir"]
  assert killed[0][0] == "COMPLETE" and killed[1][0] == "RUNNING" and len(killed) == 2
  assert search["resumed"].returncode == 0, search["resumed"].stdout + search["resumed"].stderr
  assert "finishing interrupted trials [1]" in search["resumed"].stdout
  for number in (1, 2):
    assert f"trial {number}: validation recall@1 = " in search["resumed"].stdout
  assert sorted(trials) == list(range(BUDGET))
  assert all(state == "COMPLETE" for state, _, _ in trials.values())
  assert trials[1][1] == killed[1][1]  # the interrupted trial kept its values
  assert search["first_summary"].stat().st_mtime_ns == search["first_mtime"]  # not rerun
  log = (run_folder(workdir, 1) / "study_run.log").read_text().splitlines()
  assert sum(line.startswith("# 20") for line in log) == 2  # one header per attempt
  assert len({json.dumps(params, sort_keys=True) for _, params, _ in trials.values()}) == BUDGET


def test_a_rerun_after_the_budget_runs_nothing(search):
  again, workdir = search["again"], search["workdir"]
  assert again.returncode == 0, again.stdout + again.stderr
  assert "trial " not in again.stdout.split("tune pfml:")[0]  # no trial ran
  assert search["trials"] == stored_trials(workdir)
  rows = (workdir / "trials.csv").read_text().splitlines()
  assert len(rows) == 1 + BUDGET and rows[0].startswith("trial,state,recall@1,")


def test_objective_is_the_validation_metric_and_the_best_is_chosen(search):
  workdir, trials = search["workdir"], search["trials"]
  for number, (_, params, value) in trials.items():
    folder = run_folder(workdir, number)
    summary = json.loads((folder / "eval" / "summary.json").read_text())
    assert summary["protocol"] == "validated"
    assert value == pytest.approx(100 * summary["val"]["recall@1"], abs=1e-9)
    trained = json.loads((folder / "run_info.json").read_text())["config"]
    assert trained["optim"]["learning_rate"] == pytest.approx(params["learning_rate"])
    assert trained["optim"]["schedule"] == params["schedule"]
    assert trained["loss"]["pfml"]["delta_att"] == trained["loss"]["pfml"]["delta_rep"]
    assert trained["loss"]["pfml"]["delta_att"] == pytest.approx(params["delta"])
    assert trained["loss"]["pfml"]["proxies_per_class"] == params["proxies_per_class"]
  chosen = json.loads((workdir / "chosen.json").read_text())
  best = max(trials, key=lambda n: (trials[n][2], -n))
  assert chosen["trial"] == best and chosen["value"] == trials[best][2]
  assert chosen["trials"] == BUDGET and chosen["complete"] == BUDGET and chosen["failed"] == 0
  assert chosen["sampler"] == "TPE" and chosen["sampler_seed"] == 7
  assert chosen["overrides"]["loss.pfml.delta_att"] == trials[best][1]["delta"]
  assert chosen["overrides"]["optim.learning_rate"] == trials[best][1]["learning_rate"]
  command = shlex.split(chosen["command"])
  assert command[:4] == ["python", "-m", "pfml_jax.study", "run"]
  assert "--seeds=0,1,2,3,4" in command and "--config.eval.protocol=validated" in command


def test_the_chosen_command_makes_five_runs_of_the_chosen_setting(search, tmp_path):
  chosen = json.loads((search["workdir"] / "chosen.json").read_text())
  command = shlex.split(chosen["command"])[4:]
  emitted = study_cli("emit", "--emit=commands", *command)
  assert emitted.returncode == 0, emitted.stderr
  lines = emitted.stdout.splitlines()
  assert len(lines) == 5 and all("--config.seed=" in line for line in lines)
  rate = f"--config.optim.learning_rate={chosen['overrides']['optim.learning_rate']}"
  assert all(rate in shlex.split(line) for line in lines)


@pytest.mark.parametrize("flags, message", [
    (("--loss=arcface", "--trials=2", *FLAGS), "--loss=arcface: no search space"),
    (("--loss=pfml", "--trials=2"), "has no validation classes"),
    (("--loss=pfml", "--trials=0", *FLAGS), "--trials must be >= 1"),
])
def test_bad_input_is_one_error_line(search, flags, message):
  config = search["args"][1]
  result = study_cli("tune", config, f"--workdir={search['workdir'].parent / 'other'}", *flags)
  assert result.returncode == 2, result.stderr
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith("error: ") and message in line


def test_another_budget_on_the_same_workdir_is_an_error(search):
  args = [a if not a.startswith("--trials=") else f"--trials={BUDGET + 1}"
          for a in search["args"]]
  result = study_cli(*args)
  assert result.returncode == 2
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith("error: ") and "trials=3" in line


def test_a_trial_killed_while_its_values_were_drawn_is_void(search, tmp_path):
  """A trial stored with only some of its values (a kill inside the draw) never ran: the
  rerun marks it void, outside the budget, and trains nothing more."""
  workdir = tmp_path / "copy"
  shutil.copytree(search["workdir"], workdir)
  stored_search(workdir).ask().suggest_float("learning_rate", 1e-5, 1e-3, log=True)
  args = [a if not a.startswith("--workdir=") else f"--workdir={workdir}"
          for a in search["args"]]
  result = study_cli(*args)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "trial " not in result.stdout.split("tune pfml:")[0]  # no trial ran
  assert stored_trials(workdir)[BUDGET][0] == "FAIL"
  rows = (workdir / "trials.csv").read_text().splitlines()
  assert rows[-1].startswith(f"{BUDGET},void,")
  chosen = json.loads((workdir / "chosen.json").read_text())
  assert chosen["complete"] == BUDGET and chosen["failed"] == 0
