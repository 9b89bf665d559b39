"""Run directories on local disk or in object storage (gs://, s3://) through `etils.epath`.

Workdirs may be `gs://bucket/run` on a TPU VM: checkpoints go there through Orbax, and the
run files (config, model, tokenizer, metrics, TensorBoard events) through the helpers here.
A run file is written whole or not at all (`write_atomically`), so that a full disk or a kill
never leaves half of one. Object stores cannot append, so appended files are rewritten whole
(`RewrittenFile`, which metrics.jsonl and TensorBoard's event files go through).
"""

from __future__ import annotations

import io
import os
import pathlib
import socket
import threading
import time

from etils import epath

REMOTE_SCHEMES = ("gs", "s3")
# The folder that holds the installed `lm` and, beside it, `experiments` (the bundled configs):
# the repository for a checkout or an editable install, else site-packages.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def user_cache_dir() -> pathlib.Path:
  """This project's per-user cache folder: `$LM_CACHE_DIR`, else ~/.cache/lm."""
  return pathlib.Path(os.environ.get("LM_CACHE_DIR") or pathlib.Path.home() / ".cache" / "lm")


def data_dir(path: str) -> epath.Path:
  """config.data.data_dir's folder: an object-store URI, or an absolute or ~ path, as given; a
  relative one under user_cache_dir(), so the data lands in one place wherever a command runs."""
  if is_remote(path):
    return epath.Path(path)
  return epath.Path(user_cache_dir()).absolute() / epath.Path(path).expanduser()


def is_remote(path: str | epath.Path) -> bool:
  """Whether `path` names an object store (gs://, s3://) rather than the local filesystem."""
  return str(path).startswith(tuple(f"{scheme}://" for scheme in REMOTE_SCHEMES))


def run_path(path: str | epath.Path) -> epath.Path:
  """An absolute local path (with ~ expanded), or the object-store URI unchanged."""
  if is_remote(path):
    return epath.Path(path)
  return epath.Path(path).expanduser().absolute()


def write_atomically(path: str | epath.Path, content: str | bytes) -> epath.Path:
  """Writes `content` to `path` whole or not at all: on local disk through a file beside it
  that then replaces it (a full disk leaves the previous file, or none, never a part of one);
  an object store's write is already whole."""
  target = run_path(path)
  data = content.encode() if isinstance(content, str) else content
  if is_remote(target):
    target.write_bytes(data)
    return target
  target.parent.mkdir(parents=True, exist_ok=True)
  # Named for its writer: processes on several hosts may write the same file of a shared folder.
  writer = f"{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}"
  partial = target.parent / f".{target.name}.{writer}.tmp"
  try:
    with open(partial, "wb") as f:
      f.write(data)
    os.replace(partial, target)
  except BaseException:
    partial.unlink(missing_ok=True)
    raise
  return target


def copy_file(src: str | epath.Path, dst: str | epath.Path) -> epath.Path:
  """Copies `src` to `dst` (either may be remote; whole or not at all) unless they are the
  same file."""
  source, target = run_path(src), run_path(dst)
  if source != target:
    write_atomically(target, source.read_bytes())
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
