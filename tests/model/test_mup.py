import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs import base
from lm.model import mup
from lm.model.config import TransformerConfig
from lm.model.transformer import DecoderLM
from lm.runtime import sharding
from lm.training import optim

LLAMA = {
  "position": "rotary",
  "norm": "rmsnorm",
  "mlp": "swiglu",
  "num_kv_heads": 2,
  "qk_norm": True,
  "use_bias": False,
  "tie_embeddings": False,
}
BLOCKS = [{}, {"tie_embeddings": False}, LLAMA]


def _cfg(**kw):
  base_kw = {
    "vocab_size": 64,
    "num_layers": 2,
    "num_heads": 4,
    "d_model": 48,
    "mlp_dim": 192,
    "max_seq_len": 16,
  }
  return TransformerConfig(**{**base_kw, **kw})


def _mup(cfg, base_width, base_head_dim=None):
  return dataclasses.replace(
    cfg,
    parametrization="mup",
    base_width=base_width,
    base_head_dim=base_head_dim or base_width // cfg.num_heads,
  )


def _axes(model):
  return sharding.logical_axes(nnx.state(model))


@pytest.mark.parametrize("kw", BLOCKS)
def test_mup_at_base_width_is_the_standard_model(kw):
  standard = _cfg(**kw)
  a = DecoderLM(standard, rngs=nnx.Rngs(0))
  b = DecoderLM(_mup(standard, standard.d_model), rngs=nnx.Rngs(0))
  jax.tree.map(
    np.testing.assert_array_equal, nnx.to_pure_dict(nnx.state(a)), nnx.to_pure_dict(nnx.state(b))
  )
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)
  np.testing.assert_array_equal(a(tokens), b(tokens))
  assert set(jax.tree.leaves(mup.lr_multipliers(b.cfg, _axes(b)))) == {1.0}


@pytest.mark.parametrize("kw", BLOCKS)
def test_roles_and_learning_rate_multipliers(kw):
  cfg = _mup(_cfg(d_model=96, mlp_dim=384, **kw), base_width=24)  # m = 4
  model = DecoderLM(cfg, rngs=nnx.Rngs(0))
  axes = _axes(model)
  multipliers = mup.lr_multipliers(cfg, axes)
  roles = jax.tree.map(mup.role, axes, is_leaf=lambda x: not isinstance(x, dict))
  block = roles["blocks"][0]
  attn = ["w_qkv"] if not kw.get("num_kv_heads") else ["w_q", "w_kv"]
  mlp = ["w_in", "w_out"] + (["w_gate"] if kw.get("mlp") == "swiglu" else [])
  assert {block["attn"][k] for k in attn + ["w_out"]} == {"hidden"}
  assert {block["mlp"][k] for k in mlp} == {"hidden"}
  assert roles["embed"] == "embedding" and block["norm_attn"]["scale"] == "vector"
  if "head" in roles:
    assert roles["head"] == "output" and multipliers["head"] == 1.0
  for path, role in jax.tree_util.tree_leaves_with_path(roles):
    factor = multipliers
    for key in path:
      factor = factor[key.key]
    assert factor == (0.25 if role == "hidden" else 1.0), (path, role)


def test_initialisation_scales_hidden_matrices_only():
  standard = _cfg(d_model=256, mlp_dim=1024, num_heads=4, vocab_size=512)
  sp = nnx.to_pure_dict(nnx.state(DecoderLM(standard, rngs=nnx.Rngs(0))))
  mp = nnx.to_pure_dict(nnx.state(DecoderLM(_mup(standard, 64), rngs=nnx.Rngs(0))))  # m = 4

  def ratio(f):
    return float(jnp.std(f(mp)) / jnp.std(f(sp)))

  assert ratio(lambda p: p["embed"]) == pytest.approx(1.0)
  for f in (lambda p: p["blocks"][0]["attn"]["w_qkv"], lambda p: p["blocks"][0]["mlp"]["w_out"]):
    assert ratio(f) == pytest.approx(0.5)  # 1 / sqrt(m)


@pytest.mark.parametrize("tie", [True, False])
def test_output_logits_are_divided_by_the_width_multiplier(tie):
  cfg = _mup(_cfg(tie_embeddings=tie), base_width=12)  # m = 4
  model = DecoderLM(cfg, rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)
  x_BTD, _ = model.final_hidden_states(tokens)
  head_DV = model.embed[...].T if tie else model.head[...]
  np.testing.assert_allclose(model(tokens), x_BTD @ head_DV / 4, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("base_width", [48, 12])  # m = 1, 4
def test_the_output_multiplier_scales_the_logits_at_every_width(base_width):
  cfg = _mup(_cfg(), base_width=base_width)
  tuned = dataclasses.replace(cfg, mup_output_multiplier=8.0)
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)
  logits = DecoderLM(cfg, rngs=nnx.Rngs(0))(tokens)
  np.testing.assert_allclose(DecoderLM(tuned, rngs=nnx.Rngs(0))(tokens), 8 * logits, rtol=1e-5)


def test_attention_scale_is_sqrt_base_head_dim_over_head_dim():
  cfg = _cfg(d_model=256, num_heads=4)  # head_dim 64
  assert mup.attention_scale(cfg) == 1 / 8
  assert mup.attention_scale(_mup(cfg, 64, base_head_dim=16)) == pytest.approx(4 / 64)
  assert mup.attention_scale(_mup(cfg, 256, base_head_dim=64)) == 1 / 8


@pytest.mark.parametrize("kw", BLOCKS + [{"num_kv_heads": 2}])
def test_attention_uses_the_scale_with_and_without_a_cache(kw):
  # Scaling the logits by 2 (base_head_dim = 4 head_dim) is scaling the queries by 2.
  standard = _cfg(**kw)
  doubled = _mup(standard, standard.d_model, base_head_dim=4 * standard.head_dim)
  model = DecoderLM(doubled, rngs=nnx.Rngs(0))
  reference = DecoderLM(standard, rngs=nnx.Rngs(0))
  for block in reference.blocks:
    attn = block.attn
    if attn.q_norm is not None:  # the norm would undo a scaled projection; its gain does not
      attn.q_norm.scale[...] = attn.q_norm.scale[...] * 2
    elif hasattr(attn, "w_qkv"):
      attn.w_qkv[...] = attn.w_qkv[...].at[:, 0].multiply(2)
      attn.b_qkv[...] = attn.b_qkv[...].at[0].multiply(2)
    else:
      attn.w_q[...] = attn.w_q[...] * 2
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)
  expected = reference(tokens)
  assert not np.allclose(expected, DecoderLM(standard, rngs=nnx.Rngs(0))(tokens), atol=1e-4)
  np.testing.assert_allclose(model(tokens), expected, rtol=1e-5, atol=1e-5)
  cached, _ = model(tokens, cache=model.init_cache(2, 16))
  np.testing.assert_allclose(cached, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["adamw", "lion", "adafactor"])
def test_updates_of_hidden_matrices_are_divided_by_the_width_multiplier(name):
  cfg = _mup(_cfg(d_model=96, mlp_dim=384), base_width=24)  # m = 4
  model = DecoderLM(cfg, rngs=nnx.Rngs(0))
  params = nnx.to_pure_dict(nnx.state(model))
  axes = _axes(model)
  grads = jax.tree.map(lambda p: jnp.ones_like(p) * 0.3, params)
  o = base.get_config().optim
  o.update(
    name=name,
    schedule="constant",
    warmup_steps=0,
    learning_rate=0.01,
    weight_decay=0.1,
    grad_clip_norm=0.0,
  )
  plain, _ = optim.make_optimizer(o, 10, axes)
  scaled, _ = optim.make_optimizer(o, 10, axes, mup.lr_multipliers(cfg, axes))
  u_plain, _ = plain.update(grads, plain.init(params), params)
  u_scaled, _ = scaled.update(grads, scaled.init(params), params)
  np.testing.assert_allclose(
    u_scaled["blocks"][1]["mlp"]["w_in"], u_plain["blocks"][1]["mlp"]["w_in"] / 4, rtol=1e-6
  )
  for path in (("embed",), ("norm_out", "scale"), ("blocks", 0, "attn", "b_qkv")):
    a, b = u_scaled, u_plain
    for key in path:
      a, b = a[key], b[key]
    np.testing.assert_array_equal(a, b)


def test_muon_is_refused_under_mup():
  cfg = _mup(_cfg(d_model=96, mlp_dim=384), base_width=24)
  model = DecoderLM(cfg, rngs=nnx.Rngs(0))
  o = base.get_config().optim
  o.name = "muon"
  with pytest.raises(ValueError, match=r"config\.optim\.name='muon' has no μP"):
    optim.make_optimizer(o, 10, _axes(model), mup.lr_multipliers(cfg, _axes(model)))


def test_mup_is_for_decoder_language_models():
  from lm.model.transformer import make_model

  with pytest.raises(ValueError, match="decoder language models only"):
    make_model(_mup(_cfg(kind="encoder", norm_position="post"), 24), rngs=nnx.Rngs(0))
