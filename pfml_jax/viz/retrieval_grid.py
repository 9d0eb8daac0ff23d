"""A retrieval grid: queries in the first column, their top-K neighbours to the right.

Drawn from plain arrays (images, a correct-or-wrong mask, similarities), so that any code
that retrieves neighbours (a run's test split, a ``search`` command) can reuse it.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pfml_jax.viz.figures import save_figure

CORRECT_COLOUR, WRONG_COLOUR = "#1a9641", "#d7191c"  # green / red (ColorBrewer RdYlGn)
CELL_INCHES, DPI = 1.1, 100


def neighbour_marks(query_labels: np.ndarray, neighbour_labels: np.ndarray) -> np.ndarray:
  """(Q, K) bool: True where neighbour k of query q shares the query's label."""
  query_labels, neighbour_labels = np.asarray(query_labels), np.asarray(neighbour_labels)
  if neighbour_labels.ndim != 2 or neighbour_labels.shape[0] != query_labels.shape[0]:
    raise ValueError(f"neighbour_labels must be (Q, K) for {query_labels.shape[0]} queries, "
                     f"got shape {neighbour_labels.shape}.")
  return neighbour_labels == query_labels[:, None]


def draw_retrieval_grid(query_images: list[np.ndarray], neighbour_images: list[list[np.ndarray]],
                        correct: np.ndarray | None, similarities: np.ndarray, title: str,
                        out_path) -> Path:
  """Writes the grid as a PNG and returns its path.

  Args:
    query_images: Q uint8 images (H, W, 3) (sizes may differ; each is shown whole).
    neighbour_images: per query, its K neighbours' images, nearest first.
    correct: (Q, K) bool, True for a neighbour of the query's class (a green frame), False for
      another class (a red frame); None when labels are unknown: no frames.
    similarities: (Q, K) cosine similarity of each neighbour to its query, printed under it.
    title: the figure's title.
    out_path: where the PNG goes (parent folders are created).
  """
  rows = len(query_images)
  columns = 1 + max((len(n) for n in neighbour_images), default=0)
  similarities = np.asarray(similarities)
  if len(neighbour_images) != rows or similarities.shape[0] != rows:
    raise ValueError(f"draw_retrieval_grid: {rows} queries but {len(neighbour_images)} "
                     f"neighbour lists and {similarities.shape[0]} rows of similarities.")
  if correct is not None and np.shape(correct) != similarities.shape:
    raise ValueError(f"draw_retrieval_grid: correct has shape {np.shape(correct)}, "
                     f"similarities {similarities.shape}; they must match.")
  figure, axes = plt.subplots(rows, columns, squeeze=False, dpi=DPI,
                              figsize=(CELL_INCHES * columns, CELL_INCHES * rows + 0.5))
  for axis in axes.flat:
    axis.set_axis_off()
  for q in range(rows):
    _show(axes[q, 0], query_images[q], "query", "black", frame=3.0)
    for k, image in enumerate(neighbour_images[q]):
      colour = None if correct is None else (CORRECT_COLOUR if correct[q][k] else WRONG_COLOUR)
      _show(axes[q, k + 1], image, f"{k + 1}: {similarities[q][k]:.3f}", colour, frame=4.0)
  figure.suptitle(title, fontsize=10)
  height = figure.get_figheight()
  figure.subplots_adjust(left=0.01, right=0.99, bottom=0.2 / height, top=1 - 0.5 / height,
                         wspace=0.08, hspace=0.3)
  return save_figure(figure, out_path, DPI)


def _show(axis, image: np.ndarray, caption: str, colour: str | None, frame: float) -> None:
  axis.imshow(np.asarray(image), interpolation="nearest")
  axis.set_axis_on()
  axis.set_xticks([])
  axis.set_yticks([])
  for spine in axis.spines.values():
    spine.set_visible(colour is not None)
    if colour is not None:
      spine.set_color(colour)
      spine.set_linewidth(frame)
  axis.set_xlabel(caption, fontsize=7, labelpad=1)
