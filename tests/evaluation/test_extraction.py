"""Embedding extraction from padded batches, the process gather, and the .npy round trip."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.evaluation import extract_embeddings, load_embeddings, save_embeddings
from pfml_jax.evaluation.extraction import gather_processes


def padded_batches(images, labels, batch_size):
  """Static-shape batches as the data layer makes them: the last one padded and masked."""
  for start in range(0, len(images), batch_size):
    chunk = slice(start, start + batch_size)
    pad = batch_size - len(images[chunk])
    yield {"images": np.pad(images[chunk], ((0, pad), (0, 0), (0, 0))),
           "labels": np.pad(labels[chunk], (0, pad), constant_values=-1),
           "mask": np.arange(batch_size) < batch_size - pad}


def make_split(num_items=37):
  rng = np.random.default_rng(0)
  return (rng.normal(size=(num_items, 4, 3)).astype(np.float32),
          rng.integers(0, 5, num_items).astype(np.int32),
          rng.normal(size=(12, 6)).astype(np.float32))


def test_keeps_exactly_the_real_rows_in_order():
  images, labels, weights = make_split()
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  # A model call whose output is sharded over all 8 devices, like the trainer's.
  embed = jax.jit(lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ weights),
                  out_shardings=jax.NamedSharding(mesh, jax.P("data")))
  embeddings, got_labels = extract_embeddings(embed, padded_batches(images, labels, 8),
                                              progress=False)
  assert embeddings.dtype == np.float32 and got_labels.dtype == np.int32
  np.testing.assert_array_equal(got_labels, labels)
  np.testing.assert_allclose(embeddings, np.tanh(images.reshape(len(images), -1) @ weights),
                             rtol=1e-5, atol=1e-6)


def test_num_batches_stops_early_and_progress_bar_runs(capsys):
  images, labels, weights = make_split()
  embed = lambda x: x.reshape(x.shape[0], -1) @ weights
  embeddings, got_labels = extract_embeddings(embed, padded_batches(images, labels, 8),
                                              num_batches=2, progress=True)
  assert embeddings.shape == (16, 6)
  np.testing.assert_array_equal(got_labels, labels[:16])
  assert "2/2" in capsys.readouterr().err


@pytest.mark.parametrize("embed, batches, message", [
    (lambda x: x, None, "one \\(E,\\) embedding per row"),
    (lambda x: x[:-1, 0, :], None, "one \\(E,\\) embedding per row"),
    (lambda x: x[:, 0, :], [], "got no batches"),
    (lambda x: x[:, 0, :], [{"images": np.zeros((2, 4, 3)), "labels": np.array([0, -1]),
                             "mask": np.array([True, True])}], "mask False and label -1"),
    (lambda x: x[:, 0, :], [{"images": np.zeros((2, 4, 3)), "labels": np.zeros(2)}],
     "lacks \\['mask'\\]"),
])
def test_bad_batches_say_what_is_wrong(embed, batches, message):
  images, labels, _ = make_split()
  batches = padded_batches(images, labels, 8) if batches is None else batches
  with pytest.raises(ValueError, match=message):
    extract_embeddings(embed, batches, progress=False)


def test_gather_processes_on_one_process_returns_the_rows():
  embeddings, labels = np.ones((5, 3), np.float32), np.arange(5, dtype=np.int32)
  got_embeddings, got_labels = gather_processes(embeddings, labels)
  np.testing.assert_array_equal(got_embeddings, embeddings)
  np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("name", ["split", "split.npy"])
def test_save_load_round_trip(tmp_path, name):
  embeddings = np.random.default_rng(1).normal(size=(9, 5))
  labels = np.arange(9) % 4
  paths = save_embeddings(str(tmp_path / "out" / name), embeddings, labels)
  assert paths == (str(tmp_path / "out" / "split.npy"), str(tmp_path / "out" / "split.labels.npy"))
  assert sorted(os.listdir(tmp_path / "out")) == ["split.labels.npy", "split.npy"]
  got_embeddings, got_labels = load_embeddings(paths[0])
  np.testing.assert_array_equal(got_embeddings, embeddings.astype(np.float32))
  np.testing.assert_array_equal(got_labels, labels)
  assert got_embeddings.dtype == np.float32 and got_labels.dtype == np.int32


def test_load_names_the_missing_file_and_the_layout(tmp_path):
  np.save(tmp_path / "only.npy", np.zeros((3, 2), np.float32))
  with pytest.raises(FileNotFoundError, match="only.labels.npy.*<stem>.labels.npy"):
    load_embeddings(str(tmp_path / "only.npy"))
  np.save(tmp_path / "bad.npy", np.zeros((3, 2), np.float32))
  np.save(tmp_path / "bad.labels.npy", np.zeros(4, np.int32))
  with pytest.raises(ValueError, match="shape"):
    load_embeddings(str(tmp_path / "bad"))
