"""Where every value of a config comes from, read from the config files' own comments.

The config files keep their readable form: a value's source is the tag in the comment of the
line that set it last (a trailing comment, else the comment lines right above): [paper],
[supp] (the paper's supplement), [PA] (Proxy Anchor's code), [HIST], [Hyp] (Hyp-DML's code),
[conv] (the field's convention), [validation] (chosen on validation classes by a named study)
or [ours] (our choice). A value set on a line without a tag
shows the file that set it; a ``--config.<field>=...`` override shows ``flag``.

The config file is executed once more while the assignments are recorded (which file and line
set each field), so the recording sees every layer: default_config.py, experiments.py,
small_experiments.py and the file itself.
"""

import contextlib
import functools
import io
import os
import re
import sys
import tokenize
from collections.abc import Iterator, Mapping

import ml_collections

from pfml_jax.config_files import load_config

FLAG = "flag"
# (prefix of a bracketed comment, tag): the first bracket that starts with a prefix names the
# source; "paper supplement" before "paper".
_TAGS = (("paper supplement", "supp"), ("supp", "supp"), ("paper", "paper"), ("PA", "PA"),
         ("HIST", "HIST"), ("Hyp", "Hyp"), ("conv", "conv"), ("validation", "validation"),
         ("our choice", "ours"),
         ("our option", "ours"), ("ours", "ours"))
_BRACKET = re.compile(r"\[([^\]]+)\]")
_LIBRARY = os.path.dirname(ml_collections.__file__)
_PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

Site = tuple[str, int]  # (file, line) of the assignment


def tag_of(comment: str) -> str | None:
  """The source tag a comment names (see the module docstring), or None."""
  for inner in _BRACKET.findall(comment):
    for prefix, tag in _TAGS:
      if re.match(rf"{re.escape(prefix)}\b", inner):
        return tag
  return "ours" if re.search(r"\bour choice\b", comment, re.IGNORECASE) else None


def config_sources(config_argument: str, overrides: Mapping[str, object] = ()) -> dict[str, str]:
  """The source of every field (dotted path) of the config ``--config=config_argument`` gives
  (``FILE`` or ``FILE:ARGUMENT``), with the ``overrides`` paths marked ``flag``."""
  sites: dict[tuple[int, str], Site] = {}
  with _recorded_assignments(sites):
    config = load_config(config_argument)
  sources = {field: _source(sites.get((id(parent), key)))
             for field, parent, key in leaves(config)}
  sources.update({field: FLAG for field in overrides})
  return sources


def leaves(config: ml_collections.ConfigDict,
           prefix: str = "") -> Iterator[tuple[str, ml_collections.ConfigDict, str]]:
  """(dotted path, the ConfigDict holding it, its key) of every leaf of ``config``, in order."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict) and value.keys():
      yield from leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", config, key


@contextlib.contextmanager
def _recorded_assignments(sites: dict[tuple[int, str], Site]):
  """Notes in ``sites`` the file and line of every ConfigDict assignment made inside."""
  original = ml_collections.ConfigDict.__setitem__
  kept = []  # the assigned-to ConfigDicts stay alive, so that their ids stay theirs

  def recording_setitem(self, key, value):
    original(self, key, value)
    frame = sys._getframe(1)  # pylint: disable=protected-access
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY):
      frame = frame.f_back
    if frame is not None:
      kept.append(self)
      sites[(id(self), key)] = (frame.f_code.co_filename, frame.f_lineno)

  ml_collections.ConfigDict.__setitem__ = recording_setitem
  try:
    yield
  finally:
    ml_collections.ConfigDict.__setitem__ = original


def _source(site: Site | None) -> str:
  """The tag of the comments at ``site``, else the file's name (relative to the project)."""
  if site is None:
    return "?"
  filename, line = site
  tag = _tag_at(filename, line)
  if tag:
    return tag
  relative = os.path.relpath(filename, _PROJECT)
  return os.path.basename(filename) if relative.startswith("..") else relative


def _tag_at(filename: str, line: int) -> str | None:
  """The tag of the trailing comment of ``line``, else of the comment lines right above it."""
  comments, code_lines = _comments(filename)
  tag = tag_of(comments.get(line, ""))
  above = line - 1
  block = []
  while tag is None and above in comments and above not in code_lines:
    block.insert(0, comments[above])
    above -= 1
  return tag or tag_of(" ".join(block))


@functools.cache
def _comments(filename: str) -> tuple[dict[int, str], frozenset[int]]:
  """The comment of each line of a Python file, and the lines that hold code."""
  with open(filename, encoding="utf-8") as source:
    tokens = list(tokenize.generate_tokens(io.StringIO(source.read()).readline))
  comments = {token.start[0]: token.string for token in tokens
              if token.type == tokenize.COMMENT}
  skipped = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
             tokenize.ENDMARKER)
  code_lines = frozenset(token.start[0] for token in tokens if token.type not in skipped)
  return comments, code_lines
