"""Proxies started on their classes (loss.proxy_init = "class_mean"), against float64 means."""

import itertools

import jax
import numpy as np
import pytest

from pfml_jax.training import setup as setup_lib
from pfml_jax.training.proxy_init import class_mean_proxies
from pfml_jax.user_errors import ConfigError
from tests.colour_images import write_colour_classes
from tests.tiny_run import tiny_config


def unit_rows(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_one_proxy_per_class_is_the_class_mean_direction():
  rng = np.random.default_rng(0)
  labels = np.array([0] * 5 + [1] * 3 + [2] * 7)
  embeddings = rng.normal(size=(len(labels), 6)).astype(np.float32)
  proxies = class_mean_proxies(embeddings, labels, 3, 1, seed=0)
  expected = unit_rows([unit_rows(embeddings[labels == c]).mean(axis=0) for c in range(3)])
  np.testing.assert_allclose(proxies, expected, rtol=1e-6, atol=1e-6)


def test_as_many_proxies_as_images_gives_each_proxy_one_image():
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(3), 4)
  embeddings = rng.normal(size=(12, 5)).astype(np.float32)
  proxies = class_mean_proxies(embeddings, labels, 3, 4, seed=3)
  for c in range(3):
    own = unit_rows(embeddings[labels == c])
    mine = proxies[4 * c:4 * (c + 1)]
    distances = np.linalg.norm(mine[:, None] - own[None], axis=-1)
    assert sorted(distances.argmin(axis=1)) == [0, 1, 2, 3]  # each image exactly once
    np.testing.assert_allclose(distances.min(axis=1), 0, atol=1e-6)


def test_two_proxies_are_the_means_of_two_halves_of_their_class():
  rng = np.random.default_rng(2)
  labels = np.repeat(np.arange(2), 6)
  embeddings = rng.normal(size=(12, 8)).astype(np.float32)
  proxies = class_mean_proxies(embeddings, labels, 2, 2, seed=0)
  for c in range(2):
    units = unit_rows(embeddings[labels == c])
    halves = [unit_rows([units[list(half)].mean(axis=0),
                         units[[i for i in range(6) if i not in half]].mean(axis=0)])
              for half in itertools.combinations(range(6), 3)]
    assert any(np.allclose(pair, proxies[2 * c:2 * c + 2], atol=1e-5) for pair in halves)
  assert np.linalg.norm(proxies[0] - proxies[1]) > 0.1  # distinct: they can part


def test_a_class_with_fewer_images_than_proxies_is_named():
  labels = np.array([0, 0, 0, 1, 2, 2, 2])
  with pytest.raises(ConfigError, match="1 classes have fewer images \\(class 1: 1\\)"):
    class_mean_proxies(np.ones((7, 4), np.float32), labels, 3, 2, seed=0)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
  return write_colour_classes(tmp_path_factory.mktemp("images"))


def test_a_new_run_starts_its_sharded_proxies_on_its_classes(image_folder):
  config = tiny_config(image_folder, **{"loss.proxy_init": "class_mean", "mesh.data": 8,
                                        "mesh.shard_proxies": True,
                                        "loss.pfml.proxies_per_class": 1})
  setup = setup_lib.build(config)
  random_start = np.asarray(jax.device_get(setup.init(jax.random.key(config.seed)).proxies))
  state = setup_lib.fresh_state(setup)
  proxies = np.asarray(jax.device_get(state.proxies))
  embeddings, labels = setup.evaluator.embeddings(state.variables(), setup.train)
  classes = setup.train.num_classes
  expected = unit_rows([unit_rows(embeddings[labels == c]).mean(axis=0) for c in range(classes)])
  assert proxies.shape == (8, 16) and classes == 4  # 4 proxies, padded to the 8 devices
  np.testing.assert_allclose(proxies[:classes], expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(proxies[classes:], 0)  # padding rows stay empty
  assert np.abs(random_start[:classes] - expected).max() > 0.1
  assert state.trainable["proxies"].sharding.spec == setup.state_shardings.trainable[
      "proxies"].spec


@pytest.mark.parametrize("overrides, message", [
    ({"loss.proxy_init": "kmeans"}, "loss.proxy_init: must be one of"),
    ({"loss.proxy_init": "class_mean", "loss.name": "triplet"},
     "loss.proxy_init: 'class_mean' places proxies, but loss 'triplet' runs without any"),
])
def test_bad_proxy_init_is_named(image_folder, overrides, message):
  with pytest.raises(ConfigError, match=message):
    setup_lib.build(tiny_config(image_folder, **overrides))
