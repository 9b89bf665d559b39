import json

import pytest

from lm.data.bpe import ByteBPETokenizer, bytes_to_unicode
from lm.data.tokenizer import load_tokenizer
from lm.data.wordpiece import WordPieceTokenizer

TEXTS = ["Hello world, the theatre!", "  spaces   and\ttabs\n\nnew lines", "naïve café 123 4.5",
         "It's what they'll do, isn't it?", "emoji 🙂 and 漢字", "<|endoftext|>the end"]
MERGES = ["Ġ t", "h e", "Ġt he", "l l", "o r", "Ġ w", "Ġw or", "Ġwor l", "Ġworl d", "e l",
          "H el", "Hel l", "Hell o", "Ġ a", "n d", "Ġa nd", "i t", "' s", "Ġ 1", "Ġ1 2"]


@pytest.fixture
def gpt2_dir(tmp_path):
  tokens = list(bytes_to_unicode().values())
  tokens += ["".join(m.split(" ")) for m in MERGES] + ["<|endoftext|>"]
  (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
  (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
  return tmp_path


@pytest.fixture
def bert_dir(tmp_path):
  words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s", "hello", "world", "naive",
           "cafe", "it", "'", "s", ",", "!", "?", ".", "what", "they", "##ll", "do", "isn", "t",
           "12", "##3", "4", "5", "漢", "new", "line", "and", "tab", "space", "end", "th", "##e"]
  (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
  return tmp_path


def test_bpe_round_trips_and_is_found_by_load_tokenizer(gpt2_dir):
  tok = load_tokenizer(str(gpt2_dir))
  assert isinstance(tok, ByteBPETokenizer) and tok.eos_id == tok.vocab_size - 1
  for text in TEXTS:
    assert tok.decode(tok.encode(text)) == text
  assert tok.encode(" world")[0] == tok.vocab["Ġworld"]


def test_bpe_matches_gpt2_tokenizer(gpt2_dir):
  transformers = pytest.importorskip("transformers")
  ref = transformers.GPT2Tokenizer(str(gpt2_dir / "vocab.json"), str(gpt2_dir / "merges.txt"))
  ours = ByteBPETokenizer(str(gpt2_dir))
  for text in TEXTS:
    assert ours.encode(text) == ref.encode(text), text


def test_wordpiece_matches_bert_tokenizer(bert_dir):
  transformers = pytest.importorskip("transformers")
  ref = transformers.BertTokenizer(str(bert_dir / "vocab.txt"), do_lower_case=True)
  ours = WordPieceTokenizer(str(bert_dir))
  for text in TEXTS[:-1] + ["The [MASK] is NEW, lines!", "thes hello?"]:
    assert ours.encode(text) == ref.encode(text, add_special_tokens=False), text
  assert ours.decode(ours.encode("the thes")) == "the thes"
