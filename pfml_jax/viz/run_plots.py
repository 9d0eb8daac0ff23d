"""Pictures of a run, written to ``WORKDIR/plots/`` from its own files and checkpoint.

- ``training_curves.png``: loss, loss above floor, learning rates and Recall@1 against step
  (from ``metrics.jsonl``; drawn even before the first checkpoint);
- ``retrieval_grid.png``: test queries and their nearest test neighbours, wrong ones marked;
- ``embedding_map.png``: test embeddings of some classes and, for a run with proxies, the
  proxies of some training classes over those classes' training images.

Nothing is retrained: the model is the checkpoint's (``load_trained_model``), its embeddings
are computed like the evaluator's.
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np

from pfml_jax import evaluation
from pfml_jax.data.eval_input import resize_center_crop
from pfml_jax.data.run_splits import read_split
from pfml_jax.data.split import Split
from pfml_jax.evaluation.evaluator import make_evaluator
from pfml_jax.evaluation.nearest_neighbours import nearest_other_rows
from pfml_jax.evaluation.trained_model import TrainedModel, load_trained_model
from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.user_errors import MissingFileError
from pfml_jax.viz import embedding_map, training_curves
from pfml_jax.viz.retrieval_grid import draw_retrieval_grid, neighbour_marks

PLOTS_FOLDER = "plots"
# Our choices: 8 queries x 8 neighbours read at a glance; 10 classes fit tab10 (embedding_map);
# 5 training classes leave room to see their proxies; queries drawn with a fixed seed.
QUERIES, NEIGHBOURS, TRAIN_CLASSES, SEED = 8, 8, 5, 0


def write_run_plots(workdir, which: str = "best") -> list[Path]:
  """Writes the run's pictures into ``workdir/plots/``; returns their paths.

  ``which`` is the checkpoint of the retrieval grid and the embedding map: best | latest | a
  step number. Without any checkpoint yet (a run just started) only the curves are drawn.
  """
  workdir = Path(workdir)
  plots = workdir / PLOTS_FOLDER
  metrics = training_curves.read_metrics(workdir / "metrics.jsonl")
  written = [training_curves.draw_training_curves(
      metrics, plots / "training_curves.png", title=f"{workdir.name}: training curves")]
  try:
    model = load_trained_model(workdir, which)
  except MissingFileError as error:
    logging.warning("plots: no retrieval grid or embedding map: %s", error)
    return written
  test = read_split(model.config, "test")
  evaluator = make_evaluator(model.embedder, mesh_lib.make_mesh(model.config.mesh),
                             model.config.eval)
  embeddings, labels = evaluator.embeddings(model.variables, test)
  recall = evaluation.retrieval_metrics(embeddings, labels, (1,))["recall@1"]
  written.append(_retrieval_grid(model, test, embeddings, labels, recall,
                                 plots / "retrieval_grid.png"))
  panels = [_test_panel(test, embeddings, labels)]
  if np.any(model.proxy_labels >= 0):
    panels.append(_proxy_panel(model, evaluator))
  written.append(embedding_map.draw_embedding_map(
      panels, plots / "embedding_map.png", seed=SEED,
      title=f"{workdir.name}: checkpoint step {model.step}, test Recall@1 {recall:.3f}"))
  return written


def _image(split: Split, index: int, model: TrainedModel) -> np.ndarray:
  """The image as the model saw it (the evaluation resize and centre crop)."""
  transform = model.embedder.transform
  return resize_center_crop(split.images.image(int(index)), transform.resize_size,
                            transform.image_size, transform.interpolation)


def _retrieval_grid(model, test, embeddings, labels, recall, out_path) -> Path:
  rng = np.random.default_rng(SEED)
  queries = np.sort(rng.choice(len(labels), size=min(QUERIES, len(labels)), replace=False))
  k = min(NEIGHBOURS, len(labels) - 1)
  similarities, neighbours = nearest_other_rows(embeddings, queries, k)
  return draw_retrieval_grid(
      [_image(test, q, model) for q in queries],
      [[_image(test, n, model) for n in row] for row in neighbours],
      neighbour_marks(labels[queries], labels[neighbours]), similarities,
      f"test retrieval, checkpoint step {model.step}, test Recall@1 {recall:.3f} "
      "(green: same class, red: another)", out_path)


def _test_panel(test: Split, embeddings, labels) -> dict:
  keep = np.isin(labels, embedding_map.pick_classes(labels, seed=SEED))
  return {"embeddings": embeddings[keep], "labels": labels[keep],
          "class_names": dict(enumerate(test.class_names)),
          "title": f"test embeddings, {len(np.unique(labels[keep]))} of "
                   f"{test.num_classes} classes"}


def _proxy_panel(model: TrainedModel, evaluator) -> dict:
  """Training images of a few classes, embedded like the test split, with their proxies."""
  train = read_split(model.config, "train")
  classes = embedding_map.pick_classes(train.labels, TRAIN_CLASSES, SEED)
  rows = np.flatnonzero(np.isin(train.labels, classes))
  subset = dataclasses.replace(train, images=train.images.subset(rows),
                               labels=train.labels[rows],
                               keys=tuple(train.keys[i] for i in rows))
  embeddings, labels = evaluator.embeddings(model.variables, subset)
  mine = np.isin(model.proxy_labels, classes)
  return {"embeddings": embeddings, "labels": labels, "proxies": model.proxies[mine],
          "proxy_labels": model.proxy_labels[mine],
          "class_names": dict(enumerate(train.class_names)),
          "title": f"{len(classes)} training classes and their "
                   f"{int(mine.sum())} proxies"}
