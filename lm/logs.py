"""Log setup for the command-line tools: our INFO lines, only warnings from the libraries, and
their errors in one line each (the entry point says what failed, once)."""

from __future__ import annotations

import logging

_CHATTY = ("/orbax/", "/grain/", "/tensorflow_datasets/", "/absl/", "xla_bridge", "/apache_beam/")


class _QuietLibraries(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    if not any(p in record.pathname for p in _CHATTY):
      return True
    record.exc_info = record.exc_text = None  # e.g. Orbax's background-thread tracebacks
    return record.levelno >= logging.WARNING


def quiet_libraries(*handlers: logging.Handler) -> None:
  """Keeps INFO records from this project; drops those from orbax, grain and TFDS, and the
  tracebacks attached to their warnings and errors: on `handlers`, by default on the root's
  and absl's."""
  for handler in handlers or logging.getLogger().handlers + logging.getLogger("absl").handlers:
    handler.addFilter(_QuietLibraries())
