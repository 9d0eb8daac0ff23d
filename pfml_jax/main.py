"""Train or evaluate a deep-metric-learning model.

    python -m pfml_jax.main --config=configs/cub_resnet50.py --workdir=/tmp/cub
    python -m pfml_jax.main --config=configs/cub_resnet50.py --workdir=/tmp/cub --mode=eval

``--config.<field>=value`` overrides any field of the config file. A run resumes from the last
checkpoint in ``--workdir``; ``--mode=eval`` restores one (``--checkpoint=best|latest|<step>``)
and evaluates it on the validation and test splits without training.
"""

from absl import app, flags
from ml_collections import config_flags

from pfml_jax.training import distributed, trainer

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
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if FLAGS.mode == "train":
    trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  else:
    trainer.evaluate_checkpoint(FLAGS.config, FLAGS.workdir, FLAGS.checkpoint)


if __name__ == "__main__":
  app.run(main)
