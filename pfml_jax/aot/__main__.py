"""Compile a config's train and evaluation steps for a TPU topology, on a machine without one.

    python -m pfml_jax.aot --config=configs/sop_vit.py --topology=v5e-8 [--json=report.json]

Builds the config's mesh over the topology's devices (one process standing for every host: the
compile-only devices carry their host's process index, so JAX needs no process count set)
and compiles, from shapes only (no data, no weights read), the trainer's jitted, donated train
step and the evaluator's embedding step. Prints per chip the memory against HBM, FLOPs and
bytes per step, a roofline step time and img/s, and the attention and energy paths chosen.
A step that does not fit a chip's HBM exits 2 with one ``error:`` line (the report is still
written to --json). ``--config.<field>=value`` overrides config fields as in ``main``.
"""

import json
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from pfml_jax import command_line
from pfml_jax.aot import abstract_run, report as report_lib, topologies
from pfml_jax.aot.topology_report import compile_report
from pfml_jax.user_errors import UserInputError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("topology", None, f"TPU slice: one of {', '.join(topologies.names())}, "
                    "or <n>x<slice> for n slices.")
flags.DEFINE_string("json", None, "Write the report to this JSON file.")
flags.DEFINE_integer("train_images", None, "Training images (default: the dataset's "
                     "published count; needed for datasets without one).")
flags.DEFINE_integer("train_classes", None, "Training classes (as --train_images).")
flags.DEFINE_bool("verbose", False, "Show the traceback of input errors.")
flags.mark_flags_as_required(["config", "topology"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # The host only traces and compiles: never initialise an accelerator backend here.
  jax.config.update("jax_platforms", "cpu")
  command_line.quiet_terminal()
  try:
    config = command_line.loaded_config()
    topology = topologies.topology(FLAGS.topology)
    shape = abstract_run.dataset_shape(config, FLAGS.train_images, FLAGS.train_classes)
    report, problem = compile_report(config, FLAGS["config"].config_filename, topology, shape)
    print(report_lib.format_report(report), flush=True)
    if FLAGS.json:
      with open(FLAGS.json, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
    if problem:
      raise UserInputError(problem)
  except UserInputError as error:
    if FLAGS.verbose:
      raise
    command_line.fail(str(error))
  sys.stdout.flush()


if __name__ == "__main__":
  app.run(main, flags_parser=command_line.parse_flags)
