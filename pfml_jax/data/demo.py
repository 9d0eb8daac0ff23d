"""The shipped offline demo set: glyphs of many fonts, characters as classes.

``demo_assets/glyphs64.npz`` (built by ``tools/build_demo_set.py``) holds 64 x 64 grayscale images
(dark ink on white), delivered as RGB. Its classes are stored in a fixed shuffled order; the
first ``num_train_classes`` are the training classes, the rest the test classes.
"""

import functools
import lzma
import os

import numpy as np

from pfml_jax.data.images import ArrayImageSource
from pfml_jax.data.split import Partition
from pfml_jax.user_errors import MissingFileError

ASSET = os.path.join(os.path.dirname(__file__), "demo_assets", "glyphs64.npz")


@functools.lru_cache(maxsize=1)
def load_demo_arrays(path: str = ASSET) -> dict[str, np.ndarray]:
  """The asset's arrays, with ``pixels`` (N, 64, 64) uint8 decompressed."""
  if not os.path.isfile(path):
    raise MissingFileError(f"{path} is missing: it ships with the package. Reinstall, or "
                           "rebuild it with `python -m tools.build_demo_set`.")
  with np.load(path) as stored:
    arrays = {k: stored[k] for k in stored.files}
  raw = lzma.decompress(arrays.pop("pixels_xz").tobytes())
  arrays["pixels"] = np.frombuffer(raw, np.uint8).reshape(tuple(arrays.pop("shape")))
  return arrays


def raw_pixel_recall_at_1() -> float:
  """Test classes' Recall@1 of Euclidean 1-NN on raw pixels: the bar a trained embedding must
  clear (measured by ``tools/build_demo_set.py`` when it built the asset, stored in it)."""
  return float(load_demo_arrays()["pixel_recall_at_1"])


def read_demo(root: str | None = None) -> dict[str, Partition]:
  """Train and test partitions of the demo set (``root`` is ignored)."""
  del root
  arrays = load_demo_arrays()
  labels = arrays["labels"].astype(np.int64)
  names = dict(enumerate(str(n) for n in arrays["class_names"]))
  fonts = arrays["font_names"][arrays["font_ids"]]
  keys = tuple(f"{arrays['class_chars'][c]}|{font}" for c, font in zip(labels, fonts))
  source = ArrayImageSource(arrays["pixels"], np.arange(len(labels)))
  whole = Partition(source, labels, names, keys)
  is_train = labels < int(arrays["num_train_classes"])
  return {"train": whole.subset(np.flatnonzero(is_train)),
          "test": whole.subset(np.flatnonzero(~is_train))}
