"""The retrieval grid: which neighbours are marked wrong, and that the marks are drawn."""

import numpy as np
import pytest
from PIL import Image

from pfml_jax.viz import retrieval_grid
from pfml_jax.viz.retrieval_grid import draw_retrieval_grid, neighbour_marks


def test_marks_are_exactly_the_neighbours_of_the_query_class():
  query_labels = np.array([3, 0, 7])
  neighbour_labels = np.array([[3, 1, 3, 2],
                               [0, 0, 0, 0],
                               [1, 2, 7, 7]])
  expected = np.array([[True, False, True, False],
                       [True, True, True, True],
                       [False, False, True, True]])
  np.testing.assert_array_equal(neighbour_marks(query_labels, neighbour_labels), expected)
  with pytest.raises(ValueError, match=r"\(Q, K\)"):
    neighbour_marks(query_labels, neighbour_labels[:2])


def _colour_pixels(path, colour: str) -> int:
  """How many pixels of the PNG are (nearly) the given hex colour."""
  rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
  target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
  return int(np.sum(np.abs(rgb - target).sum(axis=-1) < 30))


def test_grid_draws_a_red_frame_per_wrong_neighbour_and_none_without_labels(tmp_path):
  white = np.full((32, 32, 3), 255, np.uint8)
  queries = [white, white]
  neighbours = [[white] * 3, [white] * 3]
  similarities = np.array([[0.9, 0.8, 0.7], [0.95, 0.5, 0.1]])
  one_wrong = np.array([[True, False, True], [True, True, True]])
  all_wrong = np.zeros((2, 3), bool)

  path = draw_retrieval_grid(queries, neighbours, one_wrong, similarities, "t", tmp_path / "a.png")
  red_one = _colour_pixels(path, retrieval_grid.WRONG_COLOUR)
  green_five = _colour_pixels(path, retrieval_grid.CORRECT_COLOUR)
  assert red_one > 0 and green_five > 0
  with Image.open(path) as image:
    cell = retrieval_grid.CELL_INCHES * retrieval_grid.DPI
    assert image.format == "PNG"
    assert image.size == (round(4 * cell), round(2 * cell + 0.5 * retrieval_grid.DPI))

  path = draw_retrieval_grid(queries, neighbours, all_wrong, similarities, "t", tmp_path / "b.png")
  assert _colour_pixels(path, retrieval_grid.WRONG_COLOUR) == pytest.approx(6 * red_one, rel=0.1)
  assert _colour_pixels(path, retrieval_grid.CORRECT_COLOUR) == 0

  path = draw_retrieval_grid(queries, neighbours, None, similarities, "t", tmp_path / "c.png")
  assert _colour_pixels(path, retrieval_grid.WRONG_COLOUR) == 0
  assert _colour_pixels(path, retrieval_grid.CORRECT_COLOUR) == 0


def test_grid_rejects_mismatched_shapes(tmp_path):
  white = np.full((8, 8, 3), 255, np.uint8)
  with pytest.raises(ValueError, match="must match"):
    draw_retrieval_grid([white], [[white, white]], np.ones((1, 3), bool), np.ones((1, 2)), "t",
                        tmp_path / "x.png")
  with pytest.raises(ValueError, match="neighbour lists"):
    draw_retrieval_grid([white, white], [[white]], None, np.ones((2, 1)), "t", tmp_path / "x.png")
