"""Multi-seed studies: run them here, emit them for a cluster, aggregate their results.

    python -m pfml_jax.study list
    python -m pfml_jax.study run table1 --workdir=studies/table1 --data-root=/data \
        --weights-dir=weights --parallel=2
    python -m pfml_jax.study run --config=configs/demo.py --sweep=loss.pfml.alpha=1,2,3 \
        --seeds=0,1,2 --workdir=studies/demo_alpha --config.steps=300
    python -m pfml_jax.study emit label_noise --emit=slurm --workdir=/shared/noise
    python -m pfml_jax.study aggregate --workdir=studies/table1
    python -m pfml_jax.study tune --config=configs/small/scratch.py --loss=proxy_anchor \
        --trials=30 --workdir=studies/tune_pa --config.eval.protocol=validated --parallel=2

A study is a shipped name (``list``) or ``--config=FILE[:RECIPE]`` with one or more
``--sweep=FIELD=V1,V2,...`` (their full grid), or without any (one cell); an ablation's name
with ``--config`` sweeps that config instead of the paper's; ``--floor`` adds each config
file's step-0 model. Every other ``--config.<field>=<value>`` goes to every run. ``tune``
chooses one loss's hyperparameters on the validation classes (``tune.py``).
Runs live in ``<workdir>/<cell>/seed_<seed>``; rerunning skips finished runs and resumes the
others. Input errors print ``error: ...`` and exit with status 2 (see docs/studies.md).
"""

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import Sequence

from pfml_jax.command_line import fail
from pfml_jax.study import emit as emit_lib
from pfml_jax.study import manifest as manifest_lib
from pfml_jax.study.aggregate import aggregate
from pfml_jax.study.commands import Site
from pfml_jax.study.grid import Cell, Study, parse_value, sweep_study, with_floor
from pfml_jax.study.plots import sweep_plot
from pfml_jax.study.runner import REPO, run_study
from pfml_jax.study.studies import STUDIES, named_study
from pfml_jax.study.tables import write_tables
from pfml_jax.study.tune import CHOSEN, TRIALS, TuneSpec, tune
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
  """``config`` as given, once its file is found here or in the repository."""
  file = config.partition(":")[0]
  if not (Path(file).exists() or (REPO / file).exists()):
    raise UserInputError(f"--config={config}: no such file {file!r} (here or in {REPO}).")
  return config


def _study(args) -> Study:
  study = _defined_study(args)
  return with_floor(study) if args.floor else study


def _defined_study(args) -> Study:
  seeds = _integers(args.seeds, "--seeds") if args.seeds else None
  config = _config_path(args.config) if args.config else None
  if args.name_or_spec:
    if args.sweep:
      raise UserInputError("--sweep makes a study of its own: give --config and --sweep "
                           f"without the study name {args.name_or_spec!r}.")
    return named_study(args.name_or_spec, seeds, config)
  if config and args.sweep:
    name = args.name or f"{Path(config.partition(':')[0]).stem}_sweep"
    return sweep_study(name, [config], [_sweep(s) for s in args.sweep], seeds or [0])
  if config:
    name = args.name or Path(config.partition(":")[0]).stem
    return Study(name, (Cell(config),), tuple(seeds or [0]), f"{name}: {config}")
  if args.command == "aggregate" and not (config or args.sweep):
    return manifest_lib.study_from_manifest(args.workdir)
  raise UserInputError(f"name a study ({', '.join(STUDIES)}) or give --config=FILE (and "
                       "--sweep=FIELD=V1,V2,... for a grid).")


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m pfml_jax.study",
                                   description=__doc__.splitlines()[0], allow_abbrev=False)
  commands = parser.add_subparsers(dest="command", required=True)
  commands.add_parser("list", help="the shipped studies")
  study = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
  study.add_argument("name_or_spec", nargs="?", metavar="STUDY",
                     help=f"one of {list(STUDIES)}; or give --config and --sweep")
  study.add_argument("--workdir", required=True, help="the study's folder (one per study)")
  study.add_argument("--config", help="FILE[:RECIPE]: the config a --sweep (or an ablation) uses")
  study.add_argument("--sweep", action="append", default=[],
                     help="FIELD=V1,V2,...; repeat for a grid (every combination)")
  study.add_argument("--seeds", help="comma-separated seeds (default: the study's; 0 for --sweep)")
  study.add_argument("--name", help="the name of a --sweep study (default <config>_sweep)")
  study.add_argument("--floor", action="store_true",
                     help="add the step-0 model (untrained) of each config file as a cell")
  site = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
  site.add_argument("--data-root", default="",
                    help="paper configs: the folder of CUB_200_2011/, cars196/, "
                         "Stanford_Online_Products/; other configs: the dataset root")
  site.add_argument("--weights-dir", default="",
                    help="the folder of resnet50 / bninception / vit_s16 / dino_vits16.safetensors")
  run = commands.add_parser("run", parents=[study, site], allow_abbrev=False,
                            help="train every unfinished run here")
  run.add_argument("--parallel", type=int, default=1, help="runs at a time on this machine")
  emit = commands.add_parser("emit", parents=[study, site], allow_abbrev=False,
                             help="write a SLURM job array or a command list")
  emit.add_argument("--emit", required=True, choices=["slurm", "commands"])
  emit.add_argument("--out", help="file to write (default: commands to stdout, the SLURM "
                                  "script to ./<study>.sbatch)")
  emit.add_argument("--launcher", default="python", choices=list(emit_lib.LAUNCHERS),
                    help="commands: plain python, or launch/tpu_vm.sh per run")
  emit.add_argument("--nodes", type=int, default=1, help="SLURM: nodes per run")
  emit.add_argument("--gpus-per-node", type=int, default=1, help="SLURM: GPUs per node")
  emit.add_argument("--cpus-per-task", type=int, default=8, help="SLURM: CPUs per node")
  emit.add_argument("--time", default="24:00:00", help="SLURM: time limit per run")
  emit.add_argument("--parallel", type=int, default=0, help="SLURM: array tasks at once")
  summary = commands.add_parser("aggregate", parents=[study], allow_abbrev=False,
                                help="mean ± sd tables (and the ablation plot) of the runs")
  summary.add_argument("--out", help="folder for the tables (default <workdir>/aggregate)")
  summary.add_argument("--metric", default="recall@1", help="the plot's metric")
  search = commands.add_parser("tune", parents=[site], allow_abbrev=False,
                               help="choose a loss's hyperparameters on validation classes")
  search.add_argument("--workdir", required=True, help="the search's folder (one per search)")
  search.add_argument("--config", required=True, help="FILE[:RECIPE]: the shared setup")
  search.add_argument("--loss", required=True, help="the loss to tune")
  search.add_argument("--trials", type=int, required=True, help="the budget: trials in all")
  search.add_argument("--parallel", type=int, default=1, help="trials at a time on this machine")
  search.add_argument("--sampler-seed", type=int, default=0, help="seeds the TPE sampler")
  search.add_argument("--seed", type=int, default=0, help="config.seed of every trial")
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = _parser()
  args, unknown = parser.parse_known_args(argv)
  bad = [a for a in unknown if not _OVERRIDE.match(a)]
  if bad:
    parser.error(f"unrecognized arguments: {' '.join(bad)} (config fields go as "
                 "--config.<field>=<value>)")
  try:
    if args.command == "list":
      for name, make in STUDIES.items():
        study = make()
        print(f"{name:12s} {len(study.cells):3d} cells x {len(study.seeds)} seeds  "
              f"{study.description}")
      return 0
    if args.command == "tune":
      return _tune(args, Site(args.data_root, args.weights_dir, tuple(unknown)))
    study = _study(args)
    if args.command == "aggregate":
      if unknown:
        raise UserInputError(f"aggregate takes no config flags, got {' '.join(unknown)}.")
      return _aggregate(study, args)
    site = Site(args.data_root, args.weights_dir, tuple(unknown))
    if args.command == "run":
      return _run(study, site, args)
    return _emit(study, site, args, argv)
  except UserInputError as error:
    fail(str(error))
  return 2


def _run(study: Study, site: Site, args) -> int:
  if args.parallel < 1:
    raise UserInputError(f"--parallel must be >= 1, got {args.parallel}.")
  reports = run_study(study, args.workdir, site, parallel=args.parallel)
  counts = {s: sum(r.status == s for r in reports)
            for s in ("finished", "skipped", "stopped", "failed")}
  print(f"study {study.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) +
        f"; manifest: {Path(args.workdir).resolve() / manifest_lib.MANIFEST}")
  return 1 if counts["failed"] or counts["stopped"] else 0


def _emit(study: Study, site: Site, args, argv: Sequence[str]) -> int:
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


def _tune(args, site: Site) -> int:
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


def _aggregate(study: Study, args) -> int:
  result = aggregate(study, args.workdir)
  out = Path(args.out or Path(args.workdir) / "aggregate")
  paths = write_tables(result, out)
  plot = sweep_plot(result, out, args.metric)
  print(paths[0].read_text())
  print("wrote " + ", ".join(str(p) for p in paths + ([plot] if plot else [])))
  return 0


if __name__ == "__main__":
  sys.exit(main())
