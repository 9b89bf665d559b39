"""The grain input pipeline: fixed windows over a token stream, seeded shuffle, batches,
and each process's share of every global batch.

Every global batch is the same whatever the number of processes: the shuffle and batching
act on window indices, and a process then reads only the rows it feeds to its devices.
The iterator's state (`get_state`/`set_state`) is a small dict saved with checkpoints.

With document masking a window also carries, for its inputs, each token's segment (its
document, numbered from 0 within the window), its position within its document's part of the
window, and per-target weights that drop the predictions across a document boundary.
Windows are cut from the concatenated stream as without masking, so no token is dropped or
padded and a step holds the same number of tokens: the layout scaling studies count with.
grain's packers (`grain.experimental.FirstFitPackIterDataset`) place whole documents in bins and
pad the rest, and iterate sequentially; these windows keep random access, by which every global
batch is the same at any number of processes and resumes exactly.
"""

from __future__ import annotations

from typing import Any

import grain
import numpy as np

from lm.data.shards import ShardedTokens

# A split's tokens: an array, or its shards read as one (lm/data/shards.py).
Tokens = np.ndarray | ShardedTokens


def starts_between(doc_starts: Any, lo: int, hi: int) -> np.ndarray:
  """The document starts in (lo, hi]: from a sorted array, or a split's `DocumentStarts`."""
  if isinstance(doc_starts, np.ndarray):
    a, b = np.searchsorted(doc_starts, [lo, hi], side="right")
    return doc_starts[a:b]
  return doc_starts.between(lo, hi)


def document_fields(doc_starts: Any, start: int, length: int) -> dict[str, np.ndarray]:
  """For the window of `length + 1` tokens from `start`: its inputs' 'segment_ids' and
  'positions' [length] and its targets' 'weights' [length] (0: the target starts a document).

  `doc_starts` are the sorted offsets of the documents' first tokens (an array, or a split's
  `DocumentStarts`); only those inside the window are read.
  """
  index = np.arange(start, start + length + 1)
  inside = np.asarray(starts_between(doc_starts, start, start + length), np.int64)
  doc = np.searchsorted(inside, index, side="right")
  first = np.concatenate([[start], inside])[doc]
  return {
    "segment_ids": doc[:-1].astype(np.int32),
    "positions": (index - first)[:-1].astype(np.int32),
    "weights": (doc[1:] == doc[:-1]).astype(np.float32),
  }


class TokenWindows:
  """Random-access windows of `seq_len + 1` tokens (inputs and shifted targets), stride
  seq_len: {'tokens'}, and with `doc_starts` the document fields too. `tokens` is an array or
  a split's `ShardedTokens` (read window by window)."""

  def __init__(self, tokens: Any, seq_len: int, doc_starts: Any = None):
    if len(tokens) < seq_len + 1:
      raise ValueError(
        f"a split of {len(tokens)} tokens is shorter than one window of "
        f"seq_len + 1 = {seq_len + 1}; lower config.data.seq_len"
      )
    self.tokens, self.seq_len, self.doc_starts = tokens, seq_len, doc_starts

  def __len__(self) -> int:
    return (len(self.tokens) - 1) // self.seq_len

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    start = int(i) * self.seq_len
    window = {"tokens": np.asarray(self.tokens[start : start + self.seq_len + 1], np.int32)}
    if self.doc_starts is not None:
      window.update(document_fields(self.doc_starts, start, self.seq_len))
    return window


def host_rows(global_batch: int, process_index: int, process_count: int) -> slice:
  """The rows of a global batch that process `process_index` reads."""
  if global_batch % process_count:
    raise ValueError(
      f"config.data.batch_size={global_batch} must be divisible by the {process_count} processes"
    )
  per_host = global_batch // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


def index_batches(
  num_examples: int,
  global_batch: int,
  *,
  shuffle_seed: int | None,
  repeat: bool,
  drop_remainder: bool = True,
) -> grain.MapDataset:
  """Batches of example indices: a seeded permutation (new each epoch) or in order."""
  ds = grain.MapDataset.range(num_examples)
  if shuffle_seed is not None:
    ds = ds.shuffle(seed=shuffle_seed)
  if repeat:
    ds = ds.repeat()
  return ds.batch(global_batch, drop_remainder=drop_remainder)


def window_batches(
  tokens: Any,
  seq_len: int,
  global_batch: int,
  *,
  shuffle_seed: int | None,
  repeat: bool,
  process_index: int = 0,
  process_count: int = 1,
  doc_starts: Any = None,
) -> grain.MapDataset:
  """A MapDataset of this process's {'tokens': int32[rows, seq_len + 1]} batches, with
  `doc_starts` (document masking) also 'segment_ids', 'positions' and 'weights' [rows, seq_len].

  With a `shuffle_seed` the window order is a seeded permutation, new for each epoch.
  """
  windows = TokenWindows(tokens, seq_len, doc_starts)
  rows = host_rows(global_batch, process_index, process_count)
  ds = index_batches(len(windows), global_batch, shuffle_seed=shuffle_seed, repeat=repeat)

  def batch(idx: np.ndarray) -> dict[str, np.ndarray]:
    picked = [windows[i] for i in idx[rows]]
    return {k: np.stack([w[k] for w in picked]) for k in picked[0]}

  return ds.map(batch)


def iterate(ds: grain.MapDataset, prefetch: int, threads: int) -> grain.DatasetIterator:
  """A checkpointable iterator that reads ahead `prefetch` batches on `threads` threads."""
  options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
  return iter(ds.to_iter_dataset(options))
