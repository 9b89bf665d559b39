"""The HLO kernel byte counts behind `benchmarks/h100_hlo.py`, on HLO compiled here for CPU."""

import jax
import jax.numpy as jnp

from benchmarks import hlo_kernels


def test_a_fusion_is_charged_what_it_reads_and_writes():
  def step(table, rows, wide, x):
    return (jnp.take(table, rows, axis=0) * 2.0,   # gathers 8 of 4096 rows
            wide[:, :64] + 1.0,                     # slices 64 of 1024 columns
            jnp.exp(x) * 3.0)                       # reads x whole

  args = (jnp.ones((4096, 1024)), jnp.arange(8), jnp.ones((256, 1024)), jnp.ones((512, 256)))
  text = jax.jit(step).lower(*args).compile().as_text()
  by_shape = {k["shape"]: k["bytes"] for k in hlo_kernels.kernels(text)}
  f32 = 4
  assert by_shape["f32[8,1024]"] == 2 * 8 * 1024 * f32 + 8 * 4   # rows read + written + indices
  assert by_shape["f32[256,64]"] == 2 * 256 * 64 * f32
  assert by_shape["f32[512,256]"] == 2 * 512 * 256 * f32
