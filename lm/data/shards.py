"""Token shards: a split's token ids as raw little-endian arrays, written by one worker each and
read by range, on a local disk or any file system `etils.epath` opens (gs://).

A shard `<split>-<index>` of a prepared dataset is three files:
  `<split>-00007.tokens`  the token ids (uint16 or uint32), documents ended by the
                          end-of-sequence id when the tokenizer has one;
  `<split>-00007.starts`  int64 offsets, within the shard, of the documents' first tokens;
  `<split>-00007.json`    its manifest (tokens, documents, dtype, the input's fingerprint, the
                          tokenizer's hash), written last: a shard without one is unfinished.

Shards are read by byte range: `pread` on a local disk, seek and read through epath on
gs://, so no host copies the data or holds more of it than the windows it reads.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any

import numpy as np
from etils import epath

from lm.data.local_text import DataError
from lm.runtime import paths

STARTS_DTYPE = np.dtype("<i8")


def shard_name(split: str, index: int) -> str:
  return f"{split}-{index:05d}"


class ShardWriter:
  """Streams one shard of one split: token ids appended document by document, the manifest
  written by `close` once the token and start files are whole under their final names."""

  def __init__(self, directory: epath.Path, split: str, index: int, dtype: np.dtype):
    self.directory, self.name, self.dtype = directory, shard_name(split, index), np.dtype(dtype)
    self._tmp = f".tmp-{uuid.uuid4().hex}"
    self._tokens_file = (directory / f"{self.name}.tokens{self._tmp}").open("wb")
    self.tokens = 0
    self.starts: list[int] = []

  def add(self, ids: np.ndarray, starts_document: bool) -> None:
    """Appends `ids`; `starts_document`: they begin a document."""
    if starts_document:
      self.starts.append(self.tokens)
    self._tokens_file.write(np.asarray(ids, self.dtype.newbyteorder("<")).tobytes())
    self.tokens += len(ids)

  def close(self, manifest: dict[str, Any]) -> dict[str, Any]:
    """Makes the shard whole: its files renamed into place, then its manifest
    (`manifest` plus tokens, documents and dtype) written; returns the manifest."""
    self._tokens_file.close()
    starts_tmp = self.directory / f"{self.name}.starts{self._tmp}"
    starts_tmp.write_bytes(np.asarray(self.starts, STARTS_DTYPE).tobytes())
    for kind, tmp in (
      ("tokens", self.directory / f"{self.name}.tokens{self._tmp}"),
      ("starts", starts_tmp),
    ):
      tmp.replace(self.directory / f"{self.name}.{kind}")
    manifest = {
      **manifest,
      "name": self.name,
      "tokens": self.tokens,
      "documents": len(self.starts),
      "dtype": self.dtype.name,
    }
    paths.write_atomically(self.directory / f"{self.name}.json", json.dumps(manifest, indent=1))
    return manifest


def read_manifest(path: epath.Path) -> dict[str, Any] | None:
  """A shard's (or the dataset's) manifest, or None where there is none yet; DataError where
  it is not readable JSON."""
  try:
    text = path.read_text()
  except FileNotFoundError:
    return None
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise DataError(
      f"{path} is not valid JSON ({e}): delete it to prepare its shard again"
    ) from None


class _FileArray:
  """A 1-D array in a file, read by range: `pread` on a local file (nothing mapped, so a
  host's memory holds only what it reads), seek and read through epath on gs:// (one open
  handle per thread)."""

  def __init__(self, path: epath.Path, dtype: np.dtype, length: int):
    self.path, self.dtype, self.length = path, dtype, length
    self.remote = paths.is_remote(path)
    self._fd: int | None = None
    self._local = threading.local()

  def __len__(self) -> int:
    return self.length

  def __getitem__(self, index):
    if isinstance(index, slice):
      start, stop, _ = index.indices(self.length)
      return self._read(start, max(stop, start))
    i = int(index) + (self.length if int(index) < 0 else 0)
    return self._read(i, i + 1)[0]

  def _read(self, start: int, stop: int) -> np.ndarray:
    offset, size = start * self.dtype.itemsize, (stop - start) * self.dtype.itemsize
    if not self.remote:
      if self._fd is None:
        self._fd = os.open(self.path, os.O_RDONLY)
      return np.frombuffer(os.pread(self._fd, size, offset), self.dtype)
    handle = getattr(self._local, "handle", None)
    if handle is None:
      handle = self._local.handle = self.path.open("rb")
    handle.seek(offset)
    return np.frombuffer(handle.read(size), self.dtype)

  def __del__(self):
    if self._fd is not None:
      os.close(self._fd)


def _array(path: epath.Path, dtype: np.dtype, length: int):
  """The file's array, read by range (an empty one in memory)."""
  return np.zeros((0,), dtype) if length == 0 else _FileArray(path, dtype, length)


class ShardedTokens:
  """One split's tokens over its shards, in shard order, as one 1-D array: `len`, slices
  (read from the shards they span), `np.asarray`; and the documents' starts.

  Holds only the shards' manifests: memory does not grow with the corpus.
  """

  def __init__(self, directory: epath.Path, manifests: list[dict[str, Any]]):
    self.directory = directory
    self.manifests = [m for m in manifests if m["tokens"] > 0]
    self.dtype = np.dtype(manifests[0]["dtype"] if manifests else "uint16").newbyteorder("<")
    self.offsets = np.cumsum([0] + [m["tokens"] for m in self.manifests])
    self.starts = DocumentStarts(self)
    self._token_arrays: dict[int, Any] = {}
    self._start_arrays: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return int(self.offsets[-1])

  def _tokens(self, shard: int):
    if shard not in self._token_arrays:
      m = self.manifests[shard]
      path = self.directory / f"{m['name']}.tokens"
      self._token_arrays[shard] = _array(path, self.dtype, m["tokens"])
    return self._token_arrays[shard]

  def shard_starts(self, shard: int) -> np.ndarray:
    """The document starts of shard `shard`, within it (read once: 8 bytes a document)."""
    if shard not in self._start_arrays:
      m = self.manifests[shard]
      starts = _array(self.directory / f"{m['name']}.starts", STARTS_DTYPE, m["documents"])
      self._start_arrays[shard] = np.asarray(starts[:])
    return self._start_arrays[shard]

  def _shards(self, start: int, stop: int) -> range:
    first = int(np.searchsorted(self.offsets, start, side="right")) - 1
    last = int(np.searchsorted(self.offsets, stop, side="left"))
    return range(max(first, 0), min(last, len(self.manifests)))

  def __getitem__(self, index):
    if not isinstance(index, slice):
      i = int(index) + (len(self) if int(index) < 0 else 0)
      return self[i : i + 1][0]
    start, stop, step = index.indices(len(self))
    if step != 1:
      raise ValueError("token shards are read in contiguous slices")
    parts = [
      np.asarray(self._tokens(s)[max(start, lo) - lo : min(stop, hi) - lo])
      for s in self._shards(start, stop)
      for lo, hi in [(int(self.offsets[s]), int(self.offsets[s + 1]))]
    ]
    return np.concatenate(parts) if parts else np.zeros((0,), self.dtype)

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    del copy
    whole = self[:]
    return whole if dtype is None else whole.astype(dtype)


class DocumentStarts:
  """The starts of a split's documents, as offsets into its tokens: `between(lo, hi)` reads
  those of one window; `np.asarray` gives them all (evaluation of a whole split). The split's
  first token starts one (a split that begins inside a document, as the held-out end of a
  one-document corpus does, reads it as its own)."""

  def __init__(self, tokens: ShardedTokens):
    self.tokens = tokens

  def _first_is_a_start(self) -> bool:
    shard_starts = self.tokens.shard_starts(0) if self.tokens.manifests else []
    return len(shard_starts) > 0 and int(shard_starts[0]) == 0

  def __len__(self) -> int:
    documents = sum(m["documents"] for m in self.tokens.manifests)
    return documents + (bool(self.tokens.manifests) and not self._first_is_a_start())

  def between(self, lo: int, hi: int) -> np.ndarray:
    """The starts in (lo, hi]."""
    out = []
    for s in self.tokens._shards(lo, hi + 1):
      base = int(self.tokens.offsets[s])
      starts = self.tokens.shard_starts(s)
      a, b = np.searchsorted(starts, [lo - base, hi - base], side="right")
      out.append(np.asarray(starts[a:b], np.int64) + base)
    return np.concatenate(out) if out else np.zeros((0,), np.int64)

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    del copy
    parts = [
      np.asarray(self.tokens.shard_starts(s), np.int64) + int(self.tokens.offsets[s])
      for s in range(len(self.tokens.manifests))
    ]
    if parts and not self._first_is_a_start():
      parts.insert(0, np.zeros((1,), np.int64))
    whole = np.concatenate(parts) if parts else np.zeros((0,), np.int64)
    return whole if dtype is None else whole.astype(dtype)
