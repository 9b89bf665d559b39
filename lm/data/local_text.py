"""A local corpus's files: which files a path, folder or glob names (local or gs://), strict
reading of a text file (also the labelled ones), and the errors that name a bad one."""

from __future__ import annotations

import codecs
import fnmatch
import os
from collections.abc import Iterable, Iterator

from etils import epath

from lm.runtime import paths


class DataError(ValueError):
  """A bad corpus or labelled file (or a bad label in a TFDS dataset, or an unknown encoding);
  the message names the file and line, or the config field, and what is wrong."""


def is_glob(path: str) -> bool:
  """Whether `path` is a glob pattern (`*`, `?` or `[`) rather than a file or folder."""
  return any(c in path for c in "*?[")


def corpus_paths(
  path: str, include: str = "*", exclude: tuple[str, ...] = ()
) -> tuple[str, Iterator[str]]:
  """(root, names) of a corpus's files on a local path or gs:// (through etils.epath): the
  names of its files below the root, in sorted order, streamed (a corpus may hold millions of
  files: a local folder is walked in order, holding one folder's entries at a time).

  `path` is a file (root: its folder), a folder (root: the folder; its files below it) or a
  glob such as `gs://bucket/c4/*.jsonl.gz` (root: the folder before the first pattern). Below a
  folder or glob's root, a file is taken if its path relative to the root matches the glob
  `include` and none of the globs `exclude` (`*` also matches `/`); hidden files (and those in
  hidden folders, such as .git) never are. DataError when no file is taken.
  """
  if is_glob(path):
    parts = str(paths.run_path(path)).split("/")
    at = next(i for i, part in enumerate(parts) if is_glob(part))
    root = "/".join(parts[:at]) or "/"
    prefix = len(root.rstrip("/")) + 1
    found = sorted(str(f)[prefix:] for f in epath.Path(root).glob("/".join(parts[at:])))
    names: Iterable[str] = (n for n in found if (epath.Path(root) / n).is_file())
    problem = "matches no files"
  else:
    top = paths.run_path(path)
    if top.is_file():
      return str(top.parent), iter([top.name])
    if not top.is_dir():
      raise DataError(f"config.data.path={path!r} is neither a file nor a folder")
    root, names, problem = str(top), _names_below(top), "holds no files"

  def taken(rel: str) -> bool:
    return (
      not any(part.startswith(".") for part in rel.split("/"))
      and fnmatch.fnmatch(rel, include)
      and not any(fnmatch.fnmatch(rel, e) for e in exclude)
    )

  filtered = (
    ""
    if (include, tuple(exclude)) == ("*", ())
    else (
      f" that config.data.include={include!r} takes and config.data.exclude={tuple(exclude)!r} "
      "leaves"
    )
  )

  def stream() -> Iterator[str]:
    count = 0
    for name in names:
      if taken(name):
        count += 1
        yield name
    if not count:
      raise DataError(f"config.data.path={path!r} {problem}{filtered}")

  return root, stream()


def _names_below(root: epath.Path) -> Iterator[str]:
  """The files below `root`, as paths relative to it, in sorted order (a folder's entries are
  ordered as the paths below them sort: "a.py" before "a/", "a/" before "b")."""
  if paths.is_remote(root):
    top = None  # the root as the walk spells it: on gs://, without the scheme
    found = []
    for folder, _, files in root.walk():
      top = str(folder) if top is None else top
      below = str(folder)[len(top) :].lstrip("/")
      found += [f"{below}/{name}" if below else name for name in files]
    yield from sorted(found)
    return
  yield from _local_names_below(str(root), "")


def _local_names_below(folder: str, below: str) -> Iterator[str]:
  with os.scandir(folder) as scan:
    entries = sorted(
      ((e.name + "/" if e.is_dir() else e.name), e.path, e.is_dir())
      for e in scan
      if not e.name.startswith(".")
    )
  for key, full, is_dir in entries:
    if is_dir:
      yield from _local_names_below(full, below + key)
    else:
      yield below + key


def corpus_files(path: str, include: str = "*", exclude: tuple[str, ...] = ()) -> list[str]:
  """The paths of the files of a corpus (see `corpus_paths`), sorted."""
  root, names = corpus_paths(path, include, exclude)
  return [f"{root.rstrip('/')}/{name}" for name in names]


def codec_name(encoding: str) -> str:
  """The canonical name of `encoding` ('latin1' -> 'iso8859-1'); DataError if Python has none."""
  try:
    return codecs.lookup(encoding).name
  except LookupError:
    raise DataError(
      f"config.data.encoding={encoding!r} is not a known text encoding; use e.g. "
      "'utf-8' or 'latin-1'"
    ) from None


DECODE_ERRORS = ("strict", "replace")


def looks_binary(where: str, nul: int) -> DataError:
  """The error for a text file holding a NUL byte (the first at byte `nul`)."""
  return DataError(
    f"{where} looks binary: it holds NUL bytes (the first at byte {nul}); use a text file"
  )


def undecodable(where: str, line: int, offset: int, byte: bytes, encoding: str) -> DataError:
  """The error for a `byte` at `offset` (on `line`) that `encoding` does not decode."""
  return DataError(
    f"{where} line {line}: byte {offset} ({byte!r}) is not valid {encoding}; set "
    "config.data.encoding to the file's encoding, e.g. --config.data.encoding=latin-1 (or "
    "config.data.decode_errors='replace' to keep it as U+FFFD)"
  )


def read_text(path: str, encoding: str, where: str | None = None, errors: str = "strict") -> str:
  """The text of the file at `path`, line breaks read as `open()` reads them.

  Raises DataError, starting with `where` (default: the path), if the file holds NUL bytes (a
  binary file decodes as some text under a lenient encoding such as latin-1) or, with
  `errors='strict'`, bytes that `encoding` does not decode ('replace': each becomes U+FFFD).
  """
  where = repr(path) if where is None else where
  codec_name(encoding)
  with open(path, "rb") as f:
    data = f.read()
  nul = data.find(b"\0")
  if nul >= 0:
    raise looks_binary(where, nul)
  try:
    text = data.decode(encoding, errors=errors)
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise undecodable(where, line, e.start, data[e.start : e.start + 1], encoding) from None
  # Universal newlines, as text-mode open() gave before decoding became strict.
  return text.replace("\r\n", "\n").replace("\r", "\n")


def _cut_at_newline(text: str, index: int) -> int:
  nl = text.rfind("\n", 0, index)
  return nl + 1 if nl > 0 else index


def chunk_text(text: str, max_chars: int) -> list[str]:
  """Cuts text into pieces of at most `max_chars`, at line breaks where there is one."""
  chunks, start = [], 0
  while start < len(text):
    end = len(text) if len(text) - start <= max_chars else _cut_at_newline(text, start + max_chars)
    if end <= start:
      end = start + max_chars
    chunks.append(text[start:end])
    start = end
  return chunks
