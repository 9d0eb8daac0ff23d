"""SIGTERM (preemptible TPU VMs, SLURM) turned into a clean save-and-exit at a step boundary."""

import signal

import jax
import numpy as np
from absl import logging


class Preemption:
  """Records a SIGTERM; ``agreed`` tells every process once any of them got one."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM: saving a checkpoint at the next check, then exiting.")
    self.requested = True

  def agreed(self) -> bool:
    """True on every process once any process was asked to stop. With several processes
    this is an all-gather: call it at the loop's preemption cadence, not every step."""
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(self.requested))))

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)
