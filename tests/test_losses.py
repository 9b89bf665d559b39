import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm.losses import cross_entropy, cross_entropy_unfused


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-6), (jnp.bfloat16, 2e-2)])
def test_fused_cross_entropy_matches_optax_in_value_and_gradient(dtype, tol):
  logits = (3 * jax.random.normal(jax.random.key(0), (2, 5, 37))).astype(dtype)
  targets = jax.random.randint(jax.random.key(1), (2, 5), 0, 37)
  weights = jax.random.uniform(jax.random.key(2), (2, 5))
  f = lambda fn: lambda x: (fn(x, targets) * weights).sum()
  np.testing.assert_allclose(cross_entropy(logits, targets),
                             cross_entropy_unfused(logits, targets), rtol=tol, atol=tol)
  g_fused, g_ref = jax.grad(f(cross_entropy))(logits), jax.grad(f(cross_entropy_unfused))(logits)
  assert g_fused.dtype == dtype
  np.testing.assert_allclose(g_fused.astype(jnp.float32), g_ref.astype(jnp.float32),
                             rtol=tol, atol=tol)
