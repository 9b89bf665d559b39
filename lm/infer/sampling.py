"""Autoregressive generation from a decoder LM with a KV cache.

One prefill pass writes the (left-padded) prompts into a preallocated cache; then a
`lax.while_loop`, compiled once per shape and setting, decodes one token per step for every
row until each row has emitted `end_id` or `max_new_tokens` tokens. Sampling: greedy
(temperature 0), temperature, top-k and top-p, combinable, seeded. For a model trained with
document masking, `document_end_id` splits prompts into documents as training did: a token
attends only to its own document, whose positions start at 0.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from lm.model.attention import KVCache


@struct.dataclass
class Generation:
  """New tokens [B, N], their log-probabilities under the model [B, N] and lengths [B].

  A row's length counts its tokens up to and including `end_id`; later entries are 0.
  """

  tokens: jax.Array
  log_probs: jax.Array
  lengths: jax.Array


def pad_prompts(
  prompts: Sequence[Sequence[int]], padding: str = "left", pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """Token lists -> (prompts [B, P] padded to the longest, lengths [B])."""
  lengths = np.asarray([len(p) for p in prompts], np.int32)
  if lengths.min() < 1:
    raise ValueError("every prompt needs at least one token")
  out = np.full((len(prompts), lengths.max()), pad_id, np.int32)
  for row, (p, n) in enumerate(zip(prompts, lengths)):
    if padding == "left":
      out[row, out.shape[1] - n :] = p
    else:
      out[row, :n] = p
  return out, lengths


def filter_logits(
  logits_BV: jax.Array, *, temperature: float, top_k: int, top_p: float
) -> jax.Array:
  """Scales by 1/temperature, then keeps the top k (all with k 0, or k at least the
  vocabulary, as Hugging Face clamps it) and the smallest set of mass >= top_p."""
  logits_BV = logits_BV / temperature
  if 0 < top_k < logits_BV.shape[-1]:
    kth_B1 = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]
    logits_BV = jnp.where(logits_BV < kth_B1, -jnp.inf, logits_BV)
  if top_p < 1.0:
    sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
    probs_BV = jax.nn.softmax(sorted_BV, axis=-1)
    mass_before_BV = jnp.cumsum(probs_BV, axis=-1) - probs_BV
    # The least likely token kept is the last one whose preceding mass is below top_p.
    num_kept_B1 = jnp.sum(mass_before_BV < top_p, axis=-1, keepdims=True)
    threshold_B1 = jnp.take_along_axis(sorted_BV, num_kept_B1 - 1, axis=-1)
    logits_BV = jnp.where(logits_BV < threshold_B1, -jnp.inf, logits_BV)
  return logits_BV


def sample_logits(
  logits_BV: jax.Array,
  key: jax.Array,
  *,
  temperature: float = 1.0,
  top_k: int = 0,
  top_p: float = 1.0,
) -> jax.Array:
  """Draws one token per row: argmax if temperature == 0, else from the filtered softmax."""
  if temperature == 0.0:
    return jnp.argmax(logits_BV, axis=-1)
  filtered = filter_logits(logits_BV, temperature=temperature, top_k=top_k, top_p=top_p)
  return jax.random.categorical(key, filtered, axis=-1)


def _left_align(prompts_BP: jax.Array, lengths_B: jax.Array) -> jax.Array:
  """Right-padded rows -> left-padded rows (the padding slots get arbitrary prompt tokens)."""
  width = prompts_BP.shape[1]
  src_BP = (jnp.arange(width)[None, :] - (width - lengths_B[:, None])) % width
  return jnp.take_along_axis(prompts_BP, src_BP, axis=1)


def prompt_documents(
  prompts_BP: jax.Array, start_B: jax.Array, end_id: int
) -> tuple[jax.Array, jax.Array]:
  """Left-padded prompts' (segments [B, P], positions [B, P]): a new document (segment) starts
  after each `end_id`, and positions count from each document's first token."""
  slot_P = jnp.arange(prompts_BP.shape[1])
  ends_BP = (prompts_BP == end_id) & (slot_P[None, :] >= start_B[:, None])
  starts_BP = jnp.pad(ends_BP[:, :-1], ((0, 0), (1, 0)))  # the token after an end
  first_BP = jax.lax.cummax(jnp.where(starts_BP, slot_P[None, :], start_B[:, None]), axis=1)
  return (
    jnp.cumsum(starts_BP, axis=1, dtype=jnp.int32),
    jnp.maximum(slot_P[None, :] - first_BP, 0).astype(jnp.int32),
  )


class _Documents(NamedTuple):
  """Under document masking, where the next token goes: the last token written to the cache
  (an end of document there starts a new one), its segment and its position [B]."""

  cached_B: jax.Array
  segment_B: jax.Array
  position_B: jax.Array


class _Decoding(NamedTuple):
  """The decode loop's state: `step` tokens generated so far (the last, `last_B`, not yet in
  the cache), the outputs so far [B, N] and [B], and which rows have ended."""

  step: jax.Array
  last_B: jax.Array
  cache: tuple[KVCache, ...]
  documents: _Documents | None
  tokens_BN: jax.Array
  log_probs_BN: jax.Array
  lengths_B: jax.Array
  done_B: jax.Array

  @classmethod
  def start(
    cls, batch: int, max_new_tokens: int, cache: tuple[KVCache, ...], documents: _Documents | None
  ) -> _Decoding:
    """Nothing generated yet: the prompts are in the cache."""
    zeros_B = jnp.zeros((batch,), jnp.int32)
    return cls(
      step=jnp.int32(0),
      last_B=zeros_B,
      cache=cache,
      documents=documents,
      tokens_BN=jnp.zeros((batch, max_new_tokens), jnp.int32),
      log_probs_BN=jnp.zeros((batch, max_new_tokens), jnp.float32),
      lengths_B=zeros_B,
      done_B=jnp.zeros((batch,), bool),
    )


def _prefill(
  model, prompts_BP: jax.Array, start_B: jax.Array, cache, document_end_id: int | None
) -> tuple[jax.Array, tuple[KVCache, ...], _Documents | None]:
  """Writes the left-padded prompts into the cache: their logits [B, P, V], the cache and,
  with document masking, where the last prompt token stands."""
  if document_end_id is None:
    logits_BPV, cache = model(prompts_BP, cache=cache)
    return logits_BPV, cache, None
  segment_BP, position_BP = prompt_documents(prompts_BP, start_B, document_end_id)
  logits_BPV, cache = model(
    prompts_BP, positions_BT=position_BP, segment_ids_BT=segment_BP, cache=cache
  )
  return logits_BPV, cache, _Documents(prompts_BP[:, -1], segment_BP[:, -1], position_BP[:, -1])


def _decode(model, state: _Decoding, document_end_id: int | None) -> tuple[jax.Array, _Decoding]:
  """Runs the last token through the model: its logits [B, 1, V] and the state with it cached."""
  if state.documents is None:
    logits_B1V, cache = model(state.last_B[:, None], cache=state.cache)
    return logits_B1V, state._replace(cache=cache)
  # The new token continues the cached one's document, or starts the next.
  ended_B = state.documents.cached_B == document_end_id
  segment_B = state.documents.segment_B + ended_B
  position_B = jnp.where(ended_B, 0, state.documents.position_B + 1)
  logits_B1V, cache = model(
    state.last_B[:, None],
    positions_BT=position_B[:, None],
    segment_ids_BT=segment_B[:, None],
    cache=state.cache,
  )
  documents = _Documents(state.last_B, segment_B, position_B)
  return logits_B1V, state._replace(cache=cache, documents=documents)


def _choose(
  logits_BV: jax.Array,
  step: int | jax.Array,
  *,
  key: jax.Array,
  vocab_limit: int | None,
  **sample_kw,
) -> tuple[jax.Array, jax.Array]:
  """Step `step`'s token [B] for each row, drawn with fold_in(key, step), and its
  log-probability [B] (after the vocabulary mask, before temperature, top-k and top-p)."""
  if vocab_limit is not None:
    logits_BV = jnp.where(jnp.arange(logits_BV.shape[-1]) < vocab_limit, logits_BV, -jnp.inf)
  token_B = sample_logits(logits_BV, jax.random.fold_in(key, step), **sample_kw).astype(jnp.int32)
  log_prob_B = jnp.take_along_axis(
    jax.nn.log_softmax(logits_BV, axis=-1), token_B[:, None], axis=-1
  )[:, 0]
  return token_B, log_prob_B


def _record(
  state: _Decoding, token_B: jax.Array, log_prob_B: jax.Array, *, end_id: int | None
) -> _Decoding:
  """Stores this step's tokens in the rows still going; a row ends after its end token."""
  i, live_B = state.step, ~state.done_B
  return state._replace(
    step=i + 1,
    last_B=token_B,
    tokens_BN=state.tokens_BN.at[:, i].set(jnp.where(live_B, token_B, 0)),
    log_probs_BN=state.log_probs_BN.at[:, i].set(jnp.where(live_B, log_prob_B, 0.0)),
    lengths_B=state.lengths_B + live_B,
    done_B=state.done_B if end_id is None else state.done_B | (token_B == end_id),
  )


def _left_padded(prompts_BP: jax.Array, lengths_B: jax.Array, padding: str) -> jax.Array:
  """The prompts left-padded, as the cache takes them, from `padding` 'left' or 'right'."""
  if padding == "right":
    return _left_align(prompts_BP, lengths_B)
  if padding != "left":
    raise ValueError(f"padding={padding!r}; valid: 'left', 'right'")
  return prompts_BP


@functools.partial(
  jax.jit,
  static_argnames=(
    "graphdef",
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "end_id",
    "vocab_limit",
    "padding",
    "document_end_id",
  ),
)
def generate(
  graphdef: nnx.GraphDef,
  params,
  prompts_BP: jax.Array,
  lengths_B: jax.Array,
  key: jax.Array,
  *,
  max_new_tokens: int,
  temperature: float = 1.0,
  top_k: int = 0,
  top_p: float = 1.0,
  end_id: int | None = None,
  vocab_limit: int | None = None,
  padding: str = "left",
  document_end_id: int | None = None,
) -> Generation:
  """Continues each prompt (row b: its `lengths_B[b]` tokens, `padding` 'left' or 'right').

  The padded prompt width plus `max_new_tokens` must fit in the model's max_seq_len (a
  ValueError says so otherwise). `vocab_limit` masks ids at and above it (the padding of the
  vocabulary). Log-probabilities are the model's (after the vocabulary mask, before
  temperature, top-k and top-p), so greedy and sampled runs score tokens alike. With
  `document_end_id` (a model trained with document masking) each token attends only to its
  document: the tokens after the last `document_end_id` of the prompt, or after one generated.
  """
  model = nnx.merge(graphdef, params)
  batch, width = prompts_BP.shape
  prompts_BP = _left_padded(prompts_BP, lengths_B, padding)
  start_B = width - lengths_B
  cache = model.init_cache(batch, width + max_new_tokens, start_B=start_B)
  logits_BPV, cache, documents = _prefill(model, prompts_BP, start_B, cache, document_end_id)
  choose = functools.partial(
    _choose, key=key, vocab_limit=vocab_limit, temperature=temperature, top_k=top_k, top_p=top_p
  )
  record = functools.partial(_record, end_id=end_id)

  def going(state: _Decoding) -> jax.Array:
    return (state.step < max_new_tokens) & ~jnp.all(state.done_B)

  def decode_one(state: _Decoding) -> _Decoding:
    logits_B1V, state = _decode(model, state, document_end_id)
    return record(state, *choose(logits_B1V[:, 0], state.step))

  first = _Decoding.start(batch, max_new_tokens, cache, documents)
  state = jax.lax.while_loop(going, decode_one, record(first, *choose(logits_BPV[:, -1], 0)))
  return Generation(state.tokens_BN, state.log_probs_BN, state.lengths_B)


def generate_long(
  graphdef: nnx.GraphDef,
  params,
  prompts_BP: np.ndarray,
  key: jax.Array,
  *,
  max_new_tokens: int,
  **sample_kw,
) -> np.ndarray:
  """Generates past the model's context window; returns the new tokens [B, max_new_tokens].

  All rows share one prompt length. Once prompt and new tokens no longer fit in max_seq_len,
  generation goes on in chunks of max_seq_len // 2 tokens, each prefilled from the last
  max_seq_len - chunk tokens: the model never sees more than its window (as in training).
  """
  window = nnx.merge(graphdef, params).cfg.max_seq_len
  history = np.asarray(prompts_BP, np.int32)
  if history.shape[1] + max_new_tokens <= window:
    chunk, context = max_new_tokens, history.shape[1]
  else:
    chunk = window // 2
    context = window - chunk
  lengths = jnp.full((history.shape[0],), min(context, history.shape[1]), jnp.int32)
  produced = 0
  while produced < max_new_tokens:
    n = min(chunk, max_new_tokens - produced)
    out = generate(
      graphdef,
      params,
      jnp.asarray(history[:, -context:]),
      lengths,
      jax.random.fold_in(key, produced),
      max_new_tokens=n,
      **sample_kw,
    )
    history = np.concatenate([history, np.asarray(out.tokens)], axis=1)
    lengths = jnp.full_like(lengths, min(context, history.shape[1]))
    produced += n
  return history[:, history.shape[1] - max_new_tokens :]
