import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import base
from lm.runs import metrics
from lm.training import optim


def _cfg(**kw):
  c = base.get_config().optim
  c.update(kw)
  return c


def test_warmup_then_cosine_to_final_ratio():
  s = optim.make_schedule(
    _cfg(schedule="cosine", warmup_steps=10, learning_rate=1.0, final_lr_ratio=0.1), 110
  )
  assert float(s(0)) == 0.0 and np.isclose(float(s(10)), 1.0)
  assert np.isclose(float(s(60)), 0.55, atol=1e-3) and np.isclose(float(s(110)), 0.1)


def test_wsd_is_flat_then_decays_over_the_last_fraction():
  s = optim.make_schedule(
    _cfg(
      schedule="wsd", warmup_steps=10, learning_rate=1.0, final_lr_ratio=0.0, wsd_decay_fraction=0.2
    ),
    100,
  )
  assert np.isclose(float(s(50)), 1.0) and np.isclose(float(s(80)), 1.0)
  assert np.isclose(float(s(90)), 0.5) and np.isclose(float(s(100)), 0.0)


def test_wsd_sqrt_cools_down_as_one_minus_sqrt_to_the_floor():
  s = optim.make_schedule(
    _cfg(
      schedule="wsd_sqrt",
      warmup_steps=10,
      learning_rate=1.0,
      final_lr_ratio=0.1,
      wsd_decay_fraction=0.2,
    ),
    100,
  )
  assert np.isclose(float(s(80)), 1.0)
  assert np.isclose(float(s(85)), 0.1 + 0.9 * (1 - 0.5))  # a quarter of the way: 1 - sqrt(1/4)
  assert np.isclose(float(s(100)), 0.1)


@pytest.mark.parametrize("name, mid", [("constant", 1.0), ("linear", 0.5)])
def test_constant_and_linear(name, mid):
  s = optim.make_schedule(
    _cfg(schedule=name, warmup_steps=0, learning_rate=1.0, final_lr_ratio=0.0), 100
  )
  assert np.isclose(float(s(50)), mid)


def test_weight_decay_skips_vectors():
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
  assert optim.decay_mask(params) == {"w": True, "b": False}


def test_muon_takes_the_blocks_hidden_matrices_and_leaves_the_rest_to_adamw():
  from flax import nnx

  from lm.model.config import TransformerConfig
  from lm.model.transformer import make_model
  from lm.runtime import sharding

  cfg = TransformerConfig(
    vocab_size=64,
    num_layers=1,
    num_heads=4,
    d_model=32,
    mlp_dim=64,
    max_seq_len=16,
    num_kv_heads=2,
    mlp="swiglu",
    tie_embeddings=False,
  )
  state = nnx.state(nnx.eval_shape(lambda: make_model(cfg, rngs=nnx.Rngs(0))))
  dims = optim.muon_dimensions(sharding.logical_axes(state))
  block = dims["blocks"][0]

  def as_tuple(d):
    return (tuple(d.reduction_axis), tuple(d.output_axis))

  assert as_tuple(block["attn"]["w_q"]) == ((0,), (1, 2))  # [D, N, H]
  assert as_tuple(block["attn"]["w_kv"]) == ((0,), (2, 3))  # [D, 2, K, H]: k, v apart
  assert as_tuple(block["attn"]["w_out"]) == ((0, 1), (2,))  # [N, H, D]
  for name in ("w_in", "w_gate"):
    assert as_tuple(block["mlp"][name]) == ((0,), (1,))
  assert as_tuple(block["mlp"]["w_out"]) == ((0,), (1,))
  assert dims["embed"] is None and dims["head"] is None and dims["norm_out"]["scale"] is None
  assert block["norm_attn"]["scale"] is None and block["mlp"]["b_in"] is None


@pytest.mark.parametrize(
  "name, learning_rate", [("muon", 0.02), ("adafactor", 1e-2), ("lion", 3e-4)]
)
def test_each_optimizer_learns_and_resumes_bitwise(tiny_config, tmp_path, name, learning_rate):
  import jax

  from lm.runtime import sharding
  from lm.training import loop

  tiny_config.optim.name = name
  tiny_config.optim.learning_rate = learning_rate
  tiny_config.optim.adam_learning_rate = 3e-3
  tiny_config.model.dropout = 0.0
  tiny_config.train.steps = 12
  tiny_config.train.eval_every = 100
  tiny_config.train.checkpoint_every = 100
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  straight = loop.train_and_evaluate(tiny_config, str(tmp_path / "straight"), mesh)
  tiny_config.train.stop_after_steps = 6
  loop.train_and_evaluate(tiny_config, str(tmp_path / "resumed"), mesh)
  resumed = loop.train_and_evaluate(tiny_config, str(tmp_path / "resumed"), mesh)
  assert resumed["start_step"] == 6 and resumed["step"] == 12
  jax.tree.map(
    np.testing.assert_array_equal,
    sharding.host_copy(resumed["state"].params),
    sharding.host_copy(straight["state"].params),
  )
  losses = [
    row["loss"] for row in metrics.read_metrics(str(tmp_path / "straight")) if "loss" in row
  ]
  assert np.mean(losses[-3:]) < losses[0] - 0.05, losses


@pytest.mark.parametrize(
  "fields, names",
  [
    ({"name": "adamw"}, None),
    ({"name": "adafactor"}, None),
    ({"name": "muon"}, "--config.optim.learning_rate=0.02 --config.optim.adam_learning_rate"),
    ({"name": "muon", "learning_rate": 0.02}, "--config.optim.adam_learning_rate=0.001"),
    ({"name": "muon", "learning_rate": 0.02, "adam_learning_rate": 1e-3}, None),
    ({"name": "lion"}, "--config.optim.learning_rate=1e-4 --config.optim.weight_decay"),
    ({"name": "lion", "learning_rate": 1e-4}, None),
  ],
)
def test_a_learning_rate_of_another_optimizers_scale_warns_naming_the_fields(fields, names):
  warning = optim.learning_rate_warning(_cfg(**fields))
  assert warning == names if names is None else names in warning and "\n" not in warning


def test_a_run_logs_the_learning_rate_warning(tiny_config, caplog):
  import jax

  from lm.runtime import sharding
  from lm.training import experiment

  tiny_config.optim.name = "muon"
  with caplog.at_level("WARNING", logger="lm.training.experiment"):
    experiment.build(tiny_config, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  assert [r.getMessage() for r in caplog.records] == [
    optim.learning_rate_warning(tiny_config.optim)
  ]
