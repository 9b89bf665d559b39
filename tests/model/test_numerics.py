import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm.model.numerics import cross_entropy, cross_entropy_unfused, layer_norm, one_pass_logsumexp


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-6), (jnp.bfloat16, 2e-2)])
def test_fused_cross_entropy_matches_optax_in_value_and_gradient(dtype, tol):
  logits = (3 * jax.random.normal(jax.random.key(0), (2, 5, 37))).astype(dtype)
  targets = jax.random.randint(jax.random.key(1), (2, 5), 0, 37)
  weights = jax.random.uniform(jax.random.key(2), (2, 5))

  def f(fn):  # cross-entropy plus a z-loss, so that both outputs' gradients count
    def loss(x):
      nll, lse = fn(x, targets)
      return (nll * weights).sum() + 0.1 * (jnp.square(lse) * weights).sum()

    return loss

  for fused, ref in zip(cross_entropy(logits, targets), cross_entropy_unfused(logits, targets)):
    np.testing.assert_allclose(fused, ref, rtol=tol, atol=tol)
  g_fused, g_ref = jax.grad(f(cross_entropy))(logits), jax.grad(f(cross_entropy_unfused))(logits)
  assert g_fused.dtype == dtype
  np.testing.assert_allclose(
    g_fused.astype(jnp.float32), g_ref.astype(jnp.float32), rtol=tol, atol=tol
  )


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 1e-3)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_layer_norm_closed_form_backward_matches_autodiff(dtype, tol, use_bias):
  def layer_norm_reference(x, scale, bias, eps):
    x32 = x.astype(jnp.float32)
    xhat = (x32 - x32.mean(-1, keepdims=True)) / jnp.sqrt(x32.var(-1, keepdims=True) + eps)
    return (xhat * scale + (0.0 if bias is None else bias)).astype(x.dtype)

  k = jax.random.split(jax.random.key(0), 4)
  # An offset and a spread unlike 0 and 1, and random cotangents, so that every term of the
  # closed form (the mean of g, xhat times the mean of g * xhat) changes the result.
  x_ND = (3.0 + 2.0 * jax.random.normal(k[0], (512, 96))).astype(dtype)
  scale_D = 1.0 + 0.3 * jax.random.normal(k[1], (96,))
  bias_D = 0.1 * jax.random.normal(k[2], (96,)) if use_bias else None
  w_ND = jax.random.normal(k[3], (512, 96))

  def value_and_grads(fn):
    def loss(x, s, b):
      return (fn(x, s, b, 1e-5).astype(jnp.float32) * w_ND).sum()

    return fn(x_ND, scale_D, bias_D, 1e-5), jax.jit(jax.grad(loss, (0, 1, 2)))(
      x_ND, scale_D, bias_D
    )

  y, grads = value_and_grads(layer_norm)
  y_ref, grads_ref = value_and_grads(layer_norm_reference)
  np.testing.assert_allclose(
    np.asarray(y, np.float32), np.asarray(y_ref, np.float32), rtol=tol, atol=tol
  )
  assert (grads[2] is None) == (not use_bias)
  for g, g_ref in zip(grads, grads_ref):
    if g_ref is None:
      continue
    assert g.dtype == g_ref.dtype
    g32, g32_ref = np.asarray(g, np.float32), np.asarray(g_ref, np.float32)
    assert np.linalg.norm(g32 - g32_ref) / np.linalg.norm(g32_ref) < tol


def test_one_pass_logsumexp_matches_two_passes():
  x = 3 * jax.random.normal(jax.random.key(0), (4, 1000))
  # Rows far from zero either way, and one whose maximum comes last, so that both branches of
  # the running combine (a new maximum, an old one) carry the result.
  x = x.at[0].add(1e4).at[1].add(-1e4).at[2, -1].set(50.0)
  np.testing.assert_allclose(one_pass_logsumexp(x), jax.nn.logsumexp(x, axis=-1), rtol=1e-6)
