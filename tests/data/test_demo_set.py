"""The shipped demo set: size, class-disjoint split, attribution, and its raw-pixel bar."""

import os

import numpy as np

from pfml_jax.data import read_split
from pfml_jax.data.demo import ASSET, load_demo_arrays, raw_pixel_recall_at_1


def test_demo_set_is_small_real_and_class_disjoint():
  assert os.path.getsize(ASSET) < 5 * 2**20
  train = read_split("demo", split="train")
  test = read_split("demo", split="test")
  assert 50 <= test.num_classes <= 100 and abs(train.num_classes - test.num_classes) <= 1
  assert not set(train.class_names) & set(test.class_names)
  assert np.bincount(train.labels).min() >= 30 and np.bincount(test.labels).min() >= 30
  image = test.images[0]
  assert image.shape == (64, 64, 3) and image.dtype == np.uint8
  assert image.min() < 64 and image.max() == 255  # dark ink on white
  arrays = load_demo_arrays()
  assert len(set(arrays["class_chars"].tolist())) == len(arrays["class_chars"])
  # Instances of a class are distinct fonts.
  for label in range(train.num_classes):
    fonts = [key.split("|", 1)[1] for key, l in zip(train.keys, train.labels) if l == label]
    assert len(set(fonts)) == len(fonts)
  with open(os.path.join(os.path.dirname(ASSET), "FONTS.md"), encoding="utf-8") as f:
    attribution = f.read()
  for name in arrays["font_names"]:
    assert f" {name} |" in attribution


def test_raw_pixel_recall_at_1_on_test_classes():
  """The bar a trained model must clear: brute-force 1-NN on raw pixels, float64."""
  test = read_split("demo", split="test")
  pixels = np.stack([test.images[i][..., 0] for i in range(len(test))]).astype(np.float64)
  x = pixels.reshape(len(pixels), -1)
  squared = np.einsum("ij,ij->i", x, x)
  distances = squared[:, None] + squared[None, :] - 2 * x @ x.T
  np.fill_diagonal(distances, np.inf)  # each query against all OTHER test images
  recall = np.mean(test.labels[np.argmin(distances, axis=1)] == test.labels)
  assert abs(recall - raw_pixel_recall_at_1()) < 1e-9  # the bar the demo's last line shows
  docs = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "data.md")
  with open(docs, encoding="utf-8") as f:
    assert f"Recall@1 = {recall:.3f}" in f.read()
