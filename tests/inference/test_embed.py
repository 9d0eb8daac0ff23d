"""`embed` from the command line: a folder, or a split of the run's dataset, embedded as the
evaluation embeds it, with paths and the model's fingerprint next to the embeddings."""

import json

import ml_collections
import numpy as np

from pfml_jax.evaluation import load_embeddings
from pfml_jax.evaluation.evaluator import make_evaluator
from pfml_jax.evaluation.trained_model import load_trained_model
from pfml_jax.inference.embedding_set import load_embedding_set, weights_sha256
from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.training import trainer
from tests.tiny_run import tiny_config


def evaluator_test_embeddings(image_folder, run_dir):
  """The test split's embeddings as evaluation computes them (one device, the run's batch)."""
  trained = load_trained_model(run_dir, "best")
  test = trainer.read_splits(tiny_config(image_folder, steps=4))[2]
  evaluator = make_evaluator(trained.embedder,
                             mesh_lib.make_mesh(ml_collections.ConfigDict({"data": 1})),
                             trained.config.eval)
  embeddings, labels = evaluator.embeddings(trained.variables, test)
  return trained, test, embeddings, labels


def test_embed_a_folder_equals_the_evaluators_embeddings(image_folder, run_dir, tmp_path, cli):
  code, out, err = cli("embed", f"--workdir={run_dir}", f"--images={image_folder}",
                       f"--out={tmp_path / 'gallery'}", "--batch_size=24")
  assert code == 0, err
  stem = str(tmp_path / "gallery")
  assert out.split() == [stem + s for s in (".npy", ".labels.npy", ".paths.txt", ".model.json")]
  gallery = load_embedding_set(stem)
  assert len(gallery.paths) == 72 and (gallery.labels == -1).all()
  assert gallery.paths == tuple(sorted(str(p) for p in image_folder.glob("*/*.jpg")))

  trained, test, embeddings, _ = evaluator_test_embeddings(image_folder, run_dir)
  rows = [gallery.paths.index(str(image_folder / key)) for key in test.keys]
  np.testing.assert_allclose(gallery.embeddings[rows], embeddings, rtol=0, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(gallery.embeddings, axis=1), 1.0, atol=1e-6)

  model = json.loads((tmp_path / "gallery.model.json").read_text())
  assert model["step"] == trained.step and model["embedding_dim"] == 16
  assert model["weights_sha256"] == weights_sha256(trained.variables)
  assert model["transform"] == {"image_size": 64, "resize_size": 72, "interpolation": "bicubic"}


def test_embed_the_runs_test_split_keeps_its_labels(image_folder, run_dir, tmp_path, cli):
  code, _, err = cli("embed", f"--workdir={run_dir}", "--split=test", f"--out={tmp_path / 't'}")
  assert code == 0, err
  embeddings, labels = load_embeddings(str(tmp_path / "t.npy"))
  _, test, want, want_labels = evaluator_test_embeddings(image_folder, run_dir)
  np.testing.assert_array_equal(labels, want_labels)
  np.testing.assert_allclose(embeddings, want, rtol=0, atol=1e-6)
  paths = (tmp_path / "t.paths.txt").read_text().splitlines()
  assert paths == [str(image_folder / key) for key in test.keys]


def test_embed_needs_exactly_one_source(run_dir, tmp_path, cli):
  code, _, err = cli("embed", f"--workdir={run_dir}", f"--out={tmp_path / 'x'}")
  assert code == 2
  assert err.strip().splitlines() == [
      "error: give exactly one of --images=FILE_OR_DIR and --split=train|val|test."]
