"""Train or evaluate a deep-metric-learning model.

    python -m pfml_jax.main --config=configs/cub_resnet50.py --workdir=/tmp/cub
    python -m pfml_jax.main --config=configs/cub_resnet50.py --workdir=/tmp/cub --mode=eval

``--config.<field>=value`` overrides any field of the config file. A run resumes from the last
checkpoint in ``--workdir``; ``--mode=eval`` restores one (``--checkpoint=best|latest|<step>``)
and evaluates it on the validation and test splits without training.

An error in the input (flags, config, data, weights, workdir) prints ``error: <what to fix>``
and exits with status 2; ``--verbose`` shows its traceback. INFO logs go to
``<workdir>/logs/``; the terminal shows warnings and errors (all logs with ``--verbose``).
"""

from absl import app, flags
from ml_collections import config_flags

from pfml_jax import command_line
from pfml_jax.training import distributed, trainer
from pfml_jax.user_errors import UserInputError

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
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    config = command_line.loaded_config()
    local = "://" not in FLAGS.workdir  # a gs:// workdir gets no log file: logs stay shown
    if local:
      command_line.quiet_terminal()
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    if local:
      command_line.log_to_workdir(FLAGS.workdir)
    if FLAGS.mode == "train":
      trainer.train_and_evaluate(config, FLAGS.workdir,
                                 allow_input_change=FLAGS.allow_input_change)
    else:
      trainer.evaluate_checkpoint(config, FLAGS.workdir, FLAGS.checkpoint)
  except UserInputError as error:
    if FLAGS.verbose:
      raise
    command_line.fail(str(error))


if __name__ == "__main__":
  app.run(main, flags_parser=command_line.parse_flags)
