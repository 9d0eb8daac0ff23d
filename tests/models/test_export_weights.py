"""The export command on a local checkpoint (no download): file content and strict loading."""

import numpy as np
import pytest
from safetensors import safe_open

from pfml_jax.models import export_weights
from tests.models import reference

torch = pytest.importorskip("torch", reason="the export reads PyTorch checkpoints")
torchvision = pytest.importorskip("torchvision", reason="torchvision provides the layout")


def test_export_unwraps_a_training_checkpoint_and_keeps_torch_keys(tmp_path, capsys):
  torch.manual_seed(0)
  state = torchvision.models.resnet50(weights=None).state_dict()
  wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}
  torch.save(wrapped, tmp_path / "trained.pth")
  out = tmp_path / "weights" / "resnet50.safetensors"
  export_weights.main(["--model=resnet50", f"--checkpoint={tmp_path / 'trained.pth'}",
                       f"--out={out}"])
  with safe_open(str(out), framework="numpy") as f:
    assert set(f.keys()) == set(state)
    np.testing.assert_array_equal(f.get_tensor("layer3.2.conv2.weight"),
                                  state["layer3.2.conv2.weight"].numpy())
    assert f.metadata()["pfml_jax_backbone"] == "resnet50"
  assert "loads strictly into 'resnet50' (23,5" in capsys.readouterr().out


def test_export_refuses_a_checkpoint_of_another_architecture(tmp_path):
  torch.manual_seed(0)
  reference.save_checkpoints(torchvision.models.resnet50(weights=None).state_dict(), tmp_path,
                             "r50")
  with pytest.raises(ValueError, match="missing from the checkpoint"):
    export_weights.export("vit_s16", tmp_path / "vit.safetensors", tmp_path / "r50.pth")
