"""`search` from the command line: top-K against an independent NumPy search, and its errors
(another model's gallery, unreadable queries, mismatched embedding sizes): one line, status 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pfml_jax.inference.embedding_set import load_embedding_set, save_embedding_set
from tests.inference.conftest import error_lines

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gallery(image_folder, run_dir, tmp_path_factory):
  """The whole image folder embedded by the run's best checkpoint."""
  from pfml_jax.inference.__main__ import main  # pylint: disable=g-import-not-at-top
  stem = tmp_path_factory.mktemp("gallery") / "gallery"
  main(["embed", f"--workdir={run_dir}", f"--images={image_folder}", f"--out={stem}"])
  return load_embedding_set(str(stem))


def numpy_top_k(queries, gallery_embeddings, k):
  """float64 cosine similarity, similarity descending then gallery row ascending."""
  q = queries.astype(np.float64) / np.linalg.norm(queries, axis=1, keepdims=True)
  g = gallery_embeddings.astype(np.float64)
  g = g / np.linalg.norm(g, axis=1, keepdims=True)
  similarity = q @ g.T
  order = np.array([sorted(range(len(g)), key=lambda j: (-s[j], j))[:k] for s in similarity])
  return np.take_along_axis(similarity, order, axis=1), order


@pytest.mark.parametrize("backend", ["jax", "faiss"])
def test_search_matches_numpy_top_k(image_folder, run_dir, gallery, tmp_path, cli, backend):
  queries = image_folder / "class_07"
  out = tmp_path / "results.json"
  code, _, err = cli("search", f"--workdir={run_dir}", f"--gallery={gallery.stem}",
                     f"--queries={queries}", "--k=5", f"--backend={backend}", f"--out={out}")
  assert code == 0, err
  answer = json.loads(out.read_text())
  query_paths = sorted(str(p) for p in queries.glob("*.jpg"))
  assert [r["query"] for r in answer["results"]] == query_paths
  assert answer["backend"] == backend and answer["k"] == 5
  # The query images are in the gallery: their embeddings are those rows.
  query_rows = [gallery.paths.index(p) for p in query_paths]
  want_similarity, want_rows = numpy_top_k(gallery.embeddings[query_rows], gallery.embeddings, 5)
  rows = np.array([[n["row"] for n in r["neighbours"]] for r in answer["results"]])
  similarity = np.array([[n["similarity"] for n in r["neighbours"]] for r in answer["results"]])
  np.testing.assert_array_equal(rows, want_rows)
  np.testing.assert_allclose(similarity, want_similarity, atol=2e-6)
  assert all(n["path"] == gallery.paths[n["row"]] and "label" not in n
             for r in answer["results"] for n in r["neighbours"])
  assert [n["rank"] for n in answer["results"][0]["neighbours"]] == [1, 2, 3, 4, 5]


def test_gallery_of_another_checkpoint_is_refused(image_folder, run_dir, gallery, tmp_path, cli):
  code, _, err = cli("search", f"--workdir={run_dir}", "--checkpoint=2",
                     f"--gallery={gallery.stem}", f"--queries={image_folder / 'class_00'}",
                     f"--out={tmp_path / 'r.json'}")
  assert code == 2
  (line,) = error_lines(err)
  assert line.startswith(f"error: gallery {gallery.stem} was embedded by another model: ")
  step = gallery.model["step"]
  assert step != 2 and f"{run_dir} step {step}" in line and f"{run_dir} step 2" in line
  assert f"--checkpoint={step}" in line and not (tmp_path / "r.json").exists()


def test_mismatched_embedding_sizes_are_named(image_folder, run_dir, gallery, tmp_path, cli):
  # A gallery of 8-d embeddings, as a model with embedding_dim=8 would write it.
  other = dict(gallery.model, embedding_dim=8, weights_sha256="0" * 64)
  stem = save_embedding_set(str(tmp_path / "small"), gallery.embeddings[:, :8], gallery.labels,
                            gallery.paths, other)
  code, _, err = cli("search", f"--workdir={run_dir}", f"--gallery={stem}",
                     f"--queries={image_folder / 'class_00'}", f"--out={tmp_path / 'r.json'}")
  assert code == 2
  (line,) = error_lines(err)
  assert line.startswith(f"error: mismatched embedding sizes: gallery {stem} holds 8-d "
                         "embeddings but the model of ")
  assert "makes 16-d ones" in line
  # The .npy replaced by one of another size than its model.json says.
  np.save(tmp_path / "small.npy", gallery.embeddings[:, :4])
  code, _, err = cli("search", f"--workdir={run_dir}", f"--gallery={stem}",
                     f"--queries={image_folder / 'class_00'}", f"--out={tmp_path / 'r.json'}")
  assert code == 2
  assert error_lines(err) == [
      f"error: mismatched embedding sizes: {stem}.npy holds 4-d embeddings but "
      f"{stem}.model.json says its model makes 8-d ones; the files come from different runs: "
      "embed the gallery again."]


def test_unreadable_queries_are_listed_then_skipped_on_request(image_folder, run_dir, gallery,
                                                                tmp_path, cli):
  queries = tmp_path / "queries"
  queries.mkdir()
  Image.open(image_folder / "class_03" / "2.jpg").save(queries / "a.png")
  (queries / "b.jpg").write_bytes((image_folder / "class_03" / "2.jpg").read_bytes()[:200])
  args = ["search", f"--workdir={run_dir}", f"--gallery={gallery.stem}", f"--queries={queries}",
          "--k=3", f"--out={tmp_path / 'r.json'}"]
  # The real entry point, in its own process: one error line naming the file, status 2.
  env = dict(os.environ, PYTHONPATH=str(REPO))
  process = subprocess.run([sys.executable, "-m", "pfml_jax.inference", *args], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300, check=False)
  assert process.returncode == 2, process.stderr
  assert error_lines(process.stderr) == [
      "error: --queries: 1 of 2 image(s) cannot be decoded, first ones:",
      f"  {queries / 'b.jpg'}",
      "Replace or remove them, or pass --skip_unreadable to leave them out."]

  code, _, err = cli(*args, "--skip_unreadable")
  assert code == 0, err
  (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
  assert result["query"] == str(queries / "a.png")
  # A lossless copy of a gallery image finds that image first.
  assert result["neighbours"][0]["path"] == str(image_folder / "class_03" / "2.jpg")
  assert result["neighbours"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_k_larger_than_the_gallery_and_a_missing_gallery(image_folder, run_dir, gallery,
                                                         tmp_path, cli):
  code, _, err = cli("search", f"--workdir={run_dir}", f"--gallery={gallery.stem}",
                     f"--queries={image_folder / 'class_00'}", "--k=100",
                     f"--out={tmp_path / 'r.json'}")
  assert code == 2
  assert error_lines(err) == ["error: --k=100: must be between 1 and the gallery's 72 images."]
  code, _, err = cli("search", f"--workdir={run_dir}", f"--gallery={tmp_path / 'none'}",
                     f"--queries={image_folder / 'class_00'}", f"--out={tmp_path / 'r.json'}")
  assert code == 2
  (line,) = error_lines(err)
  assert line.startswith(f"error: --gallery={tmp_path / 'none'}: no file {tmp_path / 'none'}.npy")
  assert "embed the gallery images first" in line


def test_search_draws_the_grid(image_folder, run_dir, gallery, tmp_path, cli):
  from pfml_jax.viz import retrieval_grid  # pylint: disable=g-import-not-at-top
  grid = tmp_path / "grid.png"
  code, _, err = cli("search", f"--workdir={run_dir}", f"--gallery={gallery.stem}",
                     f"--queries={image_folder / 'class_03'}", "--k=4",
                     f"--out={tmp_path / 'r.json'}", f"--grid={grid}")
  assert code == 0, err
  with Image.open(grid) as image:
    assert image.format == "PNG"
    cell = retrieval_grid.CELL_INCHES * retrieval_grid.DPI
    assert image.size[0] == round(5 * cell)  # the query and its 4 neighbours
