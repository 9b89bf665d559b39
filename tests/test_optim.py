import jax.numpy as jnp
import numpy as np
import pytest

from lm import optim
from experiments.configs import base


def _cfg(**kw):
  c = base.get_config().optim
  c.update(kw)
  return c


def test_warmup_then_cosine_to_final_ratio():
  s = optim.make_schedule(_cfg(schedule="cosine", warmup_steps=10, learning_rate=1.0,
                               final_lr_ratio=0.1), 110)
  assert float(s(0)) == 0.0 and np.isclose(float(s(10)), 1.0)
  assert np.isclose(float(s(60)), 0.55, atol=1e-3) and np.isclose(float(s(110)), 0.1)


def test_wsd_is_flat_then_decays_over_the_last_fraction():
  s = optim.make_schedule(_cfg(schedule="wsd", warmup_steps=10, learning_rate=1.0,
                               final_lr_ratio=0.0, wsd_decay_fraction=0.2), 100)
  assert np.isclose(float(s(50)), 1.0) and np.isclose(float(s(80)), 1.0)
  assert np.isclose(float(s(90)), 0.5) and np.isclose(float(s(100)), 0.0)


@pytest.mark.parametrize("name, mid", [("constant", 1.0), ("linear", 0.5)])
def test_constant_and_linear(name, mid):
  s = optim.make_schedule(_cfg(schedule=name, warmup_steps=0, learning_rate=1.0,
                               final_lr_ratio=0.0), 100)
  assert np.isclose(float(s(50)), mid)


def test_weight_decay_skips_vectors():
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
  assert optim.decay_mask(params) == {"w": True, "b": False}
