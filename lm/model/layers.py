"""Parameter constructors with logical axis names, LayerNorm, RMSNorm and the MLP (GELU or
SwiGLU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lm.model import mup
from lm.model.config import DTYPES, ExecutionConfig, TransformerConfig
from lm.model.numerics import add_bias, layer_norm, recompute_in_backward

# GPT-2's initialisation: N(0, INIT_STD^2) for every weight matrix and the token and segment
# embeddings, N(0, POSITION_INIT_STD^2) for learned positions. Residual output projections take
# a further 1 / sqrt(2 layers), and μP scales the hidden matrices' std (lm/model/mup.py).
INIT_STD = 0.02
POSITION_INIT_STD = 0.01


def normal_param(
  rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str | None, ...], std: float, dtype
) -> nnx.Param:
  """A parameter drawn from N(0, std^2), tagged with its logical axis names."""
  return nnx.Param(std * jax.random.normal(rngs.params(), shape, dtype), logical_axes=axes)


def const_param(
  shape: tuple[int, ...], axes: tuple[str | None, ...], value: float, dtype
) -> nnx.Param:
  """A parameter filled with `value`, tagged with its logical axis names."""
  return nnx.Param(jnp.full(shape, value, dtype), logical_axes=axes)


class LayerNorm(nnx.Module):
  """LayerNorm over the last axis, computed in float32."""

  def __init__(self, dim: int, *, eps: float, use_bias: bool, param_dtype):
    self.eps = eps
    self.scale = const_param((dim,), ("embed",), 1.0, param_dtype)
    self.bias = const_param((dim,), ("embed",), 0.0, param_dtype) if use_bias else None

  def __call__(self, x: jax.Array) -> jax.Array:
    return layer_norm(x, self.scale[...], None if self.bias is None else self.bias[...], self.eps)


class RMSNorm(nnx.Module):
  """RMSNorm over the last axis, computed in float32: x / rms(x) * scale, no bias."""

  def __init__(self, dim: int, *, eps: float, param_dtype, axis_name: str | None = "embed"):
    self.eps = eps
    self.scale = const_param((dim,), (axis_name,), 1.0, param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + self.eps)
    return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)


def make_norm(cfg: TransformerConfig, param_dtype) -> LayerNorm | RMSNorm:
  """The model's norm over d_model: `cfg.norm` is 'layernorm' or 'rmsnorm'."""
  if cfg.norm == "rmsnorm":
    return RMSNorm(cfg.d_model, eps=cfg.layer_norm_eps, param_dtype=param_dtype)
  return LayerNorm(
    cfg.d_model, eps=cfg.layer_norm_eps, use_bias=cfg.use_bias, param_dtype=param_dtype
  )


# 'gelu_tanh': the tanh approximation (GPT-2's 'gelu_new'); 'gelu': exact erf form (BERT).
ACTIVATIONS = {
  "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
  "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


def _swiglu(gate, up):
  return jax.nn.silu(gate) * up


class MLP(nnx.Module):
  """Position-wise feed-forward: Linear, GELU, Linear; or SwiGLU: silu(x W_gate) * (x W_in),
  then W_out."""

  def __init__(self, cfg: TransformerConfig, ex: ExecutionConfig, *, rngs: nnx.Rngs):
    d, f, param_dtype = cfg.d_model, cfg.mlp_dim, DTYPES[ex.param_dtype]
    self.compute_dtype, self.activation = DTYPES[ex.compute_dtype], cfg.activation
    std = INIT_STD * mup.hidden_init_scale(cfg)
    self.w_in = normal_param(rngs, (d, f), ("embed", "mlp"), std, param_dtype)
    self.w_gate = (
      normal_param(rngs, (d, f), ("embed", "mlp"), std, param_dtype)
      if cfg.mlp == "swiglu"
      else None
    )
    self.w_out = normal_param(
      rngs, (f, d), ("mlp", "embed"), std / (2 * cfg.num_layers) ** 0.5, param_dtype
    )

    def bias(n, axis):
      return const_param((n,), (axis,), 0.0, param_dtype) if cfg.use_bias else None

    self.b_in, self.b_out = bias(f, "mlp"), bias(d, "embed")
    self.b_gate = bias(f, "mlp") if self.w_gate is not None else None

  def __call__(self, x_BTD: jax.Array) -> jax.Array:
    dt = self.compute_dtype
    x_BTD = x_BTD.astype(dt)

    def linear(w, b):
      y = x_BTD @ w[...].astype(dt)
      return y if b is None else add_bias(y, b[...])

    h_BTF = linear(self.w_in, self.b_in)
    if self.w_gate is None:
      h_BTF = recompute_in_backward(ACTIVATIONS[self.activation])(h_BTF)
    else:
      h_BTF = recompute_in_backward(_swiglu)(linear(self.w_gate, self.b_gate), h_BTF)
    y_BTD = h_BTF @ self.w_out[...].astype(dt)
    if self.b_out is not None:
      y_BTD = add_bias(y_BTD, self.b_out[...])
    return y_BTD
