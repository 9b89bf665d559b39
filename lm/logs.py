"""Log setup for the command-line tools: our INFO lines, only warnings from the libraries, and
their errors in one line each (the entry point says what failed, once); the libraries' chatter
(their INFO lines, what they print, their progress bars) only with absl's --verbosity raised."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from absl import logging as absl_logging

_CHATTY = (
  "/orbax/",
  "/grain/",
  "/tensorflow_datasets/",
  "/absl/",
  "xla_bridge",
  "/apache_beam/",
  "/lm_eval/",
  "/datasets/",
)


def chatty() -> bool:
  """Whether the libraries may talk: absl's --verbosity raised to DEBUG (1) or more."""
  return absl_logging.get_verbosity() >= absl_logging.DEBUG


@contextlib.contextmanager
def library_prints() -> Iterator[None]:
  """Within it, what is printed to stdout is dropped unless `chatty()`: for library calls that
  print their progress (TFDS's 'Downloading and preparing dataset ...'); their warnings and
  errors go through logging, untouched."""
  if chatty():
    yield
    return
  with contextlib.redirect_stdout(io.StringIO()):
    yield


class _QuietLibraries(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    if chatty() or not any(p in record.pathname for p in _CHATTY):
      return True
    record.exc_info = record.exc_text = None  # e.g. Orbax's background-thread tracebacks
    return record.levelno >= logging.WARNING


def quiet_libraries(*handlers: logging.Handler) -> None:
  """Keeps INFO records from this project; drops those from orbax, grain, TFDS, lm-eval and
  datasets, and the tracebacks attached to their warnings and errors, unless `chatty()`: on
  `handlers`, by default on the root's and absl's."""
  for handler in handlers or logging.getLogger().handlers + logging.getLogger("absl").handlers:
    handler.addFilter(_QuietLibraries())
