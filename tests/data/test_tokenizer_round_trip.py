"""Every tokenizer we train gives back any text byte for byte: code (indentation, tabs, blank
lines, runs of spaces) and prose in any script."""

import pytest

from lm.convert import hf_tokenizers
from lm.data import hf_tokenizer, token_cache
from lm.data import tokenizer as tokenizer_module
from lm.data.tokenizer import CharTokenizer, SentencePieceTokenizer, load_tokenizer
from tests.conftest import CORPUS

CODE = (
  "import os\n\n\nclass A:\n    def f(self, x):\n        if x:  # two spaces\n"
  "            return  x\n\n\treturn\t'tab'\n  \n"
)
PROSE = "Café naïve, déjà vu 😀🧑‍🚀 日本語の文章 ﬁ \uff21 \u2013 “quoted”\n"
TEXTS = [
  CODE,
  PROSE,
  "  leading spaces and trailing   ",
  "\n\nstarts with blank lines\r\nand a Windows line end\r\n",
  "SentencePiece's own space mark ▁ and ▁▁ kept",
  "",
]


def plays(chars: int) -> list[str]:
  with open(CORPUS) as f:
    return f.read(chars).splitlines(keepends=True)


def _char(directory):
  return CharTokenizer.train(plays(30_000) + TEXTS)  # its vocabulary: every character it met


def _sentencepiece(directory):
  return SentencePieceTokenizer.train(plays(30_000), str(directory), 500)


def _bpe(directory):
  return hf_tokenizer.train_byte_level_bpe(plays(30_000), str(directory), 500)


def _exported(train):
  """`train`'s tokenizer written as Hugging Face files and read back."""

  def make(directory):
    hf_tokenizers.save(train(directory / "trained"), str(directory / "hf"))
    return hf_tokenizers.load(str(directory / "hf"))

  return make


TRAINERS = {
  "char": _char,
  "sentencepiece": _sentencepiece,
  "bpe": _bpe,
  "char_exported": _exported(_char),
  "sentencepiece_exported": _exported(_sentencepiece),
}


@pytest.mark.parametrize("name", TRAINERS)
def test_every_text_round_trips_byte_for_byte(tmp_path, name):
  tok = TRAINERS[name](tmp_path)
  for text in TEXTS:
    assert tok.decode(tok.encode(text)) == text
  assert [tok.decode(ids) for ids in tok.encode_batch(TEXTS)] == TEXTS


def test_sentencepiece_learns_indentation_and_saves_a_model_that_round_trips(tmp_path):
  code = CODE.splitlines(keepends=True) * 50
  tok = SentencePieceTokenizer.train(plays(30_000) + code, str(tmp_path), 500)
  assert tok.lossless
  pieces = [tok.sp.id_to_piece(i) for i in tok.encode("\n        return")]
  assert pieces[:2] == ["\n", "▁" * 8]  # a newline, then the indentation in one piece
  loaded = load_tokenizer(str(tmp_path))
  assert [loaded.decode(loaded.encode(t)) for t in TEXTS] == TEXTS


def test_data_prepared_with_a_normalising_sentencepiece_model_is_named(
  tiny_config, monkeypatch, caplog
):
  # SentencePiece's defaults, as models were trained before: NFKC, whitespace collapsed.
  monkeypatch.setattr(tokenizer_module, "SPM_LOSSLESS", {"byte_fallback": True})
  tiny_config.data.tokenizer = "sentencepiece"
  tiny_config.data.vocab_size = 512
  with caplog.at_level("WARNING"):
    data = token_cache.tokenized_data(tiny_config.data)
  assert isinstance(data.tokenizer, SentencePieceTokenizer) and not data.tokenizer.lossless
  assert data.tokenizer.decode(data.tokenizer.encode("a  b\n")) != "a  b\n"
  assert "prepared with a SentencePiece model that normalises text" in caplog.text
