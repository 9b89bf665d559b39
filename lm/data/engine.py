"""Where the preparation's shards are written: in this process, or on Apache Beam.

Each shard is written by one call of a pure function of its spec, so any engine that maps a
function over a list gives the same bytes. Beam (the `beam` extra: requirements-beam.lock) is
the engine for more than one worker: its DirectRunner in multi-processing mode on one machine
(`workers`), or any runner its options name (`beam_options`, e.g. `--runner=DataflowRunner
--project=... --temp_location=gs://...` or Flink or Spark) for a corpus that outgrows one.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import Any


class EngineError(RuntimeError):
  """The engine asked for cannot run here (Beam not installed)."""


def pipeline_flags(workers: int, beam_options: str) -> list[str]:
  """Beam's flags: `beam_options` as given, else the multi-processing DirectRunner."""
  if beam_options:
    return shlex.split(beam_options)
  return [
    "--runner=DirectRunner",
    f"--direct_num_workers={workers}",
    "--direct_running_mode=multi_processing",
  ]


def run(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, beam_options: str) -> None:
  """Calls `fn` on every item: in this process (one worker, no Beam options), else as a Beam
  pipeline whose workers each take items as they finish others."""
  if workers <= 1 and not beam_options:
    for item in items:
      fn(item)
    return
  try:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
  except ImportError:
    raise EngineError(
      "more than one preparation worker runs on Apache Beam, which is not installed: "
      "pip install -r requirements-beam.lock (or 'lm[beam]'), or use --workers=1"
    ) from None
  options = PipelineOptions(pipeline_flags(workers, beam_options))
  with beam.Pipeline(options=options) as p:
    _ = p | beam.Create(list(items)) | beam.Reshuffle() | beam.Map(fn)
