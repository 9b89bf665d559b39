"""Tokenizers: character-level and SentencePiece, trained on a corpus and saved to a file;
the protocol they share with Hugging Face's (lm/data/hf_tokenizer.py), and loading any.

A tokenizer lives in one file (`char_vocab.json` or `*.model`), which the data cache keeps
and each run copies into its workdir so that sampling uses exactly the run's tokenizer.
The special tokens MLM and classification need ([PAD], [MASK], [CLS], [SEP]) follow the
characters of a character vocabulary, and are user-defined pieces of a SentencePiece model
(trained since they exist; older models have none, which is fine for a decoder); the
literal strings "[MASK]" etc. in a text encode to them.

A SentencePiece model is trained to keep text as it is, so that any text decodes to itself
byte for byte (code keeps its newlines, tabs, indentation and runs of spaces): no
normalisation, no dummy space before a text, whitespace-only pieces (indentation) allowed, a
piece of its own for the newline (the trainer reads its corpus a line at a time, so it never
sees one), and byte fallback for characters outside the vocabulary. Models trained before
(NFKC, runs of whitespace collapsed, newlines dropped) still load: `lossless` is False.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from typing import Protocol

import numpy as np
import sentencepiece as spm

from lm.data import hf_tokenizer
from lm.data.local_text import DataError
from lm.data.specials import SPECIAL_TOKENS, UNK, split_specials
from lm.runtime import paths

TOKENIZERS = ("char", "sentencepiece", "bpe")  # config.data.tokenizer's choices
CHAR_FILE = "char_vocab.json"
SPM_FILE = "sentencepiece.model"
# What SentencePiece writes for a space: a literal one in a text is encoded as its bytes.
SPM_SPACE = "\u2581"
# Trainer options that keep text byte for byte (see the module docstring).
SPM_LOSSLESS = {
  "normalization_rule_name": "identity",
  "remove_extra_whitespaces": False,
  "add_dummy_prefix": False,
  "allow_whitespace_only_pieces": True,
  "byte_fallback": True,
}

log = logging.getLogger(__name__)


class Tokenizer(Protocol):
  """What every tokenizer offers (its attributes are read, never set, through the protocol)."""

  @property
  def vocab_size(self) -> int:
    """Every id, special tokens included."""
    ...

  @property
  def num_ordinary(self) -> int:
    """Ids [0, num_ordinary) are ordinary tokens (MLM's random tokens)."""
    ...

  @property
  def eos_id(self) -> int | None:
    """The end-of-sequence id, if the tokenizer has one."""
    ...

  @property
  def special_ids(self) -> dict[str, int]:
    """E.g. {"[MASK]": 103}; absent tokens are missing."""
    ...

  def encode(self, text: str) -> list[int]: ...
  def encode_batch(self, texts: Iterable[str]) -> list[list[int]]: ...
  def decode(self, ids: Iterable[int]) -> str: ...
  def save(self, directory: str) -> str: ...


class CharTokenizer:
  """One id per character seen in the training text, in sorted order, then the specials and
  [UNK], which every character outside the vocabulary encodes to: the first one is logged, all
  are counted in `unknown`. (Vocabularies saved before [UNK] existed have none: such a
  character raises ValueError.)"""

  eos_id = None

  def __init__(self, chars: str, unk: bool = True):
    self.chars = chars
    self._index = {c: i for i, c in enumerate(chars)}
    self.num_ordinary = len(chars)
    specials = SPECIAL_TOKENS + ((UNK,) if unk else ())
    self.special_ids = {t: len(chars) + i for i, t in enumerate(specials)}
    self.vocab_size = len(chars) + len(specials)
    self.unknown: collections.Counter[str] = collections.Counter()
    self._lock = threading.Lock()  # the data pipeline encodes on several threads

  @classmethod
  def train(cls, texts: Iterable[str]) -> CharTokenizer:
    seen: set[str] = set()
    for t in texts:
      seen.update(t)
    return cls("".join(sorted(seen)))

  def encode(self, text: str, drop_unknown: bool = False) -> list[int]:
    """The ids of `text`; with `drop_unknown`, characters outside the vocabulary are left out,
    neither logged nor counted (`lacks` names them)."""
    ids: list[int] = []
    for piece in split_specials(text, self.special_ids):
      if piece in self.special_ids:
        ids.append(self.special_ids[piece])
        continue
      try:
        ids += [self._index[c] for c in piece]
      except KeyError:
        if drop_unknown:
          ids += [self._index[c] for c in piece if c in self._index]
        else:
          ids += [self._unknown(c) if c not in self._index else self._index[c] for c in piece]
    return ids

  def lacks(self, text: str) -> collections.Counter[str]:
    """The characters of `text` outside the vocabulary (special tokens aside), counted."""
    pieces = [p for p in split_specials(text, self.special_ids) if p not in self.special_ids]
    return collections.Counter(c for p in pieces for c in p if c not in self._index)

  def _unknown(self, char: str) -> int:
    if UNK not in self.special_ids:
      raise ValueError(f"character {char!r} is not in the character vocabulary")
    with self._lock:
      if not self.unknown:
        log.warning(
          "character %r is not in the character vocabulary: encoded as %s (every "
          "such character is, and counted)",
          char,
          UNK,
        )
      self.unknown[char] += 1
    return self.special_ids[UNK]

  def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
    return [self.encode(t) for t in texts]

  def decode(self, ids: Iterable[int]) -> str:
    return "".join(self.chars[i] for i in map(int, ids) if 0 <= i < self.num_ordinary)

  def save(self, directory: str) -> str:
    path = paths.run_path(directory) / CHAR_FILE
    paths.write_atomically(path, json.dumps({"chars": self.chars, "unk": UNK in self.special_ids}))
    return str(path)


class SentencePieceTokenizer:
  """A SentencePiece model (BPE or unigram) with an end-of-sequence id and the specials."""

  def __init__(self, model_path: str):
    self.model_path = model_path
    self.sp = spm.SentencePieceProcessor(model_proto=paths.run_path(model_path).read_bytes())
    self.eos_id = self.sp.eos_id()
    self.vocab_size = self.num_ordinary = self.sp.get_piece_size()
    ids = {t: self.sp.piece_to_id(t) for t in SPECIAL_TOKENS}
    self.special_ids = {t: i for t, i in ids.items() if i != self.sp.unk_id()}
    probe = " a\n\tb  c ü"
    self.lossless = self.sp.decode(self.sp.encode(probe)) == probe  # False: trained before
    space_bytes = [f"<0x{b:02X}>" for b in SPM_SPACE.encode()]
    self._space_ids = [self.sp.piece_to_id(p) for p in space_bytes]

  @classmethod
  def train(
    cls, texts: Iterable[str], directory: str, vocab_size: int, model_type: str = "bpe"
  ) -> SentencePieceTokenizer:
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
      corpus = os.path.join(tmp, "corpus.txt")
      with open(corpus, "w") as f:
        for t in texts:
          f.write(t.rstrip("\n") + "\n")
      try:
        spm.SentencePieceTrainer.train(
          input=corpus,
          model_prefix=os.path.join(tmp, "sp"),
          vocab_size=vocab_size,
          model_type=model_type,
          character_coverage=1.0,
          pad_id=-1,
          unk_id=0,
          bos_id=-1,
          eos_id=1,
          input_sentence_size=2_000_000,
          user_defined_symbols=[*SPECIAL_TOKENS, "\n"],
          shuffle_input_sentence=True,
          num_threads=os.cpu_count() or 1,
          minloglevel=2,
          **SPM_LOSSLESS,
        )
      except RuntimeError as e:  # e.g. "Vocabulary size is smaller than required_chars. 300 vs 380"
        raise DataError(
          f"config.data.vocab_size={vocab_size} does not fit a SentencePiece model of this corpus "
          f"({str(e).strip().splitlines()[-1]}); raise it"
        ) from None
      path = os.path.join(directory, SPM_FILE)
      shutil.copy(os.path.join(tmp, "sp.model"), path)
    return cls(path)

  def encode(self, text: str) -> list[int]:
    if SPM_SPACE not in text or not self.lossless:
      return self.sp.encode(text)
    # SentencePiece would decode a literal U+2581 as a space: its bytes keep it.
    ids: list[int] = []
    for n, part in enumerate(text.split(SPM_SPACE)):
      ids += (self._space_ids if n else []) + self.sp.encode(part)
    return ids

  def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
    batch = list(texts)
    if any(SPM_SPACE in t for t in batch):
      return [self.encode(t) for t in batch]
    return self.sp.encode(batch)

  def decode(self, ids: Iterable[int]) -> str:
    specials = set(self.special_ids.values())
    return self.sp.decode([int(i) for i in ids if int(i) not in specials])

  def save(self, directory: str) -> str:
    return str(paths.copy_file(self.model_path, paths.run_path(directory) / SPM_FILE))


def load_tokenizer(directory: str) -> Tokenizer:
  """Loads the tokenizer saved in `directory` (a data cache or a run's workdir, local or gs://)."""
  root = paths.run_path(directory)
  if (root / CHAR_FILE).exists():
    saved = json.loads((root / CHAR_FILE).read_text())
    # .get: vocabularies saved before [UNK] existed have none (their ids stay as trained).
    return CharTokenizer(saved["chars"], unk=saved.get("unk", False))
  if (root / SPM_FILE).exists():
    return SentencePieceTokenizer(str(root / SPM_FILE))
  tokenizer = hf_tokenizer.load(directory)
  if tokenizer is None:
    raise FileNotFoundError(
      f"no tokenizer ({CHAR_FILE}, {SPM_FILE}, {hf_tokenizer.TOKENIZER_FILE}, GPT-2's "
      f"{hf_tokenizer.MERGES_FILE} or BERT's {hf_tokenizer.VOCAB_TXT}) in {directory}"
    )
  return tokenizer


def token_dtype(vocab_size: int) -> np.dtype:
  """The smallest unsigned integer type that holds every id."""
  return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def tokenizer_hash(tok: Tokenizer) -> str:
  """A hash of the files the tokenizer saves: equal hashes, equal ids."""
  with tempfile.TemporaryDirectory() as tmp:
    tok.save(tmp)
    digest = hashlib.sha256()
    for name in sorted(os.listdir(tmp)):
      digest.update(name.encode() + b"\0" + (paths.run_path(tmp) / name).read_bytes())
  return digest.hexdigest()[:16]
