"""Numerics for speed and precision, kept apart so that the model files read like the paper.

Each function computes what its plain form computes; what differs is what the backward pass
saves, the precision its sums accumulate in, or the form XLA's compiler is shown. Why each
exists (the measurements are in benchmarks/README.md):

* `layer_norm`: LayerNorm over [tokens, features] with a closed-form backward. Autodiff of the
  formula let XLA recompute the row statistics inside every consumer, and the scale gradient
  (a column sum) then needed dy * xhat written out in float32; this backward saves x and the
  float32 statistics and sums both parameter gradients in one float32 reduction. Normalising
  a [tokens, features] view rather than [batch, time, features] spares XLA's GPU layout
  assignment a transpose of every norm's activations.
* `add_bias`: a bias add that XLA folds into the GEMM before it (a GPU GEMM epilogue), with
  the bias gradient, a sum over every token, accumulated in float32 (in bfloat16 it drifts).
* `add_bias_in_float32`: the same precision for a bias over several trailing axes (the fused
  QKV bias), whose broadcast the GPU GEMM rewriter would otherwise take as an extra operand.
* `separate_qkv_projection`: queries, keys and values as three GEMMs over a [tokens, features]
  view, each with its own bias add, instead of one fused QKV einsum and three slices of its
  output (`execution.separate_qkv`): on GPUs it moves fewer bytes through fusions; its effect on
  step time is not settled.
* `recompute_in_backward`: runs an elementwise function (the MLP's activation) under
  `jax.checkpoint`, so the backward keeps its input alone instead of its intermediates.
* `cross_entropy`: the token loss and the log-normaliser (for a z-loss), with a backward that
  saves only the logits (in their dtype) and the float32 log-normaliser, and writes the logits'
  gradient straight in their dtype: no float32 copy of the [B, T, V] logits is ever stored.
  `cross_entropy_unfused` is the plain Optax form, the reference it is tested against.
* `one_pass_logsumexp`: the log-normaliser as one reduction over the logits instead of two
  (max, then sum); used on GPUs only when `execution.one_pass_logsumexp` is set (on XLA's CPU
  backend the two-pass form is faster).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def _layer_norm_parts(
  x_ND: jax.Array, scale_D: jax.Array, bias_D: jax.Array | None, eps: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """y (x's dtype) and the float32 per-row mean and 1/std, [N, 1], of [N, D] rows."""
  x32_ND = x_ND.astype(jnp.float32)
  mean_N1 = x32_ND.mean(-1, keepdims=True)
  rstd_N1 = jax.lax.rsqrt(jnp.square(x32_ND - mean_N1).mean(-1, keepdims=True) + eps)
  y_ND = (x32_ND - mean_N1) * rstd_N1 * scale_D.astype(jnp.float32)
  if bias_D is not None:
    y_ND = y_ND + bias_D.astype(jnp.float32)
  return y_ND.astype(x_ND.dtype), mean_N1, rstd_N1


def _normalised_rows(
  x_ND: jax.Array, scale_D: jax.Array, bias_D: jax.Array | None, eps: float
) -> jax.Array:
  return _layer_norm_parts(x_ND, scale_D, bias_D, eps)[0]


_layer_norm_rows = jax.custom_vjp(_normalised_rows, nondiff_argnums=(3,))


def _layer_norm_fwd(x_ND, scale_D, bias_D, eps):
  y_ND, mean_N1, rstd_N1 = _layer_norm_parts(x_ND, scale_D, bias_D, eps)
  # bias_D is kept for its dtype and None-ness only ([D], negligible).
  return y_ND, (x_ND, mean_N1, rstd_N1, scale_D, bias_D)


def _layer_norm_bwd(eps, res, dy_ND):
  del eps
  x_ND, mean_N1, rstd_N1, scale_D, bias_D = res
  # The barrier makes the forward write the statistics out, so that the column sums below are
  # plain elementwise-then-reduce fusions over x and dy.
  mean_N1, rstd_N1 = jax.lax.optimization_barrier((mean_N1, rstd_N1))
  dy32_ND = dy_ND.astype(jnp.float32)
  xhat_ND = (x_ND.astype(jnp.float32) - mean_N1) * rstd_N1
  g_ND = dy32_ND * scale_D.astype(jnp.float32)
  dx_ND = rstd_N1 * (
    g_ND - g_ND.mean(-1, keepdims=True) - xhat_ND * (g_ND * xhat_ND).mean(-1, keepdims=True)
  )
  if bias_D is None:
    return dx_ND.astype(x_ND.dtype), (dy32_ND * xhat_ND).sum(0).astype(scale_D.dtype), None
  # Both column sums as one reduction of [N, 2, D]: one pass over x and dy.
  d_2D = jnp.stack([dy32_ND * xhat_ND, dy32_ND], axis=1).sum(0)
  return (dx_ND.astype(x_ND.dtype), d_2D[0].astype(scale_D.dtype), d_2D[1].astype(bias_D.dtype))


_layer_norm_rows.defvjp(_layer_norm_fwd, _layer_norm_bwd)


def layer_norm(x: jax.Array, scale_D: jax.Array, bias_D: jax.Array | None, eps: float) -> jax.Array:
  """LayerNorm over the last axis of `x` in float32, output in x's dtype."""
  return _layer_norm_rows(x.reshape(-1, x.shape[-1]), scale_D, bias_D, eps).reshape(x.shape)


@jax.custom_vjp
def add_bias(x: jax.Array, b: jax.Array) -> jax.Array:
  """x + b in x's dtype, with b's gradient summed in float32."""
  return x + b.astype(x.dtype)


def _add_bias_forward(x, b):
  return add_bias(x, b), jnp.zeros((0,) * b.ndim, b.dtype)  # only b's rank and dtype


def _add_bias_backward(b_empty, g):
  g_b = jnp.sum(g, axis=tuple(range(g.ndim - b_empty.ndim)), dtype=jnp.float32)
  return g, g_b.astype(b_empty.dtype)


add_bias.defvjp(_add_bias_forward, _add_bias_backward)


def add_bias_in_float32(x: jax.Array, b: jax.Array) -> jax.Array:
  """x + b computed in float32, rounded once to x's dtype; its gradient sums in float32."""
  return (x.astype(jnp.float32) + b.astype(jnp.float32)).astype(x.dtype)


def separate_qkv_projection(
  x_BTD: jax.Array, w_DCNH: jax.Array, b_CNH: jax.Array | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Queries, keys and values [B, T, N, H] from the fused QKV weights [D, 3, N, H] (in x's
  dtype) and biases [3, N, H], as three GEMMs over a [tokens, features] view."""
  B, T, D = x_BTD.shape
  x_RD = x_BTD.reshape(B * T, D)

  def project(c: int) -> jax.Array:
    y_RF = x_RD @ w_DCNH[:, c].reshape(D, -1)
    if b_CNH is not None:
      y_RF = add_bias(y_RF, b_CNH[c].reshape(-1))
    return y_RF.reshape(B, T, *w_DCNH.shape[2:])

  return project(0), project(1), project(2)


def recompute_in_backward(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
  """`fn`, with the backward recomputing it from its input instead of saving intermediates."""
  return jax.checkpoint(fn)


def one_pass_logsumexp(x: jax.Array) -> jax.Array:
  """logsumexp over the last axis in one read: a running (max, sum of exp(x - max)) pair."""

  def combine(a, b):
    (ma, sa), (mb, sb) = a, b
    e = jnp.exp(-jnp.abs(ma - mb))
    return jnp.maximum(ma, mb), jnp.where(ma >= mb, sa + sb * e, sb + sa * e)

  lowest = jnp.float32(jnp.finfo(jnp.float32).min)
  m, s = jax.lax.reduce((x, jnp.ones_like(x)), (lowest, jnp.float32(0)), combine, (x.ndim - 1,))
  return m + jnp.log(s)


def _logsumexp(x: jax.Array, one_pass: bool) -> jax.Array:
  two_pass = functools.partial(jax.nn.logsumexp, axis=-1)
  if not one_pass:
    return two_pass(x)
  # Chosen by the platform the step is lowered for, so that a compile for a GPU on a machine
  # without one gets the GPU form.
  return jax.lax.platform_dependent(
    x, cuda=one_pass_logsumexp, rocm=one_pass_logsumexp, default=two_pass
  )


def _nll_and_lse(logits_BTV, targets_BT, one_pass):
  lse_BT = _logsumexp(logits_BTV.astype(jnp.float32), one_pass)
  target_BT = jnp.take_along_axis(logits_BTV, targets_BT[..., None], axis=-1)[..., 0]
  return lse_BT - target_BT.astype(jnp.float32), lse_BT


def _cross_entropy(
  logits_BTV: jax.Array, targets_BT: jax.Array, one_pass_lse: bool = False
) -> tuple[jax.Array, jax.Array]:
  return _nll_and_lse(logits_BTV, targets_BT, one_pass_lse)


# Per-token negative log-likelihood and log-normaliser, both [B, T] in float32, with a
# memory-lean backward.
cross_entropy = jax.custom_vjp(_cross_entropy, nondiff_argnums=(2,))


def _cross_entropy_forward(logits_BTV, targets_BT, one_pass_lse):
  nll_BT, lse_BT = _nll_and_lse(logits_BTV, targets_BT, one_pass_lse)
  return (nll_BT, lse_BT), (logits_BTV, targets_BT, lse_BT)


def _cross_entropy_backward(one_pass_lse, residuals, cotangents):
  del one_pass_lse
  logits_BTV, targets_BT, lse_BT = residuals
  g_nll_BT, g_lse_BT = cotangents
  probs_BTV = jnp.exp(logits_BTV.astype(jnp.float32) - lse_BT[..., None])
  onehot_BTV = jax.nn.one_hot(targets_BT, logits_BTV.shape[-1], dtype=jnp.float32)
  # d nll / d logits = probs - onehot; d lse / d logits = probs.
  g_BTV = probs_BTV * (g_nll_BT + g_lse_BT)[..., None] - onehot_BTV * g_nll_BT[..., None]
  return g_BTV.astype(logits_BTV.dtype), None


cross_entropy.defvjp(_cross_entropy_forward, _cross_entropy_backward)


def cross_entropy_unfused(
  logits_BTV: jax.Array, targets_BT: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The same (loss, log-normaliser) through Optax and autodiff (float32 logits kept for the
  backward)."""
  logits32_BTV = logits_BTV.astype(jnp.float32)
  return (
    optax.softmax_cross_entropy_with_integer_labels(logits32_BTV, targets_BT),
    jax.nn.logsumexp(logits32_BTV, axis=-1),
  )
