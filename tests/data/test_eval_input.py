"""Evaluation input: torchvision-equal resize + centre crop, padding and process slicing."""

import numpy as np
import pytest
from PIL import ImageFilter

from pfml_jax.data import eval_batches, read_split
from pfml_jax.data.eval_input import resize_center_crop
from tests.data import fake_datasets


@pytest.mark.parametrize("size,interpolation", [((90, 61), "bilinear"), ((47, 100), "bicubic"),
                                                ((64, 64), "bilinear")])
def test_resize_center_crop_matches_torchvision(size, interpolation):
  T = pytest.importorskip("torchvision.transforms", reason="the reference is torchvision's")
  image = fake_datasets.image_for(f"eval{size}", size).filter(ImageFilter.GaussianBlur(1))
  mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
  reference = T.Compose([T.Resize(40, interpolation=mode[interpolation]), T.CenterCrop(32)])
  expected = np.asarray(reference(image), np.int16)
  ours = resize_center_crop(image, 40, 32, interpolation).astype(np.int16)
  assert ours.shape == (32, 32, 3)
  assert np.abs(ours - expected).max() <= 1


def test_padded_batches_split_over_processes(tmp_path):
  split = read_split("image_folder", fake_datasets.make_image_folder(str(tmp_path)), "train")
  assert len(split) == 9
  per_process = [list(eval_batches(split, batch_size=4, image_size=8, resize_size=10,
                                   process_index=p, process_count=2, threads=2))
                 for p in range(2)]
  assert len(eval_batches(split, batch_size=4, image_size=8, resize_size=10)) == 3
  assert [len(batches) for batches in per_process] == [3, 3]
  seen = []
  for number in range(3):
    for p in range(2):
      batch = per_process[p][number]
      assert batch["images"].shape == (2, 8, 8, 3) and batch["images"].dtype == np.uint8
      rows = number * 4 + p * 2 + np.arange(2)
      valid = rows < 9
      np.testing.assert_array_equal(batch["index"], np.where(valid, rows, -1))
      np.testing.assert_array_equal(batch["mask"], valid)
      np.testing.assert_array_equal(batch["labels"][~valid], -1)
      np.testing.assert_array_equal(batch["labels"][valid], split.labels[batch["index"][valid]])
      assert not batch["images"][~valid].any()
      for row in np.flatnonzero(valid):
        expected = resize_center_crop(split.images.image(int(batch["index"][row])), 10, 8,
                                      "bilinear")
        np.testing.assert_array_equal(batch["images"][row], expected)
      seen += list(batch["index"][valid])
  assert sorted(seen) == list(range(9))  # every image exactly once


def test_eval_argument_errors(tmp_path):
  split = read_split("demo", split="test")
  with pytest.raises(ValueError, match="resize_size=24 must be >= image_size=32"):
    eval_batches(split, batch_size=8, image_size=32, resize_size=24)
  with pytest.raises(ValueError, match="divide evenly over 3"):
    eval_batches(split, batch_size=8, image_size=32, resize_size=32, process_count=3)
