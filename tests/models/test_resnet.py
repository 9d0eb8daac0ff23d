"""ResNet-50 against a randomly initialised torchvision ResNet-50 (eval mode)."""

import pytest

from pfml_jax.models import load_pretrained, make_embedding_model
from tests.models import reference

torch = pytest.importorskip("torch", reason="torch is needed to build the reference model")
torchvision = pytest.importorskip("torchvision", reason="torchvision provides the reference")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  torch.manual_seed(0)
  model = reference.randomize(torchvision.models.resnet50(weights=None))
  paths = reference.save_checkpoints(model.state_dict(), tmp_path_factory.mktemp("r50"), "r50")
  return model, paths


def test_features_match_torchvision(checkpoints):
  model, (safetensors_path, _) = checkpoints
  images = reference.random_images(2, 224)
  with torch.no_grad():
    trunk = torch.nn.Sequential(*list(model.children())[:-1])  # up to global average pooling
    want = trunk(reference.to_torch_input(images, reference.IMAGENET_MEAN,
                                          reference.IMAGENET_STD)).flatten(1).numpy()
  got = reference.our_features("resnet50", safetensors_path, images, pooling="avg")
  assert got.shape == (2, 2048)
  assert reference.max_relative_error(got, want) <= 1e-4


def test_pth_loads_the_same_variables(checkpoints):
  _, (safetensors_path, pth_path) = checkpoints
  model = make_embedding_model("resnet50", embedding_dim=None)
  abstract = reference.abstract_variables(model, 64)
  reference.assert_same_tree(load_pretrained(abstract, safetensors_path, "resnet50"),
                             load_pretrained(abstract, pth_path, "resnet50"))

