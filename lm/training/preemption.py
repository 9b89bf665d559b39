"""When to stop and save: SIGTERM and SIGINT, agreed on by every process of a run.

One process: either signal sets a flag that the loop checks after each step (a second Ctrl-C
interrupts at once). Several processes:
they must stop at the same step, or the ones still training wait forever in a collective.
`jax.distributed` installs a SIGTERM notifier, and its preemption service picks a step at which
every process reports the stop (`multihost_utils.reached_preemption_sync_point`); SIGINT is
passed on to it as SIGTERM.
"""

from __future__ import annotations

import os
import signal

import jax
from jax.experimental import multihost_utils


class Preemption:
  """`requested(step)`: whether to save and stop after `step` (the same answer everywhere)."""

  def __init__(self):
    self.signal_name: str | None = None
    self._multi = jax.process_count() > 1
    handled = (signal.SIGINT,) if self._multi else (signal.SIGTERM, signal.SIGINT)
    self._previous = {s: signal.signal(s, self._handle) for s in handled}

  def _handle(self, signum, frame) -> None:
    del frame
    if self.signal_name is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C does not wait for the save
    self.signal_name = signal.Signals(signum).name
    if self._multi:
      os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption notifier

  def requested(self, step: int) -> bool:
    """Call after every step, on every process."""
    if self._multi:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.signal_name is not None

  def restore(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
