"""Training time, with evaluation and checkpointing left out (big_vision's ``chrono``).

The loop opens a window, runs steps, pauses the clock around evaluation and saving, and reads
the window's training-only time when it logs: img/s then measures training alone.
"""

import contextlib
import time

import jax


class Chrono:
  """A stopwatch of training time per logging window."""

  def __init__(self):
    self._start = time.perf_counter()
    self._paused_s = 0.0

  @contextlib.contextmanager
  def paused(self, pending=None):
    """Stops the clock for the block; ``pending`` (e.g. the state) is waited for first, so
    the training step still running on the device counts as training."""
    if pending is not None:
      jax.block_until_ready(pending)
    start = time.perf_counter()
    try:
      yield
    finally:
      self._paused_s += time.perf_counter() - start

  def window(self, steps: int, batch_size: int) -> dict[str, float]:
    """step_time_s and images_per_s of the ``steps`` since the last call; starts a new one."""
    now = time.perf_counter()
    elapsed = max(now - self._start - self._paused_s, 1e-9)
    self._start, self._paused_s = now, 0.0
    return {"step_time_s": elapsed / steps, "images_per_s": steps * batch_size / elapsed}
