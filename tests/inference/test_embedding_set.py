"""Embedding sets on disk: round trip, the fingerprint check, and inconsistent files."""

import numpy as np
import pytest

from pfml_jax.inference.embedding_set import (load_embedding_set, save_embedding_set,
                                              weights_sha256)
from pfml_jax.user_errors import MissingFileError, UserInputError

MODEL = {"workdir": "/runs/a", "step": 7, "weights_sha256": "a" * 64,
         "model_config_sha256": "c" * 64, "backbone": "vit_tiny", "embedding_dim": 3,
         "transform": {"image_size": 64, "resize_size": 72, "interpolation": "bicubic"}}


def test_round_trip_and_fingerprint_check(tmp_path):
  embeddings = np.arange(12, dtype=np.float32).reshape(4, 3)
  stem = save_embedding_set(str(tmp_path / "g.npy"), embeddings, [0, 1, -1, 2],
                            ["x/a b.jpg", "y.png", "z.jpg", "w.jpg"], MODEL)
  assert stem == str(tmp_path / "g")
  loaded = load_embedding_set(stem)
  np.testing.assert_array_equal(loaded.embeddings, embeddings)
  assert loaded.labels.tolist() == [0, 1, -1, 2] and loaded.paths[0] == "x/a b.jpg"
  loaded.check_made_by(dict(MODEL, workdir="/moved/a"))  # same weights and config: accepted
  with pytest.raises(UserInputError, match="embedded by another model: /runs/a step 7"):
    loaded.check_made_by(dict(MODEL, model_config_sha256="d" * 64))
  with pytest.raises(UserInputError, match="holds 3-d embeddings but the model of .* makes 5-d"):
    loaded.check_made_by(dict(MODEL, embedding_dim=5))


def test_inconsistent_or_missing_files_are_named(tmp_path):
  stem = save_embedding_set(str(tmp_path / "g"), np.ones((2, 3), np.float32), [0, 0],
                            ["a.jpg", "b.jpg"], MODEL)
  (tmp_path / "g.paths.txt").write_text("a.jpg\n")
  with pytest.raises(UserInputError, match="names 1 images but .*g.npy holds 2 rows"):
    load_embedding_set(stem)
  (tmp_path / "g.model.json").unlink()
  with pytest.raises(MissingFileError, match="no file .*g.model.json.*embed the gallery"):
    load_embedding_set(stem)


def test_weights_hash_sees_values_paths_and_dtypes():
  base = {"params": {"w": np.zeros((2, 2), np.float32)}}
  digests = {weights_sha256(base),
             weights_sha256({"params": {"w": np.eye(2, dtype=np.float32)}}),
             weights_sha256({"params": {"v": np.zeros((2, 2), np.float32)}}),
             weights_sha256({"params": {"w": np.zeros((2, 2), np.float64)}}),
             weights_sha256({"params": {"w": np.zeros((4,), np.float32)}})}
  assert len(digests) == 5
  assert weights_sha256({"params": {"w": np.zeros((2, 2), np.float32)}}) == weights_sha256(base)
