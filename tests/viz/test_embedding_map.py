"""Embedding maps: class subsets, projections and the PNG, from a real run's embeddings."""

import numpy as np
import pytest
from PIL import Image

from pfml_jax.viz import embedding_map


def test_pick_classes():
  labels = np.repeat(np.arange(30), 3)
  picked = embedding_map.pick_classes(labels, 10, seed=1)
  assert len(picked) == 10 and len(set(picked)) == 10 and set(picked) <= set(range(30))
  assert list(picked) == sorted(picked)
  np.testing.assert_array_equal(embedding_map.pick_classes(labels[:12], 10), [0, 1, 2, 3])


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_keeps_separated_classes_apart(method):
  """Two tight clusters on the sphere stay two clusters in 2-D."""
  rng = np.random.default_rng(0)
  centres = np.eye(16)[:2] * 5
  points = np.concatenate([c + rng.normal(0, 0.05, (20, 16)) for c in centres])
  xy = embedding_map.project(points, method)
  assert xy.shape == (40, 2)
  a, b = xy[:20], xy[20:]
  spread = max(a.std(axis=0).max(), b.std(axis=0).max())
  assert np.linalg.norm(a.mean(0) - b.mean(0)) > 3 * spread


def test_unknown_projection():
  with pytest.raises(ValueError, match="projection must be one of"):
    embedding_map.project(np.ones((10, 3)), "umap")


def test_map_png_with_proxies(tmp_path):
  rng = np.random.default_rng(0)
  panels = [{"embeddings": rng.normal(size=(30, 8)), "labels": np.repeat(np.arange(3), 10),
             "title": "images"},
            {"embeddings": rng.normal(size=(20, 8)), "labels": np.repeat(np.arange(2), 10),
             "proxies": rng.normal(size=(4, 8)), "proxy_labels": np.array([0, 0, 1, 1]),
             "class_names": {0: "zero", 1: "one"}, "title": "with proxies"}]
  path = embedding_map.draw_embedding_map(panels, tmp_path / "map.png", method="pca")
  with Image.open(path) as image:
    width, height = embedding_map.FIGURE_SIZE
    assert image.format == "PNG"
    assert image.size == (round(2 * width * embedding_map.DPI), round(height * embedding_map.DPI))
