"""A run's metrics: written as JSONL and TensorBoard event files, and read back."""

from __future__ import annotations

import importlib
import importlib.abc
import json
import socket
import struct
import sys
import time
from typing import Any

from etils import epath

from lm.runs import run_files
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


_import_tensorboardx()
event_pb2 = importlib.import_module("tensorboardX.proto.event_pb2")
record_writer = importlib.import_module("tensorboardX.record_writer")
tb_summary = importlib.import_module("tensorboardX.summary")


class _EventFile:
  """TensorBoard scalars appended to a new event file in `folder` (local or an object store),
  written in the caller's thread. tensorboardX's SummaryWriter writes from a thread of its own,
  which dies on a full disk and leaves every later write waiting on its full queue; here a write
  that fails raises where it is made. With `purge_step`, TensorBoard hides the events of that
  step and later that earlier files hold (a resumed run replays them)."""

  def __init__(self, folder: str | epath.Path, purge_step: int | None = None):
    # Named by the second it was opened in (as TensorBoard expects); the suffix keeps a restart
    # within the same second from overwriting the last one, and sorts after it.
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{time.time_ns()}"
    self._file = paths.RewrittenFile(paths.run_path(folder) / name)
    self._add(event_pb2.Event(file_version="brain.Event:2"))
    if purge_step is not None:
      start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
      self._add(event_pb2.Event(step=purge_step, session_log=start))
    self._file.flush()

  def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
    """One event per scalar at `step`, written through (flushed) before it returns."""
    for tag, value in scalars.items():
      self._add(event_pb2.Event(step=step, summary=tb_summary.scalar(tag, value)))
    self._file.flush()

  def _add(self, event) -> None:
    """Appends `event` as a TFRecord: length, its checksum, the data, its checksum."""
    event.wall_time = time.time()
    data = event.SerializeToString()
    length = struct.pack("<Q", len(data))
    crc = record_writer.masked_crc32c
    self._file.write(length + struct.pack("<I", crc(length)) + data + struct.pack("<I", crc(data)))

  def close(self) -> None:
    self._file.close()


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
    paths.write_atomically(path, "".join(kept))


def read_metrics(workdir: str) -> list[dict[str, float]]:
  """The rows of `<workdir>/metrics.jsonl` (none if it is absent), without a last row cut short
  by a writer that is still running or was killed."""
  return read_metrics_file(paths.run_path(workdir) / "metrics.jsonl")


def read_metrics_file(path: str | epath.Path) -> list[dict[str, float]]:
  """The rows of a metrics.jsonl at `path` (a run's, or a copy of it), as `read_metrics`."""
  file = paths.run_path(path)
  if not file.exists():
    return []
  rows = []
  for line in file.read_text().splitlines():
    try:
      rows.append(json.loads(line))
    except ValueError:
      continue
  return rows


def read_checked_metrics(workdir: str) -> list[dict[str, float]]:
  """`read_metrics`' rows, each checked to be an object of an integer step and numbers;
  run_files.UnreadableRun names the first that is not."""
  rows = read_metrics(workdir)
  for i, row in enumerate(rows, 1):
    what = f"metrics.jsonl row {i}"
    if not isinstance(row, dict):
      raise run_files.UnreadableRun(f"{what} is not a JSON object")
    run_files.checked(row.get("step"), int, f"{what}'s step")
    for key, value in row.items():
      run_files.checked(value, (int, float), f"{what}'s {key}")
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
      self._tb = _EventFile(root / "tb", None if resume_step is None else resume_step + 1)

  def write(self, step: int, scalars: dict[str, Any]) -> None:
    """Appends a row to metrics.jsonl and TensorBoard (and the mirror); a write that fails
    (e.g. a full disk) raises here."""
    if not self.enabled:
      return
    values = {k: float(v) for k, v in scalars.items()}
    self._jsonl.write((json.dumps({"step": int(step), **values}) + "\n").encode())
    self._jsonl.flush()
    self._tb.add_scalars(int(step), values)
    if self._mirror is not None:
      self._mirror.write(step, values)

  def close(self) -> None:
    """Closes every file and the mirror, then raises the first error any of them met."""
    if not self.enabled:
      return
    errors = []
    for part in (self._jsonl, self._tb, self._mirror):
      try:
        if part is not None:
          part.close()
      except Exception as e:
        errors.append(e)
    if errors:
      raise errors[0]
