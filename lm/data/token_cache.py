"""A corpus's token ids, prepared once (lm/data/prepare.py) and read from its shards.

Layout: `<data_dir>/tokens/<dataset id>/<tokenizer id>_v<format>/` holds the tokenizer's
file, `dataset.json` (the splits' shards, tokens and documents, the held-out rule and the
tokenizer's hash) and the shards (lm/data/shards.py). `data_dir` may be local or gs://, and
shared by every host: each reads only the windows it trains on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from etils import epath

from lm.data import inputs, prepare, shards
from lm.data.local_text import DataError
from lm.data.tokenizer import SentencePieceTokenizer, Tokenizer, load_tokenizer, tokenizer_hash

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TokenizedData:
  directory: str
  tokenizer: Tokenizer
  splits: dict[str, shards.ShardedTokens]  # split name -> its tokens over its shards
  manifest: dict[str, Any] = dataclasses.field(default_factory=dict)  # dataset.json

  @property
  def doc_starts(self) -> dict[str, np.ndarray]:
    """Every document start of each split, in memory (evaluation of a whole split; training
    reads those of each window through `splits[s].starts`)."""
    return {s: np.asarray(t.starts) for s, t in self.splits.items()}


def tokenizer_id(data_cfg, given: Tokenizer | None) -> str:
  """The prepared directory's name for the tokenizer: a given one by its hash."""
  if given is not None:
    return f"pretrained_{tokenizer_hash(given)[:12]}"
  if data_cfg.tokenizer == "char":
    return "char"
  prefix = {"sentencepiece": "sp", "bpe": "bpe"}[data_cfg.tokenizer]
  return f"{prefix}{data_cfg.vocab_size}"


def prepared_directory(
  data_cfg, units: Iterable[inputs.Unit], tokenizer: Tokenizer | None
) -> epath.Path:
  name = f"{tokenizer_id(data_cfg, tokenizer)}_v{prepare.FORMAT}"
  return prepare.data_root(data_cfg) / "tokens" / prepare.dataset_id(data_cfg, units) / name


def tokenized_data(
  data_cfg, tokenizer: Tokenizer | None = None, workers: int = 1, beam_options: str = ""
) -> TokenizedData:
  """The config's corpus, prepared first if it is not (with `tokenizer` if given, e.g. a
  pretrained model's; `workers` / `beam_options`: see lm/data/engine.py)."""
  units = inputs.Corpus(data_cfg, prepare.UNIT_BYTES)  # listed again for each pass
  directory = prepared_directory(data_cfg, units, tokenizer)
  manifest = prepare.prepare(data_cfg, directory, units, tokenizer, workers, beam_options)
  try:
    data = load(directory, manifest)
  except DamagedShard as e:  # written whole, so damaged from outside: that shard again
    log.warning("%s: preparing it again", e)
    (directory / f"{e.shard}.json").unlink(missing_ok=True)
    (directory / prepare.DATASET_FILE).unlink(missing_ok=True)
    manifest = prepare.prepare(data_cfg, directory, units, tokenizer, workers, beam_options)
    data = load(directory, manifest)
  tok = data.tokenizer  # a SentencePiece model trained before they kept text as it is?
  if tokenizer is None and isinstance(tok, SentencePieceTokenizer) and not tok.lossless:
    log.warning(
      "%s was prepared with a SentencePiece model that normalises text (newlines, tabs and "
      "runs of spaces are lost); delete it to prepare the corpus with one that keeps text as "
      "it is (runs trained on this data resume only with it)",
      directory,
    )
  return data


class DamagedShard(DataError):
  """A shard whose token file is not the size its manifest says (truncated or replaced)."""

  def __init__(self, message: str, shard: str):
    super().__init__(message)
    self.shard = shard


def _shard(directory: epath.Path, name: str, digest: str) -> dict[str, Any]:
  """A shard's manifest, checked: prepared with the dataset's tokenizer, files whole."""
  m = shards.read_manifest(directory / f"{name}.json")
  if m is None:
    raise DataError(f"{directory / name}.json is missing: delete {directory} and prepare again")
  if m["tokenizer"] != digest:
    raise DataError(
      f"{directory / name}.json was prepared with another tokenizer (hash {m['tokenizer']}, the "
      f"dataset's is {digest}): delete {directory} and prepare again"
    )
  path = directory / f"{name}.tokens"
  size = np.dtype(m["dtype"]).itemsize * m["tokens"]
  found = path.stat().length if path.exists() else -1
  if found != size:
    raise DamagedShard(
      f"{path} holds {max(found, 0)} bytes, its manifest says {size}: truncated or replaced", name
    )
  return m


def load(directory: epath.Path, manifest: dict[str, Any]) -> TokenizedData:
  """A prepared directory's tokenizer and splits; DataError where a shard does not belong."""
  tok = load_tokenizer(str(directory))
  digest = tokenizer_hash(tok)
  if digest != manifest["tokenizer"]:
    raise DataError(
      f"the tokenizer in {directory} (hash {digest}) is not the one its data was prepared with "
      f"({manifest['tokenizer']}): delete {directory} and prepare again"
    )
  splits = {
    split: shards.ShardedTokens(directory, [_shard(directory, n, digest) for n in info["shards"]])
    for split, info in manifest["splits"].items()
  }
  return TokenizedData(str(directory), tok, splits, manifest)
