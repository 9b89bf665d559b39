"""Plans and streams the documents of a corpus, one document (or one block of a large one) at
a time.

`list_units` cuts the corpus that `config.data` names into units, the parts one worker reads:
a file, a byte range of a large uncompressed text or JSONL file (cut at line starts), a range
of a Parquet file's row groups, or a range of a TFDS split's records. Files are sorted by path,
so every machine plans the same. `read_pieces` streams a unit's documents as pieces of at most
`piece_chars` characters, each keyed by its document's place in its file.

Formats (`config.data.format`; 'auto' goes by the file's extension): text (a file is one
document), JSONL (a line is one document: its `config.data.text_key` field; also .gz and .zst),
Parquet (a row is one document: its text column) and TFDS datasets (a record is one document).
Files are local or on gs:// (etils.epath).
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import gzip
import hashlib
import itertools
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from etils import epath

from lm.data import local_text, sources
from lm.data.local_text import DataError
from lm.runtime import paths

FORMATS = ("auto", "text", "jsonl", "parquet")
_JSONL_EXTENSIONS = (".jsonl", ".json", ".ndjson")
_COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
_BLOCK_BYTES = 4 << 20  # read at once from a file
_SCAN_BYTES = 1 << 16  # read at once while looking for a line start
_PARQUET_BATCH_ROWS = 256


@dataclasses.dataclass(frozen=True, slots=True)
class Unit:
  """A part of the corpus one worker reads: a file, a byte range of a large uncompressed
  text/JSONL file (cut at line starts), a Parquet file's row-group range, or a TFDS split's
  record range."""

  kind: str  # 'text' | 'jsonl' | 'parquet' | 'tfds'
  root: str  # the corpus's folder (one string every unit shares; '' for 'tfds')
  name: str  # stable name in document keys: the path below the corpus root, or "<name>:<split>"
  start: int = 0  # byte offset (text/jsonl), row group (parquet), record (tfds)
  stop: int | None = None  # exclusive; None: the end
  size: int = 0  # bytes (records for tfds): for grouping units into shards
  stamp: int = 0  # changes when the file does: a hash of its size and mtime (TFDS: the dataset)
  split: str | None = None  # forced split name, or None (decided per document)
  goes_on: bool = False  # its last document goes on in the next unit (a text file's ranges)

  @property
  def path(self) -> str:
    """The file (local path or gs://...); for 'tfds': "<name>:<split>"."""
    return f"{self.root.rstrip('/')}/{self.name}" if self.root else self.name


@dataclasses.dataclass(frozen=True)
class Piece:
  """Text of one document, or a part of one (large documents come in pieces)."""

  key: str  # the document's identity: f"{unit.name}@{offset}" (byte, row or record index)
  text: str
  first: bool  # True for the first piece of a document (a document boundary precedes it)


def file_format(path: str, fmt: str = "auto") -> str:
  """'text', 'jsonl' or 'parquet': `fmt`, or for 'auto' the one the file's extension names."""
  if fmt != "auto":
    return fmt
  name = path.lower()
  for extension in _COMPRESSIONS:
    name = name.removesuffix(extension)
  if name.endswith(_JSONL_EXTENSIONS):
    return "jsonl"
  return "parquet" if name.endswith(".parquet") else "text"


def iter_units(data_cfg, unit_bytes: int = 64 << 20) -> Iterator[Unit]:
  """The units of the corpus `data_cfg` names, in a fixed order, streamed: each of about
  `unit_bytes` at most (a file, or a TFDS split, is cut only where it is larger)."""
  if data_cfg.dataset != sources.LOCAL:
    yield from _tfds_units(data_cfg, unit_bytes)
    return
  root, names = local_text.corpus_paths(data_cfg.path, data_cfg.include, tuple(data_cfg.exclude))
  for name in names:
    yield from _file_units(root, name, data_cfg, unit_bytes)


def list_units(data_cfg, unit_bytes: int = 64 << 20) -> list[Unit]:
  """`iter_units` as a list (a small corpus's; `Corpus` streams them again each time)."""
  return list(iter_units(data_cfg, unit_bytes))


class Corpus:
  """The units of a corpus, listed again (streamed) each time it is iterated: memory does not
  grow with the number of files."""

  def __init__(self, data_cfg, unit_bytes: int):
    self.data_cfg, self.unit_bytes = data_cfg, unit_bytes

  def __iter__(self) -> Iterator[Unit]:
    return iter_units(self.data_cfg, self.unit_bytes)


def is_single_document(units: Iterable[Unit]) -> bool:
  """Whether the corpus is one plain-text document (one text file, in one or more units);
  reads `units` only until a second file or another kind."""
  name = None
  for unit in units:
    if unit.kind != "text" or (name is not None and unit.name != name):
      return False
    name = unit.name
  return name is not None


def read_pieces(unit: Unit, data_cfg, piece_chars: int = 1 << 16) -> Iterator[Piece]:
  """The documents of `unit` in order, each cut at line breaks into pieces of at most
  `piece_chars` characters; raises DataError naming the file and record of a bad input."""
  readers = {
    "text": _text_pieces,
    "jsonl": _jsonl_pieces,
    "parquet": _parquet_pieces,
    "tfds": _tfds_pieces,
  }
  return readers[unit.kind](unit, data_cfg, piece_chars)


# Planning.


def _file_units(root: str, name: str, data_cfg, unit_bytes: int) -> list[Unit]:
  kind = file_format(name, data_cfg.format)
  whole = Unit(kind, root, name)
  size, mtime = _size_and_mtime(whole.path)
  whole = dataclasses.replace(whole, size=size, stamp=_stamp(f"{size}:{mtime}"))
  if size <= unit_bytes:
    return [whole]
  if kind == "parquet":
    ranges = _row_group_ranges(whole.path, unit_bytes)
  elif _compression(whole.path) is None and _cuts_at_newline_bytes(data_cfg.encoding):
    ranges = _line_ranges(epath.Path(whole.path), size, unit_bytes)
  else:
    return [whole]
  stops = [start for start, _ in ranges[1:]] + [None]
  return [
    dataclasses.replace(
      whole, start=start, stop=stop, size=part, goes_on=kind == "text" and stop is not None
    )
    for (start, part), stop in zip(ranges, stops)
  ]


def _stamp(text: str) -> int:
  return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _size_and_mtime(path: str) -> tuple[int, int]:
  if paths.is_remote(path):
    stat = epath.Path(path).stat()
    return stat.length, stat.mtime
  stat = os.stat(path)
  return stat.st_size, stat.st_mtime_ns


def _cuts_at_newline_bytes(encoding: str) -> bool:
  """Whether a line starts after each b'\\n' in this encoding (not so in UTF-16, say)."""
  return "\n".encode(local_text.codec_name(encoding)) == b"\n"


def _line_ranges(path: epath.Path, size: int, unit_bytes: int) -> list[tuple[int, int]]:
  """(start, bytes) of ranges of about `unit_bytes` each, every one starting at a line start."""
  starts = [0]
  with path.open("rb") as f:
    while starts[-1] + unit_bytes < size:
      cut = _line_start_from(f, starts[-1] + unit_bytes)
      if cut >= size:
        break
      starts.append(cut)
  return [(start, stop - start) for start, stop in zip(starts, starts[1:] + [size])]


def _line_start_from(f: BinaryIO, offset: int) -> int:
  """The first line start at or after byte `offset` > 0 (the file's end if there is none)."""
  at = offset - 1  # a line ending just before `offset` makes it a line start
  f.seek(at)
  while block := f.read(_SCAN_BYTES):
    newline = block.find(b"\n")
    if newline >= 0:
      return at + newline + 1
    at += len(block)
  return at


def _row_group_ranges(path: str, unit_bytes: int) -> list[tuple[int, int]]:
  """(first row group, compressed bytes) of consecutive row groups of about `unit_bytes`."""
  with _open_parquet(path) as parquet:
    meta = parquet.metadata
    ranges, start, size = [], 0, 0
    for i in range(meta.num_row_groups):
      group = meta.row_group(i)
      size += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
      if size >= unit_bytes:
        ranges.append((start, size))
        start, size = i + 1, 0
  if start < meta.num_row_groups or not ranges:
    ranges.append((start, size))
  return ranges


def _tfds_units(data_cfg, unit_bytes: int) -> list[Unit]:
  """Record ranges of the train and eval splits of a TFDS dataset (prepared if needed)."""
  builder = sources.prepared_builder(data_cfg)
  sources.check_splits(data_cfg, builder.info.splits.keys())
  units = []
  for split in (data_cfg.train_split, data_cfg.eval_split):
    info = builder.info.splits[split]
    records = info.num_examples
    per_unit = max(1, records * unit_bytes // max(info.num_bytes, 1))
    name = f"{data_cfg.dataset}:{split}"
    stamp = _stamp(f"{sources.dataset_id(builder)}:{split}:{records}")
    units += [
      Unit("tfds", "", name, start, stop, stop - start, stamp, split)
      for start in range(0, records, per_unit)
      for stop in [min(start + per_unit, records)]
    ]
  return units


# Reading.


def _text_pieces(unit: Unit, data_cfg, piece_chars: int) -> Iterator[Piece]:
  key = f"{unit.name}@0"
  for i, chunk in enumerate(_chunks(_decoded_blocks(unit, data_cfg), piece_chars)):
    yield Piece(key, chunk, first=i == 0 and unit.start == 0)


def _decoded_blocks(unit: Unit, data_cfg) -> Iterator[str]:
  """The text of a text unit, decoded as `local_text.read_text` decodes a file, in blocks."""
  decoder = codecs.getincrementaldecoder(local_text.codec_name(data_cfg.encoding))(
    errors=data_cfg.decode_errors
  )
  offset, held = unit.start, ""  # held: a '\r' that a '\n' may follow in the next block
  for block in itertools.chain(_byte_blocks(unit), [b""]):  # b"": the end flushes the decoder
    nul = block.find(b"\0")
    if nul >= 0:
      raise local_text.looks_binary(repr(unit.path), offset + nul)
    buffered = len(decoder.getstate()[0])  # bytes of a character the last block cut
    try:
      text = held + decoder.decode(block, final=not block)
    except UnicodeDecodeError as e:
      raise _undecodable(unit, data_cfg, offset - buffered + e.start, e) from None
    offset += len(block)
    held = "\r" if block and text.endswith("\r") else ""
    text = text.removesuffix(held).replace("\r\n", "\n").replace("\r", "\n")
    if text:
      yield text


def _jsonl_pieces(unit: Unit, data_cfg, piece_chars: int) -> Iterator[Piece]:
  records = 0
  for offset, line in _lines(_byte_blocks(unit), unit.start):
    if not line.strip():
      continue
    records += 1
    text = _jsonl_text(unit, data_cfg, offset, line)
    if text is not None:
      yield from _document(f"{unit.name}@{offset}", text, piece_chars)
  if not records and unit.start == 0 and unit.stop is None:
    raise DataError(f"{unit.path!r} holds no records; remove the file or fill it")


def _jsonl_text(unit: Unit, data_cfg, offset: int, line: bytes) -> str | None:
  """The text of one JSONL record (None for null), or DataError naming its line."""
  key = data_cfg.text_key

  def bad(what: str) -> DataError:
    return DataError(f"{unit.path!r} line {_line_number(unit, offset)} {what}")

  try:
    record = json.loads(
      line.decode(local_text.codec_name(data_cfg.encoding), data_cfg.decode_errors)
    )
  except UnicodeDecodeError as e:
    raise _undecodable(unit, data_cfg, offset + e.start, e) from None
  except json.JSONDecodeError as e:
    raise bad(f"is not JSON ({e.msg} at column {e.colno}); fix or remove the line") from None
  if not isinstance(record, dict):
    raise bad(f'is a JSON {type(record).__name__}, not an object; write {{"{key}": "..."}}')
  if key not in record:
    raise bad(
      f"has no {key!r} field (config.data.text_key); its fields: {', '.join(record)}; set "
      "config.data.text_key to the field that holds the text"
    )
  text = record[key]
  if text is not None and not isinstance(text, str):
    raise bad(
      f"field {key!r} is not text but a JSON {type(text).__name__}; set config.data.text_key "
      "to the field that holds the text"
    )
  return text


def _parquet_pieces(unit: Unit, data_cfg, piece_chars: int) -> Iterator[Piece]:
  key = data_cfg.text_key
  with _open_parquet(unit.path) as parquet:
    _check_text_column(unit.path, parquet.schema_arrow, key)
    meta = parquet.metadata
    if unit.start == 0 and meta.num_rows == 0:
      raise DataError(f"{unit.path!r} holds no records (rows); remove the file or fill it")
    groups = list(range(unit.start, meta.num_row_groups if unit.stop is None else unit.stop))
    row = sum(meta.row_group(g).num_rows for g in range(unit.start))
    batches = parquet.iter_batches(_PARQUET_BATCH_ROWS, row_groups=groups, columns=[key])
    for batch in batches if groups else []:
      for text in batch.column(0).to_pylist():
        if text is not None:  # a null: no document
          yield from _document(f"{unit.name}@{row}", text, piece_chars)
        row += 1


def _check_text_column(path: str, schema: pa.Schema, key: str) -> None:
  if key not in schema.names:
    raise DataError(
      f"{path!r} has no column {key!r} (config.data.text_key); its columns: "
      f"{', '.join(schema.names)}; set config.data.text_key to the column that holds the text"
    )
  kind = schema.field(key).type
  if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
    raise DataError(
      f"{path!r} column {key!r} holds {kind}, not text; set config.data.text_key to the "
      "column that holds the text"
    )


def _tfds_pieces(unit: Unit, data_cfg, piece_chars: int) -> Iterator[Piece]:
  source = sources.prepared_builder(data_cfg).as_data_source(split=unit.split)
  stop = len(source) if unit.stop is None else unit.stop
  for index in range(unit.start, stop):
    record = source[index]
    if data_cfg.text_key not in record:
      raise DataError(
        f"config.data.dataset={data_cfg.dataset!r} split {unit.split!r} record {index} has no "
        f"{data_cfg.text_key!r} feature (config.data.text_key); its features: "
        f"{', '.join(record)}; set config.data.text_key to the one that holds the text"
      )
    text = sources.record_text(record, data_cfg.text_key)
    yield from _document(f"{unit.name}@{index}", text, piece_chars)


def _document(key: str, text: str, piece_chars: int) -> Iterator[Piece]:
  for i, chunk in enumerate(_chunks([text], piece_chars)):
    yield Piece(key, chunk, first=i == 0)


def _chunks(texts: Iterable[str], max_chars: int) -> Iterator[str]:
  """The concatenation of `texts` in pieces of at most `max_chars` characters, each cut after
  its last line break where it has one (as `local_text.chunk_text` cuts a whole text)."""
  held = ""
  for block in texts:
    text, at = held + block, 0
    while len(text) - at > max_chars:
      cut = text.rfind("\n", at, at + max_chars) + 1
      cut = cut if cut > at else at + max_chars
      yield text[at:cut]
      at = cut
    held = text[at:]
  if held:
    yield held


# Bytes.


def text_bytes(path: str, start: int, stop: int) -> bytes:
  """The (decompressed) bytes [start, stop) of a file."""
  with _open_bytes(path) as f:
    f.seek(start)
    return f.read(stop - start)


def text_size(unit: Unit) -> int:
  """The (decompressed) bytes of a unit: its size, or for a compressed file, read through."""
  if _compression(unit.path) is None:
    return unit.size
  return sum(len(block) for block in _byte_blocks(unit))


def _compression(path: str) -> str | None:
  return next((c for ext, c in _COMPRESSIONS.items() if path.lower().endswith(ext)), None)


class _ByteStream(Protocol):
  def read(self, size: int = -1, /) -> bytes: ...
  def seek(self, offset: int, whence: int = 0, /) -> int: ...


@contextlib.contextmanager
def _open_bytes(path: str) -> Iterator[_ByteStream]:
  """The file's bytes, decompressed as its extension says (.gz, .zst), as a stream."""
  with contextlib.ExitStack() as stack:
    raw = stack.enter_context(epath.Path(path).open("rb"))
    stream: _ByteStream = raw
    compression = _compression(path)
    if compression == "gzip":
      stream = stack.enter_context(gzip.GzipFile(fileobj=raw))
    elif compression == "zstd":
      stream = stack.enter_context(
        zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
      )
    yield stream


def _byte_blocks(unit: Unit) -> Iterator[bytes]:
  """The (decompressed) bytes [unit.start, unit.stop) of a file, in blocks."""
  with _open_bytes(unit.path) as f:
    if unit.start:
      f.seek(unit.start)
    left = None if unit.stop is None else unit.stop - unit.start
    while left is None or left > 0:
      size = _BLOCK_BYTES if left is None else min(_BLOCK_BYTES, left)
      try:
        block = f.read(size)
      except (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as e:
        raise DataError(
          f"{unit.path!r} is not a valid {_compression(unit.path)} file ({e}); re-create it or "
          "leave it out (config.data.exclude)"
        ) from None
      if not block:
        return
      left = None if left is None else left - len(block)
      yield block


def _lines(blocks: Iterable[bytes], offset: int) -> Iterator[tuple[int, bytes]]:
  """(byte offset, line without its '\\n') of each line of the blocks, which start at `offset`."""
  parts = []  # of the line being read
  for block in blocks:
    at = 0
    while (newline := block.find(b"\n", at)) >= 0:
      line = b"".join([*parts, block[at:newline]])
      yield offset, line
      offset, parts, at = offset + len(line) + 1, [], newline + 1
    parts.append(block[at:])
  if tail := b"".join(parts):
    yield offset, tail


def _line_number(unit: Unit, offset: int) -> int:
  """The line of the (decompressed) file that byte `offset` is on; reads the file up to it."""
  before = dataclasses.replace(unit, start=0, stop=offset)
  return 1 + sum(block.count(b"\n") for block in _byte_blocks(before))


def _undecodable(unit: Unit, data_cfg, offset: int, e: UnicodeDecodeError) -> DataError:
  line = _line_number(unit, offset)
  byte = e.object[e.start : e.start + 1]
  return local_text.undecodable(repr(unit.path), line, offset, byte, data_cfg.encoding)


@contextlib.contextmanager
def _open_parquet(path: str) -> Iterator[pq.ParquetFile]:
  with contextlib.ExitStack() as stack:
    source = stack.enter_context(epath.Path(path).open("rb")) if paths.is_remote(path) else path
    try:
      parquet = stack.enter_context(pq.ParquetFile(source))
    except (pa.ArrowException, OSError) as e:
      raise DataError(
        f"{path!r} is not a Parquet file ({e}); re-create it or leave it out (config.data.exclude)"
      ) from None
    yield parquet
