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

from lm.training import early_signals


class Preemption:
  """`requested(step)`: whether to save and stop after `step` (the same answer everywhere)."""

  def __init__(self):
    # A stop asked during start-up (lm/training/early_signals.py) counts from the first step.
    self.signal_name: str | None = early_signals.received[0] if early_signals.received else None
    early_signals.received.clear()
    self._multi = jax.process_count() > 1
    handled = (signal.SIGINT,) if self._multi else (signal.SIGTERM, signal.SIGINT)
    self._previous = {s: signal.signal(s, self._handle) for s in handled}
    if self._multi and self.signal_name is not None:
      os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption notifier, as `_handle` does

  def _handle(self, signum, frame) -> None:
    del frame
    if self.signal_name is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C does not wait for the save
    self.signal_name = signal.Signals(signum).name
    if self._multi:
      os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption notifier

  def requested_before_start(self) -> str | None:
    """The signal that asked this process to stop before its first step, if any. With several
    processes, None: they agree on a step to stop at, the first at the earliest."""
    return None if self._multi else self.signal_name

  def requested(self, step: int) -> bool:
    """Call after every step, on every process."""
    if self._multi:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.signal_name is not None

  def restore(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
