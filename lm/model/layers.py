"""Parameter constructors with logical axis names, LayerNorm and the MLP."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def normal_param(rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str | None, ...],
                 std: float, dtype) -> nnx.Param:
  """A parameter drawn from N(0, std^2), tagged with its logical axis names."""
  return nnx.Param(std * jax.random.normal(rngs.params(), shape, dtype), logical_axes=axes)


def const_param(shape: tuple[int, ...], axes: tuple[str | None, ...], value: float,
                dtype) -> nnx.Param:
  """A parameter filled with `value`, tagged with its logical axis names."""
  return nnx.Param(jnp.full(shape, value, dtype), logical_axes=axes)


def _layer_norm_parts(x_ND: jax.Array, scale_D: jax.Array, bias_D: jax.Array | None,
                      eps: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """y (x's dtype) and the float32 per-row mean and 1/std, [N, 1], of [N, D] rows."""
  x32_ND = x_ND.astype(jnp.float32)
  mean_N1 = x32_ND.mean(-1, keepdims=True)
  rstd_N1 = jax.lax.rsqrt(jnp.square(x32_ND - mean_N1).mean(-1, keepdims=True) + eps)
  y_ND = (x32_ND - mean_N1) * rstd_N1 * scale_D.astype(jnp.float32)
  if bias_D is not None:
    y_ND = y_ND + bias_D.astype(jnp.float32)
  return y_ND.astype(x_ND.dtype), mean_N1, rstd_N1


# A closed-form backward that saves x (compute dtype) and the float32 [N, 1] statistics, and
# recomputes xhat from them. In the deviceless H100 compile of the GPT-2 124M step autodiff of
# the formula gave the same fusions as this backward without the barrier below: XLA recomputed
# the statistics inside every consumer, so the dscale reduction (a column sum, which cannot hold
# a row reduction) needed dy * xhat written out as a float32 [N, D] array.
@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x_ND: jax.Array, scale_D: jax.Array, bias_D: jax.Array | None,
               eps: float) -> jax.Array:
  """LayerNorm of [N, D] rows in float32, output in x's dtype."""
  return _layer_norm_parts(x_ND, scale_D, bias_D, eps)[0]


def _layer_norm_fwd(x_ND, scale_D, bias_D, eps):
  y_ND, mean_N1, rstd_N1 = _layer_norm_parts(x_ND, scale_D, bias_D, eps)
  # bias_D is kept for its dtype and None-ness only ([D], negligible).
  return y_ND, (x_ND, mean_N1, rstd_N1, scale_D, bias_D)


def _layer_norm_bwd(eps, res, dy_ND):
  del eps
  x_ND, mean_N1, rstd_N1, scale_D, bias_D = res
  # The barrier makes the forward write the statistics out, so that the column sums below are
  # plain elementwise-then-reduce fusions over x and dy (deviceless H100 compile of the 124M
  # step: 104.7 -> 101.0 GB at kernel boundaries; not yet timed on a GPU).
  mean_N1, rstd_N1 = jax.lax.optimization_barrier((mean_N1, rstd_N1))
  dy32_ND = dy_ND.astype(jnp.float32)
  xhat_ND = (x_ND.astype(jnp.float32) - mean_N1) * rstd_N1
  g_ND = dy32_ND * scale_D.astype(jnp.float32)
  dx_ND = rstd_N1 * (g_ND - g_ND.mean(-1, keepdims=True)
                     - xhat_ND * (g_ND * xhat_ND).mean(-1, keepdims=True))
  # Summed over every token in float32 (in bfloat16 a sum over 32k tokens drifts by percent).
  if bias_D is None:
    return dx_ND.astype(x_ND.dtype), (dy32_ND * xhat_ND).sum(0).astype(scale_D.dtype), None
  # Both column sums as one reduction of [N, 2, D]: one pass over x and dy where two sibling
  # reductions read dy twice (XLA did not merge them).
  d_2D = jnp.stack([dy32_ND * xhat_ND, dy32_ND], axis=1).sum(0)
  return (dx_ND.astype(x_ND.dtype), d_2D[0].astype(scale_D.dtype),
          d_2D[1].astype(bias_D.dtype))


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


class LayerNorm(nnx.Module):
  """LayerNorm over the last axis, computed in float32."""

  def __init__(self, dim: int, *, eps: float, use_bias: bool, param_dtype):
    self.eps = eps
    self.scale = const_param((dim,), ("embed",), 1.0, param_dtype)
    self.bias = const_param((dim,), ("embed",), 0.0, param_dtype) if use_bias else None

  def __call__(self, x: jax.Array) -> jax.Array:
    # Normalised as [tokens, features]: with the batch and time axes apart, XLA's GPU layout
    # assignment transposed every LayerNorm's activations to put the batch axis minor.
    bias_D = None if self.bias is None else self.bias[...]
    y_ND = layer_norm(x.reshape(-1, x.shape[-1]), self.scale[...], bias_D, self.eps)
    return y_ND.reshape(x.shape)


# 'gelu_tanh': the tanh approximation (GPT-2's 'gelu_new'); 'gelu': exact erf form (BERT).
ACTIVATIONS = {"gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
               "gelu": lambda x: jax.nn.gelu(x, approximate=False)}


@jax.custom_vjp
def add_bias(x: jax.Array, b: jax.Array) -> jax.Array:
  """x + b in x's dtype, with b's gradient summed in float32.

  The forward is the plain add, which XLA folds into the GEMM before it (a cuBLASLt BIAS or
  BIAS_GELU_AUX epilogue on GPU). The backward sums the bias gradient over every token in
  float32: autodiff of the bfloat16 add summed it in bfloat16, 6-7% off over 32k tokens on CPU.
  """
  return x + b.astype(x.dtype)


def _add_bias_forward(x, b):
  return add_bias(x, b), jnp.zeros((0,) * b.ndim, b.dtype)  # only b's rank and dtype


def _add_bias_backward(b_empty, g):
  g_b = jnp.sum(g, axis=tuple(range(g.ndim - b_empty.ndim)), dtype=jnp.float32)
  return g, g_b.astype(b_empty.dtype)


add_bias.defvjp(_add_bias_forward, _add_bias_backward)


def add_bias_in_float32(x: jax.Array, b: jax.Array) -> jax.Array:
  """x + b computed in float32, rounded once to x's dtype; its gradient sums in float32.

  For a bias over several trailing axes (the [3, N, H] QKV bias): XLA's GPU GEMM rewriter
  would take `add_bias`'s broadcast as a whole extra GEMM operand, while this form stays in
  the fusion that reads the GEMM's output (the q/k/v slices).
  """
  return (x.astype(jnp.float32) + b.astype(jnp.float32)).astype(x.dtype)


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
    # Under jax.checkpoint the backward recomputes the activation from its input, where autodiff
    # would keep the tanh-GELU's four intermediates as more [B, T, F] tensors per layer
    # (benchmarks/cpu_levers.md). Then the GEMM can write both the pre-activation and the
    # activation in one pass (cuBLASLt's BIAS_GELU_AUX epilogue on GPU).
    h_BTF = jax.checkpoint(ACTIVATIONS[self.activation])(h_BTF)
    y_BTD = h_BTF @ self.w_out[...].astype(dt)
    if self.b_out is not None:
      y_BTD = add_bias(y_BTD, self.b_out[...])
    return y_BTD
