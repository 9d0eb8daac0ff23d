"""The pretraining set's characters: never a demo class, nor a look-alike of one."""

import numpy as np

from pfml_jax.data.demo import load_demo_arrays
from tools import build_demo_set, build_pretrain_set


def test_candidates_exclude_demo_classes_and_look_alike_scripts():
  demo = "".join(build_demo_set.CLASS_CHARACTERS.values())
  others = ("É"  # Latin with an accent
            "ꭺ"  # Cherokee small letter (like a Latin a)
            "①❶"  # circled digits
            "␉"  # control picture spelling "HT"
            "ℝ"  # letter-like symbol
            "ᛖ"  # Runic, drawn as M by some fonts
            "ﺏ"  # Arabic presentation form: compatibility decomposition
            "ب"  # Arabic letter beh: kept
            "क"  # Devanagari ka: kept
            "⠿")  # Braille pattern: kept
  kept = build_pretrain_set.candidate_characters([ord(c) for c in demo + others])
  assert kept == sorted("بक⠿")


def test_every_demo_class_is_one_the_builder_excludes():
  """The shipped demo set's classes are exactly what the builder treats as demo classes."""
  shipped = set(load_demo_arrays()["class_chars"].tolist())
  assert shipped <= build_pretrain_set.demo_characters()
  assert build_pretrain_set.candidate_characters(ord(c) for c in shipped) == []


def test_look_alikes_are_found_also_when_mirrored():
  """A candidate drawn like a demo class (or its mirror image) is flagged, a distinct one not."""
  rng = np.random.default_rng(0)
  bar = np.zeros((64, 64), np.uint8)
  bar[8:56, 10:20] = 255  # a bar at the left
  blob = (rng.uniform(size=(64, 64)) > 0.5).astype(np.uint8) * 255
  demo_glyphs = {(0, "|"): bar, (1, "|"): bar}
  candidates = {(0, "a"): bar[:, ::-1].copy(), (0, "b"): blob}
  flagged = build_pretrain_set.lookalikes(candidates, demo_glyphs, ["|"])
  assert set(flagged) == {"a"} and flagged["a"][1] == "|" and flagged["a"][0] < 1e-9
