"""BN-Inception against Cadene's reference implementation (``pretrainedmodels``), eval mode."""

import pytest

from pfml_jax.models import load_pretrained, make_embedding_model
from tests.models import reference

torch = pytest.importorskip("torch", reason="torch is needed to build the reference model")
pretrainedmodels = pytest.importorskip(
    "pretrainedmodels", reason="pretrainedmodels (Cadene) provides the reference BNInception")

CAFFE_BGR_MEAN = (104.0, 117.0, 128.0)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  torch.manual_seed(0)
  model = reference.randomize(pretrainedmodels.bninception(num_classes=1000, pretrained=None))
  directory = tmp_path_factory.mktemp("bninception")
  return model, directory, reference.save_checkpoints(model.state_dict(), directory, "bn")


def test_features_match_cadene_bninception(checkpoints):
  """BGR 0..255 minus the Caffe mean in, global average of the 5b output out."""
  model, _, (safetensors_path, _) = checkpoints
  images = reference.random_images(2, 224)
  with torch.no_grad():
    x = reference.to_torch_input(images, CAFFE_BGR_MEAN, (1.0, 1.0, 1.0), scale=1.0, bgr=True)
    want = model.features(x).mean(dim=(2, 3)).numpy()
  got = reference.our_features("bninception", safetensors_path, images, pooling="avg")
  assert got.shape == (2, 1024)
  assert reference.max_relative_error(got, want) <= 1e-4


def test_legacy_file_layout_and_pth(checkpoints):
  """bn_inception-52deb4733.pth (2017: torch's pre-zip pickle format, which must pass
  ``weights_only=True``) stores BatchNorm vectors as (1, C); all files load alike."""
  model, directory, (safetensors_path, pth_path) = checkpoints
  legacy = {key: value.unsqueeze(0) if "_bn." in key and value.ndim == 1 else value
            for key, value in model.state_dict().items()}
  _, legacy_pth = reference.save_checkpoints(legacy, directory, "bn_inception-52deb4733",
                                             pre_zip_pth=True)
  assert legacy_pth.read_bytes()[:2] == b"\x80\x02"  # a bare pickle, not a zip archive
  ours = make_embedding_model("bninception", embedding_dim=None)
  abstract = reference.abstract_variables(ours, 64)
  want = load_pretrained(abstract, safetensors_path, "bninception")
  reference.assert_same_tree(load_pretrained(abstract, pth_path, "bninception"), want)
  reference.assert_same_tree(load_pretrained(abstract, legacy_pth, "bninception"), want)
