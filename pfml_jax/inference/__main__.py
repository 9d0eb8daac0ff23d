"""Use a trained run: embed images, search an embedded gallery, export a portable embedder.

    python -m pfml_jax.inference embed  --workdir=RUN [--checkpoint=best] --images=DIR --out=STEM
    python -m pfml_jax.inference embed  --workdir=RUN --split=test --out=STEM
    python -m pfml_jax.inference search --workdir=RUN --gallery=STEM --queries=FILE_OR_DIR \\
        --k=5 --out=results.json [--grid=grid.png]
    python -m pfml_jax.inference export --workdir=RUN --out=DIR [--platforms=cpu,cuda,tpu]

An error in the input prints one ``error: <what to fix>`` line and exits with status 2
(``--verbose`` shows its traceback), as ``python -m pfml_jax.main`` does.
"""

import logging
from typing import Sequence

from absl import flags

from pfml_jax import command_line
from pfml_jax.user_errors import UserInputError


COMMANDS = {
    "embed": "images -> <out>.npy, .labels.npy, .paths.txt, .model.json",
    "search": "top-K gallery neighbours of query images, as JSON",
    "export": "jax.export artifact + weights.safetensors + model.json",
}


def _define_flags(command: str, values: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "the training run's folder", flag_values=values)
  flags.DEFINE_string("checkpoint", "best", "best, latest or a step number", flag_values=values)
  flags.DEFINE_bool("verbose", False, "tracebacks and INFO logs", flag_values=values)
  flags.DEFINE_string("out", None, {"embed": "the stem of the files written",
                                    "search": "the JSON file written",
                                    "export": "the folder written"}[command], flag_values=values)
  flags.mark_flags_as_required(["workdir", "out"], flag_values=values)
  if command in ("embed", "search"):
    flags.DEFINE_integer("batch_size", None, "images per step over all devices (default: the "
                         "run's eval one)", flag_values=values)
    flags.DEFINE_integer("workers", 0, "grain decoding processes", flag_values=values)
    flags.DEFINE_bool("skip_unreadable", False, "leave images that do not decode out (listed "
                      "as a warning)", flag_values=values)
  if command == "embed":
    flags.DEFINE_string("images", None, "an image file, or a folder (sub-folders included)",
                        flag_values=values)
    flags.DEFINE_enum("split", None, ["train", "val", "test"], "instead of --images: this "
                      "split of the run's dataset", flag_values=values)
    flags.DEFINE_string("data_root", None, "with --split: the dataset's folder, if it moved",
                        flag_values=values)
  if command == "search":
    flags.DEFINE_string("gallery", None, "the stem `embed --out` wrote", flag_values=values)
    flags.DEFINE_string("queries", None, "an image file or a folder", flag_values=values)
    flags.DEFINE_integer("k", 5, "neighbours per query", flag_values=values)
    flags.DEFINE_enum("backend", "auto", ["auto", "jax", "faiss"], "nearest-neighbour search",
                      flag_values=values)
    flags.DEFINE_string("grid", None, "also draw the first queries' neighbours to this PNG",
                        flag_values=values)
    flags.mark_flags_as_required(["gallery", "queries"], flag_values=values)
  if command == "export":
    flags.DEFINE_list("platforms", ["cpu"], "comma-separated: cpu, cuda, rocm, tpu",
                      flag_values=values)


def run(command: str, args: flags.FlagValues) -> list[str]:
  """Runs one command; returns the paths it wrote."""
  # Imported here: --help and usage errors answer without loading flax, orbax and the models.
  # pylint: disable=g-import-not-at-top
  from pfml_jax.inference import embed, export, search
  from pfml_jax.evaluation.trained_model import load_trained_model
  # pylint: enable=g-import-not-at-top
  trained = load_trained_model(args.workdir, args.checkpoint)
  if command == "embed":
    stem = embed.embed(trained, args.out, images=args.images, split=args.split,
                       data_root=args.data_root, skip_unreadable=args.skip_unreadable,
                       batch_size=args.batch_size, workers=args.workers)
    return [stem + suffix for suffix in (".npy", ".labels.npy", ".paths.txt", ".model.json")]
  if command == "search":
    answer = search.search(trained, args.gallery, args.queries, args.k, backend=args.backend,
                           skip_unreadable=args.skip_unreadable, batch_size=args.batch_size,
                           workers=args.workers)
    written = [str(search.write_json(answer, args.out))]
    if args.grid:
      written.append(str(search.write_grid(answer, trained, args.grid)))
    return written
  return [str(export.export(trained, args.out, args.platforms))]


def main(argv: Sequence[str] | None = None) -> None:
  command, args, positional = command_line.parse_subcommand(
      argv, "python -m pfml_jax.inference", COMMANDS, _define_flags, __doc__)
  if positional:
    command_line.fail(f"unexpected arguments: {' '.join(positional)}")
  loggers = [logging.getLogger(), logging.getLogger("absl")]
  levels = [logger.level for logger in loggers]
  if not args.verbose:
    loggers[0].setLevel(logging.WARNING)
    # orbax warns through absl that a read-only checkpoint manager saves nothing: expected here.
    loggers[1].setLevel(logging.ERROR)
  try:
    for path in run(command, args):
      print(path)
  except UserInputError as error:
    if args.verbose:
      raise
    command_line.fail(str(error))
  finally:
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)


if __name__ == "__main__":
  main()
