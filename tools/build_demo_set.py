r"""Builds the shipped offline demo set: glyphs of many font designs (like notMNIST/Omniglot).

Characters are the classes, font designs the instances. The fonts come from Debian's font
packages; each glyph is rendered large, cropped to its ink, scaled (aspect kept) so its longer
side is 56 px, centred on a 64 x 64 white canvas and stored as uint8 grayscale.

Rebuild (Debian/Ubuntu; ``--install_fonts`` runs apt-get, so as root):

    python -m tools.build_demo_set --install_fonts --out pfml_jax/data/demo_assets

The result depends on the installed package versions, recorded in the attribution file.
"""

import collections
import dataclasses
import lzma
import os
import re
import subprocess
import unicodedata
import zlib

import numpy as np
from absl import flags
from PIL import Image, ImageFont

from pfml_jax.command_line import fail, parse_tool_flags

FONT_PACKAGES = (
    "fonts-adf-accanthis", "fonts-adf-berenis", "fonts-adf-gillius", "fonts-adf-universalis",
    "fonts-agave", "fonts-anonymous-pro", "fonts-averia-gwf", "fonts-averia-sans-gwf",
    "fonts-averia-serif-gwf", "fonts-b612", "fonts-cabin", "fonts-cantarell", "fonts-cardo",
    "fonts-cmu", "fonts-comfortaa", "fonts-comic-neue", "fonts-crosextra-caladea",
    "fonts-crosextra-carlito", "fonts-croscore", "fonts-dejavu-core", "fonts-dejavu-extra",
    "fonts-dustin", "fonts-ebgaramond", "fonts-ecolier-court", "fonts-femkeklaver",
    "fonts-firacode", "fonts-freefont-ttf", "fonts-gfs-artemisia", "fonts-gfs-didot",
    "fonts-gfs-neohellenic", "fonts-go", "fonts-hack", "fonts-inconsolata",
    "fonts-inter", "fonts-isabella", "fonts-jetbrains-mono", "fonts-junicode", "fonts-jura",
    "fonts-lato", "fonts-league-spartan", "fonts-liberation2",
    "fonts-linuxlibertine", "fonts-lobstertwo", "fonts-manrope", "fonts-monofur",
    "fonts-mononoki", "fonts-noto-core", "fonts-noto-mono", "fonts-ocr-b", "fonts-oldstandard",
    "fonts-open-sans", "fonts-oxygen", "fonts-paratype", "fonts-play", "fonts-quicksand",
    "fonts-roboto-slab", "fonts-roboto-unhinted", "fonts-sil-andika", "fonts-sil-charis",
    "fonts-sil-doulos", "fonts-sil-gentiumplus", "fonts-stix", "fonts-texgyre", "fonts-tuffy",
    "fonts-urw-base35", "fonts-vollkorn", "fonts-yanone-kaffeesatz", "fonts-3270",
)

# The classes, by script, in priority order (an earlier class wins a shape clash). Left out,
# because another class has the same shape once scaled to the box, or is its mirror image
# (training flips images horizontally): 0 o O-likes (O kept), l I (1 kept), the lowercase
# c o p s v w x z (their capitals kept), d q (mirrors of b p), Greek and Cyrillic letters drawn
# like Latin ones (A/Α/А, B/Β/В, ...), Greek ι κ ν ο ρ τ υ χ, Cyrillic З (3) И Й (mirrored N)
# Я (mirrored R) Ь (b) У (y) Џ Ђ Є Ї Ф (Φ) and every Cyrillic lowercase (small capitals), the mirror
# halves of ( ) [ ] { } < > / \ and of arrows, ∃ (mirrored E), ∈ ⊂ ∩ ∪ × ° ¥ µ.
CLASS_CHARACTERS = {
    "digits": "123456789",
    "latin_upper": "ABCDEFGHJKLMNOPQRSTUVWXYZ",
    "latin_lower": "abefghijkmnrtuy",
    "greek_upper": "ΓΔΘΛΞΠΣΦΨΩ",
    "greek_lower": "αβγδεζηθλμξπσςφψω",
    "cyrillic_upper": "БДЖЛЦЧШЩЪЫЭЮЁЋЉЊҐ",
    "symbols": "&@#$%?!§¶©®€£¢+=*~^÷±≠≈√∫∂∞←↑↓([{</¿æœÆŒßØÞþð†‡•‰¤¬♪♥♣♠♦∀∇",
}
# Families that are not text designs: symbol and math sets, keycaps, decorative initials, small
# capitals (lowercase drawn as capitals), handwriting guides with ruled lines, grunge faces.
EXCLUDED_FAMILIES = re.compile(
    r"Abecedario|Keyboard|Initials|Smallcaps|Math|STIX(Size|Integrals|NonUnicode|Variants)|"
    r"Standard Symbols|D050000L|Noto Music|Symbols|Junkyard|Penguin Attack|Wargames|Winks|"
    r"Marked Fool|It wasn't me|Domestic Manners|El Abogado Loco|Balker|Swift|^Y$|"
    r"Noto Sans (?!Display|Mono)\w|Noto Serif (?!Display)\w")
# Style preference inside a family; at most FACES_PER_FAMILY of them are used.
STYLE_RANK = {"regular": 0, "book": 0, "roman": 0, "normal": 0, "italic": 1, "oblique": 1,
              "bold": 2, "bold italic": 3, "bold oblique": 3}
FACES_PER_FAMILY = 2
# Two faces closer than this (mean 1 - cosine over PROBE glyphs) are one design (clones such
# as Nimbus Roman / TeX Gyre Termes / FreeSerif); styles of one family are >= 0.1 apart.
SAME_DESIGN = 0.03
PROBE = "AaBbEeGgKkMmRrSs23&Qfy"
CANVAS, GLYPH_BOX, RENDER_SIZE = 64, 56, 128
MISSING = "\U0010FFFD"  # a private-use code point no text font maps: its .notdef glyph


@dataclasses.dataclass(frozen=True)
class Face:
  path: str
  index: int
  family: str
  style: str
  package: str = ""
  license: str = ""


def install_fonts() -> None:
  subprocess.run(["apt-get", "update", "-qq"], check=True)
  subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *FONT_PACKAGES],
                 check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def package_font_files() -> dict[str, str]:
  """Font file -> Debian package, for the files of FONT_PACKAGES that are installed."""
  files = {}
  for package in FONT_PACKAGES:
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True).stdout
    files.update({p: package for p in listing.split()
                  if p.endswith((".ttf", ".otf", ".ttc")) and os.path.isfile(p)})
  return files


def list_faces(files: dict[str, str]) -> list[Face]:
  """Text faces: at most FACES_PER_FAMILY preferred styles of every non-excluded family."""
  by_family = collections.defaultdict(list)
  for path in sorted(files):
    for index in range(64):
      try:
        family, style = ImageFont.truetype(path, 12, index=index).getname()
      except OSError:
        break
      if family and style and not EXCLUDED_FAMILIES.search(family):
        by_family[family].append(Face(path, index, family, style, files[path]))
      if not path.endswith(".ttc"):
        break
  faces = []
  for family in sorted(by_family):
    ranked = sorted((STYLE_RANK[f.style.lower()], f.path, f) for f in by_family[family]
                    if f.style.lower() in STYLE_RANK)
    styles = {}
    for rank, _, face in ranked:
      styles.setdefault(rank, face)
    faces.extend(list(styles.values())[:FACES_PER_FAMILY])
  return faces


def ink_of(font: ImageFont.FreeTypeFont, char: str, missing: tuple) -> Image.Image | None:
  """The glyph's ink (0..255), cropped to its bounding box, or None if the font lacks it."""
  mask = font.getmask(char, mode="L")
  if mask.size == missing[0] and bytes(mask) == missing[1]:
    return None
  if mask.size[0] * mask.size[1] == 0:
    return None
  ink = Image.frombytes("L", mask.size, bytes(mask))
  box = ink.getbbox()
  return None if box is None else ink.crop(box)


def place(ink: Image.Image, scale: float = 1.0, x: float = 0.5, y: float = 0.5) -> np.ndarray:
  """Ink scaled so its longer side is scale * GLYPH_BOX, at relative position (x, y) of the
  free room on the CANVAS (0.5, 0.5: centred)."""
  factor = scale * GLYPH_BOX / max(ink.size)
  size = (max(1, round(ink.size[0] * factor)), max(1, round(ink.size[1] * factor)))
  canvas = Image.new("L", (CANVAS, CANVAS), 0)
  canvas.paste(ink.resize(size, Image.LANCZOS),
               (round(x * (CANVAS - size[0])), round(y * (CANVAS - size[1]))))
  return np.asarray(canvas)


def open_face(face: Face) -> tuple[ImageFont.FreeTypeFont, tuple]:
  font = ImageFont.truetype(face.path, RENDER_SIZE, index=face.index)
  notdef = font.getmask(MISSING, mode="L")
  return font, (notdef.size, bytes(notdef))


def render_faces(faces: list[Face], chars: str) -> dict[tuple[int, str], np.ndarray]:
  """Centred ink of every (face, char) the face covers; faces without Latin letters skipped."""
  glyphs = {}
  for number, face in enumerate(faces):
    font, missing = open_face(face)
    if ink_of(font, "A", missing) is None:
      continue
    for char in chars:
      ink = ink_of(font, char, missing)
      if ink is not None:
        glyphs[(number, char)] = place(ink)
  return glyphs


def _unit(ink: np.ndarray) -> np.ndarray:
  x = ink.reshape(CANVAS // 2, 2, CANVAS // 2, 2).mean((1, 3)).ravel().astype(np.float64)
  return x / max(np.linalg.norm(x), 1e-9)


def distinct_designs(faces: list[Face], glyphs: dict) -> list[int]:
  """Faces that cover PROBE with standard glyphs and real lowercase, none a clone of another."""
  covering = [n for n in range(len(faces)) if all((n, c) in glyphs for c in PROBE)]
  probes = {n: np.stack([_unit(glyphs[(n, c)]) for c in PROBE]) for n in covering}
  consensus = np.mean(list(probes.values()), axis=0)
  consensus /= np.linalg.norm(consensus, axis=1, keepdims=True)
  kept = []
  for number in covering:
    probe = probes[number]
    # Legacy encodings (e.g. Greek glyphs on Latin code points) miss the consensus shapes.
    if np.mean(np.argmax(probe @ consensus.T, axis=1) == np.arange(len(PROBE))) < 0.75:
      continue
    # Lowercase drawn as capitals (small caps, titling faces) would repeat other classes.
    if np.mean([1 - probe[i] @ probe[i + 1] for i in range(0, 16, 2)]) < 0.15:
      continue
    if any(np.mean(1 - np.sum(probe * probes[other], axis=1)) < SAME_DESIGN for other in kept):
      continue
    kept.append(number)
  return kept


def render_instance(face: Face, char: str, seed: int, min_scale: float) -> np.ndarray:
  """One stored image: the glyph at a random size (min_scale..1 of the box) and position,
  drawn from (seed, face, char); dark ink on white."""
  font, missing = open_face(face)
  rng = np.random.default_rng([seed, zlib.crc32(face.path.encode()), face.index, ord(char)])
  scale, x, y = rng.uniform(min_scale, 1.0), rng.uniform(), rng.uniform()
  return 255 - place(ink_of(font, char, missing), scale, x, y)


def license_of(package: str) -> str:
  """The licence a Debian package's copyright file names for its files."""
  text = ""
  copyright_path = f"/usr/share/doc/{package}/copyright"
  if os.path.isfile(copyright_path):
    with open(copyright_path, encoding="utf-8", errors="replace") as f:
      text = f.read()
  dep5 = re.search(r"^Files: \*\s*\n(?:.+\n)*?License: (.+)$", text, re.MULTILINE)
  if dep5:
    return dep5.group(1).strip()
  for pattern, name in (("Open Font License", "OFL-1.1"), ("CC-BY-SA", "CC-BY-SA-3.0"),
                        ("General Public License", "GPL-2+"), ("public domain", "public-domain")):
    if pattern.lower() in text.lower():
      return name
  return f"see {copyright_path}"


def package_version(package: str) -> str:
  result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                          text=True)
  return result.stdout.strip() or "?"


def pixel_recall_at_1(images: np.ndarray, labels: np.ndarray) -> float:
  """Recall@1 of brute-force Euclidean nearest neighbours on raw pixels, query excluded."""
  x = images.reshape(len(images), -1).astype(np.float64)
  squared = np.sum(x * x, axis=1)
  distances = squared[:, None] + squared[None, :] - 2.0 * (x @ x.T)
  np.fill_diagonal(distances, np.inf)
  return float(np.mean(labels[np.argmin(distances, axis=1)] == labels))


def closest_class_pairs(glyphs: dict, classes: list[str], members: list[list[int]],
                        count: int = 12) -> list[tuple[float, str, str]]:
  """The most similar class pairs: median over shared faces of 1 - cosine, mirrors included."""
  pairs = []
  for a in range(len(classes)):
    for b in range(a + 1, len(classes)):
      shared = sorted(set(members[a]) & set(members[b]))
      if not shared:
        continue
      distances = [min(1 - _unit(glyphs[(f, classes[a])]) @ _unit(glyphs[(f, classes[b])]),
                       1 - _unit(glyphs[(f, classes[a])]) @ _unit(glyphs[(f, classes[b])][:, ::-1]))
                   for f in shared]
      pairs.append((round(float(np.median(distances)), 3), classes[a], classes[b]))
  return sorted(pairs)[:count]


def class_name(char: str) -> str:
  return f"U+{ord(char):04X} {char} {unicodedata.name(char, '').lower()}"


def build(out_dir: str, instances: int, min_instances: int, min_scale: float, seed: int) -> dict:
  """Renders, selects and writes the set; returns a summary."""
  chars = "".join(CLASS_CHARACTERS.values())
  faces = list_faces(package_font_files())
  glyphs = render_faces(faces, chars + PROBE)
  designs = distinct_designs(faces, glyphs)
  rng = np.random.default_rng(seed)
  ranking = [designs[i] for i in rng.permutation(len(designs))]
  classes, members = [], []
  for char in chars:
    covering = [f for f in ranking if (f, char) in glyphs][:instances]
    if len(covering) >= min_instances:
      classes.append(char)
      members.append(covering)
  order = rng.permutation(len(classes))  # class order mixes scripts; first half trains
  classes = [classes[i] for i in order]
  members = [members[i] for i in order]
  used = sorted({f for m in members for f in m})
  face_id = {f: i for i, f in enumerate(used)}
  pixels, labels, fonts = [], [], []
  for label, (char, covering) in enumerate(zip(classes, members)):
    for f in covering:
      pixels.append(render_instance(faces[f], char, seed, min_scale))
      labels.append(label)
      fonts.append(face_id[f])
  pixels = np.stack(pixels).astype(np.uint8)
  labels = np.array(labels, np.int32)
  num_train = (len(classes) + 1) // 2
  test = labels >= num_train
  recall = pixel_recall_at_1(pixels[test], labels[test])
  infos = [dataclasses.replace(faces[f], license=license_of(faces[f].package)) for f in used]
  os.makedirs(out_dir, exist_ok=True)
  np.savez(os.path.join(out_dir, "glyphs64.npz"),
           pixels_xz=np.frombuffer(lzma.compress(pixels.tobytes(), preset=9), np.uint8),
           shape=np.array(pixels.shape), labels=labels, font_ids=np.array(fonts, np.int32),
           class_chars=np.array(classes), class_names=np.array([class_name(c) for c in classes]),
           num_train_classes=num_train,
           font_names=np.array([f"{i.family} {i.style}" for i in infos]),
           pixel_recall_at_1=recall)
  _write_attribution(os.path.join(out_dir, "FONTS.md"), infos, classes, num_train, pixels,
                     recall, min_scale)
  return {"classes": len(classes), "train_classes": num_train, "images": len(pixels),
          "fonts": len(used), "pixel_recall_at_1_test": recall,
          "closest_class_pairs": closest_class_pairs(glyphs, classes, members)}


def _write_attribution(path: str, infos: list[Face], classes: list[str], num_train: int,
                       pixels: np.ndarray, recall: float, min_scale: float) -> None:
  versions = {i.package: package_version(i.package) for i in infos}
  lines = [
      "# Demo set: glyphs of Debian font packages", "",
      f"{len(pixels)} images, 64 x 64 grayscale, {len(classes)} classes (characters), "
      f"{len(infos)} font faces (instances), each glyph at a random size ({min_scale:g} to 1 "
      f"of a 56 px box) and position. Classes 0..{num_train - 1} train, "
      f"{num_train}..{len(classes) - 1} test (class-disjoint). Raw-pixel Euclidean 1-NN "
      f"Recall@1 on the test classes: {recall:.4f}.", "",
      "Built by `python -m tools.build_demo_set --install_fonts`. The glyph bitmaps are "
      "renderings of the fonts below, which remain under their own licences.", "",
      "Classes (train then test): " + " ".join(classes[:num_train]) + " | " +
      " ".join(classes[num_train:]), "",
      "| # | face | file | Debian package (version) | licence |", "|---|---|---|---|---|"]
  for number, info in enumerate(infos):
    lines.append(f"| {number} | {info.family} {info.style} | {os.path.basename(info.path)} | "
                 f"{info.package} ({versions[info.package]}) | {info.license} |")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")


_FLAGS = flags.FlagValues()
flags.DEFINE_string("out", os.path.join(os.path.dirname(__file__), "demo_assets"),
                    "the folder written", flag_values=_FLAGS)
flags.DEFINE_bool("install_fonts", False, "apt-get the font packages", flag_values=_FLAGS)
flags.DEFINE_integer("instances", 40, "fonts per class (at most)", flag_values=_FLAGS)
flags.DEFINE_integer("min_instances", 30, "fewer: class left out", flag_values=_FLAGS)
flags.DEFINE_float("min_scale", 0.7, "smallest glyph size, as a fraction of the 56 px box",
                   flag_values=_FLAGS)
flags.DEFINE_integer("seed", 0, "render seed", flag_values=_FLAGS)


def main(argv: list[str] | None = None) -> None:
  if parse_tool_flags(_FLAGS, argv, __doc__):
    fail("build_demo_set takes flags only (--help lists them).")
  if _FLAGS.install_fonts:
    install_fonts()
  print(build(_FLAGS.out, _FLAGS.instances, _FLAGS.min_instances, _FLAGS.min_scale,
              _FLAGS.seed))

if __name__ == "__main__":
  main()
