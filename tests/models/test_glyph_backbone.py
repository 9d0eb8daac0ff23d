"""The shipped glyph-pretrained backbone: it loads strictly into resnet50_tiny through the real
loader, and the characters it was trained on are disjoint from the demo set's classes."""

import os
import re

import jax
import numpy as np
from safetensors import safe_open

from pfml_jax.data.demo import load_demo_arrays
from pfml_jax.models import load_pretrained, make_embedding_model
from pfml_jax.small_experiments import GLYPH_BACKBONE

NOTES = os.path.join(os.path.dirname(GLYPH_BACKBONE), "GLYPH_BACKBONE.md")


def metadata() -> dict[str, str]:
  with safe_open(GLYPH_BACKBONE, framework="numpy") as f:
    return f.metadata()


def test_shipped_weights_load_strictly_with_the_files_values():
  assert os.path.getsize(GLYPH_BACKBONE) < 2**20
  model = make_embedding_model("resnet50_tiny", embedding_dim=64, frozen_bn=True)
  variables = model.init(jax.random.key(0), np.zeros((1, 64, 64, 3), np.uint8))
  loaded = load_pretrained(variables, GLYPH_BACKBONE, "resnet50_tiny", strict=True)
  with safe_open(GLYPH_BACKBONE, framework="numpy") as f:
    conv1 = f.get_tensor("conv1.weight")  # OIHW
    running_var = f.get_tensor("layer4.0.bn3.running_var")
  backbone = loaded["params"]["backbone"]
  np.testing.assert_array_equal(backbone["conv1"]["kernel"], conv1.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(loaded["batch_stats"]["backbone"]["layer4_0"]["bn3"]["var"],
                                running_var)
  np.testing.assert_array_equal(loaded["params"]["head"]["kernel"],
                                variables["params"]["head"]["kernel"])  # the head is not loaded


def test_trained_characters_are_disjoint_from_the_demo_classes():
  code_points = {int(c, 16) for c in metadata()["code_points"].split()}
  assert len(code_points) == int(metadata()["classes"]) >= 1000
  demo = {ord(c) for c in load_demo_arrays()["class_chars"].tolist()}
  assert len(demo) == 151 and not code_points & demo


def test_notes_state_the_files_measured_accuracy_and_set_size():
  with open(NOTES, encoding="utf-8") as f:
    notes = f.read()
  meta = metadata()
  accuracy = float(meta["held_out_top1"])
  assert re.search(rf"held-out top-1[^\n]*{accuracy:.4f}", notes)
  assert f"{int(meta['classes']):,} classes" in notes and f"{int(meta['images']):,} images" in notes
