"""Multi-seed studies: run them here, emit them for a cluster, aggregate their results.

    python -m pfml_jax.study list
    python -m pfml_jax.study run table1 --workdir=studies/table1 --data_root=/data \
        --weights_dir=weights --parallel=2
    python -m pfml_jax.study run --config=configs/demo.py --sweep=loss.pfml.alpha=1,2,3 \
        --seeds=0,1,2 --workdir=studies/demo_alpha --config.steps=300
    python -m pfml_jax.study emit label_noise --emit=slurm --workdir=/shared/noise
    python -m pfml_jax.study aggregate --workdir=studies/table1
    python -m pfml_jax.study tune --config=configs/small/scratch.py --loss=proxy_anchor \
        --trials=30 --workdir=studies/tune_pa --config.eval.protocol=validated --parallel=2

A study is a shipped name (``list``) or ``--config=FILE[:RECIPE]`` with one or more
``--sweep=FIELD=V1,V2,...`` (their full grid), or without any (one cell); an ablation's name
with ``--config`` sweeps that config instead of the paper's; ``--floor`` adds each config
file's step-0 model; ``--tuned=DIR`` makes one cell per loss from the searches of ``tune``
(``tuned.py``). Every other ``--config.<field>=<value>`` goes to every run. ``tune``
chooses one loss's hyperparameters on the validation classes (``tune.py``).
Runs live in ``<workdir>/<cell>/seed_<seed>``; rerunning skips finished runs and resumes the
others. Input errors print ``error: ...`` and exit with status 2 (see docs/studies.md).
"""

import re
import shlex
import sys
from pathlib import Path
from typing import Sequence

from absl import flags

from pfml_jax.command_line import fail, parse_subcommand, unknown_override_message
from pfml_jax.config_files import config_file, load_config
from pfml_jax.study import emit as emit_lib
from pfml_jax.study import manifest as manifest_lib
from pfml_jax.study.aggregate import aggregate
from pfml_jax.study.commands import Site
from pfml_jax.study.grid import Cell, Study, parse_value, sweep_study, with_floor
from pfml_jax.study.plots import sweep_plot
from pfml_jax.study.runner import run_study
from pfml_jax.study.studies import STUDIES, named_study
from pfml_jax.study.tables import write_tables
from pfml_jax.study.tune import CHOSEN, CHOSEN_SEEDS, TRIALS, TuneSpec, tune
from pfml_jax.study.tuned import tuned_study
from pfml_jax.user_errors import UserInputError

_OVERRIDE = re.compile(r"--config\.[A-Za-z_][\w.]*=")


def _integers(text: str, flag: str) -> list[int]:
  try:
    return [int(part) for part in text.split(",") if part.strip()]
  except ValueError as error:
    raise UserInputError(f"{flag} must be comma-separated integers, got {text!r}.") from error


def _sweep(text: str) -> tuple[str, list]:
  field, sep, values = text.partition("=")
  if not sep or not field or not values:
    raise UserInputError(f"--sweep={text}: write FIELD=V1,V2,... "
                         "(e.g. --sweep=loss.pfml.alpha=1,2,3).")
  return field.removeprefix("config."), [parse_value(v) for v in values.split(",")]


def _config_path(config: str) -> str:
  """``config`` as given, once its file is found here or among the installed configs."""
  file = config_file(config).partition(":")[0]
  if not Path(file).exists():
    raise UserInputError(f"--config={config}: no such file {file!r} (from {Path.cwd()}, or "
                         "configs/... among the configs installed with pfml_jax).")
  return config


def _study(command: str, args: flags.FlagValues, name: str | None) -> Study:
  study = _defined_study(command, args, name)
  return with_floor(study) if args.floor else study


def _defined_study(command: str, args: flags.FlagValues, name: str | None) -> Study:
  seeds = _integers(args.seeds, "--seeds") if args.seeds else None
  config = _config_path(args.config) if args.config else None
  if args.tuned:
    if name or config:
      raise UserInputError("--tuned makes a study of its own (its searches name the config): "
                           "give it without a study name or --config.")
    return tuned_study(args.name or "tuned", args.tuned,
                       [_sweep(s) for s in args.sweep], seeds or CHOSEN_SEEDS)
  if name:
    if args.sweep:
      raise UserInputError("--sweep makes a study of its own: give --config and --sweep "
                           f"without the study name {name!r}.")
    return named_study(name, seeds, config)
  if config and args.sweep:
    name = args.name or f"{Path(config.partition(':')[0]).stem}_sweep"
    return sweep_study(name, [config], [_sweep(s) for s in args.sweep], seeds or [0])
  if config:
    name = args.name or Path(config.partition(":")[0]).stem
    return Study(name, (Cell(config),), tuple(seeds or [0]), f"{name}: {config}")
  if command == "aggregate" and not (config or args.sweep):
    return manifest_lib.study_from_manifest(args.workdir)
  raise UserInputError(f"name a study ({', '.join(STUDIES)}) or give --config=FILE (and "
                       "--sweep=FIELD=V1,V2,... for a grid).")


COMMANDS = {
    "list": "the shipped studies",
    "run": "train every unfinished run here",
    "emit": "write a SLURM job array or a command list",
    "aggregate": "mean ± sd tables (and the ablation plot) of the runs",
    "tune": "choose a loss's hyperparameters on validation classes",
}


def _study_flags(values: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "the study's folder (one per study)", flag_values=values)
  flags.DEFINE_string("config", None, "FILE[:RECIPE]: the config a --sweep (or an ablation) uses",
                      flag_values=values)
  flags.DEFINE_multi_string("sweep", [], "FIELD=V1,V2,...; repeat for a grid (every "
                            "combination)", flag_values=values)
  flags.DEFINE_string("seeds", None, "comma-separated seeds (default: the study's; 0 for "
                      "--sweep)", flag_values=values)
  flags.DEFINE_string("name", None, "the name of a --sweep study (default <config>_sweep)",
                      flag_values=values)
  flags.DEFINE_string("tuned", None, "`study tune` searches, comma-separated, or folders of "
                      "them (DIR/<loss>/chosen.json): one cell per loss at its chosen setting",
                      flag_values=values)
  flags.DEFINE_bool("floor", False, "add the step-0 model (untrained) of each config file as a "
                    "cell", flag_values=values)
  flags.mark_flag_as_required("workdir", flag_values=values)


def _site_flags(values: flags.FlagValues) -> None:
  flags.DEFINE_string("data_root", "", "paper configs: the folder of CUB_200_2011/, cars196/, "
                      "Stanford_Online_Products/; other configs: the dataset root",
                      flag_values=values)
  flags.DEFINE_string("weights_dir", "", "the folder of resnet50 / bninception / vit_s16 / "
                      "dino_vits16.safetensors", flag_values=values)


def _define_flags(command: str, values: flags.FlagValues) -> None:
  """The flags of one subcommand (each its own set: --parallel and --out differ by command)."""
  if command in ("run", "emit", "aggregate"):
    _study_flags(values)
  if command in ("run", "emit", "tune"):
    _site_flags(values)
  if command == "run":
    flags.DEFINE_integer("parallel", 1, "runs at a time on this machine", lower_bound=1,
                         flag_values=values)
  if command == "emit":
    flags.DEFINE_enum("emit", None, ["slurm", "commands"], "what to write", flag_values=values)
    flags.DEFINE_string("out", None, "file to write (default: commands to stdout, the SLURM "
                        "script to ./<study>.sbatch)", flag_values=values)
    flags.DEFINE_enum("launcher", "python", list(emit_lib.LAUNCHERS), "commands: plain python, "
                      "or launch/tpu_vm.sh per run", flag_values=values)
    flags.DEFINE_integer("nodes", 1, "SLURM: nodes per run", flag_values=values)
    flags.DEFINE_integer("gpus_per_node", 1, "SLURM: GPUs per node", flag_values=values)
    flags.DEFINE_integer("cpus_per_task", 8, "SLURM: CPUs per node", flag_values=values)
    flags.DEFINE_string("time", "24:00:00", "SLURM: time limit per run", flag_values=values)
    flags.DEFINE_integer("parallel", 0, "SLURM: array tasks at once", flag_values=values)
    flags.mark_flag_as_required("emit", flag_values=values)
  if command == "aggregate":
    flags.DEFINE_string("out", None, "folder for the tables (default <workdir>/aggregate)",
                        flag_values=values)
    flags.DEFINE_string("metric", "recall@1", "the plot's metric", flag_values=values)
  if command == "tune":
    flags.DEFINE_string("workdir", None, "the search's folder (one per search)",
                        flag_values=values)
    flags.DEFINE_string("config", None, "FILE[:RECIPE]: the shared setup", flag_values=values)
    flags.DEFINE_string("loss", None, "the loss to tune", flag_values=values)
    flags.DEFINE_integer("trials", None, "the budget: trials in all", flag_values=values)
    flags.DEFINE_integer("parallel", 1, "trials at a time on this machine", lower_bound=1,
                         flag_values=values)
    flags.DEFINE_integer("sampler_seed", 0, "seeds the TPE sampler", flag_values=values)
    flags.DEFINE_integer("seed", 0, "config.seed of every trial", flag_values=values)
    flags.mark_flags_as_required(["workdir", "config", "loss", "trials"], flag_values=values)


def _arguments(argv: list[str]):
  """(command, its flags, the study name or None, the --config.<field>=<value> overrides)."""
  overrides = tuple(a for a in argv[1:] if _OVERRIDE.match(a))
  command, values, positional = parse_subcommand(
      [a for a in argv if not _OVERRIDE.match(a)], "python -m pfml_jax.study", COMMANDS,
      _define_flags, __doc__)
  if len(positional) > (0 if command in ("list", "tune") else 1):
    fail(f"unexpected arguments: {' '.join(positional)} (config fields go as "
         "--config.<field>=<value>)")
  return command, values, (positional or [None])[0], overrides


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  command, args, name, overrides = _arguments(argv)
  try:
    if command == "list":
      for study_name, make in STUDIES.items():
        study = make()
        print(f"{study_name:12s} {len(study.cells):3d} cells x {len(study.seeds)} seeds  "
              f"{study.description}")
      return 0
    if command == "tune":
      return _tune(args, Site(args.data_root, args.weights_dir, overrides))
    study = _study(command, args, name)
    if command == "aggregate":
      if overrides:
        raise UserInputError(f"aggregate takes no config flags, got {' '.join(overrides)}.")
      return _aggregate(study, args)
    _check_fields(study, overrides)
    site = Site(args.data_root, args.weights_dir, overrides)
    if command == "run":
      return _run(study, site, args)
    return _emit(study, site, args, argv)
  except UserInputError as error:
    fail(str(error))
  return 2


def _check_fields(study: Study, overrides: Sequence[str]) -> None:
  """Every field the cells sweep and the ``--config.<field>=<value>`` flags set exists in each
  cell's config: a mistyped one is one error before any run starts."""
  for config in dict.fromkeys(cell.config for cell in study.cells):
    cells = [cell for cell in study.cells if cell.config == config]
    swept = {f"--config.{field}=" for cell in cells for field, _ in cell.overrides}
    message = unknown_override_message(load_config(config), [*swept, *overrides])
    if message:
      raise UserInputError(f"{message} (in {config})")


def _run(study: Study, site: Site, args: flags.FlagValues) -> int:
  reports = run_study(study, args.workdir, site, parallel=args.parallel)
  counts = {s: sum(r.status == s for r in reports)
            for s in ("finished", "skipped", "stopped", "failed")}
  print(f"study {study.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) +
        f"; manifest: {Path(args.workdir).resolve() / manifest_lib.MANIFEST}")
  return 1 if counts["failed"] or counts["stopped"] else 0


def _emit(study: Study, site: Site, args: flags.FlagValues, argv: Sequence[str]) -> int:
  if args.emit == "commands":
    text = "\n".join(emit_lib.command_lines(study, args.workdir, site, args.launcher)) + "\n"
    if not args.out:
      sys.stdout.write(text)
      return 0
  else:
    resources = emit_lib.SlurmResources(args.nodes, args.gpus_per_node, args.cpus_per_task,
                                        args.time, args.parallel)
    text = emit_lib.slurm_script(study, args.workdir, site, resources,
                                 generated_by="python -m pfml_jax.study " + shlex.join(argv))
  path = emit_lib.write_text(args.out or f"{study.name}.sbatch", text,
                             executable=args.emit == "slurm")
  print(f"wrote {path} ({len(study.runs())} runs)")
  return 0


def _tune(args: flags.FlagValues, site: Site) -> int:
  spec = TuneSpec(args.loss, _config_path(args.config), args.trials, args.sampler_seed,
                  args.seed)
  chosen = tune(spec, args.workdir, site, parallel=args.parallel)
  if chosen is None:
    print(f"tune {args.loss}: no chosen setting: a trial was stopped (rerun the same command "
          f"to go on) or every trial failed (see {Path(args.workdir).resolve() / TRIALS} and "
          "the trials' study_run.log).")
    return 1
  print(f"tune {args.loss}: trial {chosen['trial']} of {chosen['trials']} is best, validation "
        f"{chosen['metric']} {chosen['value']:.2f} ({chosen['failed']} failed); wrote "
        f"{Path(args.workdir).resolve() / CHOSEN}\nrun it with 5 seeds:\n"
        f"{chosen['command']}")
  return 0


def _aggregate(study: Study, args: flags.FlagValues) -> int:
  result = aggregate(study, args.workdir)
  out = Path(args.out or Path(args.workdir) / "aggregate")
  paths = write_tables(result, out)
  plot = sweep_plot(result, out, args.metric)
  print(paths[0].read_text())
  print("wrote " + ", ".join(str(p) for p in paths + ([plot] if plot else [])))
  return 0


if __name__ == "__main__":
  sys.exit(main())
