"""Output heads on a trunk's hidden states: BERT's MLM head and a sequence classifier."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from lm.model.layers import ACTIVATIONS, INIT_STD, LayerNorm, const_param, normal_param
from lm.model.numerics import add_bias


class MLMHead(nnx.Module):
  """BERT's prediction head: dense, GELU, LayerNorm, then the tied embedding plus a bias."""

  def __init__(
    self,
    d_model: int,
    vocab_size: int,
    *,
    activation: str,
    eps: float,
    param_dtype,
    compute_dtype,
    rngs: nnx.Rngs,
  ):
    self.activation, self.compute_dtype = activation, compute_dtype
    self.w = normal_param(rngs, (d_model, d_model), ("embed", None), INIT_STD, param_dtype)
    self.b = const_param((d_model,), (None,), 0.0, param_dtype)
    self.norm = LayerNorm(d_model, eps=eps, use_bias=True, param_dtype=param_dtype)
    self.bias = const_param((vocab_size,), ("vocab",), 0.0, param_dtype)

  def __call__(self, x_BTD: jax.Array, embed_VD: jax.Array, logits_dtype) -> jax.Array:
    dt = self.compute_dtype
    h_BTD = add_bias(x_BTD.astype(dt) @ self.w[...].astype(dt), self.b[...])
    h_BTD = self.norm(ACTIVATIONS[self.activation](h_BTD))
    logits_BTV = jnp.einsum(
      "btd,vd->btv", h_BTD, embed_VD.astype(dt), preferred_element_type=logits_dtype
    )
    return add_bias(logits_BTV, self.bias[...])


class ClassifierHead(nnx.Module):
  """Pools one position per row (the first: [CLS]; or the last real token, for a decoder),
  then dense + tanh (BERT's pooler), dropout and a linear layer to class logits."""

  def __init__(
    self,
    d_model: int,
    num_classes: int,
    *,
    pool: Literal["first", "last"],
    dropout: float,
    param_dtype,
    rngs: nnx.Rngs,
  ):
    self.pool = pool
    self.w_pool = normal_param(rngs, (d_model, d_model), ("embed", None), INIT_STD, param_dtype)
    self.b_pool = const_param((d_model,), (None,), 0.0, param_dtype)
    self.w_out = normal_param(rngs, (d_model, num_classes), ("embed", None), INIT_STD, param_dtype)
    self.b_out = const_param((num_classes,), (None,), 0.0, param_dtype)
    self.dropout = nnx.Dropout(dropout)

  def __call__(
    self, x_BTD: jax.Array, key_mask_BT: jax.Array, *, rngs: nnx.Rngs | None = None
  ) -> jax.Array:
    if self.pool == "first":
      x_BD = x_BTD[:, 0]
    else:
      last_B = jnp.maximum(key_mask_BT.sum(-1) - 1, 0)
      x_BD = jnp.take_along_axis(x_BTD, last_B[:, None, None], axis=1)[:, 0]
    x_BD = x_BD.astype(jnp.float32)
    h_BD = jnp.tanh(x_BD @ self.w_pool[...].astype(jnp.float32) + self.b_pool[...])
    h_BD = self.dropout(h_BD, deterministic=rngs is None, rngs=rngs)
    return h_BD @ self.w_out[...].astype(jnp.float32) + self.b_out[...]
