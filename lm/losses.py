"""Token-level losses.

`cross_entropy` keeps the logits in their own dtype (bfloat16 on accelerators) and saves only
them and a float32 log-normaliser per token for the backward pass, which writes the logits'
gradient straight in their dtype: no float32 copy of the [B, T, V] logits is ever stored.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _nll_and_lse(logits_BTV, targets_BT):
  lse_BT = jax.nn.logsumexp(logits_BTV.astype(jnp.float32), axis=-1)
  target_BT = jnp.take_along_axis(logits_BTV, targets_BT[..., None], axis=-1)[..., 0]
  return lse_BT - target_BT.astype(jnp.float32), lse_BT


@jax.custom_vjp
def cross_entropy(logits_BTV: jax.Array, targets_BT: jax.Array) -> jax.Array:
  """Per-token negative log-likelihood [B, T] in float32 (fused, memory-lean backward)."""
  return _nll_and_lse(logits_BTV, targets_BT)[0]


def _forward(logits_BTV, targets_BT):
  nll_BT, lse_BT = _nll_and_lse(logits_BTV, targets_BT)
  return nll_BT, (logits_BTV, targets_BT, lse_BT)


def _backward(residuals, g_BT):
  logits_BTV, targets_BT, lse_BT = residuals
  probs_BTV = jnp.exp(logits_BTV.astype(jnp.float32) - lse_BT[..., None])
  onehot_BTV = jax.nn.one_hot(targets_BT, logits_BTV.shape[-1], dtype=jnp.float32)
  return ((probs_BTV - onehot_BTV) * g_BT[..., None]).astype(logits_BTV.dtype), None


cross_entropy.defvjp(_forward, _backward)


def cross_entropy_unfused(logits_BTV: jax.Array, targets_BT: jax.Array) -> jax.Array:
  """The same loss through Optax and autodiff (float32 logits kept for the backward)."""
  return optax.softmax_cross_entropy_with_integer_labels(logits_BTV.astype(jnp.float32),
                                                         targets_BT)
