"""The pretraining script's weight export: torchvision keys and layouts the real loader reads."""

import jax
import numpy as np
from safetensors.numpy import save_file

from pfml_jax.models import load_pretrained, make_embedding_model
from tools import pretrain_backbone


def test_exported_weights_load_back_strictly_to_the_same_values(tmp_path):
  model = make_embedding_model(pretrain_backbone.BACKBONE, embedding_dim=None)
  images = np.zeros((1, 64, 64, 3), np.uint8)
  trained = model.init(jax.random.key(1), images)
  trained = jax.tree.map(lambda x: x + np.random.default_rng(0).uniform(0.1, 1, x.shape),
                         dict(trained))  # distinct values, variances stay positive
  tensors = pretrain_backbone.torch_layout(trained)
  assert tensors["conv1.weight"].shape == (8, 3, 7, 7)  # torch's OIHW
  assert "layer1.0.downsample.1.running_var" in tensors
  save_file(tensors, str(tmp_path / "w.safetensors"))
  fresh = model.init(jax.random.key(2), images)
  loaded = load_pretrained(fresh, tmp_path / "w.safetensors", pretrain_backbone.BACKBONE)
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b, np.float32))


def test_held_out_split_keeps_one_image_of_every_class():
  labels = np.repeat(np.arange(5), [3, 4, 5, 6, 7])
  train, held = pretrain_backbone.held_out_split(labels, seed=0)
  assert sorted(labels[held].tolist()) == list(range(5))
  assert sorted(np.concatenate([train, held]).tolist()) == list(range(len(labels)))
