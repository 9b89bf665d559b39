"""A TFDS builder for a local text corpus: one file or a folder of files; strict reading of
local text files (also the labelled ones), and the error that names a bad one.

The files (sorted, text decoded strictly with `config.data.encoding`) are concatenated; the
last `validation_fraction` of the characters, cut at a line break, is the validation split.
Each split is stored as records of at most `record_chars` characters, cut at line breaks and
at the ends of files, in array_record format so it is read without TensorFlow. Each file is a
document: a record carries the index of the file it comes from.
"""

from __future__ import annotations

import codecs
import dataclasses
import fnmatch
import hashlib
import os
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from lm.runtime import paths


class DataError(ValueError):
  """A bad corpus or labelled file (or a bad label in a TFDS dataset, or an unknown encoding);
  the message names the file and line, or the config field, and what is wrong."""


@dataclasses.dataclass
class LocalTextConfig(tfds.core.BuilderConfig):
  path: str = ""
  include: str = "*"
  exclude: tuple[str, ...] = ()
  validation_fraction: float = 0.1
  record_chars: int = 1 << 16
  encoding: str = "utf-8"
  decode_errors: str = "strict"


def is_glob(path: str) -> bool:
  """Whether `path` is a glob pattern (`*`, `?` or `[`) rather than a file or folder."""
  return any(c in path for c in "*?[")


def corpus_paths(
  path: str, include: str = "*", exclude: tuple[str, ...] = ()
) -> tuple[epath.Path, list[epath.Path]]:
  """(root, files) of a corpus on a local path or gs:// (through etils.epath), files sorted.

  `path` is a file (root: its folder), a folder (root: the folder; its files below it) or a
  glob such as `gs://bucket/c4/*.jsonl.gz` (root: the folder before the first pattern). Below a
  folder or glob's root, a file is taken if its path relative to the root matches the glob
  `include` and none of the globs `exclude` (`*` also matches `/`); hidden files (and those in
  hidden folders, such as .git) never are.
  """
  if is_glob(path):
    parts = str(paths.run_path(path)).split("/")
    at = next(i for i, part in enumerate(parts) if is_glob(part))
    root = epath.Path("/".join(parts[:at]) or "/")
    found = [f for f in root.glob("/".join(parts[at:])) if f.is_file()]
    problem = "matches no files"
  else:
    root = paths.run_path(path)
    if root.is_file():
      return root.parent, [root]
    if not root.is_dir():
      raise FileNotFoundError(f"config.data.path={path!r} is neither a file nor a folder")
    found = list(_files_below(root))
    problem = "holds no files"

  def taken(f: epath.Path) -> bool:
    rel = str(f.relative_to(root))
    return (
      not any(part.startswith(".") for part in rel.split("/"))
      and fnmatch.fnmatch(rel, include)
      and not any(fnmatch.fnmatch(rel, e) for e in exclude)
    )

  files = sorted((f for f in found if taken(f)), key=str)
  if not files:
    raise FileNotFoundError(f"config.data.path={path!r} {problem}")
  return root, files


def _files_below(root: epath.Path) -> Iterator[epath.Path]:
  top = None  # the root as the walk spells it: on gs://, without the scheme
  for folder, _, names in root.walk():
    top = str(folder) if top is None else top
    below = str(folder)[len(top) :].lstrip("/")
    yield from (root / below / name for name in names)


def corpus_files(path: str, include: str = "*", exclude: tuple[str, ...] = ()) -> list[str]:
  """The paths of the files of a corpus (see `corpus_paths`), sorted."""
  return [str(f) for f in corpus_paths(path, include, exclude)[1]]


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


def split_text(text: str, validation_fraction: float) -> tuple[str, str]:
  """(train, validation): validation is the last fraction of the text, from a line start."""
  cut = _cut_at_newline(text, int(len(text) * (1.0 - validation_fraction)))
  return text[:cut], text[cut:]


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


def _file_name(corpus: str, path: str) -> str:
  name = f"config.data.path={corpus!r}"
  return name if path == corpus else f"{name} file {os.path.relpath(path, corpus)!r}"


class LocalText(tfds.core.GeneratorBasedBuilder):
  """Plain text from local files, split into train and validation."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {
    "1.1.0": "Records end at file ends and carry their file's index."
  }

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {"text": tfds.features.Text(), "document": tfds.features.Scalar(np.int64)}
      ),
      disable_shuffling=True,
    )  # keep the corpus order: records are pieces of one stream

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    files = [
      read_text(f, cfg.encoding, _file_name(cfg.path, f), cfg.decode_errors)
      for f in corpus_files(cfg.path, cfg.include, cfg.exclude)
    ]
    text = "".join(files)
    if not text.strip():
      raise DataError(f"config.data.path={cfg.path!r} holds no text")
    train, validation = split_text(text, cfg.validation_fraction)
    # An empty split would fail inside TFDS, naming neither the corpus nor the fraction.
    for split, part in (("train", train), ("validation", validation)):
      if not part.strip():
        raise DataError(
          f"config.data.validation_fraction={cfg.validation_fraction} leaves the {split} split "
          f"of config.data.path={cfg.path!r} ({len(text)} characters) without text; use a "
          "fraction in (0, 1) that leaves a line to each split, or a larger corpus"
        )
    return {
      "train": self._generate_examples(file_pieces(files, 0, len(train))),
      "validation": self._generate_examples(file_pieces(files, len(train), len(text))),
    }

  def _generate_examples(self, pieces: list[tuple[int, str]]):
    key = 0
    for document, piece in pieces:
      for chunk in chunk_text(piece, self.builder_config.record_chars):
        yield key, {"text": chunk, "document": document}
        key += 1


def file_pieces(files: list[str], begin: int, end: int) -> list[tuple[int, str]]:
  """(file index, text) of each file's part of the characters [begin, end) of all files."""
  pieces, offset = [], 0
  for i, text in enumerate(files):
    lo, hi = max(begin - offset, 0), min(end - offset, len(text))
    if lo < hi:
      pieces.append((i, text[lo:hi]))
    offset += len(text)
  return pieces


def local_text_builder(
  path: str,
  validation_fraction: float,
  data_dir: str,
  include: str = "*",
  exclude: tuple[str, ...] = (),
  encoding: str = "utf-8",
  decode_errors: str = "strict",
) -> LocalText:
  """A LocalText builder whose config name is tied to the corpus path, contents and decoding."""
  path = os.path.abspath(os.path.expanduser(path))
  exclude = tuple(exclude)
  codec = codec_name(encoding)
  # utf-8, strict, adds nothing to the name: corpora prepared before these fields are kept.
  decoding = ("" if codec == "utf-8" else codec) + (
    "" if decode_errors == "strict" else decode_errors
  )
  digest = hashlib.sha256(f"{validation_fraction}{decoding}".encode())
  for f in corpus_files(path, include, exclude):
    st = os.stat(f)
    digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
  stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
  name = "".join(c if c.isalnum() else "_" for c in stem).lower() + "_" + digest.hexdigest()[:10]
  files = {"path": path, "include": include, "exclude": exclude}
  split = {"validation_fraction": validation_fraction}
  decode = {"encoding": codec, "decode_errors": decode_errors}
  config = LocalTextConfig(name=name, **files, **split, **decode)
  return LocalText(config=config, data_dir=data_dir, file_format="array_record")
