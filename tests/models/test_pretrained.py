"""Weight import: strict errors, non-strict skipping, expected extras, head kept, file formats."""

import logging
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfml_jax.models import load_pretrained, make_embedding_model, read_checkpoint
from tests.models import reference

torch = pytest.importorskip("torch", reason="torch is needed to write reference checkpoints")
torchvision = pytest.importorskip("torchvision", reason="torchvision provides the layout")


@pytest.fixture(scope="module")
def state_dict():
  torch.manual_seed(0)
  return reference.randomize(torchvision.models.resnet50(weights=None)).state_dict()


@pytest.fixture(scope="module")
def abstract():
  return reference.abstract_variables(make_embedding_model("resnet50", embedding_dim=512), 64)


def broken(state_dict):
  """One missing, one unexpected and one mis-shaped tensor, plus the (expected) fc head."""
  state = dict(state_dict)
  del state["layer1.0.conv1.weight"]
  state["layer5.0.conv1.weight"] = torch.zeros(3)
  state["layer4.2.bn3.weight"] = torch.zeros(7)
  return state


def test_strict_lists_missing_unexpected_and_mismatched(tmp_path, state_dict, abstract):
  path, _ = reference.save_checkpoints(broken(state_dict), tmp_path, "broken", pth=False)
  with pytest.raises(ValueError) as error:
    load_pretrained(abstract, path, "resnet50")
  message = str(error.value)
  assert "missing from the checkpoint (1):\n    layer1.0.conv1.weight" in message
  assert "unexpected in the checkpoint (1):\n    layer5.0.conv1.weight" in message
  assert "shape mismatch (1):\n    layer4.2.bn3.weight: checkpoint (7,)" in message
  assert "fc.weight" not in message and "strict=False" in message


def test_non_strict_loads_the_rest_and_reports(tmp_path, state_dict, abstract, caplog):
  path, _ = reference.save_checkpoints(broken(state_dict), tmp_path, "broken", pth=False)
  initial = jax.tree.map(lambda s: jnp.full(s.shape, 7.0, s.dtype), abstract)
  with caplog.at_level(logging.INFO, logger="pfml_jax.models.pretrained"):
    loaded = load_pretrained(initial, path, "resnet50", strict=False)
  log = caplog.text
  assert "layer1.0.conv1.weight" in log and "layer5.0.conv1.weight" in log
  assert "layer4.2.bn3.weight" in log
  assert "classifier head: fc.bias, fc.weight." in log
  backbone = loaded["params"]["backbone"]
  np.testing.assert_array_equal(backbone["layer1_0"]["conv1"]["kernel"], 7.0)  # kept
  np.testing.assert_array_equal(backbone["layer4_2"]["bn3"]["scale"], 7.0)  # kept
  np.testing.assert_array_equal(backbone["layer4_2"]["bn3"]["bias"],
                                state_dict["layer4.2.bn3.bias"].numpy())
  np.testing.assert_array_equal(loaded["batch_stats"]["backbone"]["bn1"]["var"],
                                state_dict["bn1.running_var"].numpy())
  np.testing.assert_array_equal(backbone["conv1"]["kernel"],
                                state_dict["conv1.weight"].numpy().transpose(2, 3, 1, 0))


def test_head_and_other_collections_are_kept(tmp_path, state_dict, abstract):
  path, _ = reference.save_checkpoints(state_dict, tmp_path, "r50", pth=False)
  head = {"kernel": jnp.full((2048, 512), 0.5), "bias": jnp.full((512,), -1.0)}
  variables = {**abstract, "params": {**abstract["params"], "head": head}}
  loaded = load_pretrained(variables, path, "resnet50")
  assert loaded["params"]["head"] is head
  assert set(loaded) == {"params", "batch_stats"}
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(loaded["params"]["backbone"]))


def test_bfloat16_safetensors_are_read_without_torch_dtypes(tmp_path, state_dict, abstract):
  import safetensors.torch
  state = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state_dict.items()}
  safetensors.torch.save_file(state, str(tmp_path / "bf16.safetensors"))
  loaded = load_pretrained(abstract, tmp_path / "bf16.safetensors", "resnet50")
  np.testing.assert_array_equal(loaded["params"]["backbone"]["bn1"]["scale"],
                                state["bn1.weight"].float().numpy())
  assert loaded["params"]["backbone"]["bn1"]["scale"].dtype == jnp.float32


def test_wrong_architecture_fails_loudly(tmp_path, state_dict):
  path, _ = reference.save_checkpoints(state_dict, tmp_path, "r50", pth=False)
  vit = reference.abstract_variables(make_embedding_model("vit_tiny", None), 64)
  with pytest.raises(ValueError, match=r"missing from the checkpoint \(\d+\)"):
    load_pretrained(vit, path, "vit_tiny")


def test_corrupt_values_are_rejected(tmp_path, state_dict, abstract):
  state = dict(state_dict)
  state["bn1.running_var"] = -state["bn1.running_var"]
  path, _ = reference.save_checkpoints(state, tmp_path, "corrupt", pth=False)
  with pytest.raises(ValueError, match="bn1.running_var"):
    load_pretrained(abstract, path, "resnet50")


def test_missing_file_and_pth_without_torch_say_what_to_do(tmp_path, monkeypatch, abstract):
  with pytest.raises(FileNotFoundError, match="export_weights"):
    load_pretrained(abstract, tmp_path / "absent.safetensors", "resnet50")
  (tmp_path / "weights.pth").write_bytes(b"not read")
  monkeypatch.setitem(sys.modules, "torch", None)  # as on a machine without torch
  with pytest.raises(ImportError, match="export_weights .*--checkpoint="):
    read_checkpoint(tmp_path / "weights.pth")
