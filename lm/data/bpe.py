"""GPT-2's byte-level BPE from `vocab.json` and `merges.txt`, in pure Python (no `tokenizers`).

Text is cut by GPT-2's pre-tokenisation pattern, each piece's UTF-8 bytes are mapped to
printable characters (`bytes_to_unicode`), then merged by rank. `<|endoftext|>` is the
end-of-sequence id and doubles as [PAD] (GPT-2 has no padding token).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable

import regex

from lm import paths
from lm.data.specials import split_specials

VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
EOS = "<|endoftext|>"
_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
  """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
  printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
               list(range(ord("®"), ord("ÿ") + 1)))
  codes = printable[:]
  extra = 0
  for b in range(256):
    if b not in printable:
      printable.append(b)
      codes.append(256 + extra)
      extra += 1
  return dict(zip(printable, map(chr, codes)))


class ByteBPETokenizer:
  """GPT-2's tokenizer: byte-level BPE with `<|endoftext|>`."""

  def __init__(self, directory: str):
    self.directory = directory
    root = paths.run_path(directory)
    self.vocab: dict[str, int] = json.loads((root / VOCAB_FILE).read_text(encoding="utf-8"))
    lines = [l for l in (root / MERGES_FILE).read_text(encoding="utf-8").split("\n")
             if l.strip() and not l.startswith("#version")]
    self.ranks = {tuple(l.split(" ")): i for i, l in enumerate(lines)}
    self.inverse = {i: t for t, i in self.vocab.items()}
    self.byte_encoder = bytes_to_unicode()
    self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
    self.vocab_size = len(self.vocab)
    self.eos_id = self.vocab.get(EOS)
    self.special_ids = {} if self.eos_id is None else {EOS: self.eos_id, "[PAD]": self.eos_id}
    self.num_ordinary = self.vocab_size - len({EOS} & self.vocab.keys())
    self._cache: dict[str, list[str]] = {}

  def _bpe(self, piece: str) -> list[str]:
    if piece in self._cache:
      return self._cache[piece]
    word = list(piece)
    while len(word) > 1:
      pairs = set(zip(word, word[1:]))
      best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
      if best not in self.ranks:
        break
      merged, i = [], 0
      while i < len(word):
        if i < len(word) - 1 and (word[i], word[i + 1]) == best:
          merged.append(word[i] + word[i + 1])
          i += 2
        else:
          merged.append(word[i])
          i += 1
      word = merged
    self._cache[piece] = word
    return word

  def encode(self, text: str) -> list[int]:
    ids: list[int] = []
    for part in split_specials(text, [EOS] if self.eos_id is not None else []):
      if part == EOS:
        ids.append(self.eos_id)
        continue
      for piece in _PATTERN.findall(part):
        mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
        ids += [self.vocab[t] for t in self._bpe(mapped)]
    return ids

  def decode(self, ids: Iterable[int]) -> str:
    text = "".join(self.inverse.get(int(i), "") for i in ids)
    return bytearray(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace")

  def save(self, directory: str) -> str:
    for name in (VOCAB_FILE, MERGES_FILE):
      paths.copy_file(paths.run_path(self.directory) / name, paths.run_path(directory) / name)
    return str(paths.run_path(directory) / VOCAB_FILE)
