"""Retrieval metrics of embeddings saved with ``save_embeddings``; prints them as JSON.

    python -m pfml_jax.evaluation.evaluate_saved test.npy --ks=1,10,100,1000
    python -m pfml_jax.evaluation.evaluate_saved emb.npy labels.npy --ks=1,2,4,8 --nmi
    python -m pfml_jax.evaluation.evaluate_saved query.npy --gallery=gallery.npy --ks=1,10,20

Labels default to ``<stem>.labels.npy`` next to each embeddings file. Without ``--gallery``
every item queries all other items; with it, the first file holds the queries.
"""

import json
import sys
from typing import Sequence

from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags

from pfml_jax.evaluation.extraction import load_embeddings
from pfml_jax.evaluation.retrieval import (BACKENDS, retrieval_metrics,
                                           retrieval_metrics_qg)


def evaluate_saved(embeddings_path: str, labels_path: str | None = None, *,
                   ks: Sequence[int] = (1, 2, 4, 8), backend: str = "auto", nmi: bool = False,
                   gallery_path: str | None = None,
                   gallery_labels_path: str | None = None) -> dict[str, float]:
  """Metrics of saved embeddings (leave-one-out, or query/gallery when ``gallery_path``)."""
  embeddings, labels = load_embeddings(embeddings_path, labels_path)
  if gallery_path is None:
    return retrieval_metrics(embeddings, labels, ks, backend=backend, nmi=nmi)
  if nmi:
    raise ValueError("--nmi describes one set; run without --gallery on the set to cluster.")
  gallery, gallery_labels = load_embeddings(gallery_path, gallery_labels_path)
  return retrieval_metrics_qg(embeddings, labels, gallery, gallery_labels, ks, backend=backend)


_FLAGS = flags.FlagValues()
flags.DEFINE_list("ks", ["1", "2", "4", "8"], "comma-separated K of Recall@K", flag_values=_FLAGS)
flags.DEFINE_enum("backend", "auto", ["auto", *sorted(BACKENDS)], "nearest-neighbour search",
                  flag_values=_FLAGS)
flags.DEFINE_bool("nmi", False, "also k-means NMI (leave-one-out only)", flag_values=_FLAGS)
flags.DEFINE_string("gallery", None, "gallery embeddings: query/gallery evaluation",
                    flag_values=_FLAGS)
flags.DEFINE_string("gallery_labels", None, "default <gallery stem>.labels.npy",
                    flag_values=_FLAGS)
_USAGE = ("python -m pfml_jax.evaluation.evaluate_saved EMBEDDINGS.npy [LABELS.npy] [flags]: "
          "EMBEDDINGS float32 (N, E) (the queries with --gallery), LABELS int (N,) (default "
          "<stem>.labels.npy).")


def main(argv: Sequence[str] | None = None) -> None:
  paths = parse_tool_flags(_FLAGS, argv, _USAGE)
  if not 1 <= len(paths) <= 2:
    fail(f"give EMBEDDINGS.npy and optionally LABELS.npy, got {len(paths)} arguments.")
  try:
    ks = [int(k) for k in _FLAGS.ks]
  except ValueError:
    fail(f"--ks must be comma-separated integers, got {','.join(_FLAGS.ks)!r}.")
  metrics = evaluate_saved(paths[0], paths[1] if len(paths) > 1 else None, ks=ks,
                           backend=_FLAGS.backend, nmi=_FLAGS.nmi, gallery_path=_FLAGS.gallery,
                           gallery_labels_path=_FLAGS.gallery_labels)
  json.dump(metrics, sys.stdout, indent=1)
  sys.stdout.write("\n")


if __name__ == "__main__":
  main()
