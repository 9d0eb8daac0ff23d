r"""Builds the offline pretraining set: glyphs of characters that are NOT demo-set classes.

The demo set (``tools/build_demo_set.py``) takes 151 Latin, Greek, Cyrillic and symbol
characters as its classes. This set takes every other character that enough of the same Debian
font packages draw (other scripts: Arabic, Devanagari, Ethiopic, Georgian, Hebrew, Thai, ...,
and symbols), so that a backbone pretrained on it by classification has never seen a demo class,
the way an ImageNet backbone has never seen CUB's test birds as classes. Characters are the
classes, font faces (every text style of every family) the instances; each glyph is rendered
with the demo set's functions, at a random size and position, dark ink on white, 64 x 64.

    python -c "from tools.build_demo_set import install_fonts; install_fonts()"  # root
    python -m tools.build_pretrain_set --out /tmp/glyph_pretrain.npz

Disjointness from the demo classes, in three layers (all our choice; a leak would make the
pretrained regime test on classes the backbone was trained on):
  1. no demo code point (asserted);
  2. no Latin, Greek, Cyrillic, Cherokee, Coptic, Lisu or Runic character at all, no symbol
     that contains such letters or Western digits (control pictures, letter-like symbols,
     number forms, enclosed or circled characters, APL's Greek-like symbols), nothing with a
     compatibility decomposition (full-width, mathematical, presentation forms: look-alikes of
     other characters), no combining marks (``candidate_characters``);
  3. no character whose mean glyph (over the faces drawing it, mirrored too, since training
     flips images) is closer than ``LOOKALIKE`` to a demo class's mean glyph.
"""

import collections
import dataclasses
import lzma
import os
import re
import unicodedata
import zlib

import numpy as np
from absl import flags
from fontTools.ttLib import TTCollection, TTFont

from pfml_jax.command_line import fail, parse_tool_flags
from tools import build_demo_set as demo

# Names of characters that are, or contain, Latin/Greek/Cyrillic letters or Western digits
# (Cherokee, Coptic, Lisu and Runic letters are often drawn like Latin and Greek ones; APL
# symbols like Greek letters; control pictures spell "DC2", "HT"; enclosed digits hold one).
EXCLUDED_NAMES = re.compile(
    r"LATIN|GREEK|CYRILLIC|CHEROKEE|COPTIC|LISU|RUNIC|^APL |^COMBINING|^MODIFIER|"
    r"^SYMBOL FOR|CIRCLED|PARENTHESIZED|SQUARED|ROMAN NUMERAL|FULL STOP|^DINGBAT")
# Blocks of letter-like symbols, number forms and control pictures (as above).
EXCLUDED_BLOCKS = ((0x2100, 0x218F), (0x2400, 0x24FF))
CATEGORIES = "LSN"  # letters, symbols, numbers (not punctuation, marks, separators, controls)
# Mean-glyph cosine distance below which a character counts as a look-alike of a demo class.
# Our choice: the demo's own closest distinct class pairs sit at ~0.03-0.1 (FONTS.md), and
# glyphs of one character in two faces at ~0.05-0.15; 0.15 removes anything near either.
LOOKALIKE = 0.15


def demo_characters() -> set[str]:
  return set("".join(demo.CLASS_CHARACTERS.values()))


def candidate_characters(code_points) -> list[str]:
  """Layer 2: ``code_points`` that can be classes here (sorted); demo code points excluded."""
  excluded = demo_characters()
  chars = []
  for code in sorted(set(code_points)):
    char = chr(code)
    name = unicodedata.name(char, "")
    if (not name or char in excluded or unicodedata.category(char)[0] not in CATEGORIES
        or EXCLUDED_NAMES.search(name) or any(lo <= code <= hi for lo, hi in EXCLUDED_BLOCKS)
        or unicodedata.normalize("NFKD", char) != char):
      continue
    chars.append(char)
  assert not set(chars) & excluded
  return chars


def list_faces(files: dict[str, str]) -> list[demo.Face]:
  """Every text style (demo.STYLE_RANK) of every family in ``files``, except the demo's
  decorative families; Noto's per-script families are kept (the demo leaves them out because
  they repeat Noto Sans' Latin letters; here they are the only designs of many scripts)."""
  faces = []
  for path in sorted(files):
    for index in range(64):
      try:
        family, style = demo.ImageFont.truetype(path, 12, index=index).getname()
      except OSError:
        break
      decorative = demo.EXCLUDED_FAMILIES.search(family) and not family.startswith("Noto ")
      if family and style and style.lower() in demo.STYLE_RANK and not decorative:
        faces.append(demo.Face(path, index, family, style, files[path]))
      if not path.endswith(".ttc"):
        break
  unique = {(f.family, f.style): f for f in faces}  # a face shipped twice counts once
  return sorted(unique.values(), key=lambda f: (f.family, f.style))


def mapped_code_points(face: demo.Face) -> set[int]:
  font = (TTCollection(face.path).fonts[face.index] if face.path.endswith(".ttc")
          else TTFont(face.path, lazy=True))
  return set(font.getBestCmap() or {})


def render_inks(faces: list[demo.Face], chars: set[str]) -> dict[tuple[int, str], object]:
  """The ink of every (face, char) the face maps and draws (not its .notdef, not blank)."""
  inks = {}
  for number, face in enumerate(faces):
    font, missing = demo.open_face(face)
    for char in sorted(chars & {chr(c) for c in mapped_code_points(face)}):
      ink = demo.ink_of(font, char, missing)
      if ink is not None:
        inks[(number, char)] = ink
  return inks


def mean_glyphs(glyphs: dict[tuple[int, str], np.ndarray], chars: list[str]) -> np.ndarray:
  """(len(chars), 1024) unit mean of each char's centred, downsampled, unit-norm glyphs."""
  by_char = collections.defaultdict(list)
  for (_, char), image in glyphs.items():
    by_char[char].append(demo._unit(image))  # pylint: disable=protected-access
  means = np.stack([np.mean(by_char[c], axis=0) for c in chars])
  return means / np.linalg.norm(means, axis=1, keepdims=True)


def lookalikes(candidates: dict, demo_glyphs: dict, demo_chars: list[str]) -> dict[str, tuple]:
  """Layer 3: candidate char -> (distance, demo char) for those within LOOKALIKE of a demo
  class's mean glyph or its mirror image."""
  chars = sorted({c for _, c in candidates})
  ours = mean_glyphs(candidates, chars)
  mirrored = {k: v[:, ::-1] for k, v in demo_glyphs.items()}
  theirs = np.concatenate([mean_glyphs(demo_glyphs, demo_chars),
                           mean_glyphs(mirrored, demo_chars)])
  distance = 1.0 - ours @ theirs.T
  nearest = np.argmin(distance, axis=1)
  return {c: (float(distance[i, nearest[i]]), demo_chars[nearest[i] % len(demo_chars)])
          for i, c in enumerate(chars) if distance[i, nearest[i]] < LOOKALIKE}


def place_at_random(ink, seed: int, face: demo.Face, char: str, min_scale: float) -> np.ndarray:
  """As demo.render_instance, from an ink already rendered: random size and position."""
  rng = np.random.default_rng([seed, zlib.crc32(face.path.encode()), face.index, ord(char)])
  scale, x, y = rng.uniform(min_scale, 1.0), rng.uniform(), rng.uniform()
  return 255 - demo.place(ink, scale, x, y)


@dataclasses.dataclass
class PretrainSet:
  pixels: np.ndarray  # (N, 64, 64) uint8
  labels: np.ndarray  # (N,) int32, 0..C-1
  font_ids: np.ndarray  # (N,) int32 into font_names
  code_points: np.ndarray  # (C,) int32, one per class
  font_names: list[str]
  excluded_lookalikes: dict[str, tuple]


def build(faces: list[demo.Face], min_faces: int, max_faces: int, min_scale: float,
          seed: int) -> PretrainSet:
  """Renders the set from ``faces``: classes drawn by at least ``min_faces`` faces."""
  demo_chars = sorted(demo_characters())
  coverage = collections.Counter()
  for face in faces:
    coverage.update(mapped_code_points(face))
  chars = candidate_characters(c for c, n in coverage.items() if n >= min_faces)
  inks = render_inks(faces, set(chars))
  counts = collections.Counter(c for _, c in inks)
  inks = {k: v for k, v in inks.items() if counts[k[1]] >= min_faces}
  centred = {k: demo.place(v) for k, v in inks.items()}
  demo_glyphs = {k: v for k, v in demo.render_faces(faces, "".join(demo_chars)).items()}
  excluded = lookalikes(centred, demo_glyphs, demo_chars)
  classes = sorted({c for _, c in inks} - set(excluded))
  rng = np.random.default_rng(seed)
  pixels, labels, font_ids = [], [], []
  for label, char in enumerate(classes):
    drawing = [n for n in range(len(faces)) if (n, char) in inks]
    for n in sorted(rng.permutation(drawing)[:max_faces]):
      pixels.append(place_at_random(inks[(n, char)], seed, faces[n], char, min_scale))
      labels.append(label)
      font_ids.append(n)
  code_points = np.array([ord(c) for c in classes], np.int32)
  assert not {chr(c) for c in code_points} & demo_characters()
  return PretrainSet(np.stack(pixels).astype(np.uint8), np.array(labels, np.int32),
                     np.array(font_ids, np.int32), code_points,
                     [f"{f.family} {f.style}" for f in faces], excluded)


def save(data: PretrainSet, path: str) -> None:
  """A compressed npz in the demo asset's format (``pixels_xz``, ``shape``, ``labels``, ...)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(path, pixels_xz=np.frombuffer(lzma.compress(data.pixels.tobytes(), preset=6),
                                         np.uint8),
           shape=np.array(data.pixels.shape), labels=data.labels, font_ids=data.font_ids,
           code_points=data.code_points, font_names=np.array(data.font_names))


def load(path: str) -> dict[str, np.ndarray]:
  """The arrays of a saved set, ``pixels`` decompressed."""
  with np.load(path) as stored:
    arrays = {k: stored[k] for k in stored.files}
  raw = lzma.decompress(arrays.pop("pixels_xz").tobytes())
  arrays["pixels"] = np.frombuffer(raw, np.uint8).reshape(tuple(arrays.pop("shape")))
  return arrays


_FLAGS = flags.FlagValues()
flags.DEFINE_string("out", "/tmp/glyph_pretrain.npz", "the .npz written", flag_values=_FLAGS)
flags.DEFINE_integer("min_faces", 6, "fewer: character left out", flag_values=_FLAGS)
flags.DEFINE_integer("max_faces", 16, "faces per class (at most)", flag_values=_FLAGS)
flags.DEFINE_float("min_scale", 0.7, "as build_demo_set", flag_values=_FLAGS)
flags.DEFINE_integer("seed", 0, "render seed", flag_values=_FLAGS)


def main(argv: list[str] | None = None) -> None:
  if parse_tool_flags(_FLAGS, argv, __doc__):
    fail("build_pretrain_set takes flags only (--help lists them).")
  faces = list_faces(demo.package_font_files())
  data = build(faces, _FLAGS.min_faces, _FLAGS.max_faces, _FLAGS.min_scale, _FLAGS.seed)
  save(data, _FLAGS.out)
  scripts = collections.Counter(unicodedata.name(chr(c)).split()[0] for c in data.code_points)
  print({"classes": len(data.code_points), "images": len(data.labels),
         "faces": len(set(data.font_ids.tolist())), "faces_listed": len(faces),
         "lookalikes_excluded": len(data.excluded_lookalikes),
         "scripts": dict(scripts.most_common(25)), "out": _FLAGS.out})
  closest = sorted(data.excluded_lookalikes.items(), key=lambda kv: kv[1])
  print("excluded look-alikes (char, distance, demo class):",
        " ".join(f"{c}:{d:.3f}:{t}" for c, (d, t) in closest[:60]))

if __name__ == "__main__":
  main()
