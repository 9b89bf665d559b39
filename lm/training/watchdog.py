"""A watchdog that ends a training process which stops making progress.

A hung collective, barrier or filesystem call blocks the loop without an error, and JAX's
heartbeat only notices a peer that died, not one that is alive but stuck. The loop calls
`beat(doing)` before each thing that may block; if no beat comes for `timeout_s` seconds, the
watchdog logs what the loop was doing and every thread's stack, then ends the process.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

from lm.training import exit_status

log = logging.getLogger(__name__)


def exit_stalled(message: str) -> None:
  """The default action: log, dump every thread's stack to stderr, exit with STALLED."""
  log.error("%s; exiting with status %d", message, exit_status.STALLED)
  faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
  sys.stderr.flush()
  os._exit(exit_status.STALLED)


class Watchdog:
  """Calls `on_stall(message)` once if `beat` is not called for `timeout_s` seconds.

  Armed by the first `beat`; `timeout_s <= 0` disables it.
  """

  def __init__(self, timeout_s: float, on_stall: Callable[[str], None] = exit_stalled):
    self.timeout_s, self.on_stall = timeout_s, on_stall
    self._doing: str | None = None
    self._last = 0.0
    self._stop = threading.Event()
    self._lock = threading.Lock()
    self._thread = threading.Thread(target=self._watch, name="lm-watchdog", daemon=True)
    if timeout_s > 0:
      self._thread.start()

  def beat(self, doing: str) -> None:
    """Progress: the loop is about to do `doing` (e.g. 'running step 12')."""
    with self._lock:
      self._doing, self._last = doing, time.monotonic()

  def stop(self) -> None:
    self._stop.set()

  def _watch(self) -> None:
    while not self._stop.wait(min(self.timeout_s / 4, 5.0)):
      with self._lock:
        doing, idle = self._doing, time.monotonic() - self._last
      if doing is not None and idle > self.timeout_s:
        self.on_stall(
          f"watchdog: no progress for {idle:.0f}s while {doing} "
          f"(config.train.watchdog_s={self.timeout_s:g})"
        )
        return
