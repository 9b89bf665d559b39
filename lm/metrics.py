"""Metric writers (JSONL and TensorBoard event files) and throughput / MFU bookkeeping."""

from __future__ import annotations

import collections
import contextlib
import json
import sys
import time
from typing import Any

import jax

from lm import hardware, paths


def _import_tensorboardx():
  """tensorboardX without PyTorch: it imports torch whenever torch is installed (5-15 s of
  start-up here) only to accept torch tensors, which we never hand it."""
  hidden = "torch" not in sys.modules
  if hidden:
    sys.modules["torch"] = None  # makes `import torch` raise ImportError, which it handles
  try:
    import tensorboardX  # pylint: disable=import-outside-toplevel
  finally:
    if hidden:
      del sys.modules["torch"]
  return tensorboardX


SummaryWriter = _import_tensorboardx().SummaryWriter
record_writer = sys.modules["tensorboardX.record_writer"]


class _ObjectStoreEvents:
  """tensorboardX writer factory: event files in object stores, rewritten whole (lm/paths.py)."""

  def open(self, path: str) -> paths.RewrittenFile:
    return paths.RewrittenFile(path)

  def directory_check(self, path: str) -> None:
    del path  # object stores have no directories to create


for _scheme in paths.REMOTE_SCHEMES:
  record_writer.register_writer_factory(_scheme, _ObjectStoreEvents())


def _step_of(line: str) -> int | None:
  try:
    return int(json.loads(line)["step"])
  except (ValueError, KeyError, TypeError):  # a row cut short when the process was killed
    return None


def _drop_rows_after(path, step: int) -> None:
  """Rewrites a metrics.jsonl without the rows of steps after `step` (and any row cut short)."""
  path = paths.run_path(path)
  if not path.exists() or not (paths.is_remote(path) or path.is_file()):
    return  # nothing written yet, or not a regular file (a pipe, a device)
  lines = path.read_text().splitlines(keepends=True)
  kept = [l for l in lines if (s := _step_of(l)) is not None and s <= step and l.endswith("\n")]
  if len(kept) != len(lines):
    path.write_text("".join(kept))


def read_metrics(workdir: str) -> list[dict[str, float]]:
  """The rows of `<workdir>/metrics.jsonl` (none if it is absent), without a last row cut short
  by a writer that is still running or was killed."""
  path = paths.run_path(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  rows = []
  for line in path.read_text().splitlines():
    try:
      rows.append(json.loads(line))
    except ValueError:
      continue
  return rows


class MetricWriter:
  """Appends scalars to `<workdir>/metrics.jsonl` and TensorBoard events under `<workdir>/tb`
  (local or gs://, see lm/paths.py).

  Only the writing process (process 0) should construct one with `enabled=True`. A run that
  starts from step `resume_step` (0: from scratch) replays what was logged after it: those rows
  are dropped from metrics.jsonl and purged from TensorBoard, so that each holds one curve.
  Without `resume_step` every row is kept. `mirror` (e.g. a WandbWriter) gets every row too.
  """

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int | None = None,
               mirror=None):
    self.enabled, self._mirror = enabled, mirror
    if enabled:
      root = paths.run_path(workdir)
      if resume_step is not None:
        _drop_rows_after(root / "metrics.jsonl", resume_step)
      self._jsonl = paths.RewrittenFile(root / "metrics.jsonl")
      # Event files are named by the second they were opened in: the suffix keeps a restart
      # within the same second from overwriting the last one, and sorts after it.
      self._tb = SummaryWriter(str(root / "tb"), filename_suffix=f".{time.time_ns()}",
                               purge_step=None if resume_step is None else resume_step + 1)

  def write(self, step: int, scalars: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write((json.dumps(row) + "\n").encode())
    self._jsonl.flush()
    for k, v in row.items():
      if k != "step":
        self._tb.add_scalar(k, v, step)
    if self._mirror is not None:
      self._mirror.write(step, {k: v for k, v in row.items() if k != "step"})

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
      if self._mirror is not None:
        self._mirror.close()


class CompileCounter:
  """Counts XLA compilations per jitted function (`jit(name)`) while active, from JAX's
  monitoring events (not the dispatch cache's size, which can hold several entries for one
  compilation)."""

  EVENT = "/jax/core/compile/backend_compile_duration"

  def __init__(self):
    self.counts: collections.Counter[str] = collections.Counter()

  def _listen(self, event: str, duration: float, **kwargs: Any) -> None:
    del duration
    if event == self.EVENT:
      self.counts[kwargs.get("fun_name", "?")] += 1

  def start(self) -> "CompileCounter":
    jax.monitoring.register_event_duration_secs_listener(self._listen)
    return self

  def stop(self) -> None:
    jax.monitoring.unregister_event_duration_listener(self._listen)

  def count(self, name: str) -> int:
    return self.counts[f"jit({name})"]


class PhaseTimes:
  """Wall seconds spent in each named phase of a run (phases may be entered many times)."""

  def __init__(self):
    self.seconds: dict[str, float] = collections.defaultdict(float)

  @contextlib.contextmanager
  def __call__(self, name: str):
    t = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[name] += time.perf_counter() - t

  def line(self, total_s: float) -> str:
    """'setup 1.2s, compile 3.4s, ..., other 0.1s' in order of entry, the rest as 'other'."""
    other = total_s - sum(self.seconds.values())
    return ", ".join(f"{k} {v:.1f}s" for k, v in [*self.seconds.items(), ("other", other)])


class Throughput:
  """Tokens/s, MFU and ETA over the steps since the last report."""

  def __init__(self, tokens_per_step: int, flops_per_token: float, peak_flops: float,
               total_steps: int):
    self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
    self.peak_flops, self.total_steps = peak_flops, total_steps
    self._t, self._step = time.perf_counter(), None

  def reset(self, step: int) -> None:
    self._t, self._step = time.perf_counter(), step

  def report(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    steps = step - (self._step if self._step is not None else step)
    dt = now - self._t
    self._t, self._step = now, step
    if steps <= 0 or dt <= 0:
      return {}
    step_time = dt / steps
    tokens_per_s = self.tokens_per_step / step_time
    return {"step_time_s": step_time, "tokens_per_s": tokens_per_s,
            "mfu": hardware.mfu(tokens_per_s, self.flops_per_token, self.peak_flops),
            "eta_s": step_time * (self.total_steps - step)}
