"""Writing a matplotlib figure to a PNG file."""

from pathlib import Path

import matplotlib.pyplot as plt


def save_figure(figure, out_path, dpi: int) -> Path:
  """Saves ``figure`` to ``out_path`` (folders created), closes it and returns the path."""
  out_path = Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(out_path, dpi=dpi)
  plt.close(figure)
  return out_path
