import json

import pytest
import tokenizers
from tokenizers import models, pre_tokenizers

from lm.data import hf_tokenizer
from lm.data.hf_tokenizer import HFTokenizer
from lm.data.tokenizer import load_tokenizer

TEXTS = [
  "Hello world, the theatre!",
  "  spaces   and\ttabs\n\nnew lines",
  "naïve café 123 4.5",
  "It's what they'll do, isn't it?",
  "emoji 🙂 and 漢字",
  "<|endoftext|>the end",
]
MERGES = [
  "Ġ t",
  "h e",
  "Ġt he",
  "l l",
  "o r",
  "Ġ w",
  "Ġw or",
  "Ġwor l",
  "Ġworl d",
  "e l",
  "H el",
  "Hel l",
  "Hell o",
  "Ġ a",
  "n d",
  "Ġa nd",
  "i t",
  "' s",
  "Ġ 1",
  "Ġ1 2",
]
BERT_WORDS = [
  "[PAD]",
  "[UNK]",
  "[CLS]",
  "[SEP]",
  "[MASK]",
  "the",
  "##s",
  "hello",
  "world",
  "naive",
  "cafe",
  "it",
  "'",
  "s",
  ",",
  "!",
  "?",
  ".",
  "what",
  "they",
  "##ll",
  "do",
  "isn",
  "t",
  "12",
  "##3",
  "4",
  "5",
  "漢",
  "new",
  "line",
  "and",
  "tab",
  "space",
  "end",
  "th",
  "##e",
]


def gpt2_tokens() -> list[str]:
  """A GPT-2 vocabulary: the 256 byte characters, the merges' results, then <|endoftext|>."""
  return (
    sorted(pre_tokenizers.ByteLevel.alphabet())
    + ["".join(m.split(" ")) for m in MERGES]
    + ["<|endoftext|>"]
  )


@pytest.fixture
def gpt2_dir(tmp_path):
  directory = tmp_path / "gpt2"
  directory.mkdir()
  (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(gpt2_tokens())}))
  (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
  return directory


@pytest.fixture
def bert_dir(tmp_path):
  directory = tmp_path / "bert"
  directory.mkdir()
  (directory / "vocab.txt").write_text("\n".join(BERT_WORDS) + "\n")
  return directory


def test_gpt2_files_round_trip_with_endoftext_as_eos_and_pad(gpt2_dir):
  tok = load_tokenizer(str(gpt2_dir))
  vocab = {t: i for i, t in enumerate(gpt2_tokens())}
  assert isinstance(tok, HFTokenizer) and tok.vocab_size == len(vocab)
  assert tok.eos_id == tok.num_ordinary == tok.vocab_size - 1
  assert tok.special_ids == {"<|endoftext|>": tok.eos_id, "[PAD]": tok.eos_id}
  for text in TEXTS:
    assert tok.decode(tok.encode(text)) == text
  assert tok.encode(" world<|endoftext|> and") == [vocab["Ġworld"], tok.eos_id, vocab["Ġand"]]
  assert tok.encode_batch(TEXTS) == [tok.encode(t) for t in TEXTS]
  # Ids past the vocabulary (a model's padded vocabulary) decode to nothing.
  assert tok.decode(tok.encode("the end") + [tok.vocab_size + 3]) == "the end"


def test_bert_vocab_lowercases_keeps_specials_whole_and_decodes_without_them(bert_dir):
  tok = load_tokenizer(str(bert_dir))
  assert tok.vocab_size == tok.num_ordinary == len(BERT_WORDS) and tok.eos_id is None
  assert tok.special_ids == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
  ids = tok.encode("Hello, the WORLD [MASK] thes naïve zz!")
  assert ids == [7, 14, 5, 8, 4, 5, 6, 9, 1, 15]
  assert tok.decode(ids) == "hello, the world thes naive!"
  assert tok.encode_batch(["THE", "[CLS] it"]) == [[5], [2, 11]]


def test_bert_vocab_keeps_case_when_the_config_says_so(bert_dir):
  (bert_dir / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
  assert load_tokenizer(str(bert_dir)).encode("hello Hello") == [7, 1]


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_saved_tokenizer_json_loads_alone_and_encodes_the_same(
  tmp_path, gpt2_dir, bert_dir, family
):
  if family == "bert":
    (bert_dir / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
  tok = load_tokenizer(str(gpt2_dir if family == "gpt2" else bert_dir))
  saved = tmp_path / "saved"
  assert tok.save(str(saved)) == str(saved / "tokenizer.json")
  model_files = ["vocab.json", "merges.txt"] if family == "gpt2" else ["vocab.txt"]
  assert all((saved / f).exists() for f in model_files)
  for f in model_files:  # tokenizer.json (and tokenizer_config.json) are enough
    (saved / f).unlink()
  again = load_tokenizer(str(saved))
  assert (again.vocab_size, again.num_ordinary, again.eos_id, again.special_ids) == (
    tok.vocab_size,
    tok.num_ordinary,
    tok.eos_id,
    tok.special_ids,
  )
  texts = TEXTS + ["The [MASK] is NEW, lines!"]
  assert again.encode_batch(texts) == tok.encode_batch(texts)


def test_saving_twice_writes_the_same_bytes(tmp_path, gpt2_dir):
  tok = load_tokenizer(str(gpt2_dir))
  tok.save(str(tmp_path / "a"))
  tok.save(str(tmp_path / "b"))
  for f in (tmp_path / "a").iterdir():  # the data cache names a pretrained tokenizer by them
    assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()


def test_tokenizer_json_takes_eos_from_its_config_and_trailing_specials_are_not_ordinary(tmp_path):
  vocab = {"a": 0, "b": 1, "ab": 2, "<s>": 3, "</s>": 4}
  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")]))
  tok.add_special_tokens(["<s>", "</s>"])
  (tmp_path / "tokenizer.json").write_text(tok.to_str())
  (tmp_path / "tokenizer_config.json").write_text(
    json.dumps({"eos_token": {"__type": "AddedToken", "content": "</s>"}, "bos_token": "<s>"})
  )
  ours = hf_tokenizer.load(str(tmp_path))
  assert (ours.vocab_size, ours.num_ordinary, ours.eos_id) == (5, 3, 4)
  assert ours.special_ids == {"[PAD]": 4, "</s>": 4}
  assert ours.encode("abba</s>") == [2, 1, 0, 4]
  ours.save(str(tmp_path / "saved"))  # with its config, which transformers reads too
  assert (tmp_path / "saved" / "tokenizer_config.json").read_text() and hf_tokenizer.load(
    str(tmp_path / "saved")
  ).eos_id == 4


def test_a_directory_without_tokenizer_files_has_none(tmp_path):
  assert hf_tokenizer.load(str(tmp_path)) is None
  with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
    load_tokenizer(str(tmp_path))


# Parity with transformers' own tokenizer classes (an optional extra: skipped without it).


def test_bpe_matches_gpt2_tokenizer(gpt2_dir):
  transformers = pytest.importorskip("transformers")
  ref = transformers.GPT2Tokenizer(str(gpt2_dir / "vocab.json"), str(gpt2_dir / "merges.txt"))
  ours = load_tokenizer(str(gpt2_dir))
  for text in TEXTS:
    assert ours.encode(text) == ref.encode(text), text
    assert ours.decode(ours.encode(text)) == ref.decode(ref.encode(text)), text


def test_wordpiece_matches_bert_tokenizer(bert_dir):
  transformers = pytest.importorskip("transformers")
  ref = transformers.BertTokenizer(str(bert_dir / "vocab.txt"), do_lower_case=True)
  ours = load_tokenizer(str(bert_dir))
  for text in TEXTS[:-1] + ["The [MASK] is NEW, lines!", "thes hello?"]:
    ids = ref.encode(text, add_special_tokens=False)
    assert ours.encode(text) == ids, text
    assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=True), text
  assert ours.decode(ours.encode("the thes")) == "the thes"


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_saved_files_load_in_transformers(tmp_path, gpt2_dir, bert_dir, family):
  transformers = pytest.importorskip("transformers")
  tok = load_tokenizer(str(gpt2_dir if family == "gpt2" else bert_dir))
  saved = tmp_path / "saved"
  tok.save(str(saved))
  (saved / "config.json").write_text(json.dumps({"model_type": family}))  # as hf.export writes
  fast = transformers.GPT2TokenizerFast if family == "gpt2" else transformers.BertTokenizerFast
  texts = TEXTS + ["The [MASK] is NEW, lines!"]
  for ref in (
    transformers.AutoTokenizer.from_pretrained(str(saved)),
    fast.from_pretrained(str(saved)),
  ):
    assert [ref.encode(t, add_special_tokens=False) for t in texts] == tok.encode_batch(texts)
