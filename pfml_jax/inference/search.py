"""Query images against an embedded gallery: exact top-K neighbours by cosine similarity.

The queries are embedded by the trained model (after the gallery's fingerprint is checked
against it) and searched with ``evaluation.nearest_neighbours``: the jax or faiss backend, as
evaluation's "auto" rule picks, in evaluation's order (similarity descending, then gallery
row). The answer is JSON; ``write_grid`` draws the first queries' neighbours.
"""

import json
import os
from pathlib import Path

import numpy as np

from pfml_jax.data.eval_input import resize_center_crop
from pfml_jax.data.images import CorruptImageError, decode_image
from pfml_jax.evaluation.nearest_neighbours import nearest_neighbours, neighbour_backend
from pfml_jax.evaluation.trained_model import TrainedModel
from pfml_jax.inference.embed import embed_split
from pfml_jax.inference.embedding_set import EmbeddingSet, load_embedding_set, model_fingerprint
from pfml_jax.inference.image_folder_input import image_split
from pfml_jax.user_errors import UserInputError

# Query rows a grid shows at most (our choice: a readable figure; the JSON holds them all).
GRID_QUERIES = 8


def search(trained: TrainedModel, gallery: str | EmbeddingSet, queries: str, k: int = 5, *,
           backend: str = "auto", skip_unreadable: bool = False,
           batch_size: int | None = None, workers: int = 0) -> dict:
  """The top ``k`` gallery images of every query image at ``queries`` (a file or a folder).

  Returns ``{"gallery", "model", "k", "backend", "results": [{"query", "neighbours": [{"rank",
  "row", "path", "similarity", "label"?}]}]}`` (``label`` only for gallery rows with a class).
  """
  if not isinstance(gallery, EmbeddingSet):
    gallery = load_embedding_set(gallery)
  model = model_fingerprint(trained)
  gallery.check_made_by(model)
  if not 1 <= k <= len(gallery.embeddings):
    raise UserInputError(f"--k={k}: must be between 1 and the gallery's "
                         f"{len(gallery.embeddings)} images.")
  split = image_split(queries, skip_unreadable, flag="--queries")
  query_embeddings, _ = embed_split(trained, split, batch_size, workers)
  chosen = neighbour_backend(k, backend)
  similarity, rows = nearest_neighbours(query_embeddings, gallery.embeddings, k, chosen)
  results = []
  for query, query_similarity, query_rows in zip(split.keys, similarity, rows):
    neighbours = []
    for rank, (value, row) in enumerate(zip(query_similarity, query_rows), start=1):
      neighbour = {"rank": rank, "row": int(row), "path": gallery.paths[row],
                   "similarity": float(value)}
      if gallery.labels[row] >= 0:
        neighbour["label"] = int(gallery.labels[row])
      neighbours.append(neighbour)
    results.append({"query": query, "neighbours": neighbours})
  return {"gallery": gallery.stem, "model": model, "k": k, "backend": chosen,
          "results": results}


def write_json(answer: dict, out: str) -> Path:
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(answer, indent=1) + "\n")
  return out


def _model_input(path: str, trained: TrainedModel) -> np.ndarray:
  """The image at ``path`` as the model saw it (evaluation transform), for the figure."""
  if not os.path.isfile(path):
    raise UserInputError(f"--grid: gallery image {path} is not a file (a dataset split read "
                         "from records, or a moved folder); search without --grid.")
  try:
    image = decode_image(path)
  except (OSError, SyntaxError, ValueError) as error:
    raise CorruptImageError(f"--grid: cannot decode {path}: {error}") from error
  transform = trained.embedder.transform
  return resize_center_crop(image, transform.resize_size, transform.image_size,
                            transform.interpolation)


def write_grid(answer: dict, trained: TrainedModel, out: str,
               max_queries: int = GRID_QUERIES) -> Path:
  """The first ``max_queries`` queries and their neighbours as a picture (§2's grid)."""
  from pfml_jax.viz.retrieval_grid import draw_retrieval_grid  # pylint: disable=g-import-not-at-top
  shown = answer["results"][:max_queries]
  return draw_retrieval_grid(
      query_images=[_model_input(r["query"], trained) for r in shown],
      neighbour_images=[[_model_input(n["path"], trained) for n in r["neighbours"]]
                        for r in shown],
      correct=None,  # folder queries have no class to compare with
      similarities=np.array([[n["similarity"] for n in r["neighbours"]] for r in shown],
                            np.float32),
      title=f"top-{answer['k']} of {Path(answer['gallery']).name}, "
            f"{Path(answer['model']['workdir']).name} step {answer['model']['step']}",
      out_path=out)
