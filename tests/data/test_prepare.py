"""Preparing a corpus into token shards: the same bytes however it is cut into shards, an
interrupted preparation resumed, held-out documents drawn from the whole corpus, every global
batch the same at any number of processes, gs:// data, and shards that do not belong."""

import gzip
import json
import os
import pathlib

import numpy as np
import pytest
import zstandard
from etils import epath

from lm.data import inputs, pipeline, prepare, token_cache
from lm.data.local_text import DataError


def _folder_corpus(root, n: int = 60) -> str:
  folder = root / "corpus"
  for i in range(n):
    sub = folder / f"pkg{i % 7}"
    sub.mkdir(parents=True, exist_ok=True)
    words = " ".join(f"w{(i * 31 + j) % 97}" for j in range(20 + 13 * (i % 5)))
    (sub / f"m{i:03d}.py").write_text(f"# module {i}\ndef f{i}(x):\n    return x  # {words}\n")
  return str(folder)


@pytest.fixture
def folder_config(tiny_config, tmp_path):
  tiny_config.data.path = _folder_corpus(tmp_path)
  tiny_config.data.validation_fraction = 0.2
  return tiny_config


def _stream(data: token_cache.TokenizedData, split: str) -> tuple[np.ndarray, np.ndarray]:
  tokens = data.splits[split]
  return np.asarray(tokens), np.asarray(tokens.starts)


def test_the_tokens_are_the_same_whatever_the_shard_size(folder_config, tmp_path):
  whole = token_cache.tokenized_data(folder_config.data)
  units = inputs.list_units(folder_config.data, unit_bytes=200)
  folder_config.data.data_dir = str(tmp_path / "small_shards")
  directory = token_cache.prepared_directory(folder_config.data, units, None)
  manifest = prepare.prepare(folder_config.data, directory, units, shard_bytes=200)
  small = token_cache.load(directory, manifest)
  assert len(manifest["splits"]["train"]["shards"]) > 5
  for split in ("train", "validation"):
    for a, b in zip(_stream(whole, split), _stream(small, split), strict=True):
      np.testing.assert_array_equal(a, b)


def test_held_out_documents_are_a_seeded_sample_of_the_whole_corpus(folder_config):
  data = token_cache.tokenized_data(folder_config.data)
  val = data.tokenizer.decode(np.asarray(data.splits["validation"]))
  held = sorted(int(line.split()[2]) for line in val.splitlines() if line.startswith("# module"))
  assert 4 <= len(held) <= 20  # 20% of 60 documents, drawn at random
  assert held != list(range(60 - len(held), 60))  # not the last files
  assert len({i % 7 for i in held}) >= 3  # from several packages
  assert data.manifest["held_out"] == "documents"
  assert data.manifest["splits"]["validation"]["documents"] == len(held)
  folder_config.data.sample_seed = 1
  other = token_cache.tokenized_data(folder_config.data)
  assert other.tokenizer.decode(np.asarray(other.splits["validation"])) != val


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_one_text_file_keeps_its_last_fraction(tiny_config, corpus_file, suffix):
  text = pathlib.Path(corpus_file).read_text()
  if suffix:
    compress = {".gz": gzip.compress, ".zst": zstandard.ZstdCompressor().compress}[suffix]
    pathlib.Path(corpus_file + suffix).write_bytes(compress(text.encode()))
    tiny_config.data.path = corpus_file + suffix
  data = token_cache.tokenized_data(tiny_config.data)
  train = data.tokenizer.decode(np.asarray(data.splits["train"]))
  val = data.tokenizer.decode(np.asarray(data.splits["validation"]))
  assert train + val == text and text[len(train) - 1] == "\n"
  assert abs(len(val) - 0.1 * len(text)) < 200
  assert data.manifest["held_out"] == "last_fraction"


def test_an_interrupted_preparation_resumes_at_its_first_unfinished_shard(
  folder_config, tmp_path, monkeypatch
):
  units = inputs.list_units(folder_config.data, unit_bytes=300)
  directory = token_cache.prepared_directory(folder_config.data, units, None)
  real = inputs.read_pieces
  read = []

  def failing(unit, data, *a, **kw):
    read.append(unit)
    if read.count(units[len(units) // 2]) == 2:  # read for the vocabulary, then for its tokens
      raise KeyboardInterrupt  # the preparation is stopped inside a shard
    return real(unit, data, *a, **kw)

  monkeypatch.setattr(inputs, "read_pieces", failing)
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare(folder_config.data, directory, units, shard_bytes=300)
  assert not (directory / prepare.DATASET_FILE).exists()
  finished = sorted(p.name for p in directory.glob("train-*.json"))
  assert finished  # the shards before the interruption are whole
  mtimes = {p.name: os.stat(p).st_mtime_ns for p in directory.glob("*.tokens")}
  read.clear()
  monkeypatch.setattr(inputs, "read_pieces", real)
  manifest = prepare.prepare(folder_config.data, directory, units, shard_bytes=300)
  again = {p.name: os.stat(p).st_mtime_ns for p in directory.glob("*.tokens")}
  assert all(
    again[name] == t for name, t in mtimes.items() if name.replace(".tokens", ".json") in finished
  )
  resumed = token_cache.load(directory, manifest)
  fresh_dir = tmp_path / "fresh"
  fresh = prepare.prepare(folder_config.data, epath.Path(fresh_dir), units, shard_bytes=300)
  for split in ("train", "validation"):
    np.testing.assert_array_equal(
      np.asarray(resumed.splits[split]),
      np.asarray(token_cache.load(epath.Path(fresh_dir), fresh).splits[split]),
    )
  assert not [p.name for p in directory.iterdir() if ".tmp-" in p.name]  # the stopped shard's


def test_every_global_batch_is_the_same_for_1_2_and_4_processes(folder_config):
  data = token_cache.tokenized_data(folder_config.data)
  tokens = data.splits["train"]
  batches = {}
  for count in (1, 2, 4):
    rows = [
      pipeline.window_batches(
        tokens,
        8,
        8,
        shuffle_seed=3,
        repeat=True,
        process_index=i,
        process_count=count,
        doc_starts=tokens.starts,
      )[5]
      for i in range(count)
    ]
    batches[count] = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
  for count in (2, 4):
    for k in batches[1]:
      np.testing.assert_array_equal(batches[count][k], batches[1][k])
  # the same windows as the whole stream in memory gives
  flat = pipeline.window_batches(
    np.asarray(tokens), 8, 8, shuffle_seed=3, repeat=True, doc_starts=np.asarray(tokens.starts)
  )[5]
  for k in flat:
    np.testing.assert_array_equal(flat[k], batches[1][k])


def test_data_on_gcs_reads_as_local_data(folder_config, fake_gcs):
  local = token_cache.tokenized_data(folder_config.data)
  folder_config.data.data_dir = f"{fake_gcs}/data"
  remote = token_cache.tokenized_data(folder_config.data)
  assert remote.directory.startswith("gs://")
  assert remote.splits["train"]._tokens(0).remote
  for split in ("train", "validation"):
    for a, b in zip(_stream(local, split), _stream(remote, split), strict=True):
      np.testing.assert_array_equal(a, b)
  window = pipeline.TokenWindows(remote.splits["train"], 8, remote.splits["train"].starts)[3]
  again = pipeline.TokenWindows(local.splits["train"], 8, local.splits["train"].starts)[3]
  for k in window:
    np.testing.assert_array_equal(window[k], again[k])


def test_a_shard_prepared_with_another_tokenizer_is_refused(folder_config):
  data = token_cache.tokenized_data(folder_config.data)
  name = data.manifest["splits"]["train"]["shards"][0]
  path = pathlib.Path(data.directory, f"{name}.json")
  manifest = json.loads(path.read_text())
  manifest["tokenizer"] = "0123456789abcdef"
  path.write_text(json.dumps(manifest))
  with pytest.raises(DataError, match=f"{name}.json was prepared with another tokenizer"):
    token_cache.tokenized_data(folder_config.data)


def test_a_truncated_shard_is_prepared_again_with_one_warning(folder_config, caplog):
  data = token_cache.tokenized_data(folder_config.data)
  before = {s: np.asarray(data.splits[s]) for s in data.splits}
  name = data.manifest["splits"]["validation"]["shards"][0]
  path = os.path.join(data.directory, f"{name}.tokens")
  os.truncate(path, os.path.getsize(path) - 2)
  with caplog.at_level("WARNING", logger=token_cache.__name__):
    again = token_cache.tokenized_data(folder_config.data)
  (warning,) = [r.getMessage() for r in caplog.records if r.name == token_cache.__name__]
  assert warning.endswith("truncated or replaced: preparing it again") and name in warning
  for split, tokens in before.items():
    np.testing.assert_array_equal(np.asarray(again.splits[split]), tokens)


def test_a_fraction_that_holds_out_no_document_says_so(folder_config):
  folder_config.data.validation_fraction = 1e-6
  with pytest.raises(DataError, match="without a document"):
    token_cache.tokenized_data(folder_config.data)
