"""A byte-level BPE trained with Hugging Face `tokenizers` (`hf_tokenizer.train_byte_level_bpe`)."""

import json

import pytest

from lm.data import hf_tokenizer
from lm.data.specials import SPECIAL_TOKENS
from lm.data.tokenizer import load_tokenizer
from tests.conftest import CORPUS

CODE = "def f(x):\n\tif x:\n        return  x  # café ☃\n\n"
PROSE = "It was the best of times, it was the worst of times; it was the age of wisdom.\n"
ROUND_TRIPS = [
  CODE,
  PROSE,
  "a" + " " * 17 + "b\n\n\n   ",
  "\t\tx\t=\t1\t\n\t",
  "emoji 🙂🧑‍🚀 and flags 🇫🇷",
  "never seen: 漢字 ελληνικά ﬁ \x00\x07 \u200b \U0010ffff",
  "",
]
VOCAB_SIZE = 600


def plays(chars: int) -> list[str]:
  """The lines of the first `chars` characters of tiny Shakespeare (no tabs, emoji, é, #...)."""
  with open(CORPUS) as f:
    return f.read(chars).splitlines(keepends=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  directory = tmp_path_factory.mktemp("bpe")
  tok = hf_tokenizer.train_byte_level_bpe(iter(plays(30_000)), str(directory), VOCAB_SIZE)
  return tok, directory


def test_every_text_round_trips_byte_for_byte(trained):
  tok, _ = trained
  for text in ROUND_TRIPS:
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size <= VOCAB_SIZE for i in ids), text
    assert tok.decode(ids) == text, text
  assert tok.encode_batch(ROUND_TRIPS) == [tok.encode(t) for t in ROUND_TRIPS]


def test_specials_end_the_vocabulary_and_are_not_ordinary(trained):
  tok, _ = trained
  eos = hf_tokenizer.EOS
  assert tok.vocab_size == VOCAB_SIZE
  assert tok.num_ordinary == VOCAB_SIZE - 5
  assert tok.eos_id == VOCAB_SIZE - 5
  assert tok.special_ids == {
    eos: VOCAB_SIZE - 5,
    **{t: VOCAB_SIZE - 4 + i for i, t in enumerate(SPECIAL_TOKENS)},
  }
  assert len(tok.encode(PROSE)) < len(PROSE) / 2  # merges were learnt


def test_specials_encode_from_their_strings_and_decode_keeps_only_the_end_of_text(trained):
  tok, _ = trained
  ids = tok.encode("[CLS]x[MASK] y[SEP]<|endoftext|>[PAD]")
  special = tok.special_ids
  assert ids[0] == special["[CLS]"]
  assert ids[2] == special["[MASK]"]
  assert ids[-3:] == [special["[SEP]"], tok.eos_id, special["[PAD]"]]
  assert tok.decode(ids) == "x y<|endoftext|>"


def test_saved_files_load_and_encode_the_same(trained):
  tok, directory = trained
  assert sorted(p.name for p in directory.iterdir()) == [
    hf_tokenizer.TOKENIZER_FILE,
    hf_tokenizer.CONFIG_FILE,
  ]
  config = json.loads((directory / hf_tokenizer.CONFIG_FILE).read_text())
  assert config["eos_token"] == hf_tokenizer.EOS
  loaded = load_tokenizer(str(directory))
  assert (loaded.vocab_size, loaded.num_ordinary, loaded.eos_id, loaded.special_ids) == (
    tok.vocab_size,
    tok.num_ordinary,
    tok.eos_id,
    tok.special_ids,
  )
  assert loaded.encode_batch(ROUND_TRIPS) == tok.encode_batch(ROUND_TRIPS)


def test_the_same_texts_give_the_same_files(tmp_path):
  for name in ("a", "b"):
    hf_tokenizer.train_byte_level_bpe(plays(20_000), str(tmp_path / name), 400)
  for file in (hf_tokenizer.TOKENIZER_FILE, hf_tokenizer.CONFIG_FILE):
    assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


def test_a_vocabulary_without_room_for_the_bytes_and_specials_is_refused(tmp_path):
  with pytest.raises(ValueError, match="vocab_size >= 261"):
    hf_tokenizer.train_byte_level_bpe(plays(1000), str(tmp_path), 260)


def test_learns_a_full_vocabulary_from_200_kb_of_plays(tmp_path):
  lines = plays(200_000)  # 0.2 s on one core (no wall-clock assertion)
  tok = hf_tokenizer.train_byte_level_bpe(lines, str(tmp_path), 2000)
  assert tok.vocab_size == 2000
  assert len(tok.encode("".join(lines[:200]))) < len("".join(lines[:200])) / 3
  assert tok.decode(tok.encode(CODE)) == CODE


def test_the_trained_directory_loads_in_transformers(trained):
  transformers = pytest.importorskip("transformers")
  tok, directory = trained
  ref = transformers.AutoTokenizer.from_pretrained(str(directory))
  texts = [*ROUND_TRIPS, "[MASK] x<|endoftext|>"]
  assert [ref.encode(t, add_special_tokens=False) for t in texts] == tok.encode_batch(texts)
  assert ref.eos_token_id == tok.eos_id
  assert ref.mask_token_id == tok.special_ids["[MASK]"]
  assert ref.decode(tok.encode(CODE)) == CODE
