"""Parameter constructors with logical axis names, LayerNorm and the MLP."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lm.model.numerics import add_bias, layer_norm, recompute_in_backward


def normal_param(rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str | None, ...],
                 std: float, dtype) -> nnx.Param:
  """A parameter drawn from N(0, std^2), tagged with its logical axis names."""
  return nnx.Param(std * jax.random.normal(rngs.params(), shape, dtype), logical_axes=axes)


def const_param(shape: tuple[int, ...], axes: tuple[str | None, ...], value: float,
                dtype) -> nnx.Param:
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


# 'gelu_tanh': the tanh approximation (GPT-2's 'gelu_new'); 'gelu': exact erf form (BERT).
ACTIVATIONS = {"gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
               "gelu": lambda x: jax.nn.gelu(x, approximate=False)}


class MLP(nnx.Module):
  """Position-wise feed-forward: Linear, GELU, Linear."""

  def __init__(self, d_model: int, mlp_dim: int, *, num_layers: int, use_bias: bool,
               param_dtype, compute_dtype, rngs: nnx.Rngs, activation: str = "gelu_tanh"):
    self.compute_dtype = compute_dtype
    self.activation = activation
    self.w_in = normal_param(rngs, (d_model, mlp_dim), ("embed", "mlp"), 0.02, param_dtype)
    self.w_out = normal_param(rngs, (mlp_dim, d_model), ("mlp", "embed"),
                              0.02 / (2 * num_layers) ** 0.5, param_dtype)
    self.b_in = const_param((mlp_dim,), ("mlp",), 0.0, param_dtype) if use_bias else None
    self.b_out = const_param((d_model,), ("embed",), 0.0, param_dtype) if use_bias else None

  def __call__(self, x_BTD: jax.Array) -> jax.Array:
    dt = self.compute_dtype
    h_BTF = x_BTD.astype(dt) @ self.w_in[...].astype(dt)
    if self.b_in is not None:
      h_BTF = add_bias(h_BTF, self.b_in[...])
    h_BTF = recompute_in_backward(ACTIVATIONS[self.activation])(h_BTF)
    y_BTD = h_BTF @ self.w_out[...].astype(dt)
    if self.b_out is not None:
      y_BTD = add_bias(y_BTD, self.b_out[...])
    return y_BTD
