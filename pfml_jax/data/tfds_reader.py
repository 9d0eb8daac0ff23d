"""CUB, Cars and SOP from a tensorflow-datasets ``data_dir`` prepared as ArrayRecord.

Read through ``tfds`` data sources (no TensorFlow): the image bytes are left encoded and
decoded by this package like the raw path's files. Relabelling rules (conventions page):
``caltech_birds2011`` and ``cars196`` ship the datasets' own per-image splits, so both tfds
splits are concatenated and divided by class (label < 100, resp. < 98, trains);
``stanford_online_products`` already is the DML split (label field ``class_id``). The order is
made canonical where the records carry a name (CUB: file name, Cars: image id), so the result
equals the raw reader's split image for image.
"""

import dataclasses
import os

import numpy as np

from pfml_jax.data.images import EncodedImageSource
from pfml_jax.data.layout_checks import DatasetLayoutError, check_full_copy
from pfml_jax.data.split import Partition


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
  tfds_name: str
  label_field: str
  key_field: str | None  # names each record; None: records are unnamed
  first_test_class: int | None  # 1-based class id; None: use the tfds train/test splits
  expected: dict[str, tuple[int, int]]
  skip_fields: tuple[str, ...] = ("image",)


TFDS_DATASETS = {
    "cub200_tfds": TfdsDataset("caltech_birds2011", "label", "image/filename", 101,
                               {"train": (5_864, 100), "test": (5_924, 100)},
                               ("image", "segmentation_mask")),
    "cars196_tfds": TfdsDataset("cars196", "label", "id", 99,
                                {"train": (8_054, 98), "test": (8_131, 98)}),
    "sop_tfds": TfdsDataset("stanford_online_products", "class_id", None, None,
                            {"train": (59_551, 11_318), "test": (60_502, 11_316)}),
}


def _layout(spec: TfdsDataset) -> str:
  return (f"  <data_dir>/{spec.tfds_name}/<version>/dataset_info.json, features.json and\n"
          f"  {spec.tfds_name}-<split>.array_record-NNNNN-of-NNNNN, prepared with "
          f"`tfds build {spec.tfds_name} --file_format=array_record --data_dir=<data_dir>` "
          "(manual archives go in <data_dir>/downloads/manual)")


def _version_dir(data_dir: str, spec: TfdsDataset) -> str:
  base = os.path.join(data_dir, spec.tfds_name)
  versions = sorted((d for d in (os.listdir(base) if os.path.isdir(base) else [])
                     if os.path.isfile(os.path.join(base, d, "dataset_info.json"))),
                    key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit()))
  if not versions:
    raise DatasetLayoutError(f"no prepared {spec.tfds_name} under {base}. Expected:\n"
                             f"{_layout(spec)}")
  return os.path.join(base, versions[-1])


def _records(path: str, spec: TfdsDataset) -> tuple[dict[str, object], list[str]]:
  """The train and test data sources (image bytes left encoded) and the label names."""
  import tensorflow_datasets as tfds  # imported lazily: slow, and only this path needs it

  builder = tfds.builder_from_directory(path)
  file_format = getattr(builder.info.file_format, "value", "tfrecord")
  if "array_record" not in file_format:
    raise DatasetLayoutError(f"{path} holds {file_format} files; data sources need ArrayRecord. "
                             f"Re-prepare it:\n{_layout(spec)}")
  decoders = {field: tfds.decode.SkipDecoding() for field in spec.skip_fields}
  sources = {split: builder.as_data_source(split=split, decoders=decoders)
             for split in ("train", "test")}
  return sources, list(builder.info.features[spec.label_field].names)


def _key(record: dict, spec: TfdsDataset, split: str, index: int) -> str:
  if spec.key_field is None:
    return f"{split}/{index}"
  value = record[spec.key_field]
  value = value.decode() if isinstance(value, bytes) else str(value)
  return "/".join(value.split("/")[-2:])  # CUB: "<class folder>/<file>" as in images.txt


def read_tfds(name: str, data_dir: str) -> dict[str, Partition]:
  """Train and test partitions of ``name`` ("cub200_tfds", ...) from a tfds data_dir."""
  spec = TFDS_DATASETS[name]
  sources, label_names = _records(_version_dir(data_dir, spec), spec)
  splits = list(sources)
  locations, class_ids, keys = [], [], []
  for number, split in enumerate(splits):
    source = sources[split]
    for index in range(len(source)):
      record = source[index]
      locations.append((number, index))
      class_ids.append(int(record[spec.label_field]) + 1)  # tfds labels are 0-based
      keys.append(_key(record, spec, split, index))
  locations = np.array(locations, np.int64).reshape(-1, 2)
  class_ids = np.array(class_ids, np.int64)
  if spec.first_test_class is None:
    part_of = np.where(locations[:, 0] == splits.index("test"), 1, 0)
  else:
    part_of = (class_ids >= spec.first_test_class).astype(np.int64)
  order = np.lexsort((locations[:, 1], locations[:, 0], keys if spec.key_field else class_ids))
  readable = not all(n.isdigit() for n in label_names)
  names = {int(c): label_names[c - 1] if readable else f"class_{int(c)}"
           for c in np.unique(class_ids)}
  image_source = EncodedImageSource(tuple(sources[s] for s in splits), "image", locations,
                                    tuple(f"{name}:{k}" for k in keys))
  whole = Partition(image_source, class_ids, names, tuple(keys))
  partitions = {part: whole.subset(order[part_of[order] == number])
                for number, part in enumerate(("train", "test"))}
  full = sum(n for n, _ in spec.expected.values())
  if len(class_ids) == full:
    check_full_copy(name, {p: v.class_ids for p, v in partitions.items()}, spec.expected)
  return partitions
