"""Hugging Face tokenizers (any `tokenizer.json`, GPT-2's byte-level BPE, BERT's WordPiece)
through the `tokenizers` library.

A directory holds `tokenizer.json`, or GPT-2's `vocab.json` + `merges.txt`, or BERT's
`vocab.txt` (lower-cased and accents stripped unless `tokenizer_config.json` says otherwise);
the last two are built into the same pipeline `transformers` builds for them. The
end-of-sequence token is `tokenizer_config.json`'s `eos_token`, else GPT-2's `<|endoftext|>`,
and doubles as [PAD] where the vocabulary has none. Special tokens at the end of the
vocabulary (GPT-2's `<|endoftext|>`) are not ordinary tokens; BERT's, which sit among the
word pieces, count as ordinary, as before.

A file that is truncated or garbled raises ValueError naming it (`read_json` for any JSON file
of a Hugging Face directory).

`train_byte_level_bpe` trains GPT-2's scheme (a byte-level BPE: any text round-trips whole)
on a stream of texts, with `<|endoftext|>` (the eos) and [PAD] [MASK] [CLS] [SEP] as special
tokens at the end of the vocabulary.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from typing import Any

import tokenizers
from etils import epath
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from lm.data.specials import SPECIAL_TOKENS
from lm.runtime import paths

TOKENIZER_FILE, CONFIG_FILE = "tokenizer.json", "tokenizer_config.json"
VOCAB_JSON, MERGES_FILE, VOCAB_TXT = "vocab.json", "merges.txt", "vocab.txt"
EOS = "<|endoftext|>"
UNK = "[UNK]"


class HFTokenizer:
  """A `tokenizers.Tokenizer` behind our `Tokenizer` protocol; `config` is the directory's
  `tokenizer_config.json`, written back by `save` so that `transformers` reads it too."""

  def __init__(self, tokenizer: tokenizers.Tokenizer, config: dict[str, Any] | None = None):
    self.tokenizer = tokenizer
    self.config = config or {}
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    self.vocab_size = max(vocab.values()) + 1
    eos = token_content(self.config.get("eos_token", EOS))
    self.eos_id = vocab.get(eos)
    self.special_ids = {t: vocab[t] for t in SPECIAL_TOKENS + (UNK,) if t in vocab}
    if self.eos_id is not None:
      self.special_ids = {"[PAD]": self.eos_id, **self.special_ids, eos: self.eos_id}
    special = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    special |= set(self.special_ids.values())
    self.num_ordinary = self.vocab_size
    while self.num_ordinary - 1 in special:
      self.num_ordinary -= 1
    # Decoding leaves out [PAD] [MASK] [CLS] [SEP] [UNK] but keeps the end of a document.
    self._hidden = set(self.special_ids.values()) - {self.eos_id}

  def encode(self, text: str) -> list[int]:
    return self.tokenizer.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
    """Many texts at once, in parallel threads of the library (no offsets computed)."""
    return [e.ids for e in self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]

  def decode(self, ids: Iterable[int]) -> str:
    return self.tokenizer.decode(
      [i for i in map(int, ids) if i not in self._hidden], skip_special_tokens=False
    )

  def save(self, directory: str) -> str:
    """Writes `tokenizer.json`, the model's own files (`vocab.json` + `merges.txt`,
    `vocab.txt`) and `tokenizer_config.json`, which `transformers` loads."""
    root = paths.run_path(directory)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
      for name in self.tokenizer.model.save(tmp):
        paths.copy_file(name, root / os.path.basename(name))
    if self.config:
      paths.write_atomically(root / CONFIG_FILE, json.dumps(self.config, indent=2))
    return str(paths.write_atomically(root / TOKENIZER_FILE, self.tokenizer.to_str()))


def token_content(token: str | dict[str, Any]) -> str:
  """A token of `tokenizer_config.json`: a string or a serialised AddedToken."""
  return token["content"] if isinstance(token, dict) else token


def _byte_level(model: models.BPE) -> tokenizers.Tokenizer:
  """GPT-2's pipeline around a BPE model: bytes as characters, no normalizer."""
  tok = tokenizers.Tokenizer(model)
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.post_processor = processors.ByteLevel(trim_offsets=False)
  return tok


def _gpt2(vocab: dict[str, int], merges: list[tuple[str, str]]) -> tokenizers.Tokenizer:
  tok = _byte_level(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
  if EOS in vocab:
    tok.add_special_tokens([tokenizers.AddedToken(EOS, special=True, normalized=False)])
  return tok


BPE_SPECIALS = (EOS, *SPECIAL_TOKENS)
# What `transformers` needs to load a trained directory as it is (AutoTokenizer) and decode
# without its clean-up of spaces before punctuation, which would break the round trip.
BPE_CONFIG = {
  "tokenizer_class": "PreTrainedTokenizerFast",
  "eos_token": EOS,
  "pad_token": "[PAD]",
  "mask_token": "[MASK]",
  "cls_token": "[CLS]",
  "sep_token": "[SEP]",
  "clean_up_tokenization_spaces": False,
}


def train_byte_level_bpe(texts: Iterable[str], directory: str, vocab_size: int) -> HFTokenizer:
  """Trains a byte-level BPE of `vocab_size` ids in all (fewer where the texts have fewer
  merges to learn) on the stream `texts`, saves `tokenizer.json` and `tokenizer_config.json`
  into `directory` (local or gs://) and returns it. Its ids: the 256 bytes and the merges, then
  `<|endoftext|>` (the eos), [PAD], [MASK], [CLS], [SEP]. The same texts give the same files."""
  smallest = len(pre_tokenizers.ByteLevel.alphabet()) + len(BPE_SPECIALS)
  if vocab_size < smallest:
    raise ValueError(f"a byte-level BPE needs vocab_size >= {smallest} (bytes and specials)")
  tok = _byte_level(models.BPE())
  trainer = trainers.BpeTrainer(
    vocab_size=vocab_size - len(BPE_SPECIALS),
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    show_progress=False,
  )
  tok.train_from_iterator(texts, trainer=trainer)
  # Added after training, so that they follow the merges (HFTokenizer: not ordinary).
  tok.add_special_tokens(
    [tokenizers.AddedToken(t, special=True, normalized=False) for t in BPE_SPECIALS]
  )
  root = paths.run_path(directory)
  paths.write_atomically(root / CONFIG_FILE, json.dumps(BPE_CONFIG, indent=2))
  paths.write_atomically(root / TOKENIZER_FILE, tok.to_str())
  return HFTokenizer(tok, dict(BPE_CONFIG))


def _bert(vocab: dict[str, int], config: dict[str, Any]) -> tokenizers.Tokenizer:
  tok = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token=UNK, max_input_chars_per_word=100))
  tok.normalizer = normalizers.BertNormalizer(
    clean_text=True,
    handle_chinese_chars=True,
    strip_accents=config.get("strip_accents"),
    lowercase=config["do_lower_case"],
  )
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.decoder = decoders.WordPiece(prefix="##")
  if "[CLS]" in vocab and "[SEP]" in vocab:  # what BertTokenizer adds; our encode does not
    tok.post_processor = processors.TemplateProcessing(
      single="[CLS]:0 $A:0 [SEP]:0",
      pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
      special_tokens=[(t, vocab[t]) for t in ("[CLS]", "[SEP]")],
    )
  tok.add_special_tokens(
    [
      tokenizers.AddedToken(t, special=True, normalized=False)
      for t in ("[PAD]", UNK, "[CLS]", "[SEP]", "[MASK]")
      if t in vocab
    ]
  )
  return tok


def _text(path: epath.Path) -> str:
  """A text file's contents; ValueError naming it where it is not UTF-8 (garbled)."""
  try:
    return path.read_bytes().decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"{path} is not a text file ({e}): corrupted?") from e


def read_json(path: str | epath.Path) -> Any:
  """The JSON in `path` (local or gs://); ValueError naming it where it is not JSON
  (truncated or garbled)."""
  path = paths.run_path(path)
  try:
    return json.loads(_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON ({e}): truncated or corrupted?") from e


def _tokenizer_json(path: epath.Path) -> tokenizers.Tokenizer:
  text = _text(path)
  try:
    return tokenizers.Tokenizer.from_str(text)
  except Exception as e:  # the library raises a bare Exception
    raise ValueError(
      f"{path} is not a tokenizer the tokenizers library reads ({e}): truncated or corrupted?"
    ) from e


def _merges(path: epath.Path) -> list[tuple[str, str]]:
  """GPT-2's merges.txt: a pair of tokens a line, after a `#version` line."""
  merges = []
  for number, line in enumerate(_text(path).split("\n"), 1):
    if line.strip() and not line.startswith("#version"):
      pair = line.split(" ")
      if len(pair) != 2:
        raise ValueError(f"{path} line {number} is not a merge (two tokens): corrupted?")
      merges.append((pair[0], pair[1]))
  return merges


def load(directory: str) -> HFTokenizer | None:
  """The Hugging Face tokenizer saved in `directory` (local or gs://), or None if it has none;
  ValueError naming a file that is truncated or garbled."""
  root = paths.run_path(directory)
  config = read_json(root / CONFIG_FILE) if (root / CONFIG_FILE).exists() else {}
  if (root / TOKENIZER_FILE).exists():
    return HFTokenizer(_tokenizer_json(root / TOKENIZER_FILE), config)
  if (root / MERGES_FILE).exists():
    return HFTokenizer(_gpt2(read_json(root / VOCAB_JSON), _merges(root / MERGES_FILE)), config)
  if (root / VOCAB_TXT).exists():
    tokens = _text(root / VOCAB_TXT).split("\n")
    if tokens[-1] == "":  # the final newline
      tokens.pop()
    config = {**config, "do_lower_case": config.get("do_lower_case", True)}
    return HFTokenizer(_bert({t: i for i, t in enumerate(tokens)}, config), config)
  return None
