"""Metrics to ``metrics.jsonl`` and TensorBoard event files in the workdir (process 0 only)."""

import json
import time
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
from absl import logging


class MetricWriter:
  """Appends one JSON line per write and mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str | Path):
    self.enabled = jax.process_index() == 0
    self.workdir = Path(workdir)
    self._tensorboard = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # imported here: only process 0 writes
      self.workdir.mkdir(parents=True, exist_ok=True)
      self._tensorboard = SummaryWriter(str(self.workdir / "tensorboard"))

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    values = {k: float(np.asarray(v)) for k, v in scalars.items()}
    with open(self.workdir / "metrics.jsonl", "a") as f:
      f.write(json.dumps({"step": int(step), "time": time.time(), **values}) + "\n")
    for name, value in values.items():
      self._tensorboard.add_scalar(name, value, int(step))
    self._tensorboard.flush()

  def write_json(self, name: str, payload: Any) -> Path | None:
    """Writes ``<workdir>/<name>`` atomically (temporary file, then rename)."""
    if not self.enabled:
      return None
    path = self.workdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    temporary.replace(path)
    return path

  def close(self) -> None:
    """Closes the TensorBoard event file. On a full disk its last events are lost, with a
    warning: metrics.jsonl has them, and the error that stops the run stays the last line."""
    if self._tensorboard is None:
      return
    tensorboard, self._tensorboard = self._tensorboard, None
    try:
      tensorboard.close()
    except OSError as error:
      logging.warning("Could not finish the TensorBoard events in %s (%s); metrics.jsonl has "
                      "every logged value.", self.workdir / "tensorboard", error)
      # tensorboardX (2.6) retries the failed flush in an exit hook, after our last line.
      for file_writer in (tensorboard.all_writers or {}).values():
        file_writer.event_writer._closed = True  # pylint: disable=protected-access

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
