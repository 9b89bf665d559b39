import json
import os
import pathlib

import numpy as np
import pytest

from lm.data import pipeline, prepare, token_cache
from lm.data.local_text import DataError, chunk_text
from lm.data.tokenizer import CharTokenizer, load_tokenizer


def _take(it, n):
  return [next(it)["tokens"] for _ in range(n)]


def test_chunks_keep_every_character():
  text = "".join(f"line {i}\n" for i in range(1000))
  chunks = chunk_text(text, 100)
  assert "".join(chunks) == text and all(len(c) <= 100 for c in chunks)
  assert all(c.endswith("\n") for c in chunks)


def test_char_tokenizer_round_trip(tmp_path):
  tok = CharTokenizer.train(["hello world"])
  assert tok.decode(tok.encode("hold")) == "hold"
  tok.save(str(tmp_path))
  assert load_tokenizer(str(tmp_path)).encode("low") == tok.encode("low")


def test_unknown_characters_encode_to_unk_counted_and_said_once(tmp_path, caplog):
  tok = CharTokenizer.train(["hello world"])
  unk = tok.special_ids["[UNK]"]
  assert unk == tok.vocab_size - 1 and tok.num_ordinary == len(" dehlorw")
  with caplog.at_level("WARNING"):
    ids = tok.encode("hez zy, [MASK]")
    tok.encode_batch(["zz"])
  assert ids == tok.encode("he") + [
    unk,
    tok.encode(" ")[0],
    unk,
    unk,
    unk,
    tok.encode(" ")[0],
    tok.special_ids["[MASK]"],
  ]
  assert tok.unknown == {"z": 4, "y": 1, ",": 1}
  assert caplog.text.count("is not in the character vocabulary: encoded as [UNK]") == 1
  assert tok.decode(ids) == "he  "  # specials and [UNK] decode to nothing
  tok.save(str(tmp_path))
  assert load_tokenizer(str(tmp_path)).encode("z") == [unk]
  # A vocabulary saved before [UNK] existed keeps its ids, and fails on an unknown character.
  (tmp_path / "char_vocab.json").write_text('{"chars": " dehlorw"}')
  old = load_tokenizer(str(tmp_path))
  assert "[UNK]" not in old.special_ids and old.vocab_size == tok.vocab_size - 1
  with pytest.raises(ValueError, match="'z' is not in the character vocabulary"):
    old.encode("z")


def test_data_in_another_runs_characters_reports_the_unknown_ones(tiny_config, caplog):
  tok = CharTokenizer.train(["abcdefghijklmnopqrstuvwxyz \n"])  # no capitals, no punctuation
  with caplog.at_level("WARNING"):
    data = token_cache.tokenized_data(tiny_config.data, tok)
  assert (np.asarray(data.splits["train"]) == tok.special_ids["[UNK]"]).sum() > 100
  assert "characters outside the character vocabulary encoded as [UNK] (" in caplog.text


def test_tokenized_data_from_local_corpus(tiny_config, corpus_file):
  data = token_cache.tokenized_data(tiny_config.data)
  text = pathlib.Path(corpus_file).read_text()
  train, val = data.splits["train"], data.splits["validation"]
  assert len(train) + len(val) == len(text)
  # the last tenth of the characters from a line start, as a text was always split
  assert (
    data.tokenizer.decode(np.asarray(val)) == text[text.rfind("\n", 0, int(0.9 * len(text))) + 1 :]
  )
  again = token_cache.tokenized_data(tiny_config.data)  # cached: same files
  np.testing.assert_array_equal(again.splits["train"], train)
  # Data prepared in an older format is never read: the format is in the path.
  assert os.path.basename(data.directory) == f"char_v{prepare.FORMAT}"


def test_documents_are_encoded_in_batches_in_order_each_ended_by_eos(tiny_config, tmp_path):
  from tests.data.test_hf_tokenizers import MERGES, gpt2_tokens

  (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(gpt2_tokens())}))
  (tmp_path / "merges.txt").write_text("\n".join(MERGES))
  tok = load_tokenizer(str(tmp_path))
  n = 2 * prepare.PIECES_PER_BATCH + 5
  (tmp_path / "docs").mkdir()
  texts = [f"the world {i} " * (1 + i % 7) for i in range(n)]
  for i, text in enumerate(texts):
    (tmp_path / "docs" / f"{i:04d}.txt").write_text(text)
  tiny_config.data.path = str(tmp_path / "docs")
  data = token_cache.tokenized_data(tiny_config.data, tok)
  for split in ("train", "validation"):
    tokens, starts = np.asarray(data.splits[split]), data.doc_starts[split]
    documents = np.split(tokens, starts[1:])
    assert len(documents) == data.manifest["splits"][split]["documents"] > 0
    for ids in documents:
      assert ids[-1] == tok.eos_id and tok.eos_id not in ids[:-1]
      assert tok.decode(ids[:-1]) in texts
    assert [int(i) for i in np.concatenate(documents)] == [int(i) for i in tokens]
  order = [
    texts.index(tok.decode(d[:-1]))
    for d in np.split(np.asarray(data.splits["train"]), data.doc_starts["train"][1:])
  ]
  assert order == sorted(order)  # in path order


def test_char_vocabulary_covers_characters_only_in_the_validation_split(tiny_config, tmp_path):
  corpus = tmp_path / "odd.txt"
  corpus.write_text("abc\n" * 900 + "xyz\u00e9\n" * 100)  # the last lines hold new characters
  tiny_config.data.path = str(corpus)
  data = token_cache.tokenized_data(tiny_config.data)
  assert data.tokenizer.decode(np.asarray(data.splits["validation"])).endswith("xyz\u00e9\n")


def test_sentencepiece_tokenizer_is_trained_and_cached(tiny_config):
  tiny_config.data.tokenizer = "sentencepiece"
  tiny_config.data.vocab_size = 512
  data = token_cache.tokenized_data(tiny_config.data)
  assert data.tokenizer.vocab_size == 512 and data.tokenizer.eos_id is not None
  assert data.tokenizer.decode(data.tokenizer.encode("First Citizen")) == "First Citizen"
  assert np.asarray(data.splits["train"]).max() < 512


def test_pipeline_is_deterministic_and_resumes_exactly():
  tokens = np.arange(2000, dtype=np.uint16)

  def make(seed):
    return pipeline.iterate(
      pipeline.window_batches(tokens, 16, 4, shuffle_seed=seed, repeat=True), 2, 1
    )

  a = _take(make(0), 60)  # > one epoch (124 windows / 4 per batch = 31 batches)
  np.testing.assert_array_equal(a, _take(make(0), 60))
  assert not np.array_equal(a[0], _take(make(1), 1)[0])
  assert not np.array_equal(a[0:29], a[31:60])  # each epoch is shuffled anew
  it = make(0)
  _take(it, 17)
  state = it.get_state()
  resumed = make(0)
  resumed.set_state(state)
  np.testing.assert_array_equal(_take(resumed, 43), a[17:])


def test_windows_are_shifted_targets_and_cover_the_stream():
  tokens = np.arange(161, dtype=np.uint16)
  batches = list(pipeline.window_batches(tokens, 16, 2, shuffle_seed=None, repeat=False))
  rows = np.concatenate([b["tokens"] for b in batches])
  assert rows.shape == (10, 17)
  np.testing.assert_array_equal(rows[:, 1:-1], rows[:, :-2] + 1)
  np.testing.assert_array_equal(rows[:, 0], np.arange(10) * 16)


def test_hosts_read_disjoint_rows_that_make_the_global_batch():
  tokens = np.arange(5000, dtype=np.uint16)
  full = pipeline.window_batches(tokens, 16, 8, shuffle_seed=3, repeat=True)
  parts = [
    pipeline.window_batches(
      tokens, 16, 8, shuffle_seed=3, repeat=True, process_index=p, process_count=4
    )
    for p in range(4)
  ]
  for step in (0, 5, 40):
    np.testing.assert_array_equal(
      np.concatenate([p[step]["tokens"] for p in parts]), full[step]["tokens"]
    )


def test_sentencepiece_has_the_special_tokens(tiny_config):
  tiny_config.data.tokenizer = "sentencepiece"
  tiny_config.data.vocab_size = 512
  tok = token_cache.tokenized_data(tiny_config.data).tokenizer
  assert set(tok.special_ids) == {"[PAD]", "[MASK]", "[CLS]", "[SEP]"}
  assert tok.encode("a [MASK] b").count(tok.special_ids["[MASK]"]) == 1


def test_labelled_eval_batches_keep_the_remainder_with_zero_weight():
  from lm.data import labelled

  tokens, labels = np.arange(10 * 4).reshape(10, 4), np.arange(10)
  ds = labelled.example_batches(tokens, labels, 4, shuffle_seed=None, repeat=False)
  batches = [ds[i] for i in range(len(ds))]
  assert len(batches) == 3
  np.testing.assert_array_equal(batches[-1]["weight"], [1, 1, 0, 0])
  assert sorted(y for b in batches for y, w in zip(b["label"], b["weight"]) if w) == list(range(10))


def test_document_fields_restart_at_each_document_and_drop_cross_document_targets():
  # Documents start at 0, 5 and 9; the window covers tokens 3..11 (8 inputs, 8 targets).
  fields = pipeline.document_fields(np.asarray([0, 5, 9]), start=3, length=8)
  np.testing.assert_array_equal(fields["segment_ids"], [0, 0, 1, 1, 1, 1, 2, 2])
  np.testing.assert_array_equal(fields["positions"], [0, 1, 0, 1, 2, 3, 0, 1])
  np.testing.assert_array_equal(fields["weights"], [1, 0, 1, 1, 1, 0, 1, 1])
  batch = pipeline.window_batches(
    np.arange(40, dtype=np.uint16),
    8,
    2,
    shuffle_seed=None,
    repeat=False,
    doc_starts=np.asarray([0, 5, 9]),
  )[0]
  assert {k: v.shape for k, v in batch.items()} == {
    "tokens": (2, 9),
    "segment_ids": (2, 8),
    "positions": (2, 8),
    "weights": (2, 8),
  }
  # Tokens 8.. : the end of the second document, then the third from token 9 on.
  np.testing.assert_array_equal(batch["positions"][1], [0, 0, 1, 2, 3, 4, 5, 6])


def test_a_sentencepiece_vocabulary_too_small_for_the_corpus_is_one_line(tiny_config):
  tiny_config.data.tokenizer = "sentencepiece"
  tiny_config.data.vocab_size = 260  # byte fallback needs 256 + the corpus's characters
  with pytest.raises(DataError, match=r"config.data.vocab_size=260 does not fit .*; raise it$"):
    token_cache.tokenized_data(tiny_config.data)
