"""Train or evaluate a deep-metric-learning model.

    python -m pfml_jax.main --config=configs/cub_resnet50.py --workdir=/tmp/cub
    python -m pfml_jax.main --config=configs/cub_resnet50.py --workdir=/tmp/cub --mode=eval
    python -m pfml_jax.main --config=configs/cub_resnet50.py --workdir=/tmp/cub --dry_run

``--config.<field>=value`` overrides any field of the config file. A run resumes from the last
checkpoint in ``--workdir``; ``--mode=eval`` restores one (``--checkpoint=best|latest|<step>``)
and evaluates it on the validation and test splits without training. ``--dry_run`` prints
the resolved config with the source of every value ([paper], [supp], [PA], [HIST], [Hyp],
[conv], [ours], flag, or the file that set it), the dataset's counts and the run length, and
exits without compiling, training or writing anything (``pfml_jax/settings/dry_run.py``).

An error in the input (flags, config, data, weights, workdir) prints ``error: <what to fix>``
and exits with status 2; a fault of the run itself (a diverged loss, a full disk) prints
``error: <what happened and what to run>`` and exits with status 1. Their tracebacks go to the
log file only (``--verbose`` shows them). INFO logs go to ``<workdir>/logs/``; the terminal
shows warnings and errors (all logs with ``--verbose``).

A training run holds ``<workdir>/run.lock`` (``training/workdir_lock.py``): a second training
run on the same workdir is refused; ``--mode=eval`` reads checkpoints only and takes no lock.
Ctrl-C or SIGTERM saves a checkpoint at the next step boundary and exits (status 130 after
Ctrl-C, 0 after SIGTERM, which schedulers send to preempt) with the command that resumes;
a second Ctrl-C exits at once (``training/preemption.py``). docs/faults.md lists every fault.
"""

import contextlib
import errno
import shlex
import sys
import warnings

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from pfml_jax import command_line
from pfml_jax.checkpoint.checkpoints import CheckpointSaveError
from pfml_jax.data.demo import raw_pixel_recall_at_1
from pfml_jax.parallel import distributed
from pfml_jax.settings import provenance
from pfml_jax.settings.dry_run import dry_run_report
from pfml_jax.training import preemption, trainer, workdir_lock
from pfml_jax.user_errors import EXIT_STATUS, UserInputError

# Faults of the run, not of its input: one ``error:`` line too, with this status.
RUN_FAULTS = (trainer.NonFiniteLossError, CheckpointSaveError)
RUN_FAULT_STATUS = 1
INTERRUPTED_STATUS = 130  # the shell's status for Ctrl-C: `a && b` stops after a

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and metrics.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (and resume), or only evaluate.")
flags.DEFINE_string("checkpoint", "best", "With --mode=eval: best, latest or a step number.")
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0 for multi-process runs without a cluster "
                    "environment JAX detects by itself (TPU pods and SLURM need nothing).")
flags.DEFINE_integer("num_processes", None, "Number of processes (with coordinator_address).")
flags.DEFINE_integer("process_id", None, "This process's index (with coordinator_address).")
flags.DEFINE_bool("allow_input_change", False,
                  "Resume even though the seed, dataset, batch shape or label noise differ from "
                  "the checkpoint's (the run then continues with other batches).")
flags.DEFINE_bool("verbose", False, "Show the traceback of input errors, and INFO logs on the "
                  "terminal (they always go to <workdir>/logs/).")
flags.DEFINE_bool("dry_run", False, "Print the resolved config with the source of every "
                  "value, the dataset's counts and the run length; train nothing.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  preemption.install_stop_handlers()  # before anything compiles: Ctrl-C there exits cleanly
  try:
    config = command_line.loaded_config()
    if FLAGS.dry_run:
      command_line.quiet_terminal()
      sources = provenance.config_sources(FLAGS["config"].config_filename,
                                          FLAGS["config"].override_values)
      print(dry_run_report(config, sources), flush=True)
      return
    local = "://" not in FLAGS.workdir  # a gs:// workdir gets no log file: logs stay shown
    if local:
      command_line.quiet_terminal()
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    if local:
      command_line.log_to_workdir(FLAGS.workdir)
    with command_line.library_tracebacks_to_log():
      if FLAGS.mode == "train":
        _train(config, local)
      else:
        trainer.evaluate_checkpoint(config, FLAGS.workdir, FLAGS.checkpoint)
  except UserInputError as error:
    _fail(error, EXIT_STATUS)
  except RUN_FAULTS as error:
    _fail(error, RUN_FAULT_STATUS)
  except OSError as error:
    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
      raise
    _fail(error, RUN_FAULT_STATUS, message=(
        f"no space left on the disk of --workdir={FLAGS.workdir} ({error}). Free space or "
        "point --workdir at a larger disk, then rerun the same command (it resumes from the "
        "last checkpoint)."))


def _train(config, local: bool) -> None:
  """Trains under the workdir's lock (process 0 of a local workdir takes it)."""
  lock = (workdir_lock.held(FLAGS.workdir) if local and jax.process_index() == 0
          else contextlib.nullcontext())
  with lock:
    report = trainer.train_and_evaluate(config, FLAGS.workdir,
                                        allow_input_change=FLAGS.allow_input_change)
    if config.plots and not report.get("preempted") and jax.process_index() == 0:
      _write_plots(FLAGS.workdir)
  if report.get("preempted") and jax.process_index() == 0:
    command = shlex.join([sys.executable.rpartition("/")[2], "-m", "pfml_jax.main",
                          *sys.argv[1:]])
    print(f"Stopped at step {report['step']}; the checkpoint is saved. Resume with:\n  "
          f"{command}", file=sys.stderr, flush=True)
    if preemption.stopped_by() == "SIGINT":
      sys.exit(INTERRUPTED_STATUS)
  elif jax.process_index() == 0:
    pixel_bar = raw_pixel_recall_at_1() if config.data.name == "demo" else None
    print(outcome_line(report, FLAGS.workdir, plots=config.plots, pixel_bar=pixel_bar),
          flush=True)


def _write_plots(workdir: str) -> None:
  """The run's pictures; a failure to draw leaves the finished run's results as they are."""
  from pfml_jax.viz.run_plots import write_run_plots  # matplotlib only when drawing
  try:
    written = write_run_plots(workdir, "best")
  except Exception as error:  # pylint: disable=broad-except
    logging.warning("Drawing %s/plots failed (%s: %s); the run's results are saved. Retry with "
                    "python -m pfml_jax.viz plots %s", workdir, type(error).__name__, error,
                    workdir)
    return
  logging.info("Pictures of the run: %s", [str(p) for p in written])


def outcome_line(report: dict, workdir: str, plots: bool, pixel_bar: float | None = None) -> str:
  """What a finished run produced: the reported checkpoint's test metrics (beside raw pixels'
  Recall@1 ``pixel_bar`` where the data set has one: the demo) and where the report (and
  pictures) are."""
  chosen = ("chosen on validation classes" if report["protocol"] == "validated" else
            "the last step; the best on test, optimistic, is in the report")
  test = report["test"]
  names = [name for name in test if name.startswith("recall@")] + ["map@r"] * ("map@r" in test)
  metrics = ", ".join(f"{name} {test[name]:.3f}" for name in names)
  if pixel_bar is not None:
    metrics += f" (raw pixels: recall@1 {pixel_bar:.3f})"
  pictures = f"; pictures: {workdir}/plots/" if plots else ""
  return (f"Test {metrics} at step {report['step']} ({chosen}). Report: "
          f"{workdir}/eval/summary.json{pictures}")


def _fail(error: Exception, status: int, message: str | None = None) -> None:
  """One ``error:`` line (``message``, default the error's) on the terminal, the traceback in
  the log file (or on the terminal with --verbose)."""
  if FLAGS.verbose:
    raise error
  command_line.log_traceback(error)
  # A failed asynchronous checkpoint write can leave one of orbax's write coroutines never
  # awaited; Python would warn about it at exit, after the error line, which must stay last.
  warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited",
                          category=RuntimeWarning)
  reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
  command_line.fail(message or reason, status)


if __name__ == "__main__":
  app.run(main, flags_parser=command_line.parse_flags)
