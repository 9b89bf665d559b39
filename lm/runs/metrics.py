"""A run's metrics: written as JSONL and TensorBoard event files, and read back."""

from __future__ import annotations

import importlib
import importlib.abc
import json
import sys
import time
from typing import Any

from lm.runtime import paths


class _WithoutTorch(importlib.abc.MetaPathFinder):
  """An import hook under which `import torch` fails, as if it were not installed."""

  def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
    del path, target
    if fullname == "torch" or fullname.startswith("torch."):
      raise ModuleNotFoundError(f"{fullname} is hidden from tensorboardX", name=fullname)


def _import_tensorboardx():
  """tensorboardX without PyTorch: it imports torch whenever torch is installed (5-15 s of
  start-up here) only to accept torch tensors, which we never hand it; it handles the
  ImportError."""
  if "torch" in sys.modules:
    return importlib.import_module("tensorboardX")
  hook = _WithoutTorch()
  sys.meta_path.insert(0, hook)
  try:
    return importlib.import_module("tensorboardX")
  finally:
    sys.meta_path.remove(hook)


SummaryWriter = _import_tensorboardx().SummaryWriter
record_writer = sys.modules["tensorboardX.record_writer"]


class _ObjectStoreEvents:
  """tensorboardX writer factory: event files in object stores, rewritten whole
  (lm/runtime/paths.py)."""

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
  kept = [
    line
    for line in lines
    if (s := _step_of(line)) is not None and s <= step and line.endswith("\n")
  ]
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
  (local or gs://, see lm/runtime/paths.py).

  Only the writing process (process 0) should construct one with `enabled=True`. A run that
  starts from step `resume_step` (0: from scratch) replays what was logged after it: those rows
  are dropped from metrics.jsonl and purged from TensorBoard, so that each holds one curve.
  Without `resume_step` every row is kept. `mirror` (e.g. a WandbWriter) gets every row too.
  """

  def __init__(
    self, workdir: str, enabled: bool = True, resume_step: int | None = None, mirror=None
  ):
    self.enabled, self._mirror = enabled, mirror
    if enabled:
      root = paths.run_path(workdir)
      if resume_step is not None:
        _drop_rows_after(root / "metrics.jsonl", resume_step)
      self._jsonl = paths.RewrittenFile(root / "metrics.jsonl")
      # Event files are named by the second they were opened in: the suffix keeps a restart
      # within the same second from overwriting the last one, and sorts after it.
      self._tb = SummaryWriter(
        str(root / "tb"),
        filename_suffix=f".{time.time_ns()}",
        purge_step=None if resume_step is None else resume_step + 1,
      )

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
