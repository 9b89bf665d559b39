"""Log-likelihoods of token continuations under a decoder, batched: what the task harness's
requests (lm/infer/harness.py) come down to.

A request is (context ids, continuation ids). Its row is the last max_seq_len + 1 tokens of
context + continuation less the last one, right-padded; the continuation's log-probability is
the sum over its tokens of the model's log-softmax (the whole vocabulary, as the training loss),
and it is greedy if each of its tokens is the argmax. Requests run longest first, as
lm-evaluation-harness's own backends order them, in batches of a fixed number of rows and a
width rounded up to a power of two (at most max_seq_len), so that few shapes are compiled. On
params placed on a mesh (a run loaded by lm/runs/loading.py) the rows are split over its data
axes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from lm.runtime import sharding

# The narrowest batch width compiled.
MIN_WIDTH = 8


def mesh_of(params) -> Mesh | None:
  """The mesh `params` are placed on, or None (one device, or not a NamedSharding)."""
  leaf = jax.tree.leaves(params)[0]
  placed = getattr(leaf, "sharding", None)
  if isinstance(placed, NamedSharding) and isinstance(placed.mesh, Mesh) and placed.mesh.size > 1:
    return placed.mesh
  return None


def bucket_width(longest: int, max_len: int) -> int:
  """The width a batch whose longest row is `longest` is padded to."""
  return min(max_len, max(MIN_WIDTH, 1 << max(longest - 1, 0).bit_length()))


def num_rows(batch_size: int, mesh: Mesh | None) -> int:
  """Rows of a batch of `batch_size` requests: rounded up to split evenly over `mesh`."""
  shards = 1 if mesh is None else math.prod(mesh.shape[a] for a in ("data", "fsdp"))
  return -(-batch_size // shards) * shards


def place(batch: dict[str, np.ndarray], mesh: Mesh | None) -> dict[str, jax.Array]:
  """A host batch on the default device, or split over `mesh`'s data axes."""
  if mesh is None:
    return {k: jnp.asarray(v) for k, v in batch.items()}
  return jax.device_put(batch, sharding.batch_sharding(mesh))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _score(
  graphdef: nnx.GraphDef, params, inputs_BT: jax.Array, targets_BT: jax.Array, mask_BT: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Summed log-probabilities [B] of the masked targets, and whether each is the argmax [B]."""
  logits_BTV = nnx.merge(graphdef, params)(inputs_BT).astype(jnp.float32)
  log_probs_BTV = jax.nn.log_softmax(logits_BTV, axis=-1)
  target_BT = jnp.take_along_axis(log_probs_BTV, targets_BT[..., None], axis=-1)[..., 0]
  greedy_BT = jnp.argmax(logits_BTV, axis=-1) == targets_BT
  return jnp.sum(target_BT * mask_BT, axis=-1), jnp.all(greedy_BT | (mask_BT == 0), axis=-1)


def _rows(
  requests: Sequence[tuple[list[int], list[int]]], max_len: int, rows: int
) -> dict[str, np.ndarray]:
  """The batch {'inputs', 'targets', 'mask'} [rows, width] of `requests` (see the module
  docstring); rows past the requests are padding, masked out."""
  windows = [(list(context) + list(cont))[-(max_len + 1) :] for context, cont in requests]
  width = bucket_width(max(len(w) - 1 for w in windows), max_len)
  batch = {
    "inputs": np.zeros((rows, width), np.int32),
    "targets": np.zeros((rows, width), np.int32),
    "mask": np.zeros((rows, width), np.float32),
  }
  for row, (window, (_, continuation)) in enumerate(zip(windows, requests)):
    n = len(window) - 1
    batch["inputs"][row, :n] = window[:-1]
    batch["targets"][row, :n] = window[1:]
    batch["mask"][row, n - len(continuation) : n] = 1.0
  return batch


def continuation_log_probs(
  graphdef: nnx.GraphDef,
  params,
  requests: Sequence[tuple[list[int], list[int]]],
  *,
  max_len: int,
  batch_size: int,
) -> list[tuple[float, bool]]:
  """(log-probability, is greedy) of each request's continuation given its context, in the
  order given. A continuation longer than `max_len` tokens, or one that has no token before it,
  is a ValueError."""
  for context, continuation in requests:
    if len(continuation) > max_len or not context:
      raise ValueError(
        f"a continuation of {len(continuation)} tokens after {len(context)} of context: "
        f"it needs at least one token before it and at most {max_len} (the model's context)"
      )
  mesh = mesh_of(params)
  rows = num_rows(batch_size, mesh)
  order = sorted(range(len(requests)), key=lambda i: -len(requests[i][0]) - len(requests[i][1]))
  results: list[tuple[float, bool]] = [(0.0, True)] * len(requests)
  for first in range(0, len(order), rows):
    chosen = order[first : first + rows]
    placed = place(_rows([requests[i] for i in chosen], max_len, rows), mesh)
    log_probs, greedy = jax.device_get(
      _score(graphdef, params, placed["inputs"], placed["targets"], placed["mask"])
    )
    for row, i in enumerate(chosen):
      results[i] = (float(log_probs[row]), bool(greedy[row]))
  return results
