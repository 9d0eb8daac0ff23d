"""Top-K search on both backends against a float64 NumPy ranking, duplicates (ties) included."""

import numpy as np
import pytest

from pfml_jax.evaluation import nearest_neighbours as nn_lib
from pfml_jax.evaluation import retrieval


def reference_top_k(queries, gallery, k):
  """float64 cosine similarities; order: similarity descending, then gallery index."""
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
  similarity = q.astype(np.float64) @ g.astype(np.float64).T
  order = np.lexsort((np.broadcast_to(np.arange(len(g)), similarity.shape), -similarity), axis=1)
  top = order[:, :k]
  return np.take_along_axis(similarity, top, axis=1), top


@pytest.mark.parametrize("backend", ["jax", "faiss"])
@pytest.mark.parametrize("k", [1, 4, 30])
def test_top_k_matches_float64_reference_with_ties(backend, k):
  rng = np.random.default_rng(k)
  gallery = rng.normal(size=(30, 8)).astype(np.float32)
  gallery[[3, 17, 25]] = gallery[11]  # exact ties: the lower gallery index must come first
  queries = np.concatenate([rng.normal(size=(9, 8)), gallery[[11, 0]]]).astype(np.float32)
  similarity, items = nn_lib.nearest_neighbours(queries, gallery, k, backend, block_bytes=64)
  want_similarity, want_items = reference_top_k(queries, gallery, k)
  np.testing.assert_array_equal(items, want_items)
  np.testing.assert_allclose(similarity, want_similarity, atol=1e-6)
  assert items.shape == (11, k) and similarity.dtype == np.float32


@pytest.mark.parametrize("backend", ["jax", "faiss"])
def test_nearest_other_rows_against_brute_force(backend):
  rng = np.random.default_rng(0)
  embeddings = rng.normal(size=(50, 6)).astype(np.float32)
  embeddings[7] = embeddings[3] * 2.0  # a tie in cosine with 3: the lower index first
  queries = np.array([0, 3, 7, 49])
  similarity, rows = nn_lib.nearest_other_rows(embeddings, queries, 5, backend)
  unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
  for row, q in enumerate(queries):
    cosine = unit.astype(np.float64) @ unit[q]
    others = [i for i in sorted(range(50), key=lambda i: -cosine[i]) if i != q][:5]
    assert list(rows[row]) == others
    np.testing.assert_allclose(similarity[row], cosine[others], atol=1e-6)
  assert rows[2, 0] == 3 and rows[1, 0] == 7


def test_nearest_other_rows_when_the_query_ties_beyond_the_cut():
  embeddings = np.repeat(np.eye(3, dtype=np.float32)[:1], 4, axis=0)  # 4 equal rows
  similarity, rows = nn_lib.nearest_other_rows(embeddings, np.array([3, 0]), 2, "jax")
  np.testing.assert_array_equal(rows, [[0, 1], [1, 2]])  # row 3 ranks 4th: the cut drops it
  np.testing.assert_array_equal(similarity, 1.0)


def test_auto_is_the_evaluation_rule_for_one_pass_per_query():
  for k in (1, 9, 10, 50):
    assert nn_lib.neighbour_backend(k) == retrieval.choose_backend(k, passes_per_query=1)
  # On this CPU host with faiss: faiss below AUTO_CPU_DEPTH_PER_ITEM, jax from it on.
  assert nn_lib.neighbour_backend(retrieval.AUTO_CPU_DEPTH_PER_ITEM - 1) == "faiss"
  assert nn_lib.neighbour_backend(retrieval.AUTO_CPU_DEPTH_PER_ITEM) == "jax"


def test_bad_k_and_dimensions_are_named():
  gallery = np.eye(3, dtype=np.float32)
  with pytest.raises(ValueError, match="k=4: must be between 1 and the gallery size"):
    nn_lib.nearest_neighbours(gallery, gallery, 4)
  with pytest.raises(ValueError, match="dimension 2 but the gallery's 3"):
    nn_lib.nearest_neighbours(np.eye(2, dtype=np.float32), gallery, 1)
  with pytest.raises(ValueError, match="Unknown search backend"):
    nn_lib.nearest_neighbours(gallery, gallery, 1, backend="annoy")
