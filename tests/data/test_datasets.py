"""Readers of the raw layouts, the generic folder layout, tfds data_dirs and the demo set."""

import logging
import os

import numpy as np
import pytest

from pfml_jax.data import CorruptImageError, DatasetLayoutError, read_split
from pfml_jax.data.cub200 import read_cub200
from tests.data import fake_datasets


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("raw"))
  return {"cub200": fake_datasets.make_cub(root), "cars196": fake_datasets.make_cars(root),
          "sop": fake_datasets.make_sop(root),
          "image_folder": fake_datasets.make_image_folder(root)}


def _class_ids(split):
  return split.class_ids[split.labels]


def test_cub_split_by_class_id_with_rgb_conversion(trees):
  train = read_split("cub200", os.path.dirname(trees["cub200"]), "train")  # parent works too
  test = read_split("cub200", trees["cub200"], "test")
  assert list(train.class_ids) == [1, 2, 50, 100] and list(test.class_ids) == [101, 102, 150, 200]
  assert len(train) == 12 and len(test) == 12
  np.testing.assert_array_equal(train.labels, np.repeat(np.arange(4), 3))
  assert train.labels.dtype == np.int32 and train.num_classes == 4
  assert train.class_names[0] == "001.Bird_1"
  assert not any("._" in k for k in train.keys + test.keys)
  for i in range(4):  # image 2 is grayscale, image 4 CMYK
    image = train.images[i]
    assert image.shape == (14, 20, 3) and image.dtype == np.uint8
  gray = train.images[1]
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  reference = np.asarray(fake_datasets.image_for(train.keys[3]), np.float32)
  assert np.abs(train.images[3].astype(np.float32) - reference).mean() < 12  # CMYK -> RGB


def test_validation_classes_are_carved_from_train(trees):
  kwargs = dict(val_classes=1, seed=3)
  train = read_split("cub200", trees["cub200"], "train", **kwargs)
  val = read_split("cub200", trees["cub200"], "val", **kwargs)
  assert val.num_classes == 1 and train.num_classes == 3 and len(val) == 3
  assert set(_class_ids(train)) | set(_class_ids(val)) == {1, 2, 50, 100}
  assert not set(_class_ids(train)) & set(_class_ids(val))
  np.testing.assert_array_equal(val.labels, 0)
  again = read_split("cub200", trees["cub200"], "val", **kwargs)
  assert again.keys == val.keys
  with pytest.raises(ValueError, match="val_classes"):
    read_split("cub200", trees["cub200"], "val")


def test_cub_missing_file_and_malformed_line(trees, tmp_path):
  root = fake_datasets.make_cub(str(tmp_path))
  missing = os.path.join(root, "images", "050.Bird_50", "Bird_50_0001.jpg")
  os.remove(missing)
  with pytest.raises(DatasetLayoutError, match="Bird_50_0001.jpg"):
    read_split("cub200", root, "train")
  with open(os.path.join(root, "images.txt"), "a") as f:
    f.write("not-a-number path.jpg\n")
  with pytest.raises(DatasetLayoutError, match=r"images.txt line 25.*<image_id> <relative path>"):
    read_split("cub200", root, "train")
  with pytest.raises(DatasetLayoutError, match="image_class_labels.txt"):
    os.remove(os.path.join(root, "image_class_labels.txt"))
    read_split("cub200", root, "train")


def _write_full_cub_lists(base: str, train_images: int) -> None:
  """A full-size CUB listing (11,788 images) with ``train_images`` in classes 1-100."""
  lines, labels = [], []
  for image_id in range(1, 11_789):
    class_id = 1 + image_id % 100 if image_id <= train_images else 101 + image_id % 100
    lines.append(f"{image_id} i{image_id}.jpg")
    labels.append(f"{image_id} {class_id}")
  with open(os.path.join(base, "images.txt"), "w") as f:
    f.write("\n".join(lines))
  with open(os.path.join(base, "image_class_labels.txt"), "w") as f:
    f.write("\n".join(labels))


def test_full_copy_counts_are_asserted(tmp_path):
  base = str(tmp_path / "CUB_200_2011")
  os.makedirs(os.path.join(base, "images"))
  for image_id in range(1, 11_789):  # empty files: existence is all read_cub200 checks
    open(os.path.join(base, "images", f"i{image_id}.jpg"), "w").close()
  _write_full_cub_lists(base, 5_864)
  parts = read_cub200(base)
  assert (len(parts["train"].class_ids), len(parts["test"].class_ids)) == (5_864, 5_924)
  _write_full_cub_lists(base, 5_865)
  with pytest.raises(DatasetLayoutError, match="found 5865 images of 100 classes, expected 5864"):
    read_cub200(base)
  os.remove(os.path.join(base, "images", "i77.jpg"))
  os.remove(os.path.join(base, "images", "i9000.jpg"))
  with pytest.raises(DatasetLayoutError, match=r"2 of 11788 listed images are missing(.|\n)*i77"):
    read_cub200(base)


def test_cars_split_by_numeric_class_id(trees):
  train = read_split("cars196", trees["cars196"], "train")
  test = read_split("cars196", trees["cars196"], "test")
  assert list(train.class_ids) == [1, 5, 98] and list(test.class_ids) == [99, 150, 196]
  assert len(train) == 9 and len(test) == 9  # the per-image "test" flag is ignored
  assert train.class_names[1] == "Make Model 5 2012"
  assert train.keys[:2] == ("000001", "000002")
  assert train.images[1].shape == (14, 20, 3)


def test_cars_layout_errors(tmp_path):
  import scipy.io
  (tmp_path / "cars196").mkdir()
  scipy.io.savemat(str(tmp_path / "cars196" / "cars_annos.mat"), {"other": np.zeros(2)})
  with pytest.raises(DatasetLayoutError, match="no variable `annotations`"):
    read_split("cars196", str(tmp_path), "train")
  with pytest.raises(DatasetLayoutError, match="cars_annos.mat not found"):
    read_split("cars196", str(tmp_path / "nowhere"), "train")


def test_sop_split_from_ebay_files(trees):
  train = read_split("sop", trees["sop"], "train")
  test = read_split("sop", trees["sop"], "test")
  assert list(train.class_ids) == [1, 2, 3, 7] and list(test.class_ids) == [11319, 11320, 22634]
  np.testing.assert_array_equal(test.labels, [0, 0, 1, 1, 2, 2])
  assert train.keys[0] == "cabinet_final/1_0.JPG"


def test_sop_malformed_header_and_line(tmp_path):
  root = fake_datasets.make_sop(str(tmp_path))
  path = os.path.join(root, "Ebay_test.txt")
  lines = open(path).read().splitlines()
  with open(path, "w") as f:
    f.write("\n".join(lines[:3] + ["12 13 bicycle_final/x.JPG"] + lines[3:]))
  with pytest.raises(DatasetLayoutError, match="Ebay_test.txt line 4"):
    read_split("sop", root, "test")
  with open(path, "w") as f:
    f.write("\n".join(lines[1:]))
  with pytest.raises(DatasetLayoutError, match="Ebay_test.txt line 1: expected 'image_id class_id"):
    read_split("sop", root, "test")


def test_image_folder_rules(trees, tmp_path):
  root = trees["image_folder"]
  train = read_split("image_folder", root, "train")
  test = read_split("image_folder", root, "test")
  assert train.class_names == ("ant", "bee", "cat") and test.class_names == ("dog", "eel")
  assert len(train) == 9 and not any(os.path.basename(k).startswith("._") for k in train.keys)
  chosen = read_split("image_folder", root, "test", train_classes=["eel", "ant"])
  assert chosen.class_names == ("bee", "cat", "dog")
  listing = tmp_path / "train_classes.txt"
  listing.write_text("bee\ndog\n")
  assert read_split("image_folder", root, "train", train_classes=str(listing)).class_names == (
      "bee", "dog")
  with pytest.raises(DatasetLayoutError, match="unknown: \\['yak'\\]"):
    read_split("image_folder", root, "train", train_classes=["yak"])
  with pytest.raises(ValueError, match="image_folder only"):
    read_split("cub200", trees["cub200"], "train", train_classes=["x"])


def test_corrupt_images_fail_or_are_skipped(tmp_path, caplog):
  root = fake_datasets.make_image_folder(str(tmp_path))
  for name in ("ant/ant1.jpg", "bee/bee2.jpg"):
    with open(os.path.join(root, name), "wb") as f:
      f.write(b"<html>not an image</html>")
  with pytest.raises(CorruptImageError, match=r"2 image\(s\)(.|\n)*ant1.jpg(.|\n)*bee2.jpg"):
    read_split("image_folder", root, "train")
  with caplog.at_level(logging.WARNING):
    split = read_split("image_folder", root, "train", skip_corrupt=True)
  assert len(split) == 7 and "skipped 2 unreadable" in caplog.text
  # A truncated JPEG passes the header check (its decode fails later, naming it); with
  # skip_corrupt the check decodes every image and leaves it out.
  path = os.path.join(root, "cat", "cat1.jpg")
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:-40])
  os.remove(os.path.join(root, "ant/ant1.jpg"))
  os.remove(os.path.join(root, "bee/bee2.jpg"))
  split = read_split("image_folder", root, "train")
  with pytest.raises(CorruptImageError, match="cat1.jpg(.|\n)*data.skip_corrupt=True"):
    split.images[split.keys.index("cat/cat1.jpg")]
  with caplog.at_level(logging.WARNING):
    skipped = read_split("image_folder", root, "train", skip_corrupt=True)
  assert len(skipped) == 6 and "cat/cat1.jpg" not in skipped.keys
  assert len(read_split("image_folder", root, "train", skip_corrupt=True, verify="decode")) == 6


def _tfds_examples(split, tfds_name):
  """Examples of the real builders' features built from a raw split's files."""
  examples = []
  for i in range(len(split)):
    image = fake_datasets.jpeg_bytes(split.images.path(i))
    label = int(split.class_ids[split.labels[i]]) - 1
    if tfds_name == "caltech_birds2011":
      examples.append({"image": image, "image/filename": f"CUB_200_2011/images/{split.keys[i]}",
                       "label": label, "label_name": "bird", "bbox": _box(),
                       "segmentation_mask": fake_datasets.png_bytes()})
    elif tfds_name == "cars196":
      examples.append({"image": image, "id": split.keys[i], "label": label, "bbox": _box()})
    else:
      examples.append({"image": image, "class_id": label, "super_class_id/num": 0,
                       "super_class_id": "bicycle"})
  return examples


def _box():
  import tensorflow_datasets as tfds
  return tfds.features.BBox(0.1, 0.1, 0.9, 0.9)


@pytest.mark.parametrize("name,tfds_name", [("cub200", "caltech_birds2011"),
                                            ("cars196", "cars196"),
                                            ("sop", "stanford_online_products")])
def test_tfds_gives_the_raw_split(trees, tmp_path, name, tfds_name):
  raw = {s: read_split(name, trees[name], s) for s in ("train", "test")}
  # tfds' own train/test for CUB and Cars are per image (here: alternate images of each
  # split), so the reader must regroup them by class; for SOP they are the DML split.
  everything = _tfds_examples(raw["train"], tfds_name) + _tfds_examples(raw["test"], tfds_name)
  if name == "sop":
    per_split = {"train": everything[:len(raw["train"])],
                 "test": everything[len(raw["train"]):]}
  else:
    per_split = {"train": everything[0::2][::-1], "test": everything[1::2]}
  data_dir = fake_datasets.write_tfds(str(tmp_path), tfds_name, per_split)
  for s in ("train", "test"):
    via_tfds = read_split(f"{name}_tfds", data_dir, s)
    np.testing.assert_array_equal(via_tfds.class_ids, raw[s].class_ids)
    if name == "sop":  # unnamed records: the same images per class, grouped by class
      np.testing.assert_array_equal(via_tfds.labels, raw[s].labels)
      for c in range(raw[s].num_classes):
        images = lambda split: sorted(split.images[i].tobytes()  # noqa: E731
                                      for i in np.flatnonzero(split.labels == c))
        assert images(via_tfds) == images(raw[s])
    else:
      assert via_tfds.keys == raw[s].keys
      np.testing.assert_array_equal(via_tfds.labels, raw[s].labels)
      for i in range(len(raw[s])):
        np.testing.assert_array_equal(via_tfds.images[i], raw[s].images[i])


def test_tfds_missing_data_dir_names_the_layout(tmp_path):
  with pytest.raises(DatasetLayoutError, match="caltech_birds2011/<version>/dataset_info.json"):
    read_split("cub200_tfds", str(tmp_path), "train")

