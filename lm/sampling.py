"""Autoregressive sampling from a decoder LM: greedy, temperature and top-k.

The decode loop is one `lax.fori_loop`, compiled once per (batch, length) shape. Each step
runs the model over the last `max_seq_len` tokens of a fixed-size buffer.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def sample_logits(logits_BV: jax.Array, key: jax.Array, temperature: float, top_k: int
                  ) -> jax.Array:
  """Draws one token per row: argmax if temperature == 0, else softmax(logits / T) on the top k."""
  if temperature == 0.0:
    return jnp.argmax(logits_BV, axis=-1)
  logits_BV = logits_BV / temperature
  if top_k > 0:
    kth = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]
    logits_BV = jnp.where(logits_BV < kth, -jnp.inf, logits_BV)
  return jax.random.categorical(key, logits_BV, axis=-1)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "temperature",
                                             "top_k", "vocab_limit"))
def generate(graphdef: nnx.GraphDef, params, prompt_BP: jax.Array, key: jax.Array, *,
             max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
             vocab_limit: int | None = None) -> jax.Array:
  """Returns [B, P + max_new_tokens] tokens: the prompts followed by the sampled tokens.

  `vocab_limit` masks ids at and above it (the padding of the vocabulary).
  """
  model = nnx.merge(graphdef, params)
  window = model.cfg.max_seq_len
  batch, prompt_len = prompt_BP.shape
  total = prompt_len + max_new_tokens
  tokens = jnp.zeros((batch, total), jnp.int32).at[:, :prompt_len].set(prompt_BP)
  span = min(window, total)

  def step(i, tokens):
    start = jnp.clip(i - span, 0, total - span)
    context = jax.lax.dynamic_slice_in_dim(tokens, start, span, axis=1)
    logits = model(context)
    last = jax.lax.dynamic_index_in_dim(logits, i - 1 - start, axis=1, keepdims=False)
    if vocab_limit is not None:
      last = jnp.where(jnp.arange(last.shape[-1]) < vocab_limit, last, -jnp.inf)
    new = sample_logits(last, jax.random.fold_in(key, i), temperature, top_k)
    return tokens.at[:, i].set(new.astype(jnp.int32))

  return jax.lax.fori_loop(prompt_len, total, step, tokens)
