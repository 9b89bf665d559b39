"""Planning and streaming a corpus' documents: each layout and format, local and on gs://, the
same documents whatever the unit size, bounded pieces, and one line for each bad input."""

import gzip
import itertools
import json
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from absl import logging as absl_logging
from etils import epath

from experiments.configs import base
from lm.data import inputs, local_text, sources
from lm.data.local_text import DataError
from tests.data.tiny_tfds import TinyCorpus


def _data_cfg(path, **fields):
  data_cfg = base.get_config().data
  data_cfg.path = str(path)
  for name, value in fields.items():
    data_cfg[name] = value
  return data_cfg


def _documents(data_cfg, unit_bytes=64 << 20, piece_chars=1 << 16):
  """{key: text} of every document, checking that each starts with exactly one first piece."""
  documents = {}
  for unit in inputs.list_units(data_cfg, unit_bytes):
    for piece in inputs.read_pieces(unit, data_cfg, piece_chars):
      assert len(piece.text) <= piece_chars
      assert piece.first == (piece.key not in documents)
      documents[piece.key] = documents.get(piece.key, "") + piece.text
  return documents


def _jsonl(texts) -> bytes:
  return b"".join(json.dumps({"id": i, "text": t}).encode() + b"\n" for i, t in enumerate(texts))


TEXTS = ["first doc\nline two\n", "", "caf\u00e9 \u00fcber\n" * 5, "last, no newline"]


@pytest.mark.parametrize(
  "name, fmt, expected",
  [
    ("a.txt", "auto", "text"),
    ("a.py", "auto", "text"),
    ("a.JSONL", "auto", "jsonl"),
    ("a.json", "auto", "jsonl"),
    ("a.ndjson", "auto", "jsonl"),
    ("a.jsonl.gz", "auto", "jsonl"),
    ("a.jsonl.zst", "auto", "jsonl"),
    ("a.parquet", "auto", "parquet"),
    ("a.txt.gz", "auto", "text"),
    ("a.txt", "jsonl", "jsonl"),
  ],
)
def test_format_goes_by_the_extension_unless_given(name, fmt, expected):
  assert inputs.file_format(f"/c/{name}", fmt) == expected


def test_a_text_file_is_one_document_with_universal_newlines(tmp_path):
  path = tmp_path / "x.txt"
  path.write_bytes(b"a\r\nb\rc\n")
  units = inputs.list_units(_data_cfg(path))
  assert [(u.kind, u.name, u.size) for u in units] == [("text", "x.txt", 7)]
  assert units[0].stamp != 0 and units[0].path == str(path)
  assert list(inputs.read_pieces(units[0], _data_cfg(path))) == [
    inputs.Piece("x.txt@0", "a\nb\nc\n", first=True)
  ]
  assert inputs.is_single_document(units)
  assert inputs.is_single_document(inputs.list_units(_data_cfg(path), unit_bytes=2))


def test_a_compressed_text_file_is_read_decompressed(tmp_path):
  for name in ("x.txt.gz", "x.txt.zst"):
    _write_compressed(tmp_path / name, b"one\r\ntwo\n")
  assert _documents(_data_cfg(tmp_path)) == {
    "x.txt.gz@0": "one\ntwo\n",
    "x.txt.zst@0": "one\ntwo\n",
  }


def test_a_folder_takes_include_minus_exclude_and_no_hidden_files(tmp_path):
  for rel, text in [
    ("b.txt", "bee\n"),
    ("a.txt", "ay\n"),
    ("sub/c.txt", "see\n"),
    ("sub/__init__.txt", ""),
    ("sub/d.py", "dee\n"),
    ("test/e.txt", "ee\n"),
    (".hidden.txt", "no\n"),
    (".git/HEAD.txt", "no\n"),
  ]:
    (tmp_path / rel).parent.mkdir(exist_ok=True)
    (tmp_path / rel).write_text(text)
  data_cfg = _data_cfg(tmp_path, include="*.txt", exclude=("test/*",))
  units = inputs.list_units(data_cfg)
  assert [u.name for u in units] == ["a.txt", "b.txt", "sub/__init__.txt", "sub/c.txt"]
  assert _documents(data_cfg) == {"a.txt@0": "ay\n", "b.txt@0": "bee\n", "sub/c.txt@0": "see\n"}
  assert not inputs.is_single_document(units)


def test_a_glob_takes_the_files_it_matches_named_below_its_folder(tmp_path):
  (tmp_path / "x").mkdir()
  (tmp_path / "x" / "a.jsonl").write_bytes(_jsonl(["one"]))
  (tmp_path / "x" / "b.jsonl").write_bytes(_jsonl(["two", "three"]))
  (tmp_path / "x" / "c.txt").write_text("not matched")
  data_cfg = _data_cfg(tmp_path / "*" / "*.jsonl")
  assert [u.name for u in inputs.list_units(data_cfg)] == ["x/a.jsonl", "x/b.jsonl"]
  second = len(_jsonl(["two"]))
  assert _documents(data_cfg) == {
    "x/a.jsonl@0": "one",
    "x/b.jsonl@0": "two",
    f"x/b.jsonl@{second}": "three",
  }


def test_no_file_fails_naming_the_path(tmp_path):
  with pytest.raises(DataError, match=r"config.data.path='.*\*.txt' matches no files"):
    inputs.list_units(_data_cfg(tmp_path / "*.txt"))


def _write_compressed(path, data: bytes) -> None:
  if path.name.endswith(".gz"):
    data = gzip.compress(data)
  elif path.name.endswith(".zst"):
    data = zstandard.ZstdCompressor().compress(data)
  path.write_bytes(data)


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz", "c.jsonl.zst"])
def test_jsonl_records_are_documents_keyed_by_their_byte_offset(tmp_path, name):
  data = _jsonl(TEXTS[:2]) + b"\n  \n" + _jsonl(TEXTS[2:])
  _write_compressed(tmp_path / name, data)
  starts = [i for i in range(len(data)) if data.startswith(b'{"id"', i)]
  documents = _documents(_data_cfg(tmp_path / name))
  assert documents == {f"{name}@{s}": t for s, t in zip(starts, TEXTS) if t}


def _text_corpus(tmp_path):
  (tmp_path / "long.txt").write_bytes(("line of text \u00e9\r\n" * 40).encode())
  (tmp_path / "short.txt").write_text("short\n")
  (tmp_path / "one_line.txt").write_text("x" * 300)
  return {
    "long.txt@0": "line of text \u00e9\n" * 40,
    "one_line.txt@0": "x" * 300,
    "short.txt@0": "short\n",
  }


def _jsonl_corpus(tmp_path):
  data = _jsonl(TEXTS * 10)
  (tmp_path / "c.jsonl").write_bytes(data)
  starts = [i for i in range(len(data)) if data.startswith(b'{"id"', i)]
  return {f"c.jsonl@{s}": t for s, t in zip(starts, TEXTS * 10) if t}


@pytest.mark.parametrize("corpus", [_text_corpus, _jsonl_corpus])
def test_the_documents_are_the_same_whatever_the_unit_size(tmp_path, corpus):
  expected = corpus(tmp_path)
  data_cfg = _data_cfg(tmp_path)
  assert len(inputs.list_units(data_cfg, unit_bytes=50)) > 2 * len(inputs.list_units(data_cfg))
  for unit_bytes in (1, 50, 64 << 20):
    assert _documents(data_cfg, unit_bytes, piece_chars=30) == expected
  units = inputs.list_units(data_cfg, unit_bytes=50)
  ranges = [(u.start, u.stop) for u in units if u.path == units[0].path]
  assert ranges[0][0] == 0 and ranges[-1][1] is None
  assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(ranges))


def test_decoding_across_blocks_matches_read_text(tmp_path, monkeypatch):
  path = tmp_path / "x.txt"
  path.write_bytes("\u00e9\r\n\u20ac\r\r\n\u00e9\r".encode() * 3)
  expected = local_text.read_text(str(path), "utf-8")
  for block_bytes in (1, 2, 3, 5):
    monkeypatch.setattr(inputs, "_BLOCK_BYTES", block_bytes)
    assert _documents(_data_cfg(path), piece_chars=4) == {"x.txt@0": expected}


def test_encoding_and_decode_errors_apply(tmp_path):
  path = tmp_path / "x.txt"
  path.write_bytes("caf\u00e9\n".encode("latin-1"))
  assert _documents(_data_cfg(path, encoding="latin-1")) == {"x.txt@0": "caf\u00e9\n"}
  assert _documents(_data_cfg(path, decode_errors="replace")) == {"x.txt@0": "caf\ufffd\n"}


def test_parquet_rows_are_documents_and_row_groups_make_units(tmp_path):
  table = pa.table({"id": [0, 1, 2, 3], "text": ["zero", None, "two\n" * 5, "three"]})
  pq.write_table(table, tmp_path / "p.parquet", row_group_size=2)
  data_cfg = _data_cfg(tmp_path / "p.parquet")
  expected = {"p.parquet@0": "zero", "p.parquet@2": "two\n" * 5, "p.parquet@3": "three"}
  assert _documents(data_cfg) == expected
  units = inputs.list_units(data_cfg, unit_bytes=1)
  assert [(u.start, u.stop) for u in units] == [(0, 1), (1, None)]
  assert _documents(data_cfg, unit_bytes=1, piece_chars=8) == expected


def test_gcs_files_folder_and_glob(fake_gcs):
  root = epath.Path(fake_gcs) / "corpus"
  (root / "a.jsonl").write_bytes(_jsonl(["remote one"]))
  (root / "b" / "c.txt").write_text("remote\ntext\n" * 20)
  (root / "d.parquet").write_bytes(_parquet_bytes(pa.table({"text": ["row"]})))
  expected = {"a.jsonl@0": "remote one", "b/c.txt@0": "remote\ntext\n" * 20, "d.parquet@0": "row"}
  assert _documents(_data_cfg(root)) == expected
  assert _documents(_data_cfg(root), unit_bytes=40, piece_chars=16) == expected
  assert _documents(_data_cfg(f"{root}/*.jsonl")) == {"a.jsonl@0": "remote one"}
  units = inputs.list_units(_data_cfg(root))
  assert [u.path for u in units] == [
    f"{root}/{name}" for name in ("a.jsonl", "b/c.txt", "d.parquet")
  ]


def test_a_large_file_without_line_breaks_streams_in_bounded_pieces(tmp_path):
  path = tmp_path / "big.txt"
  with open(path, "wb") as f:
    for _ in range(50):
      f.write(b"abcdefghij" * 100_000)  # 1 MB at a time: 50 MB, no line break
  (unit,) = inputs.list_units(_data_cfg(path))
  tracemalloc.start()
  try:
    total = 0
    for piece in inputs.read_pieces(unit, _data_cfg(path), piece_chars=1 << 16):
      assert len(piece.text) <= 1 << 16
      total += len(piece.text)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert total == 50_000_000
  assert peak < 20 << 20  # a few blocks, never the file


def _parquet_bytes(table) -> bytes:
  sink = pa.BufferOutputStream()
  pq.write_table(table, sink)
  return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
  "name, data, message",
  [
    ("x.jsonl", b'{"text": "a"}\n\n{oops\n', r"x.jsonl' line 3 is not JSON \(Expecting property"),
    (
      "x.jsonl",
      b'{"text": "a"}\n{"body": "b", "id": 1}\n',
      r"x.jsonl' line 2 has no 'text' field \(config.data.text_key\); its fields: body, id; set",
    ),
    ("x.jsonl", b'{"text": 3}\n', r"line 1 field 'text' is not text but a JSON int; set"),
    ("x.jsonl", b'["text"]\n', r"line 1 is a JSON list, not an object"),
    (
      "x.jsonl",
      b'{"text": "a"}\n{"text": "caf\xe9"}\n',
      r"x.jsonl' line 2: byte 27 \(b'\\xe9'\) is not valid utf-8; set config.data.encoding",
    ),
    ("x.jsonl", b"", r"x.jsonl' holds no records; remove the file or fill it$"),
    ("x.jsonl.gz", gzip.compress(b"\n \n", mtime=0), r"x.jsonl.gz' holds no records"),
    ("x.jsonl.gz", b"not gzip", r"x.jsonl.gz' is not a valid gzip file \(.*\); re-create it"),
    ("x.txt", b"ab\ncd\0", r"x.txt' looks binary: it holds NUL bytes \(the first at byte 5\)"),
    ("x.txt", b"ok\nok\n\xff", r"x.txt' line 3: byte 6 \(b'\\xff'\) is not valid utf-8"),
    (
      "x.parquet",
      _parquet_bytes(pa.table({"body": ["a"], "id": [1]})),
      r"x.parquet' has no column 'text' \(config.data.text_key\); its columns: body, id; set",
    ),
    ("x.parquet", _parquet_bytes(pa.table({"text": [1]})), r"column 'text' holds int64, not text"),
    (
      "x.parquet",
      _parquet_bytes(pa.table({"text": pa.array([], pa.string())})),
      r"x.parquet' holds no records \(rows\)",
    ),
    ("x.parquet", b"PAR1 not parquet", r"x.parquet' is not a Parquet file \(.*\); re-create it"),
  ],
)
def test_a_bad_input_fails_in_one_line_naming_file_and_record(tmp_path, name, data, message):
  (tmp_path / name).write_bytes(data)
  with pytest.raises(DataError, match=message) as failure:
    _documents(_data_cfg(tmp_path / name))
  assert "\n" not in str(failure.value)


def test_an_error_in_a_later_range_names_the_line_in_the_file(tmp_path):
  (tmp_path / "x.jsonl").write_bytes(_jsonl(["a"] * 20) + b"{oops\n" + _jsonl(["b"]))
  with pytest.raises(DataError, match=r"x.jsonl' line 21 is not JSON"):
    _documents(_data_cfg(tmp_path / "x.jsonl"), unit_bytes=64)


@pytest.fixture
def tiny_corpus(tmp_path, monkeypatch):
  """The config of TinyCorpus, a dataset registered by its module but not in TFDS' catalog."""
  monkeypatch.setattr(sources, "check_dataset_name", lambda name: None)
  return _data_cfg("", dataset=TinyCorpus.name, data_dir=str(tmp_path), text_key="sentence")


def test_tfds_splits_are_record_ranges_with_their_split_forced(tiny_corpus):
  data_cfg = tiny_corpus
  units = inputs.list_units(data_cfg, unit_bytes=40)
  assert {(u.kind, u.path, u.split) for u in units} == {
    ("tfds", "tiny_corpus:train", "train"),
    ("tfds", "tiny_corpus:validation", "validation"),
  }
  assert len(units) > 2 and sum(u.size for u in units) == 13
  documents = _documents(data_cfg, unit_bytes=40, piece_chars=20)
  train = {f"tiny_corpus:train@{i}": f"record {i}\n" * (i + 1) for i in range(10)}
  assert {k: v for k, v in documents.items() if ":train@" in k} == train
  assert len(documents) == 13
  assert not inputs.is_single_document(units)
  data_cfg.text_key = "text"
  with pytest.raises(DataError, match=r"split 'train' record 0 has no 'text' feature .* sentence"):
    next(inputs.read_pieces(units[0], data_cfg))


@pytest.mark.parametrize("verbosity", [absl_logging.INFO, absl_logging.DEBUG])
def test_preparing_a_tfds_dataset_is_quiet_unless_verbosity_is_raised(
  tiny_corpus, capfd, verbosity
):
  """TFDS prints 'Downloading and preparing dataset Unknown size ...' and progress bars full of
  carriage returns and escape codes; a run shows them only with --verbosity=1."""
  before = absl_logging.get_verbosity()
  absl_logging.set_verbosity(verbosity)
  try:
    sources.prepared_builder(tiny_corpus)
  finally:
    absl_logging.set_verbosity(before)
  out, err = capfd.readouterr()
  chatter = ("Downloading and preparing dataset", "Generating splits", "\r", "\x1b[")
  shown = [c for c in chatter if c in out + err]
  assert shown == ([] if verbosity == absl_logging.INFO else list(chatter))


def test_tfds_record_ranges_cover_each_split_once(tiny_corpus):
  data_cfg = tiny_corpus
  for unit_bytes in (1, 64 << 20):
    units = inputs.list_units(data_cfg, unit_bytes)
    for split, records in (("train", 10), ("validation", 3)):
      covered = [i for u in units if u.split == split for i in range(u.start, u.stop or 0)]
      np.testing.assert_array_equal(covered, np.arange(records))


def test_a_folder_whose_files_the_globs_leave_out_says_so(tmp_path):
  (tmp_path / "a.py").write_text("x = 1\n")
  data_cfg = _data_cfg(tmp_path)
  data_cfg.include = "*.rs"
  with pytest.raises(DataError, match=r"holds no files that config.data.include='\*.rs' takes"):
    inputs.list_units(data_cfg)
