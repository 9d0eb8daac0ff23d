"""ViT-S/16, ViT-B/16 and DINO ViT-S/16 against randomly initialised timm models (eval mode)."""

import numpy as np
import pytest

from pfml_jax.models import load_pretrained, make_embedding_model
from tests.models import reference

torch = pytest.importorskip("torch", reason="torch is needed to build the reference model")
timm = pytest.importorskip("timm", reason="timm provides the reference ViTs")

AUGREG_MEAN = AUGREG_STD = (0.5, 0.5, 0.5)


def timm_cls_features(model, x) -> np.ndarray:
  with torch.no_grad():
    return model.forward_features(x)[:, 0].numpy()


@pytest.mark.parametrize("backbone, timm_name", [("vit_s16", "vit_small_patch16_224"),
                                                 ("vit_b16", "vit_base_patch16_224")])
def test_features_match_timm(tmp_path, backbone, timm_name):
  torch.manual_seed(0)
  model = reference.randomize(timm.create_model(timm_name, pretrained=False))
  safetensors_path, _ = reference.save_checkpoints(model.state_dict(), tmp_path, backbone,
                                                   pth=False)
  images = reference.random_images(2, 224)
  want = timm_cls_features(model, reference.to_torch_input(images, AUGREG_MEAN, AUGREG_STD))
  got = reference.our_features(backbone, safetensors_path, images)
  assert got.shape == want.shape
  assert reference.max_relative_error(got, want) <= 1e-4


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
  """timm's ``.dino`` model: the ViT-S/16 network without a classifier (num_classes=0)."""
  torch.manual_seed(1)
  model = reference.randomize(timm.create_model("vit_small_patch16_224", num_classes=0))
  directory = tmp_path_factory.mktemp("dino")
  paths = reference.save_checkpoints(model.state_dict(), directory, "dino", pth=False)
  return model, directory, paths


def test_dino_at_another_size_matches_timm_resampling(dino):
  """At 256 px the 14x14 position grid is resized bicubically, as timm resamples it."""
  from timm.layers import resample_abs_pos_embed
  model, _, (safetensors_path, _) = dino
  state = dict(model.state_dict())
  state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], [16, 16], num_prefix_tokens=1)
  resized = timm.create_model("vit_small_patch16_224", num_classes=0, img_size=256)
  resized.load_state_dict(state)
  images = reference.random_images(2, 256, seed=1)
  want = timm_cls_features(resized.eval(), reference.to_torch_input(
      images, reference.IMAGENET_MEAN, reference.IMAGENET_STD))
  got = reference.our_features("dino_vits16", safetensors_path, images)
  assert reference.max_relative_error(got, want) <= 1e-4


def test_dino_training_checkpoint_is_unwrapped(dino):
  """A DINO training checkpoint keeps the teacher as {'teacher': {'backbone.*', 'head.*'}}."""
  model, directory, (safetensors_path, _) = dino
  wrapped = {"teacher": {**{f"backbone.{k}": v for k, v in model.state_dict().items()},
                         "head.last_layer.weight": torch.zeros(8, 384)}}
  torch.save(wrapped, directory / "checkpoint.pth")
  abstract = reference.abstract_variables(make_embedding_model("dino_vits16", None), 224)
  reference.assert_same_tree(load_pretrained(abstract, directory / "checkpoint.pth", "dino_vits16"),
                             load_pretrained(abstract, safetensors_path, "dino_vits16"))
