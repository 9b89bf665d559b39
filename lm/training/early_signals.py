"""SIGTERM and SIGINT remembered from a training process's first line until the loop handles
them (lm/training/preemption.py): a stop asked during start-up (imports, data preparation,
restoring, compiling) ends the run as preempted (exit 75, status.json `preempted`), not killed
by the signal. Standard library only, so that it can be installed before JAX is imported."""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# The names of the signals received so far, first first.
received: list[str] = []


def _remember(signum: int, frame: object) -> None:
  del frame
  received.append(signal.Signals(signum).name)


def remember() -> None:
  """From now on, SIGTERM and SIGINT are remembered in `received` instead of ending the
  process."""
  for signum in STOP_SIGNALS:
    signal.signal(signum, _remember)
