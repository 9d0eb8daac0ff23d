"""A file or a folder of the user's images as an unlabelled split for the evaluation input.

Every ``.jpg``/``.jpeg``/``.png`` below the folder (sub-folders included, hidden files and
macOS ``._*``/``__MACOSX`` left out) in sorted path order. Every image is decoded once before
any batch (our choice: the list of unreadable ones is then complete, and a long embedding never
fails half-way); unreadable ones are listed in the error, or left out with ``skip_unreadable``.
"""

import logging
import os

import numpy as np

from pfml_jax.data.images import (IMAGE_EXTENSIONS, MAX_LISTED, CorruptImageError,
                                  FileImageSource, find_unreadable)
from pfml_jax.data.split import Split
from pfml_jax.user_errors import MissingFileError, UserInputError

# Labels of a plain folder's images: there are none. Batches carry label 0 (the evaluation
# input marks padding with -1); saved embedding sets store UNLABELLED.
UNLABELLED = -1


def _visible(name: str) -> bool:
  return not name.startswith(".") and name != "__MACOSX"


def list_images(path: str, flag: str = "--images") -> FileImageSource:
  """The image files at ``path`` (one file, or every image below a folder), sorted."""
  path = os.path.abspath(path)
  if os.path.isfile(path):
    if not path.lower().endswith(IMAGE_EXTENSIONS):
      raise UserInputError(f"{flag}={path}: not a {'/'.join(IMAGE_EXTENSIONS)} file.")
    return FileImageSource(os.path.dirname(path), (os.path.basename(path),))
  if not os.path.isdir(path):
    raise MissingFileError(f"{flag}={path}: no such file or folder.")
  relative = []
  for folder, subfolders, files in os.walk(path):
    subfolders[:] = sorted(d for d in subfolders if _visible(d))
    relative += [os.path.relpath(os.path.join(folder, f), path) for f in files
                 if _visible(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
  if not relative:
    raise UserInputError(f"{flag}={path}: the folder holds no "
                         f"{'/'.join(IMAGE_EXTENSIONS)} image (sub-folders included).")
  return FileImageSource(path, tuple(sorted(relative)))


def image_split(path: str, skip_unreadable: bool = False, flag: str = "--images",
                logger: logging.Logger = logging.getLogger(__name__)) -> Split:
  """The readable images at ``path`` as a one-class split, keys = their absolute paths."""
  source = list_images(path, flag)
  bad = find_unreadable(source, "decode")
  if len(bad) and not skip_unreadable:
    listed = "\n  ".join(source.path(int(i)) for i in bad[:MAX_LISTED])
    raise CorruptImageError(
        f"{flag}: {len(bad)} of {len(source)} image(s) cannot be decoded, first ones:\n"
        f"  {listed}\nReplace or remove them, or pass --skip_unreadable to leave them out.")
  if len(bad):
    if len(bad) == len(source):
      raise CorruptImageError(f"{flag}={path}: none of its {len(source)} image(s) decodes.")
    logger.warning("%s: skipped %d unreadable image(s), e.g. %s", flag, len(bad),
                   source.path(int(bad[0])))
    source = source.subset(np.setdiff1d(np.arange(len(source)), bad))
  return Split(dataset="image_files", split="images", images=source,
               labels=np.zeros(len(source), np.int32), class_names=("unlabelled",),
               class_ids=np.zeros(1, np.int64),
               keys=tuple(source.path(i) for i in range(len(source))), root=source.root)
