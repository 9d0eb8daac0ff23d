"""Small trees in each real on-disk layout (CUB, Cars, SOP, image folder, tfds data_dir)."""

import io
import os
import zlib

import numpy as np
import scipy.io
from PIL import Image

SIZE = (20, 14)  # (width, height) of the tiny test images


def image_for(key: str, size: tuple[int, int] = SIZE) -> Image.Image:
  """A deterministic RGB image whose colours depend on ``key`` (distinct per image)."""
  rng = np.random.default_rng(zlib.crc32(key.encode()))
  pixels = rng.integers(0, 256, size=(size[1] // 2, size[0] // 2, 3), dtype=np.uint8)
  return Image.fromarray(pixels).resize(size, Image.NEAREST)


def write_image(path: str, key: str, mode: str = "RGB") -> None:
  """A JPEG (or PNG by extension) in ``mode``: "RGB", "L" (grayscale) or "CMYK"."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image = image_for(key)
  image = image.convert(mode) if mode != "RGB" else image
  image.save(path, quality=95)


def jpeg_bytes(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def make_cub(root: str, class_ids=(1, 2, 50, 100, 101, 102, 150, 200), per_class: int = 3,
             with_names: bool = True) -> str:
  """CUB_200_2011/ with images.txt, image_class_labels.txt (ids deliberately not sorted by
  class), classes.txt, a grayscale and a CMYK JPEG and a macOS "._" file."""
  base = os.path.join(root, "CUB_200_2011")
  lines, labels = [], []
  image_id = 0
  for class_id in class_ids:
    folder = f"{class_id:03d}.Bird_{class_id}"
    for k in range(per_class):
      image_id += 1
      relative = f"{folder}/Bird_{class_id}_{k:04d}.jpg"
      mode = "L" if image_id == 2 else "CMYK" if image_id == 4 else "RGB"
      write_image(os.path.join(base, "images", relative), relative, mode)
      lines.append(f"{image_id} {relative}")
      labels.append(f"{image_id} {class_id}")
    write_image(os.path.join(base, "images", folder, "._Bird_hidden.jpg"), "x")
  with open(os.path.join(base, "images.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(base, "image_class_labels.txt"), "w") as f:
    f.write("\n".join(labels) + "\n")
  if with_names:
    with open(os.path.join(base, "classes.txt"), "w") as f:
      f.write("".join(f"{c} {c:03d}.Bird_{c}\n" for c in range(1, 201)))
  return base


def make_cars(root: str, class_ids=(1, 5, 98, 99, 150, 196), per_class: int = 3) -> str:
  """cars196/ with a real cars_annos.mat (struct array ``annotations``) and car_ims/."""
  base = os.path.join(root, "cars196")
  fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
  rows = []
  for class_id in class_ids:
    for k in range(per_class):
      relative = f"car_ims/{len(rows) + 1:06d}.jpg"
      write_image(os.path.join(base, relative), relative, "L" if len(rows) == 1 else "RGB")
      rows.append((relative, class_id, k % 2))
  annotations = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
  for i, (relative, class_id, test) in enumerate(rows):
    small = lambda v: np.array([[v]], np.uint8)  # noqa: E731 - MATLAB stores 1x1 uint8
    annotations[0, i] = (relative, small(1), small(2), small(15), small(12),
                         small(class_id), small(test))
  names = np.empty((1, 196), dtype=object)
  for i in range(196):
    names[0, i] = np.array([f"Make Model {i + 1} 2012"])
  scipy.io.savemat(os.path.join(base, "cars_annos.mat"),
                   {"annotations": annotations, "class_names": names})
  return base


def make_sop(root: str, train_classes=(1, 2, 3, 7), test_classes=(11319, 11320, 22634),
             per_class: int = 2) -> str:
  """Stanford_Online_Products/ with Ebay_train.txt, Ebay_test.txt and <super>_final/ folders."""
  base = os.path.join(root, "Stanford_Online_Products")
  supers = ["bicycle", "cabinet", "chair"]
  image_id = 0
  for name, classes in (("Ebay_train.txt", train_classes), ("Ebay_test.txt", test_classes)):
    lines = ["image_id class_id super_class_id path"]
    for class_id in classes:
      super_id = class_id % 3 + 1
      for k in range(per_class):
        image_id += 1
        relative = f"{supers[super_id - 1]}_final/{class_id}_{k}.JPG"
        write_image(os.path.join(base, relative), relative)
        lines.append(f"{image_id} {class_id} {super_id} {relative}")
    with open(os.path.join(base, name), "w") as f:
      f.write("\n".join(lines) + "\n")
  return base


def make_image_folder(root: str, classes=("ant", "bee", "cat", "dog", "eel"),
                      per_class: int = 3) -> str:
  """root/<class>/*.jpg|png, with a "._" file and a hidden folder that must be ignored."""
  base = os.path.join(root, "folder")
  for c in classes:
    for k in range(per_class):
      extension = "png" if k == 0 else "jpg"
      write_image(os.path.join(base, c, f"{c}{k}.{extension}"), f"{c}{k}")
    write_image(os.path.join(base, c, f"._{c}0.jpg"), "resource fork")
  os.makedirs(os.path.join(base, ".hidden_class"), exist_ok=True)
  return base


def write_tfds(data_dir: str, tfds_name: str, split_examples: dict[str, list[dict]]) -> str:
  """A prepared tfds data_dir in ArrayRecord format, written with tfds' own serializer.

  Each example holds the features of the real builder (``image`` as encoded JPEG bytes).
  """
  import tensorflow_datasets as tfds
  from array_record.python import array_record_module
  from tensorflow_datasets.core import example_serializer, file_adapters, naming
  from tensorflow_datasets.core import splits as splits_lib

  info = tfds.builder(tfds_name, data_dir=data_dir).info
  os.makedirs(info.data_dir, exist_ok=True)
  serializer = example_serializer.ExampleSerializer(info.features.get_serialized_info())
  split_infos = []
  for split, examples in split_examples.items():
    template = naming.ShardedFileTemplate(dataset_name=info.name, data_dir=info.data_dir,
                                          split=split, filetype_suffix="array_record")
    shard_lengths = []
    for shard, chunk in enumerate(np.array_split(np.arange(len(examples)), 2)):
      writer = array_record_module.ArrayRecordWriter(
          os.fspath(template.sharded_filepath(shard_index=shard, num_shards=2)), "group_size:1")
      for i in chunk:
        writer.write(serializer.serialize_example(info.features.encode_example(examples[i])))
      writer.close()
      shard_lengths.append(len(chunk))
    split_infos.append(splits_lib.SplitInfo(name=split, shard_lengths=shard_lengths,
                                            num_bytes=0, filename_template=template))
  info.set_file_format(file_adapters.FileFormat.ARRAY_RECORD, override=True)
  info.set_splits(splits_lib.SplitDict(split_infos))
  info.write_to_directory(info.data_dir)
  return data_dir


def png_bytes(size=(8, 6), channels=1) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((size[1], size[0]) + ((channels,) if channels > 1 else ()),
                           np.uint8)).save(buffer, "PNG")
  return buffer.getvalue()
