"""Log setup for the command-line tools: our INFO lines, only warnings from the libraries."""

from __future__ import annotations

import logging

_CHATTY = ("/orbax/", "/grain/", "/tensorflow_datasets/", "/absl/", "xla_bridge")


class _QuietLibraries(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(p in record.pathname for p in _CHATTY)


def quiet_libraries() -> None:
  """Keeps INFO records from this project; drops those from orbax, grain and TFDS."""
  for handler in logging.getLogger().handlers + logging.getLogger("absl").handlers:
    handler.addFilter(_QuietLibraries())
