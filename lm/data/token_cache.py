"""Tokenized splits cached on disk as flat arrays of token ids, memory-mapped for reading.

Layout: `<data_dir>/tokens/<dataset id>/<tokenizer id>_v<format>/` holds the tokenizer file,
one `<split>.npy` per split and one `<split>.doc_starts.npy`: the offset of each document's
first token (documents: a local corpus's files, a TFDS catalog dataset's records). Documents
end with the tokenizer's end-of-sequence id when it has one; a character tokenizer joins
them directly. A cached split whose files cannot be read (truncated or garbled) is logged in
one warning line and tokenized again.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import logging
import os
import pathlib
import tempfile

import grain
import numpy as np

from lm.data import sources
from lm.data.tokenizer import (
  CharTokenizer,
  SentencePieceTokenizer,
  Tokenizer,
  load_tokenizer,
  token_dtype,
)

log = logging.getLogger(__name__)

TOKENIZERS = ("char", "sentencepiece")
# Part of a trained tokenizer's cache path: bump it when the ids a tokenizer trained here gives
# change, so no data_dir serves tokens of an older format (2: the specials [PAD] [MASK] [CLS]
# [SEP] in every vocabulary; 3: end-of-sequence ids at document ends only, document starts).
TOKENIZER_FORMAT = 3
DOC_STARTS = "{split}.doc_starts.npy"
# Records encoded in one call: Hugging Face tokenizers encode a batch in parallel threads.
RECORDS_PER_BATCH = 64


@dataclasses.dataclass
class TokenizedData:
  directory: str
  tokenizer: Tokenizer
  splits: dict[str, np.ndarray]  # split name -> memory-mapped 1-D token ids
  doc_starts: dict[str, np.ndarray]  # split name -> offsets of its documents' first tokens


def _tokenizer_id(data_cfg, given: Tokenizer | None) -> str:
  if given is not None:  # a pretrained model's tokenizer: named by its files' contents
    with tempfile.TemporaryDirectory() as tmp:
      given.save(tmp)
      digest = hashlib.sha256()
      for name in sorted(os.listdir(tmp)):
        digest.update(name.encode() + pathlib.Path(tmp, name).read_bytes())
    return f"pretrained_{digest.hexdigest()[:12]}"
  if data_cfg.tokenizer == "char":
    return f"char_v{TOKENIZER_FORMAT}"
  if data_cfg.tokenizer == "sentencepiece":
    return f"sp{data_cfg.vocab_size}_v{TOKENIZER_FORMAT}"
  raise ValueError(f"config.data.tokenizer={data_cfg.tokenizer!r}; valid: {', '.join(TOKENIZERS)}")


def _texts(source, text_key: str, max_chars: int | None = None):
  total = 0
  for i in range(len(source)):
    text = sources.record_text(source[i], text_key)
    yield text
    total += len(text)
    if max_chars is not None and total >= max_chars:
      return


def _train_tokenizer(data_cfg, split_sources: dict, directory: str) -> Tokenizer:
  train = split_sources[data_cfg.train_split]
  if data_cfg.tokenizer == "char":
    # Every split's characters, so evaluation text never meets an unknown one.
    tok = CharTokenizer.train(
      itertools.chain.from_iterable(
        _texts(split_sources[s], data_cfg.text_key)
        for s in (data_cfg.train_split, data_cfg.eval_split)
      )
    )
    tok.save(directory)
    return tok
  return SentencePieceTokenizer.train(
    _texts(train, data_cfg.text_key, data_cfg.tokenizer_train_chars), directory, data_cfg.vocab_size
  )


def _save(array: np.ndarray, path: str) -> None:
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npy")
  with os.fdopen(fd, "wb") as f:
    np.save(f, array)
  os.replace(tmp, path)  # atomic: concurrent builders never see a partial file


def tokenize_split(
  source, tok: Tokenizer, text_key: str, path: str, starts_path: str, threads: int
) -> None:
  """Encodes a split's records (indexable `source`, text under `text_key`) on `threads` threads
  and writes their tokens to `path`, each document ended by the end-of-sequence id if the
  tokenizer has one, and the documents' first offsets to `starts_path`."""
  dtype = token_dtype(tok.vocab_size)
  # A character tokenizer counts the characters outside its vocabulary: this split's are logged.
  unknown_before = collections.Counter(tok.unknown if isinstance(tok, CharTokenizer) else ())

  def encode(indexed: list) -> list[tuple[np.ndarray, int]]:
    ids = tok.encode_batch([sources.record_text(r, text_key) for _, r in indexed])
    return [
      (np.asarray(i, dtype), sources.record_document(r, n)) for i, (n, r) in zip(ids, indexed)
    ]

  ds = (
    grain.MapDataset.source(source)
    .map_with_index(lambda n, r: (n, r))
    .batch(RECORDS_PER_BATCH, batch_fn=list)
    .map(encode)
    .to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=4))
  )
  records = list(itertools.chain.from_iterable(ds))
  pieces, starts, length = [], [], 0
  for i, (ids, doc) in enumerate(records):
    if i == 0 or doc != records[i - 1][1]:
      starts.append(length)
    ends = tok.eos_id is not None and (i + 1 == len(records) or records[i + 1][1] != doc)
    piece = np.append(ids, np.asarray(tok.eos_id, dtype)) if ends else ids
    pieces.append(piece)
    length += len(piece)
  _save(np.concatenate(pieces) if pieces else np.zeros((0,), dtype), path)
  _save(np.asarray(starts, np.int64), starts_path)
  if isinstance(tok, CharTokenizer) and tok.unknown != unknown_before:
    new = tok.unknown - unknown_before
    log.warning(
      "%s: %d characters outside the character vocabulary encoded as [UNK] (%s)",
      path,
      sum(new.values()),
      ", ".join(f"{c!r} x{n}" for c, n in new.most_common(8)),
    )


def tokenized_data(data_cfg, tokenizer: Tokenizer | None = None) -> TokenizedData:
  """Prepares the dataset, trains the tokenizer (unless one is given, e.g. a pretrained
  model's) and tokenizes both splits, once; then loads."""
  dataset_id, split_sources = sources.prepare_splits(data_cfg)
  directory = os.path.join(
    sources.data_dir(data_cfg), "tokens", dataset_id, _tokenizer_id(data_cfg, tokenizer)
  )
  os.makedirs(directory, exist_ok=True)
  if tokenizer is not None:
    tok = tokenizer
    tok.save(directory)
  else:
    try:
      tok = load_tokenizer(directory)
    except FileNotFoundError:
      tok = _train_tokenizer(data_cfg, split_sources, directory)
  splits, doc_starts = {}, {}
  for split in (data_cfg.train_split, data_cfg.eval_split):
    path = os.path.join(directory, f"{split}.npy")
    starts = os.path.join(directory, DOC_STARTS.format(split=split))
    cached = _cached(path, starts)
    if cached is None:
      tokenize_split(
        split_sources[split], tok, data_cfg.text_key, path, starts, data_cfg.num_threads
      )
      cached = np.load(path, mmap_mode="r"), np.load(starts)
    splits[split], doc_starts[split] = cached
  return TokenizedData(directory, tok, splits, doc_starts)


def _cached(path: str, starts_path: str) -> tuple[np.ndarray, np.ndarray] | None:
  """A cached split's tokens (memory-mapped) and document starts; None where either file is
  missing, or cannot be read (logged: the split is then tokenized again, as the cache is only
  ever written whole, and so is garbled only from outside)."""
  if not (os.path.exists(path) and os.path.exists(starts_path)):
    return None
  arrays = []
  for name, mapped in ((path, True), (starts_path, False)):
    try:
      array = np.load(name, mmap_mode="r") if mapped else np.load(name)
    except (ValueError, EOFError, OSError) as e:
      log.warning("%s cannot be read (%s): tokenizing its split again", name, e)
      return None
    if array.ndim != 1:
      log.warning("%s holds a %d-D array, not 1-D: tokenizing its split again", name, array.ndim)
      return None
    arrays.append(array)
  return arrays[0], arrays[1]
