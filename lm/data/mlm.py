"""BERT's masked-language-model corruption, drawn on device from a key.

It runs inside the jitted train step from the step's key (`fold_in(rng, step)`), so a resumed
run draws exactly the masks of the run that never stopped, with no state in the input
pipeline, and every epoch sees new masks (dynamic masking, as RoBERTa).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def mask_tokens(
  key: jax.Array,
  tokens_BT: jax.Array,
  *,
  mask_id: int,
  num_random: int,
  select_prob: float = 0.15,
  mask_frac: float = 0.8,
  random_frac: float = 0.1,
  maskable_BT: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Returns (corrupted inputs [B, T], selected [B, T] bool).

  Each maskable position is selected with `select_prob`; a selected one becomes `mask_id`
  with `mask_frac`, a uniform random id in [0, num_random) with `random_frac`, and stays as
  it is otherwise. The loss is taken on the selected positions only.
  """
  k_select, k_kind, k_random = jax.random.split(key, 3)
  selected_BT = jax.random.bernoulli(k_select, select_prob, tokens_BT.shape)
  if maskable_BT is not None:
    selected_BT &= maskable_BT
  u_BT = jax.random.uniform(k_kind, tokens_BT.shape)
  to_mask_BT = selected_BT & (u_BT < mask_frac)
  to_random_BT = selected_BT & (u_BT >= mask_frac) & (u_BT < mask_frac + random_frac)
  random_BT = jax.random.randint(k_random, tokens_BT.shape, 0, num_random, tokens_BT.dtype)
  inputs_BT = jnp.where(to_mask_BT, mask_id, jnp.where(to_random_BT, random_BT, tokens_BT))
  return inputs_BT.astype(tokens_BT.dtype), selected_BT
