"""Shared checks for the on-disk readers: missing files, malformed lines, known counts."""

import os
from collections.abc import Iterator, Sequence

import numpy as np

from pfml_jax.data.images import MAX_LISTED
from pfml_jax.user_errors import UserInputError


class DatasetLayoutError(UserInputError, ValueError):
  """The files on disk do not have the layout a reader expects; the message says which."""


def find_dataset_dir(root: str, marker: str, folder_names: Sequence[str], layout: str) -> str:
  """``root`` itself when it holds ``marker``, else the child folder of a known name that does."""
  for candidate in [root, *(os.path.join(root, name) for name in folder_names)]:
    if os.path.isfile(os.path.join(candidate, marker)):
      return candidate
  raise DatasetLayoutError(f"{os.path.join(root, marker)} not found. Expected layout:\n{layout}")


def numbered_lines(path: str, layout: str, skip_header: bool = False) -> Iterator[tuple[int, str]]:
  """(line number, stripped text) of the non-empty lines of a text annotation file."""
  if not os.path.isfile(path):
    raise DatasetLayoutError(f"{path} not found. Expected layout:\n{layout}")
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      if number == 1 and skip_header:
        continue
      if line.strip():
        yield number, line.strip()


def malformed(path: str, number: int, line: str, expected: str, layout: str) -> DatasetLayoutError:
  return DatasetLayoutError(f"{path} line {number}: expected '{expected}', got {line!r}. "
                            f"Expected layout:\n{layout}")


def layout_error(path: str, problem: str, layout: str) -> DatasetLayoutError:
  return DatasetLayoutError(f"{path}: {problem}. Expected layout:\n{layout}")


def require_files(root: str, relative_paths: Sequence[str], layout: str) -> None:
  """Fails listing the first missing files when any listed image is absent."""
  missing = [p for p in relative_paths if not os.path.isfile(os.path.join(root, p))]
  if missing:
    listed = "\n  ".join(os.path.join(root, p) for p in missing[:MAX_LISTED])
    raise DatasetLayoutError(
        f"{len(missing)} of {len(relative_paths)} listed images are missing under {root}, first "
        f"ones:\n  {listed}\nRe-extract the original archive. Expected layout:\n{layout}")


def check_full_copy(dataset: str, class_ids: dict[str, np.ndarray],
                    expected: dict[str, tuple[int, int]]) -> None:
  """Asserts the known (images, classes) per partition of a complete copy of a benchmark."""
  for part, (images, classes) in expected.items():
    found = (len(class_ids[part]), len(np.unique(class_ids[part])))
    if found != (images, classes):
      raise DatasetLayoutError(
          f"{dataset} {part}: found {found[0]} images of {found[1]} classes, expected {images} "
          f"of {classes} for the complete dataset. The annotation files were modified or come "
          "from another release; re-extract the original archive.")
