"""The grain input pipeline: fixed windows over a token stream, seeded shuffle, batches,
and each process's share of every global batch.

Every global batch is the same whatever the number of processes: the shuffle and batching
act on window indices, and a process then reads only the rows it feeds to its devices.
The iterator's state (`get_state`/`set_state`) is a small dict saved with checkpoints.
"""

from __future__ import annotations

import grain
import numpy as np


class TokenWindows:
  """Random-access windows of `seq_len + 1` tokens (inputs and shifted targets), stride seq_len."""

  def __init__(self, tokens: np.ndarray, seq_len: int):
    if len(tokens) < seq_len + 1:
      raise ValueError(f"a split of {len(tokens)} tokens is shorter than one window of "
                       f"seq_len + 1 = {seq_len + 1}; lower config.data.seq_len")
    self.tokens, self.seq_len = tokens, seq_len

  def __len__(self) -> int:
    return (len(self.tokens) - 1) // self.seq_len

  def __getitem__(self, i: int) -> np.ndarray:
    start = int(i) * self.seq_len
    return np.asarray(self.tokens[start:start + self.seq_len + 1], np.int32)


def host_rows(global_batch: int, process_index: int, process_count: int) -> slice:
  """The rows of a global batch that process `process_index` reads."""
  if global_batch % process_count:
    raise ValueError(f"config.data.batch_size={global_batch} must be divisible by the "
                     f"{process_count} processes")
  per_host = global_batch // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


def index_batches(num_examples: int, global_batch: int, *, shuffle_seed: int | None,
                  repeat: bool, drop_remainder: bool = True) -> grain.MapDataset:
  """Batches of example indices: a seeded permutation (new each epoch) or in order."""
  ds = grain.MapDataset.range(num_examples)
  if shuffle_seed is not None:
    ds = ds.shuffle(seed=shuffle_seed)
  if repeat:
    ds = ds.repeat()
  return ds.batch(global_batch, drop_remainder=drop_remainder)


def window_batches(tokens: np.ndarray, seq_len: int, global_batch: int, *, shuffle_seed: int | None,
                   repeat: bool, process_index: int = 0, process_count: int = 1
                   ) -> grain.MapDataset:
  """A MapDataset of this process's {'tokens': int32[rows, seq_len + 1]} batches.

  With a `shuffle_seed` the window order is a seeded permutation, new for each epoch.
  """
  windows = TokenWindows(tokens, seq_len)
  rows = host_rows(global_batch, process_index, process_count)
  ds = index_batches(len(windows), global_batch, shuffle_seed=shuffle_seed, repeat=repeat)
  return ds.map(lambda idx: {"tokens": np.stack([windows[i] for i in idx[rows]])})


def iterate(ds: grain.MapDataset, prefetch: int, threads: int) -> grain.DatasetIterator:
  """A checkpointable iterator that reads ahead `prefetch` batches on `threads` threads."""
  options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
  return iter(ds.to_iter_dataset(options))
