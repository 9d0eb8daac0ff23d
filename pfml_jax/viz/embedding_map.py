"""An embedding map: a 2-D projection of embeddings coloured by class, proxies over their images.

t-SNE (scikit-learn) on cosine distances by default, PCA on request. A subset of classes keeps
the colours distinguishable; proxies are L2-normalised first, as the energy sees them, and
projected together with the images so that both share one map.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from pfml_jax.numerics import unit_rows
from pfml_jax.viz.figures import save_figure

PROJECTIONS = {"tsne": "t-SNE", "pca": "PCA"}  # config name -> name in the titles
# Our choice: tab10's ten colours are the most classes a reader can tell apart in one map.
MAX_CLASSES = 10
FIGURE_SIZE, DPI = (6.0, 6.0), 100  # one panel: 600 x 600 pixels (the legend below the map)


def pick_classes(labels: np.ndarray, count: int = MAX_CLASSES, seed: int = 0) -> np.ndarray:
  """``count`` classes drawn at random (all when there are fewer), sorted."""
  classes = np.unique(labels[labels >= 0])
  if len(classes) <= count:
    return classes
  return np.sort(np.random.default_rng(seed).choice(classes, size=count, replace=False))


def project(points: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
  """(N, 2) projection of (N, E) points (rows L2-normalised first)."""
  if method not in PROJECTIONS:
    raise ValueError(f"projection must be one of {tuple(PROJECTIONS)}, got {method!r}.")
  points = unit_rows(points, "points", zero_rows="keep")  # a picture shows every point
  if method == "pca" or len(points) < 5:
    return PCA(n_components=2, random_state=seed).fit_transform(points)
  # scikit-learn's default perplexity of 30 needs more points than that; small sets get less.
  perplexity = min(30.0, (len(points) - 1) / 3.0)
  return TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca",
              random_state=seed).fit_transform(points)


def draw_embedding_map(panels: list[dict], out_path, title: str = "",
                       method: str = "tsne", seed: int = 0) -> Path:
  """One map per panel, side by side, written as a PNG.

  Each panel is a dict with "embeddings" (N, E), "labels" (N,), "title", and optionally
  "proxies" (Q, E) with "proxy_labels" (Q,) drawn as stars over their class's images.
  Every panel's classes get tab10's colours in sorted order.
  """
  figure, axes = plt.subplots(1, len(panels), squeeze=False, dpi=DPI, layout="constrained",
                              figsize=(FIGURE_SIZE[0] * len(panels), FIGURE_SIZE[1]))
  for axis, panel in zip(axes[0], panels):
    _draw_panel(axis, panel, method, seed)
  if title:
    figure.suptitle(title)
  return save_figure(figure, out_path, DPI)


def _draw_panel(axis, panel: dict, method: str, seed: int) -> None:
  embeddings, labels = np.asarray(panel["embeddings"]), np.asarray(panel["labels"])
  proxies = np.asarray(panel.get("proxies", np.zeros((0, embeddings.shape[1]))))
  proxy_labels = np.asarray(panel.get("proxy_labels", np.zeros((0,), int)))
  xy = project(np.concatenate([embeddings, proxies]), method, seed)
  image_xy, proxy_xy = xy[:len(embeddings)], xy[len(embeddings):]
  palette = plt.get_cmap("tab10")
  for index, label in enumerate(np.unique(labels)):
    colour = palette(index % 10)
    rows = labels == label
    axis.scatter(*image_xy[rows].T, s=12, color=colour, alpha=0.75, linewidths=0,
                 label=str(panel.get("class_names", {}).get(int(label), label)))
    mine = proxy_labels == label
    if mine.any():
      axis.scatter(*proxy_xy[mine].T, s=160, marker="*", color=colour, edgecolor="black",
                   linewidth=0.8, zorder=3)
  if len(proxies):
    axis.scatter([], [], s=160, marker="*", color="white", edgecolor="black", label="proxies")
  axis.set_xticks([])
  axis.set_yticks([])
  axis.set_title(f"{panel['title']} ({PROJECTIONS[method]})", fontsize=10)
  axis.legend(fontsize=7, markerscale=1.2, loc="upper center", bbox_to_anchor=(0.5, -0.01),
              ncols=2, frameon=False)
