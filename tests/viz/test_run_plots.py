"""A run's pictures from its own files and checkpoint: all three, and the curves alone early."""

import shutil

from PIL import Image

from pfml_jax.viz import embedding_map, retrieval_grid, run_plots, training_curves
from pfml_jax.viz.__main__ import main


def _size(path):
  with Image.open(path) as image:
    assert image.format == "PNG"
    return image.size


NAMES = ["training_curves.png", "retrieval_grid.png", "embedding_map.png"]


def test_three_pictures_of_a_real_run(tiny_run, tmp_path, capsys):
  tiny_run = shutil.copytree(tiny_run, tmp_path / "run")
  shutil.rmtree(tiny_run / "plots")
  main(["plots", str(tiny_run)])  # the best checkpoint
  printed = capsys.readouterr().out.split()
  names = NAMES
  assert printed == [str(tiny_run / "plots" / name) for name in names]
  curves, grid, emap = (tiny_run / "plots" / name for name in names)
  assert _size(curves) == tuple(round(v * training_curves.DPI)
                                for v in training_curves.FIGURE_SIZE)
  cell = retrieval_grid.CELL_INCHES * retrieval_grid.DPI
  queries, neighbours = run_plots.QUERIES, run_plots.NEIGHBOURS  # 36 test images: all fit
  assert _size(grid) == (round((1 + neighbours) * cell),
                         round(queries * cell + 0.5 * retrieval_grid.DPI))
  width, height = embedding_map.FIGURE_SIZE  # two panels: test, and training with proxies
  assert _size(emap) == (round(2 * width * embedding_map.DPI), round(height * embedding_map.DPI))


def test_without_a_checkpoint_only_the_curves(tiny_run, tmp_path):
  workdir = tmp_path / "early"
  workdir.mkdir()
  shutil.copy(tiny_run / "metrics.jsonl", workdir / "metrics.jsonl")
  written = run_plots.write_run_plots(workdir)
  assert written == [workdir / "plots" / "training_curves.png"] and written[0].stat().st_size
