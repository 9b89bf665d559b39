"""Where the preparation's shards are written: in this process, or on Apache Beam.

Each shard is written by one call of a pure function of its spec, so any engine that maps a
function over a list gives the same bytes. Beam (an environment of its own:
requirements-beam.lock) is the engine for more than one worker: its direct runner's process
pool on one machine
(`workers`), or any runner its options name (`beam_options`, e.g. `--runner=DataflowRunner
--project=... --temp_location=gs://...`, or Flink or Spark) for a corpus that outgrows one.
"""

from __future__ import annotations

import importlib
import re
import shlex
from collections.abc import Callable, Sequence
from typing import Any

from lm.data.local_text import DataError


class EngineError(RuntimeError):
  """The engine asked for cannot run here (Beam not installed)."""


def pipeline_flags(workers: int, beam_options: str) -> list[str]:
  """Beam's flags: `beam_options` as given, else `workers` processes on this machine."""
  if beam_options:
    return shlex.split(beam_options)
  return [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]


def run(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, beam_options: str) -> None:
  """Calls `fn` on every item: in this process (one worker, no Beam options), else as a Beam
  pipeline whose workers each take items as they finish others."""
  if workers <= 1 and not beam_options:
    for item in items:
      fn(item)
    return
  try:  # Beam lives in its own environment (requirements-beam.lock)
    beam = importlib.import_module("apache_beam")
    options_module = importlib.import_module("apache_beam.options.pipeline_options")
    fn_api_runner = importlib.import_module("apache_beam.runners.portability.fn_api_runner")
  except ImportError:
    raise EngineError(
      "more than one preparation worker runs on Apache Beam, which is not installed here: run "
      "with .venv-beam/bin/python (make .venv-beam/.installed builds it from "
      "requirements-beam.lock), or use --workers=1"
    ) from None
  options = options_module.PipelineOptions(pipeline_flags(workers, beam_options))
  # On this machine, the direct runner's process pool itself: Beam's DirectRunner would first
  # try its Prism runner, which downloads a binary.
  runner = None if beam_options else fn_api_runner.FnApiRunner()
  try:
    with beam.Pipeline(runner=runner, options=options) as p:
      _ = p | beam.Create(list(items)) | beam.Reshuffle() | beam.Map(fn)
  except Exception as e:
    raise _worker_error(e) from None


def _worker_error(e: Exception) -> Exception:
  """A worker's DataError as the DataError it was (Beam re-raises it as text with the worker's
  traceback); anything else unchanged."""
  marker = f"{DataError.__module__}.{DataError.__name__}: "
  text = str(e)
  if marker not in text:
    return e
  line = text[text.rindex(marker) + len(marker) :].splitlines()[0]
  return DataError(re.sub(r" \[while running '[^']*'\]$", "", line))
