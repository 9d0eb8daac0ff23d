"""``study tune``: one loss's hyperparameters chosen on the validation classes, on a budget.

A search is an Optuna study (TPE sampler) stored in ``<workdir>/optuna_journal.log``. Each
trial is an ordinary run of the study runner, the one-run study ``<workdir>/trial_<n>/``
(the same folder layout, skip and resume as ``study run``), and its objective is the run's
``eval.selection_metric`` on the validation classes (``eval.protocol="validated"``; test is
never read). The trial count is the budget: trials already stored count, failed runs too (a
setting that diverges is a spent trial), and a rerun after a kill finishes the interrupted
trials (same values, their runs resume from their checkpoints) before asking new ones; a
trial killed before all its values were drawn never ran and is void (outside the budget).

Storage: Optuna's JournalStorage with a file backend and its ``open()``-based lock, our
choice over SQLite: the journal is an append-only log whose lock works where ``fcntl`` does
not (network file systems), and SQLite's database-wide write lock is what Optuna's docs warn
about for concurrent writers. The ``--parallel`` workers are threads of one process (each runs
its trial as a subprocess), and one ``tune`` at a time may work on a workdir
(``tune.lock``), so every trial left RUNNING when ``tune`` starts is an interrupted one.

The sampler of trial n is a TPE sampler seeded from (sampler seed, n), so a search that is
interrupted and resumed asks for the same settings as one that was not (with ``--parallel=1``;
with more, the settings depend on which trials had finished when each was asked).
"""

import concurrent.futures
import contextlib
import csv
import dataclasses
import fcntl
import json
import shlex
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import optuna
from absl import flags
from ml_collections import config_flags

from pfml_jax.study.aggregate import run_results
from pfml_jax.study.commands import Site
from pfml_jax.study.grid import Cell, Study, Value, format_value
from pfml_jax.study.runner import SUMMARY, child_environment, local_config, run_study
from pfml_jax.study.search_space import Dimension, overrides, search_space
from pfml_jax.user_errors import UserInputError

JOURNAL = "optuna_journal.log"
LOCK = "tune.lock"
CHOSEN = "chosen.json"
TRIALS = "trials.csv"
STUDY_NAME = "tune"
VOID = "void_trials"  # the search's record of trials that never ran (Search.void_trials)
# The seeds the chosen setting runs with [issue 20: at least 5 seeds, evaluated once on test].
CHOSEN_SEEDS = (0, 1, 2, 3, 4)


@dataclasses.dataclass(frozen=True)
class TuneSpec:
  """What a search is; stored with it, so that a rerun cannot change it.

  Attributes:
    loss: the loss tuned (``loss.name`` of every trial).
    config: ``FILE[:RECIPE]``, the setup every trial shares.
    trials: the budget, trials in all.
    sampler_seed: seeds the TPE sampler.
    seed: ``config.seed`` of every trial [our choice: the budget buys settings, not seeds;
      the chosen setting then runs at CHOSEN_SEEDS].
  """
  loss: str
  config: str
  trials: int
  sampler_seed: int = 0
  seed: int = 0

  def record(self, site: Site) -> dict[str, Value | list[str]]:
    return {**dataclasses.asdict(self), "data_root": site.data_root,
            "weights_dir": site.weights_dir, "extra": list(site.extra)}


def resolved_config(config: str, extra: tuple[str, ...]):
  """The config a run of ``--config=config`` with the ``extra`` flags trains with."""
  argv = ["tune", f"--config={local_config(config)}", *extra]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                  sys_argv=argv)
  try:
    values(argv)
    return values.config
  except Exception as error:  # pylint: disable=broad-except
    raise UserInputError(f"--config={config}: cannot load it with the given --config.* flags "
                         f"({error}).") from error


def checked_setup(spec: TuneSpec, site: Site):
  """The config every trial starts from; an error for a spec that cannot be tuned fairly."""
  if spec.trials < 1:
    raise UserInputError(f"--trials must be >= 1, got {spec.trials}.")
  config = resolved_config(spec.config, (f"--config.loss.name={spec.loss}", *site.extra))
  search_space(spec.loss, config.optim.learning_rate)  # an unknown loss fails here
  if config.eval.protocol != "validated":
    raise UserInputError(
        f"--config={spec.config} runs eval.protocol={config.eval.protocol!r}, which has no "
        "validation classes to choose on: add --config.eval.protocol=validated.")
  return config


@contextlib.contextmanager
def exclusive(workdir: Path) -> Iterator[None]:
  """Holds ``<workdir>/tune.lock`` (released by the system if the process dies)."""
  workdir.mkdir(parents=True, exist_ok=True)
  with open(workdir / LOCK, "w") as handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
      raise UserInputError(f"another `study tune` is working on --workdir={workdir} "
                           f"({LOCK}); wait for it to end.") from error
    yield


def open_search(spec: TuneSpec, site: Site, workdir: Path) -> optuna.Study:
  """The stored search of ``workdir`` (created on first use); an error if it is another."""
  path = str(workdir / JOURNAL)
  storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
      path, optuna.storages.journal.JournalFileOpenLock(path)))
  search = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction="maximize",
                               load_if_exists=True)
  stored, record = search.user_attrs.get("spec"), spec.record(site)
  if stored is None:
    search.set_user_attr("spec", record)
  elif stored != record:
    changed = sorted(k for k in record if stored.get(k) != record[k])
    raise UserInputError(
        f"--workdir={workdir} holds a search with other settings ({', '.join(changed)}: "
        f"{', '.join(f'{k}={stored.get(k)!r}' for k in changed)}); rerun it as it was "
        "started, or give this search its own workdir.")
  return search


def trial_study(spec: TuneSpec, space: tuple[Dimension, ...], number: int,
                params: dict[str, Value]) -> Study:
  """Trial ``number`` as a one-run study."""
  cell = Cell(spec.config, (("loss.name", spec.loss),) + overrides(space, params))
  return Study(f"tune_{spec.loss}_trial_{number:04d}", (cell,), (spec.seed,),
               f"study tune {spec.loss}: trial {number}")


def trial_folder(workdir: Path, number: int) -> Path:
  return workdir / f"trial_{number:04d}"


def validation_value(run_dir: Path, metric: str) -> float:
  """The run's ``metric`` on the validation classes, in percent."""
  protocol, results = run_results(json.loads((run_dir / SUMMARY).read_text()))
  if protocol != "validated":
    raise UserInputError(f"{run_dir / SUMMARY} is a {protocol!r} run: it has no validation "
                         "result to tune on.")
  return results["validation"][metric]


class Search:
  """Runs a search's trials until its budget is spent (see the module docstring)."""

  def __init__(self, spec: TuneSpec, site: Site, workdir: Path, setup,
               echo: Callable[[str], None]):
    self.spec, self.site, self.workdir, self.echo = spec, site, workdir, echo
    self.metric = setup.eval.selection_metric
    self.space = search_space(spec.loss, setup.optim.learning_rate)
    self.search = open_search(spec, site, workdir)
    self.lock = threading.Lock()
    self.stopped = False
    running = [t for t in self.search.get_trials(deepcopy=False)
               if t.state == optuna.trial.TrialState.RUNNING]
    names = {d.name for d in self.space}
    self.interrupted = [t for t in running if set(t.params) == names]
    for trial in running:
      if set(trial.params) != names:  # killed while its values were drawn: no run, no trial
        self.search.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        self.search.set_user_attr(VOID, self.void_trials() + [trial.number])

  def void_trials(self) -> list[int]:
    """Trials a kill interrupted before their values were all drawn (not in the budget)."""
    return list(self.search.user_attrs.get(VOID, []))

  def spent(self) -> int:
    """Trials the budget has paid for: every stored trial but the void ones."""
    return len(self.search.get_trials(deepcopy=False)) - len(self.void_trials())

  def next_trial(self) -> tuple[int, dict[str, Value]] | None:
    """An interrupted trial to finish, else a new one while the budget lasts."""
    with self.lock:
      if self.interrupted:
        trial = self.interrupted.pop(0)
        return trial.number, dict(trial.params)
      if self.stopped or self.spent() >= self.spec.trials:
        return None
      number = len(self.search.get_trials(deepcopy=False))
      seed = int(np.random.SeedSequence([self.spec.sampler_seed, number]).generate_state(1)[0])
      self.search.sampler = optuna.samplers.TPESampler(seed=seed)
      trial = self.search.ask()
      return trial.number, {d.name: d.suggest(trial) for d in self.space}

  def run_trial(self, number: int, params: dict[str, Value], env: dict[str, str]) -> None:
    folder = trial_folder(self.workdir, number)
    study = trial_study(self.spec, self.space, number, params)
    (report,) = run_study(study, folder, self.site, env=env,
                          echo=lambda line: self.echo(f"trial {number}: {line}"))
    with self.lock:
      if report.status in ("finished", "skipped"):
        value = validation_value(folder / study.runs()[0].folder, self.metric)
        self.search.tell(number, value)
        self.echo(f"trial {number}: validation {self.metric} = {value:.2f}")
      elif report.status == "failed":
        self.search.tell(number, state=optuna.trial.TrialState.FAIL)
      else:  # stopped: left running, a rerun finishes it; ask no more
        self.stopped = True

  def run(self, parallel: int) -> None:
    env = child_environment(parallel)

    def worker() -> None:
      while (job := self.next_trial()) is not None:
        self.run_trial(*job, env)

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
      for future in [pool.submit(worker) for _ in range(parallel)]:
        future.result()


def chosen_setting(search: Search, workdir: Path) -> dict:
  """The best trial's setting and the command that runs it at CHOSEN_SEEDS."""
  spec, site = search.spec, search.site
  void = set(search.void_trials())
  trials = [t for t in search.search.get_trials(deepcopy=False) if t.number not in void]
  states = [t.state.name.lower() for t in trials]
  complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
  best = max(complete, key=lambda t: (t.value, -t.number))
  fields = dict(overrides(search.space, best.params))
  command = ["python", "-m", "pfml_jax.study", "run", f"--config={spec.config}",
             f"--name=tuned_{spec.loss}", f"--seeds={','.join(map(str, CHOSEN_SEEDS))}",
             f"--workdir={workdir / 'chosen'}"]
  command += [f"--data_root={site.data_root}"] if site.data_root else []
  command += [f"--weights_dir={site.weights_dir}"] if site.weights_dir else []
  command += [f"--config.loss.name={spec.loss}", *site.extra]
  command += [f"--config.{field}={format_value(value)}" for field, value in fields.items()]
  return {"loss": spec.loss, "config": spec.config, "metric": search.metric,
          "split": "validation", "value": best.value, "trial": best.number,
          "overrides": {"loss.name": spec.loss, **fields}, "params": best.params,
          "trials": spec.trials, "complete": len(complete), "failed": states.count("fail"),
          "sampler": "TPE", "sampler_seed": spec.sampler_seed, "training_seed": spec.seed,
          "extra": list(site.extra), "command": shlex.join(command)}


def write_trials_table(search: Search, path: Path) -> None:
  """Every trial: number, state, validation value and drawn values."""
  names = [d.name for d in search.space]
  with open(path, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["trial", "state", search.metric, *names])
    void = set(search.void_trials())
    for trial in search.search.get_trials(deepcopy=False):
      state = "void" if trial.number in void else trial.state.name.lower()
      writer.writerow([trial.number, state,
                       "" if trial.value is None else f"{trial.value:.4f}",
                       *(trial.params.get(name, "") for name in names)])


def tune(spec: TuneSpec, workdir: str | Path, site: Site = Site(), parallel: int = 1,
         echo: Callable[[str], None] = print) -> dict | None:
  """Runs the search to its budget; returns the chosen setting (None if no trial finished)."""
  if parallel < 1:
    raise UserInputError(f"--parallel must be >= 1, got {parallel}.")
  setup = checked_setup(spec, site)
  workdir = Path(workdir).resolve()
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  with exclusive(workdir):
    search = Search(spec, site, workdir, setup, echo)
    if search.interrupted:
      echo(f"finishing interrupted trials {[t.number for t in search.interrupted]}")
    search.run(parallel)
    write_trials_table(search, workdir / TRIALS)
    trials = search.search.get_trials(deepcopy=False)
    if search.stopped or not any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
      return None
    chosen = chosen_setting(search, workdir)
    (workdir / CHOSEN).write_text(json.dumps(chosen, indent=2) + "\n")
    return chosen
