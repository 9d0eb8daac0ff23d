"""SIGTERM (preemptible TPU VMs, SLURM) and Ctrl-C turned into a clean save-and-exit.

While a training loop runs (a ``Preemption`` exists), the first SIGTERM or SIGINT asks it to
save a checkpoint at the next step boundary and stop. A second one, or one outside the loop
(set-up, compilation, the final evaluation: nothing unsaved), exits at once with
``os._exit``: no Python clean-up runs, so no half-torn-down XLA or orbax thread can crash the
process, and a save in flight leaves only orbax's temporary folder, which the next start
removes. ``python -m pfml_jax.main`` installs the handlers first thing
(``install_stop_handlers``), so a signal during compilation is handled too; a library caller
that did not gets them for the loop's duration.
"""

import os
import signal
import sys

import jax
import numpy as np
from absl import logging

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_installed = False
_active: "Preemption | None" = None  # the running loop's, or None
_stopped_by: str | None = None  # the signal that stopped the last loop


def _exit_now(signum: int) -> None:
  name = signal.Signals(signum).name
  print(f"{name}: exiting at once; the last saved checkpoint stays. Rerun the same command "
        "to resume.", file=sys.stderr, flush=True)
  os._exit(128 + signum)  # the shell's status for a signal; no clean-up that could crash


def _handle(signum: int, frame) -> None:
  del frame
  if _active is None or _active.requested is not None:
    _exit_now(signum)
  _active.request(signal.Signals(signum).name)


def install_stop_handlers() -> None:
  """Handles SIGTERM and SIGINT from now on (see the module docstring)."""
  global _installed
  for signum in STOP_SIGNALS:
    signal.signal(signum, _handle)
  _installed = True


def stopped_by() -> str | None:
  """The name of the signal that stopped a loop of this process ("SIGINT"), or None."""
  return _stopped_by


class Preemption:
  """Records a stop signal; ``agreed`` tells every process once any of them got one."""

  def __init__(self):
    global _active
    self.requested: str | None = None  # the signal's name once one arrived
    self._previous = None if _installed else {s: signal.signal(s, _handle) for s in STOP_SIGNALS}
    _active = self

  def request(self, signal_name: str) -> None:
    global _stopped_by
    logging.warning("%s: saving a checkpoint at the next step boundary, then exiting (press "
                    "Ctrl-C again to exit at once, without saving).", signal_name)
    self.requested = _stopped_by = signal_name

  def agreed(self) -> bool:
    """True on every process once any process was asked to stop. With several processes
    this is an all-gather: call it at the loop's preemption cadence, not every step."""
    if jax.process_count() == 1:
      return self.requested is not None
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(self.requested is not None))))

  def restore(self):
    """Ends the loop's scope: signals exit at once again (or get the caller's handlers)."""
    global _active
    _active = None
    for signum, previous in (self._previous or {}).items():
      signal.signal(signum, previous)
