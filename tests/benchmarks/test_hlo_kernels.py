"""The HLO kernel byte counts behind `benchmarks/h100_hlo.py` and the dots behind
`benchmarks/cpu_breakdown.py`, on HLO compiled here for CPU."""

import math

import jax
import jax.numpy as jnp

from benchmarks import hlo_kernels


def test_a_fusion_is_charged_what_it_reads_and_writes():
  def step(table, rows, wide, x):
    return (
      jnp.take(table, rows, axis=0) * 2.0,  # gathers 8 of 4096 rows
      wide[:, :64] + 1.0,  # slices 64 of 1024 columns
      jnp.exp(x) * 3.0,
    )  # reads x whole

  args = (jnp.ones((4096, 1024)), jnp.arange(8), jnp.ones((256, 1024)), jnp.ones((512, 256)))
  text = jax.jit(step).lower(*args).compile().as_text()
  by_shape = {k["shape"]: k["bytes"] for k in hlo_kernels.kernels(text)}
  f32 = 4
  assert by_shape["f32[8,1024]"] == 2 * 8 * 1024 * f32 + 8 * 4  # rows read + written + indices
  assert by_shape["f32[256,64]"] == 2 * 256 * 64 * f32
  assert by_shape["f32[512,256]"] == 2 * 512 * 256 * f32


def test_dots_are_the_programs_matrix_products_at_their_shapes():
  def step(x, w, v):
    h = jnp.einsum("btd,df->btf", x, w)  # 6 x 8 x 16 x 32 multiply-adds
    return jnp.einsum("btf,bsf->bts", h, v)  # batched: 6 x 8 x 8 x 32

  args = (jnp.ones((6, 8, 16)), jnp.ones((16, 32)), jnp.ones((6, 8, 32)))
  dots = hlo_kernels.dots(jax.jit(step).lower(*args).compile().as_text())
  assert len(dots) == 2

  def flops(d):  # 2 x the output's size x the contracted size, from the dot's own dims
    (contracted, _), _ = d["dimension_numbers"]
    out = jax.eval_shape(
      lambda a, b: jax.lax.dot_general(a, b, d["dimension_numbers"]),
      jax.ShapeDtypeStruct(d["lhs"], d["dtype"]),
      jax.ShapeDtypeStruct(d["rhs"], d["dtype"]),
    )
    return 2 * out.size * math.prod(d["lhs"][i] for i in contracted)

  assert sorted(flops(d) for d in dots) == sorted([2 * 6 * 8 * 16 * 32, 2 * 6 * 8 * 8 * 32])
  assert {d["dtype"] for d in dots} == {"float32"}
