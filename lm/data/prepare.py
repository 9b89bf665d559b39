"""Preparing a corpus: its documents split into train and held-out sets, one tokenizer trained
for everyone, and the token shards written by independent workers.

The plan depends only on the corpus: its units (lm/data/inputs.py) in path order are grouped
into shards (`shard_size`: a 64th of the corpus, 16 to 128 MB of input), and each shard is
written by `write_shard` alone (in this process, or by Apache Beam's workers:
lm/data/engine.py), so the bytes are the same whatever the number of workers. A shard is
finished when its manifest is written; preparing again skips finished shards, so an
interrupted preparation resumes at the first unfinished one.

Held-out documents: a corpus of many documents holds out a seeded random sample of them
(each document by a hash of its key and `config.data.sample_seed`), so the validation split
is drawn from the corpus's distribution; a corpus of one document (one text file) keeps its
last `validation_fraction` of bytes, from a line start.

The tokenizer is trained once, before any shard, on a seeded sample of at most
`config.data.tokenizer_train_chars` characters of train documents ('sentencepiece', 'bpe'),
or on every character of the corpus ('char', so that no evaluation text meets an unknown
one); it is stored beside the shards with its hash, which every shard's manifest records.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import ml_collections
import numpy as np
from etils import epath

from lm.data import engine, hf_tokenizer, inputs, shards
from lm.data.local_text import DataError, codec_name
from lm.data.tokenizer import (
  CharTokenizer,
  SentencePieceTokenizer,
  Tokenizer,
  load_tokenizer,
  token_dtype,
  tokenizer_hash,
)
from lm.runtime import paths

log = logging.getLogger(__name__)

FORMAT = 4  # of the prepared directory: bump when the bytes of a shard change meaning
SHARD_BYTES = 128 << 20  # input bytes per shard at most (a worker streams one shard at a time)
UNIT_BYTES = 16 << 20  # a larger file is read as ranges of this many bytes, cut at line starts
DATASET_FILE = "dataset.json"
CHARACTERS = "characters"  # the 'char' tokenizer's per-shard character sets
PIECES_PER_BATCH = 64  # pieces encoded in one call (Hugging Face tokenizers: in parallel)


PLAN = "plan"  # each shard's units, one file a shard: the driver holds none of them


@dataclasses.dataclass(frozen=True)
class ShardSpec:
  """Everything one worker needs to write one shard: picklable, for Beam's workers. Its units
  are in its plan file (`units()`), so a plan of a million files is a few specs in memory."""

  index: int
  directory: str
  data: dict[str, Any]  # config.data as a plain dict
  fingerprint: str  # of its units (names, stamps, ranges, splits) and the format
  size: int  # input bytes
  tokenizer_hash: str = ""

  def units(self) -> list[inputs.Unit]:
    rows = json.loads((epath.Path(self.directory) / PLAN / f"{self.index:05d}.json").read_text())
    return [inputs.Unit(*row) for row in rows]


def _unit_key(unit: inputs.Unit) -> bytes:
  """What a unit reads: its file, the file's stamp, its range and its split."""
  return f"{unit.name}:{unit.stamp}:{unit.start}:{unit.stop}:{unit.split}\n".encode()


def _write_plan(directory: str, index: int, units: list[inputs.Unit], data: dict) -> ShardSpec:
  digest = hashlib.sha256(str(FORMAT).encode())
  for unit in units:
    digest.update(_unit_key(unit))
  rows = [dataclasses.astuple(u) for u in units]
  paths.write_atomically(epath.Path(directory) / PLAN / f"{index:05d}.json", json.dumps(rows))
  return ShardSpec(index, directory, data, digest.hexdigest()[:16], sum(u.size for u in units))


def held_out(key: str, seed: int, fraction: float) -> bool:
  """Whether the document `key` is in the held-out sample: a hash of it, uniform in [0, 1)."""
  return _uniform(f"holdout:{seed}:{key}") < fraction


def _uniform(text: str) -> float:
  return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64


def _split_of(unit: inputs.Unit, key: str, data: Any) -> str:
  if unit.split is not None:
    return unit.split
  if held_out(key, data.sample_seed, data.validation_fraction):
    return data.eval_split
  return data.train_split


def _newline_before(unit: inputs.Unit, target: int) -> int:
  """The start of the line holding byte `target` of `unit`'s file (as splitting the text at a
  line break did before): the byte after the last newline before it, or `target` if none."""
  lo = max(target - (1 << 20), 0)
  nl = inputs.text_bytes(unit.path, lo, target).rfind(b"\n")
  return lo + nl + 1 if nl >= 0 and lo + nl > 0 else target


def _split_single_document(units: list[inputs.Unit], data: Any) -> list[inputs.Unit]:
  """A one-document corpus's units with their splits: train up to the last
  `validation_fraction` of its bytes (from a line start), validation after. (A compressed
  file is one unit, whose size is then read through: its bytes decompressed.)"""
  units = [dataclasses.replace(u, size=inputs.text_size(u)) for u in units]
  total = sum(u.size for u in units)
  cut = _newline_before(units[0], int(total * (1.0 - data.validation_fraction)))
  out = []
  for u in units:
    stop = u.start + u.size
    if u.start < cut < stop:
      out += [
        dataclasses.replace(u, stop=cut, size=cut - u.start, split=data.train_split, goes_on=False),
        dataclasses.replace(u, start=cut, size=stop - cut, split=data.eval_split),
      ]
    elif stop <= cut:  # the train split's text ends at the cut
      out.append(dataclasses.replace(u, split=data.train_split, goes_on=u.goes_on and stop < cut))
    else:
      out.append(dataclasses.replace(u, split=data.eval_split))
  return out


def held_out_rule(data: Any, units: Iterable[inputs.Unit]) -> str:
  """How the corpus's held-out split is made: 'last_fraction' (one document), 'documents' (a
  seeded sample of documents) or 'dataset' (a TFDS dataset's own splits)."""
  if data.dataset != "local":
    return "dataset"
  return "last_fraction" if inputs.is_single_document(units) else "documents"


def dataset_id(data: Any, units: Iterable[inputs.Unit]) -> str:
  """A name for the corpus as read: its path's stem and a hash of its units' fingerprints and
  of the fields that change the split or the text."""
  fields = (
    data.validation_fraction,
    data.sample_seed,
    codec_name(data.encoding),
    data.decode_errors,
    data.format,
    data.text_key,
    data.train_split,
    data.eval_split,
  )
  digest = hashlib.sha256(repr(fields).encode())
  for u in units:
    digest.update(_unit_key(u))
  path = data.path.split("*")[0].split("?")[0].split("[")[0]  # a glob: the folder before it
  stem = data.dataset if data.dataset != "local" else os.path.basename(path.rstrip("/"))
  stem = "".join(c if c.isalnum() else "_" for c in os.path.splitext(stem)[0]).lower()
  return f"{stem}_{digest.hexdigest()[:12]}"


def shard_size(units: Iterable[inputs.Unit]) -> int:
  """Input bytes per shard: a 64th of the corpus, between one unit and `SHARD_BYTES`, so that
  a small corpus still has shards for several workers. It depends on the corpus alone."""
  return min(max(sum(u.size for u in units) // 64, UNIT_BYTES), SHARD_BYTES)


def plan(
  data: Any,
  units: Iterable[inputs.Unit],
  directory: str,
  shard_bytes: int | None = None,
  rule: str | None = None,
) -> list[ShardSpec]:
  """The shards of the corpus `data` (config.data) whose units are `units` (streamed, read
  again for each pass): grouped in path order, about `shard_bytes` (default: `shard_size`) of
  input each, each shard's units written to its plan file in `directory`. `rule`: the
  corpus's `held_out_rule`, if known."""
  if (rule or held_out_rule(data, units)) == "last_fraction":
    units = _split_single_document(list(units), data)
  shard_bytes = shard_bytes or shard_size(units)
  as_dict = data.to_dict() if hasattr(data, "to_dict") else dict(data)
  specs: list[ShardSpec] = []
  group: list[inputs.Unit] = []
  size = 0
  for unit in units:
    if group and size + unit.size > shard_bytes:
      specs.append(_write_plan(directory, len(specs), group, as_dict))
      group, size = [], 0
    group.append(unit)
    size += unit.size
  if group:
    specs.append(_write_plan(directory, len(specs), group, as_dict))
  return specs


def _pieces(spec: ShardSpec, data: Any) -> Iterator[tuple[str, inputs.Piece, bool]]:
  """(split, piece, the document ends after it) of every piece of the shard, in order."""
  for unit in spec.units():
    last = None
    for piece in inputs.read_pieces(unit, data):
      if last is not None:
        yield _split_of(unit, last.key, data), last, piece.first
      last = piece
    if last is not None:
      yield _split_of(unit, last.key, data), last, not unit.goes_on


_TOKENIZERS: dict[tuple[str, str], Tokenizer] = {}


def _worker_tokenizer(directory: str, expected_hash: str) -> Tokenizer:
  """The prepared directory's tokenizer, loaded once per process and checked against the
  hash the plan carries (a worker never encodes with another one)."""
  key = (directory, expected_hash)
  if key not in _TOKENIZERS:
    tok = load_tokenizer(directory)
    if tokenizer_hash(tok) != expected_hash:
      raise DataError(
        f"the tokenizer in {directory} changed while its shards were prepared (hash "
        f"{tokenizer_hash(tok)}, expected {expected_hash}): delete {directory} and prepare again"
      )
    _TOKENIZERS[key] = tok
  return _TOKENIZERS[key]


def _finished(spec: ShardSpec, splits: tuple[str, ...]) -> dict[str, dict] | None:
  directory = epath.Path(spec.directory)
  found = {}
  for split in splits:
    m = shards.read_manifest(directory / f"{shards.shard_name(split, spec.index)}.json")
    if m is None or m.get("input") != spec.fingerprint or m.get("tokenizer") != spec.tokenizer_hash:
      return None
    found[split] = m
  return found


def write_shard(spec: ShardSpec) -> dict[str, dict]:
  """Writes (or finds finished) the shard's token files for each split; returns {split:
  manifest}. Only the shard's pieces and one batch of their ids are held in memory."""
  data = ml_collections.ConfigDict(spec.data)
  splits = (data.train_split, data.eval_split)
  done = _finished(spec, splits)
  if done is not None:
    return done
  tok = _worker_tokenizer(spec.directory, spec.tokenizer_hash)
  directory = epath.Path(spec.directory)
  dtype = token_dtype(tok.vocab_size)
  writers = {s: shards.ShardWriter(directory, s, spec.index, dtype) for s in splits}
  unknown_before = collections.Counter(tok.unknown if isinstance(tok, CharTokenizer) else ())
  batch: list[tuple[str, inputs.Piece, bool]] = []

  def flush() -> None:
    for (split, piece, ends), ids in zip(batch, tok.encode_batch([p.text for _, p, _ in batch])):
      eos = [tok.eos_id] if ends and tok.eos_id is not None else []
      writers[split].add(np.asarray(ids + eos, dtype), piece.first)
    batch.clear()

  for item in _pieces(spec, data):
    batch.append(item)
    if len(batch) == PIECES_PER_BATCH:
      flush()
  flush()
  common = {"format": FORMAT, "input": spec.fingerprint, "tokenizer": spec.tokenizer_hash}
  if isinstance(tok, CharTokenizer):
    # characters outside a given vocabulary (another run's): counted, each by name
    common["unknown_characters"] = dict(tok.unknown - unknown_before)
  return {s: w.close(common) for s, w in writers.items()}


def write_characters(spec: ShardSpec) -> None:
  """The 'char' tokenizer's first pass: the characters of the shard's documents."""
  data = ml_collections.ConfigDict(spec.data)
  path = epath.Path(spec.directory) / CHARACTERS / f"{spec.index:05d}.json"
  if path.exists():
    return
  seen: set[str] = set()
  for _, piece, _ in _pieces(spec, data):
    seen.update(piece.text)
  paths.write_atomically(path, json.dumps("".join(sorted(seen))))


def _sample(specs: list[ShardSpec], data: Any) -> Iterator[str]:
  """A seeded sample of train documents' texts, at most `data.tokenizer_train_chars`
  characters: shards in a seeded order, and their units, each document taken with the
  probability that makes the expected sample the budget."""
  rate = min(1.0, data.tokenizer_train_chars / max(sum(s.size for s in specs), 1))
  rng = np.random.default_rng(data.sample_seed)
  taken = 0
  for i in rng.permutation(len(specs)):
    units = specs[i].units()
    for unit in (units[j] for j in rng.permutation(len(units))):
      for piece in inputs.read_pieces(unit, data):
        split = _split_of(unit, piece.key, data)
        drawn = _uniform(f"tokenizer:{data.sample_seed}:{piece.key}") < rate
        if split != data.train_split or not drawn:
          continue
        yield piece.text
        taken += len(piece.text)
        if taken >= data.tokenizer_train_chars:
          return


def train_tokenizer(
  data: Any, specs: list[ShardSpec], directory: str, workers: int, beam_options: str
) -> Tokenizer:
  """Trains the config's tokenizer on the corpus (see the module docstring) into `directory`."""
  if data.tokenizer == "char":
    engine.run(write_characters, specs, workers, beam_options)
    chars: set[str] = set()
    for spec in specs:
      chars.update(
        json.loads((epath.Path(directory) / CHARACTERS / f"{spec.index:05d}.json").read_text())
      )
    tok: Tokenizer = CharTokenizer("".join(sorted(chars)))
    tok.save(directory)
    return tok
  if data.tokenizer == "sentencepiece":
    return SentencePieceTokenizer.train(_sample(specs, data), directory, data.vocab_size)
  return hf_tokenizer.train_byte_level_bpe(_sample(specs, data), directory, data.vocab_size)


class _Progress:
  """Logs the shards an earlier run finished, then every `every` seconds while shards are
  written: shards done, tokens, this run's tokens/s and the ETA."""

  def __init__(self, specs: list[ShardSpec], splits: tuple[str, ...], every: float = 10.0):
    self.specs, self.splits, self.every = specs, splits, every
    self.before = {s.index for s in specs if _finished(s, splits) is not None}
    if self.before:
      log.info("%d of %d shards were prepared before: resuming", len(self.before), len(specs))
    self.start = time.monotonic()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def __enter__(self) -> _Progress:
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    self._thread.join()

  def _run(self) -> None:
    while not self._stop.wait(self.every):
      done = {s.index: m for s in self.specs if (m := _finished(s, self.splits)) is not None}
      new = [m for i, m in done.items() if i not in self.before]
      tokens = sum(x["tokens"] for m in new for x in m.values())
      elapsed = time.monotonic() - self.start
      left = len(self.specs) - len(done)
      eta = f"{elapsed / len(new) * left:.0f}s" if new else "?"
      log.info(
        "prepared %d/%d shards, %.0f tokens/s, ETA %s",
        len(done),
        len(self.specs),
        tokens / elapsed,
        eta,
      )


def data_root(data: Any) -> epath.Path:
  """config.data.data_dir: a local folder (a relative one under the user's cache, ~ expanded)
  or a gs:// one (paths.data_dir)."""
  return paths.data_dir(data.data_dir)


def prepare(
  data: Any,
  directory: epath.Path,
  units: Iterable[inputs.Unit],
  tokenizer: Tokenizer | None = None,
  workers: int = 1,
  beam_options: str = "",
  shard_bytes: int | None = None,
) -> dict[str, Any]:
  """Prepares the corpus of `data` (config.data), read as `units` (a list, or an
  `inputs.Corpus` that streams them for each pass), into `directory` unless it is done;
  returns the dataset manifest. `tokenizer`: a given one (a pretrained model's)
  instead of training one; `workers` > 1 or `beam_options`: on Apache Beam."""
  manifest = shards.read_manifest(directory / DATASET_FILE)
  if manifest is not None:
    log.info("%s is prepared", directory)
    return manifest
  started = time.monotonic()
  directory.mkdir(parents=True, exist_ok=True)
  for partial in directory.glob("*.tmp-*"):  # of a shard an interrupted preparation was writing
    partial.unlink()
  rule = held_out_rule(data, units)
  specs = plan(data, units, str(directory), shard_bytes, rule)
  if not specs:
    raise DataError(f"config.data ({data.dataset}: {data.path!r}) holds no documents")
  tok = _prepared_tokenizer(data, specs, tokenizer, workers, beam_options)
  specs = [dataclasses.replace(s, tokenizer_hash=tokenizer_hash(tok)) for s in specs]
  splits = (data.train_split, data.eval_split)
  with _Progress(specs, splits):
    engine.run(write_shard, specs, workers, beam_options)
  found = []
  for spec in specs:
    shard = _finished(spec, splits)
    if shard is None:
      raise DataError(f"shard {spec.index} of {directory} was not written: prepare again")
    found.append(shard)
  manifest = _dataset_manifest(data, directory.parent.name, rule, specs[0].tokenizer_hash, found)
  paths.write_atomically(directory / DATASET_FILE, json.dumps(manifest, indent=1))
  _log_unknown_characters(directory, [m for f in found for m in f.values()])
  tokens = sum(s["tokens"] for s in manifest["splits"].values())
  elapsed = time.monotonic() - started
  log.info(
    "prepared %s: %d shards, %d tokens in %.1fs (%.0f tokens/s)",
    directory,
    len(specs),
    tokens,
    elapsed,
    tokens / max(elapsed, 1e-9),
  )
  return manifest


def _prepared_tokenizer(
  data: Any, specs: list[ShardSpec], given: Tokenizer | None, workers: int, beam_options: str
) -> Tokenizer:
  """The given tokenizer (saved beside the shards), the one saved there, or one trained."""
  directory = specs[0].directory
  if given is not None:
    given.save(directory)
    return given
  try:
    return load_tokenizer(directory)
  except FileNotFoundError:
    return train_tokenizer(data, specs, directory, workers, beam_options)


def _dataset_manifest(
  data: Any, dataset: str, rule: str, digest: str, found: list[dict[str, dict]]
) -> dict[str, Any]:
  """dataset.json: the corpus id (the name of the directory's folder, `dataset_id`), the
  held-out rule, the splits' shards, tokens and documents; DataError if a split is empty."""
  manifest = {
    "format": FORMAT,
    "dataset": dataset,
    "tokenizer": digest,
    "held_out": rule,
    "splits": {
      split: {
        "tokens": sum(f[split]["tokens"] for f in found),
        "documents": sum(f[split]["documents"] for f in found),
        "shards": [f[split]["name"] for f in found],
      }
      for split in (data.train_split, data.eval_split)
    },
  }
  for split, counts in manifest["splits"].items():
    if counts["tokens"] == 0:
      raise DataError(_empty_split(data, split, manifest))
  return manifest


def _empty_split(data: Any, split: str, manifest: dict[str, Any]) -> str:
  counts = manifest["splits"].values()
  corpus = (
    f"config.data.path={data.path!r}"
    if data.dataset == "local"
    else (f"config.data.dataset={data.dataset!r}")
  )
  if not any(c["tokens"] for c in counts):
    return f"{corpus} holds no text"
  if manifest["held_out"] == "documents":
    return (
      f"config.data.validation_fraction={data.validation_fraction} leaves the {split} split of "
      f"{corpus} without a document: each of its {sum(c['documents'] for c in counts)} "
      "documents is held out with that probability (seeded by config.data.sample_seed); "
      "change the fraction or the seed, or use a larger corpus"
    )
  if manifest["held_out"] == "last_fraction":
    return (
      f"config.data.validation_fraction={data.validation_fraction} leaves the {split} split of "
      f"{corpus} without text; use a fraction in (0, 1) that leaves a line to each split, or "
      "a larger corpus"
    )
  return f"the {split} split of {corpus} holds no text"


def _log_unknown_characters(directory: epath.Path, manifests: list[dict[str, Any]]) -> None:
  unknown: collections.Counter[str] = collections.Counter()
  for m in manifests:
    unknown.update(m.get("unknown_characters", {}))
  if unknown:
    log.warning(
      "%s: %d characters outside the character vocabulary encoded as [UNK] (%s)",
      directory,
      sum(unknown.values()),
      ", ".join(f"{c!r} x{n}" for c, n in unknown.most_common()),
    )
