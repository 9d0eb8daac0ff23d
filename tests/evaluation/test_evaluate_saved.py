"""The saved-embeddings entry point reports what the library reports."""

import json

import numpy as np
import pytest

from pfml_jax.evaluation import retrieval_metrics, retrieval_metrics_qg, save_embeddings
from pfml_jax.evaluation.evaluate_saved import main


def saved_split(tmp_path, name, seed):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 6, 40)
  embeddings = rng.normal(size=(6, 8))[labels] + rng.normal(size=(40, 8))
  save_embeddings(str(tmp_path / name), embeddings, labels)
  return embeddings, labels


def test_leave_one_out_with_explicit_labels_path(tmp_path, capsys):
  embeddings, labels = saved_split(tmp_path, "test", 0)
  main([str(tmp_path / "test.npy"), str(tmp_path / "test.labels.npy"), "--ks=1,10,100",
        "--backend=faiss", "--nmi"])
  got = json.loads(capsys.readouterr().out)
  assert got == retrieval_metrics(embeddings, labels, (1, 10, 100), backend="faiss", nmi=True)


def test_query_gallery(tmp_path, capsys):
  queries, query_labels = saved_split(tmp_path, "query", 1)
  gallery, gallery_labels = saved_split(tmp_path, "gallery", 2)
  main([str(tmp_path / "query.npy"), f"--gallery={tmp_path / 'gallery.npy'}", "--ks=1,5"])
  got = json.loads(capsys.readouterr().out)
  assert got == retrieval_metrics_qg(queries, query_labels, gallery, gallery_labels, (1, 5))


def test_bad_ks_flag_is_rejected(tmp_path):
  saved_split(tmp_path, "test", 0)
  with pytest.raises(SystemExit):
    main([str(tmp_path / "test.npy"), "--ks=1,ten"])
