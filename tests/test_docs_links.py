"""The project's Markdown points only at files the project has.

Every relative link (``[text](target)``, images too) and every path in backticks that names a
file of the tree (``docs/...``, ``pfml_jax/...``, ``configs/...``, ...) must exist inside the
repository: a clone has nothing beside it.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKDOWN = sorted([REPO / "README.md", *REPO.glob("docs/**/*.md"), *REPO.glob("pfml_jax/**/*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# A backticked path that starts at one of the tree's top-level folders and names a file.
TREE_PATH = re.compile(
    r"`((?:docs|pfml_jax|configs|tests|tools|benchmarks|launch)/[\w./-]*\.(?:md|py|sh|sbatch|png|csv|json))`")
# Any path written upwards (``../x``), linked or not: it must land on a file of the repository.
UPWARD = re.compile(r"(?<![\w./])((?:\.\./)+[\w][\w./-]*)")


def _targets(markdown: Path, repo: Path):
  text = markdown.read_text(encoding="utf-8")
  for match in LINK.finditer(text):
    target = match.group(1).split("#")[0]
    if target and "://" not in target and not target.startswith("mailto:"):
      yield target, (markdown.parent / target).resolve()
  for match in TREE_PATH.finditer(text):
    yield match.group(1), (repo / match.group(1)).resolve()
  for match in UPWARD.finditer(text):
    yield match.group(1), (markdown.parent / match.group(1)).resolve()


def _broken(markdown: Path, repo: Path = REPO) -> list[str]:
  return list(dict.fromkeys(target for target, path in _targets(markdown, repo)
                            if not path.is_relative_to(repo) or not path.exists()))


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_links_stay_inside_the_repository_and_exist(markdown):
  assert not _broken(markdown), f"{markdown.relative_to(REPO)}: missing: {_broken(markdown)}"


def test_the_check_catches_missing_and_outside_targets(tmp_path):
  repo = tmp_path / "repo"
  (repo / "docs").mkdir(parents=True)
  (repo / "docs" / "method.md").write_text("# Method")
  (tmp_path / "elsewhere.md").write_text("# Outside the repository")
  page = repo / "docs" / "page.md"
  page.write_text("[ok](method.md) [gone](nothing.md) [out](../../elsewhere.md) "
                  "`docs/method.md` `pfml_jax/not_a_module.py` see ../../notes/x.md, "
                  "../docs/method.md")
  assert _broken(page, repo) == ["nothing.md", "../../elsewhere.md", "pfml_jax/not_a_module.py",
                                 "../../notes/x.md"]


def test_readme_is_short_and_indexes_every_doc():
  """The README stays a five-minute read (at most 12,000 bytes) and links every page of docs/."""
  readme = REPO / "README.md"
  assert readme.stat().st_size <= 12_000, readme.stat().st_size
  linked = {target for target, _ in _targets(readme, REPO)}
  pages = {f"docs/{page.name}" for page in (REPO / "docs").glob("*.md")}
  assert not pages - linked, sorted(pages - linked)
