"""Retrieval metrics of embeddings saved with ``save_embeddings``; prints them as JSON.

    python -m pfml_jax.evaluation.evaluate_saved test.npy --ks=1,10,100,1000
    python -m pfml_jax.evaluation.evaluate_saved emb.npy labels.npy --ks=1,2,4,8 --nmi
    python -m pfml_jax.evaluation.evaluate_saved query.npy --gallery=gallery.npy --ks=1,10,20

Labels default to ``<stem>.labels.npy`` next to each embeddings file. Without ``--gallery``
every item queries all other items; with it, the first file holds the queries.
"""

import argparse
import json
import sys
from typing import Sequence

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


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("embeddings", help="<stem>.npy: float32 (N, E) (queries with --gallery)")
  parser.add_argument("labels", nargs="?", help="int (N,) labels; default <stem>.labels.npy")
  parser.add_argument("--ks", default="1,2,4,8", help="comma-separated K of Recall@K")
  parser.add_argument("--backend", default="auto", choices=["auto", *sorted(BACKENDS)])
  parser.add_argument("--nmi", action="store_true", help="also k-means NMI (leave-one-out only)")
  parser.add_argument("--gallery", help="gallery embeddings: query/gallery evaluation")
  parser.add_argument("--gallery-labels", help="default <gallery stem>.labels.npy")
  args = parser.parse_args(argv)
  try:
    ks = [int(k) for k in args.ks.split(",")]
  except ValueError:
    parser.error(f"--ks must be comma-separated integers, got {args.ks!r}")
  metrics = evaluate_saved(args.embeddings, args.labels, ks=ks, backend=args.backend,
                           nmi=args.nmi, gallery_path=args.gallery,
                           gallery_labels_path=args.gallery_labels)
  json.dump(metrics, sys.stdout, indent=1)
  sys.stdout.write("\n")


if __name__ == "__main__":
  main()
