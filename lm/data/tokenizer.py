"""Tokenizers: character-level and SentencePiece, trained on a corpus and saved to a file.

A tokenizer lives in one file (`char_vocab.json` or `*.model`), which the data cache keeps
and each run copies into its workdir so that sampling uses exactly the run's tokenizer.
Both append the special tokens MLM and classification need ([PAD], [MASK], [CLS], [SEP])
after their own vocabulary, so the ids of ordinary tokens never move; the literal strings
"[MASK]" etc. in a text encode to them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Protocol

import numpy as np
import sentencepiece as spm

from lm.data import bpe, wordpiece
from lm.data.specials import SPECIAL_TOKENS, split_specials

CHAR_FILE = "char_vocab.json"
SPM_FILE = "sentencepiece.model"


class Tokenizer(Protocol):
  vocab_size: int             # every id, special tokens included
  num_ordinary: int           # ids [0, num_ordinary) are ordinary tokens (MLM's random tokens)
  eos_id: int | None
  special_ids: dict[str, int]  # e.g. {"[MASK]": 103}; absent tokens are missing

  def encode(self, text: str) -> list[int]: ...
  def decode(self, ids: Iterable[int]) -> str: ...
  def save(self, directory: str) -> str: ...


class _AppendedSpecials:
  """Special tokens appended after a base vocabulary of `num_ordinary` ids."""

  num_ordinary: int

  def _init_specials(self, num_ordinary: int) -> None:
    self.num_ordinary = num_ordinary
    self.special_ids = {t: num_ordinary + i for i, t in enumerate(SPECIAL_TOKENS)}
    self.vocab_size = num_ordinary + len(SPECIAL_TOKENS)

  def encode(self, text: str) -> list[int]:
    ids: list[int] = []
    for piece in split_specials(text, self.special_ids):
      ids += [self.special_ids[piece]] if piece in self.special_ids else self._encode(piece)
    return ids

  def decode(self, ids: Iterable[int]) -> str:
    ordinary = [int(i) for i in ids if 0 <= int(i) < self.num_ordinary]
    return self._decode(ordinary)

  def _encode(self, text: str) -> list[int]:
    raise NotImplementedError

  def _decode(self, ids: list[int]) -> str:
    raise NotImplementedError


class CharTokenizer(_AppendedSpecials):
  """One id per character seen in the training text, in sorted order, then the specials."""

  eos_id = None

  def __init__(self, chars: str):
    self.chars = chars
    self._index = {c: i for i, c in enumerate(chars)}
    self._init_specials(len(chars))

  @classmethod
  def train(cls, texts: Iterable[str]) -> "CharTokenizer":
    seen: set[str] = set()
    for t in texts:
      seen.update(t)
    return cls("".join(sorted(seen)))

  def _encode(self, text: str) -> list[int]:
    try:
      return [self._index[c] for c in text]
    except KeyError as e:
      raise ValueError(f"character {e.args[0]!r} is not in the character vocabulary") from None

  def _decode(self, ids: list[int]) -> str:
    return "".join(self.chars[i] for i in ids)

  def save(self, directory: str) -> str:
    path = os.path.join(directory, CHAR_FILE)
    with open(path, "w") as f:
      json.dump({"chars": self.chars}, f)
    return path


class SentencePieceTokenizer(_AppendedSpecials):
  """A SentencePiece model (BPE or unigram) with an end-of-sequence id, then the specials."""

  def __init__(self, model_path: str):
    self.model_path = model_path
    self.sp = spm.SentencePieceProcessor(model_file=model_path)
    self.eos_id = self.sp.eos_id()
    self._init_specials(self.sp.get_piece_size())

  @classmethod
  def train(cls, texts: Iterable[str], directory: str, vocab_size: int,
            model_type: str = "bpe") -> "SentencePieceTokenizer":
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
      corpus = os.path.join(tmp, "corpus.txt")
      with open(corpus, "w") as f:
        for t in texts:
          f.write(t.rstrip("\n") + "\n")
      spm.SentencePieceTrainer.train(
          input=corpus, model_prefix=os.path.join(tmp, "sp"), vocab_size=vocab_size,
          model_type=model_type, character_coverage=1.0, byte_fallback=True,
          pad_id=-1, unk_id=0, bos_id=-1, eos_id=1, input_sentence_size=2_000_000,
          shuffle_input_sentence=True, num_threads=os.cpu_count() or 1,
          minloglevel=2)
      path = os.path.join(directory, SPM_FILE)
      shutil.copy(os.path.join(tmp, "sp.model"), path)
    return cls(path)

  def _encode(self, text: str) -> list[int]:
    return self.sp.encode(text)

  def _decode(self, ids: list[int]) -> str:
    return self.sp.decode(ids)

  def save(self, directory: str) -> str:
    path = os.path.join(directory, SPM_FILE)
    if os.path.abspath(path) != os.path.abspath(self.model_path):
      shutil.copy(self.model_path, path)
    return path


def load_tokenizer(directory: str) -> Tokenizer:
  """Loads the tokenizer saved in `directory` (a data cache or a run's workdir)."""
  char_path, spm_path = os.path.join(directory, CHAR_FILE), os.path.join(directory, SPM_FILE)
  if os.path.exists(char_path):
    with open(char_path) as f:
      return CharTokenizer(json.load(f)["chars"])
  if os.path.exists(spm_path):
    return SentencePieceTokenizer(spm_path)
  if os.path.exists(os.path.join(directory, bpe.MERGES_FILE)):
    return bpe.ByteBPETokenizer(directory)
  if os.path.exists(os.path.join(directory, wordpiece.VOCAB_FILE)):
    return wordpiece.WordPieceTokenizer(directory)
  raise FileNotFoundError(f"no tokenizer ({CHAR_FILE}, {SPM_FILE}, GPT-2's {bpe.MERGES_FILE} "
                          f"or BERT's {wordpiece.VOCAB_FILE}) in {directory}")


def token_dtype(vocab_size: int) -> np.dtype:
  """The smallest unsigned integer type that holds every id."""
  return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)
