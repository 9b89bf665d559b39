"""Run directories on local disk or in object storage (gs://, s3://) through `etils.epath`.

Workdirs may be `gs://bucket/run` on a TPU VM: checkpoints go there through Orbax, and the
run files (config, model, tokenizer, metrics, TensorBoard events) through the helpers here.
Object stores cannot append, so appended files are rewritten whole (`RewrittenFile`;
lm/runs/metrics.py also routes TensorBoard's event files through it).
"""

from __future__ import annotations

import io
import os
import pathlib
import time

from etils import epath

REMOTE_SCHEMES = ("gs", "s3")


def user_cache_dir() -> pathlib.Path:
  """This project's per-user cache folder: `$LM_CACHE_DIR`, else ~/.cache/lm."""
  return pathlib.Path(os.environ.get("LM_CACHE_DIR") or pathlib.Path.home() / ".cache" / "lm")


def is_remote(path: str | epath.Path) -> bool:
  """Whether `path` names an object store (gs://, s3://) rather than the local filesystem."""
  return str(path).startswith(tuple(f"{scheme}://" for scheme in REMOTE_SCHEMES))


def run_path(path: str | epath.Path) -> epath.Path:
  """An absolute local path (with ~ expanded), or the object-store URI unchanged."""
  if is_remote(path):
    return epath.Path(path)
  return epath.Path(path).expanduser().absolute()


def copy_file(src: str | epath.Path, dst: str | epath.Path) -> epath.Path:
  """Copies `src` to `dst` (either may be remote) unless they are the same file."""
  source, target = run_path(src), run_path(dst)
  if source != target:
    target.parent.mkdir(parents=True, exist_ok=True)
    source.copy(target, overwrite=True)
  return target


class RewrittenFile:
  """An append-only binary file that works on object stores: keeps the whole content and
  uploads it on `flush` (at most every `min_interval_s`) and on `close`. Local paths are
  appended to directly. Existing content is kept (a resumed run continues its metrics).
  """

  def __init__(self, path: str | epath.Path, min_interval_s: float = 10.0):
    self.path = run_path(path)
    self.remote = is_remote(self.path)
    self.min_interval_s = min_interval_s
    if self.remote:
      self._buffer = io.BytesIO(self.path.read_bytes() if self.path.exists() else b"")
      self._buffer.seek(0, io.SEEK_END)
      self._uploaded: float | None = None  # the first flush always uploads
    else:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._file = open(self.path, "ab")

  def write(self, data: bytes) -> None:
    (self._buffer if self.remote else self._file).write(data)

  def flush(self, force: bool = False) -> None:
    if not self.remote:
      self._file.flush()
    elif (
      force or self._uploaded is None or time.monotonic() - self._uploaded >= self.min_interval_s
    ):
      self.path.write_bytes(self._buffer.getvalue())
      self._uploaded = time.monotonic()

  def close(self) -> None:
    if self.remote:
      self.flush(force=True)
    else:
      self._file.close()
