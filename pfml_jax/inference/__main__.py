"""Use a trained run: embed images, search an embedded gallery, export a portable embedder.

    python -m pfml_jax.inference embed  --workdir=RUN [--checkpoint=best] --images=DIR --out=STEM
    python -m pfml_jax.inference embed  --workdir=RUN --split=test --out=STEM
    python -m pfml_jax.inference search --workdir=RUN --gallery=STEM --queries=FILE_OR_DIR \\
        --k=5 --out=results.json [--grid=grid.png]
    python -m pfml_jax.inference export --workdir=RUN --out=DIR [--platforms=cpu,cuda,tpu]

An error in the input prints one ``error: <what to fix>`` line and exits with status 2
(``--verbose`` shows its traceback), as ``python -m pfml_jax.main`` does.
"""

import argparse
import logging
import sys
from typing import Sequence

from pfml_jax import command_line
from pfml_jax.user_errors import UserInputError


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m pfml_jax.inference",
                                   description=__doc__.splitlines()[0])
  commands = parser.add_subparsers(dest="command", required=True)
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("--workdir", required=True, help="the training run's folder")
  common.add_argument("--checkpoint", default="best", help="best, latest or a step number")
  common.add_argument("--verbose", action="store_true", help="tracebacks and INFO logs")
  images = argparse.ArgumentParser(add_help=False)
  images.add_argument("--batch_size", type=int, default=None,
                      help="images per step over all devices (default: the run's eval one)")
  images.add_argument("--workers", type=int, default=0, help="grain decoding processes")
  images.add_argument("--skip_unreadable", action="store_true",
                      help="leave images that do not decode out (listed as a warning)")

  embed = commands.add_parser("embed", parents=[common, images],
                              help="images -> <out>.npy, .labels.npy, .paths.txt, .model.json")
  embed.add_argument("--images", help="an image file, or a folder (sub-folders included)")
  embed.add_argument("--split", choices=["train", "val", "test"],
                     help="instead of --images: this split of the run's dataset")
  embed.add_argument("--data_root", help="with --split: the dataset's folder, if it moved")
  embed.add_argument("--out", required=True, help="the stem of the files written")

  search = commands.add_parser("search", parents=[common, images],
                               help="top-K gallery neighbours of query images, as JSON")
  search.add_argument("--gallery", required=True, help="the stem `embed --out` wrote")
  search.add_argument("--queries", required=True, help="an image file or a folder")
  search.add_argument("--k", type=int, default=5, help="neighbours per query")
  search.add_argument("--backend", default="auto", choices=["auto", "jax", "faiss"])
  search.add_argument("--out", required=True, help="the JSON file written")
  search.add_argument("--grid", help="also draw the first queries' neighbours to this PNG")

  export = commands.add_parser("export", parents=[common],
                               help="jax.export artifact + weights.safetensors + model.json")
  export.add_argument("--out", required=True, help="the folder written")
  export.add_argument("--platforms", default="cpu",
                      help="comma-separated: cpu, cuda, rocm, tpu")
  return parser


def run(args: argparse.Namespace) -> list[str]:
  """Runs one command; returns the paths it wrote."""
  # Imported here: --help and usage errors answer without loading flax, orbax and the models.
  # pylint: disable=g-import-not-at-top
  from pfml_jax.inference import embed, export, search
  from pfml_jax.evaluation.trained_model import load_trained_model
  # pylint: enable=g-import-not-at-top
  trained = load_trained_model(args.workdir, args.checkpoint)
  if args.command == "embed":
    stem = embed.embed(trained, args.out, images=args.images, split=args.split,
                       data_root=args.data_root, skip_unreadable=args.skip_unreadable,
                       batch_size=args.batch_size, workers=args.workers)
    return [stem + suffix for suffix in (".npy", ".labels.npy", ".paths.txt", ".model.json")]
  if args.command == "search":
    answer = search.search(trained, args.gallery, args.queries, args.k, backend=args.backend,
                           skip_unreadable=args.skip_unreadable, batch_size=args.batch_size,
                           workers=args.workers)
    written = [str(search.write_json(answer, args.out))]
    if args.grid:
      written.append(str(search.write_grid(answer, trained, args.grid)))
    return written
  return [str(export.export(trained, args.out, args.platforms.split(",")))]


def main(argv: Sequence[str] | None = None) -> None:
  args = _parser().parse_args(argv)
  loggers = [logging.getLogger(), logging.getLogger("absl")]
  levels = [logger.level for logger in loggers]
  if not args.verbose:
    loggers[0].setLevel(logging.WARNING)
    # orbax warns through absl that a read-only checkpoint manager saves nothing: expected here.
    loggers[1].setLevel(logging.ERROR)
  try:
    for path in run(args):
      print(path)
  except UserInputError as error:
    if args.verbose:
      raise
    command_line.fail(str(error))
  finally:
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)


if __name__ == "__main__":
  main(sys.argv[1:])
