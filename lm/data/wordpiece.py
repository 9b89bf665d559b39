"""BERT's WordPiece tokenizer from `vocab.txt`, in pure Python (no `tokenizers`).

BERT's basic tokenisation (clean, optionally lowercase and strip accents, split on whitespace,
punctuation and CJK characters; special tokens kept whole), then greedy longest-match-first
word pieces with the `##` continuation prefix.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable

from lm import paths
from lm.data.specials import SPECIAL_TOKENS, split_specials

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"


def _is_punctuation(ch: str) -> bool:
  cp = ord(ch)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
  return any(lo <= cp <= hi for lo, hi in (
      (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
      (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def _clean(text: str) -> str:
  out = []
  for ch in text:
    cp = ord(ch)
    if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and
                                   ch not in "\t\n\r"):
      continue
    out.append(" " if ch.isspace() else ch)
  return "".join(out)


class WordPieceTokenizer:
  """BERT's tokenizer: basic tokenisation, then WordPiece over `vocab.txt`."""

  eos_id = None

  def __init__(self, directory: str, lowercase: bool | None = None):
    self.directory = directory
    root = paths.run_path(directory)
    tokens = (root / VOCAB_FILE).read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":  # the final newline
      tokens.pop()
    self.vocab = {t: i for i, t in enumerate(tokens)}
    self.inverse = tokens
    if lowercase is None:
      config = root / CONFIG_FILE
      lowercase = (json.loads(config.read_text()).get("do_lower_case", True)
                   if config.exists() else True)
    self.lowercase = lowercase
    self.vocab_size = self.num_ordinary = len(tokens)
    self.special_ids = {t: self.vocab[t] for t in SPECIAL_TOKENS + ("[UNK]",) if t in self.vocab}
    self.unk_id = self.special_ids.get("[UNK]", 0)

  def _basic(self, text: str) -> list[str]:
    text = _clean(text)
    text = "".join(f" {c} " if _is_cjk(ord(c)) else c for c in text)
    words = []
    for word in text.split():
      if self.lowercase:
        word = "".join(c for c in unicodedata.normalize("NFD", word.lower())
                       if unicodedata.category(c) != "Mn")
      current = ""
      for ch in word:
        if _is_punctuation(ch):
          words += [current, ch] if current else [ch]
          current = ""
        else:
          current += ch
      if current:
        words.append(current)
    return words

  def _wordpiece(self, word: str) -> list[int]:
    if len(word) > 100:
      return [self.unk_id]
    ids, start = [], 0
    while start < len(word):
      end = len(word)
      while end > start:
        piece = word[start:end] if start == 0 else "##" + word[start:end]
        if piece in self.vocab:
          ids.append(self.vocab[piece])
          break
        end -= 1
      if end == start:
        return [self.unk_id]
      start = end
    return ids

  def encode(self, text: str) -> list[int]:
    ids: list[int] = []
    for part in split_specials(text, self.special_ids):
      if part in self.special_ids:
        ids.append(self.special_ids[part])
      else:
        for word in self._basic(part):
          ids += self._wordpiece(word)
    return ids

  def decode(self, ids: Iterable[int]) -> str:
    specials = set(self.special_ids.values())
    words = [self.inverse[int(i)] for i in ids if int(i) not in specials]
    return " ".join(words).replace(" ##", "")

  def save(self, directory: str) -> str:
    root = paths.run_path(directory)
    target = paths.copy_file(paths.run_path(self.directory) / VOCAB_FILE, root / VOCAB_FILE)
    (root / CONFIG_FILE).write_text(json.dumps({"do_lower_case": self.lowercase}))
    return str(target)
