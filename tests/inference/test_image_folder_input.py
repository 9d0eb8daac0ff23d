"""A file or folder of images as a split: listing, order, and unreadable images."""

import numpy as np
import pytest
from PIL import Image

from pfml_jax.data.images import CorruptImageError
from pfml_jax.inference.image_folder_input import image_split, list_images
from pfml_jax.user_errors import MissingFileError, UserInputError


def _image(path, value):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.full((9, 7, 3), value, np.uint8)).save(path)


def test_folder_lists_images_below_it_sorted_and_skips_hidden_and_other_files(tmp_path):
  for name in ("b/2.png", "a/1.jpg", "a/0.JPEG", "top.jpg", ".hidden/x.jpg", "a/._y.jpg"):
    _image(tmp_path / name, 3)
  (tmp_path / "notes.txt").write_text("not an image")
  source = list_images(str(tmp_path))
  assert source.relative_paths == ("a/0.JPEG", "a/1.jpg", "b/2.png", "top.jpg")
  one = list_images(str(tmp_path / "b" / "2.png"))
  assert one.path(0) == str(tmp_path / "b" / "2.png") and len(one) == 1


def test_missing_empty_and_non_image_paths_are_named(tmp_path):
  with pytest.raises(MissingFileError, match="no such file or folder"):
    list_images(str(tmp_path / "nope"))
  with pytest.raises(UserInputError, match="holds no .jpg/.jpeg/.png image"):
    list_images(str(tmp_path))
  (tmp_path / "a.txt").write_text("x")
  with pytest.raises(UserInputError, match="not a .jpg/.jpeg/.png file"):
    list_images(str(tmp_path / "a.txt"), flag="--queries")


def test_unreadable_images_are_listed_or_skipped(tmp_path):
  _image(tmp_path / "good.png", 10)
  _image(tmp_path / "z_good.png", 20)
  (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
  with pytest.raises(CorruptImageError) as error:
    image_split(str(tmp_path))
  assert str(tmp_path / "broken.jpg") in str(error.value)
  assert "--skip_unreadable" in str(error.value) and "1 of 3" in str(error.value)
  split = image_split(str(tmp_path), skip_unreadable=True)
  assert split.keys == (str(tmp_path / "good.png"), str(tmp_path / "z_good.png"))
  assert split.labels.tolist() == [0, 0] and split.images[1][0, 0].tolist() == [20, 20, 20]
