import dataclasses

import jax
import pytest

from experiments.configs import base
from lm.model import mup
from lm.model.config import TransformerConfig
from lm.scaling import coord_check

# Base width 64 (head_dim 16); the check runs widths 64 and 512 with the heads kept, so head_dim
# grows too (the command, experiments.coord_check, draws 64 to 1024).
FAMILY = TransformerConfig(
  vocab_size=64,
  num_layers=2,
  num_heads=4,
  d_model=64,
  mlp_dim=256,
  max_seq_len=16,
  position="rotary",
  base_width=64,
  base_head_dim=16,
)
FACTOR = 2.0  # flat: the largest width within this factor of the smallest


def _optim():
  o = base.get_config().optim
  o.update(
    schedule="constant", warmup_steps=0, learning_rate=3e-3, weight_decay=0.0, grad_clip_norm=0.0
  )
  return o


def _growth(parametrization: str, widths=(64, 512)) -> dict[str, float]:
  """Each activation's size at the largest width over its size at the smallest, after 3 Adam
  steps."""
  sizes = coord_check.coordinate_check(
    dataclasses.replace(FAMILY, parametrization=parametrization),
    _optim(),
    widths,
    steps=3,
    batch_size=4,
    seq_len=16,
  )
  return {k: sizes[widths[-1]][-1][k] / sizes[widths[0]][-1][k] for k in sizes[widths[0]][-1]}


@pytest.mark.slow
def test_activations_stay_flat_with_width_under_mup_and_grow_under_standard():
  flat = _growth("mup")
  assert all(1 / FACTOR < g < FACTOR for g in flat.values()), flat
  grows = _growth("standard")
  assert grows["logits"] > FACTOR and grows["block1"] > FACTOR, grows


@pytest.mark.slow
@pytest.mark.parametrize("dropped", ["hidden_init_scale", "output_multiplier", "lr_multipliers"])
def test_the_check_fails_without_any_one_multiplier(monkeypatch, dropped):
  ones = {
    "hidden_init_scale": lambda cfg: 1.0,
    "output_multiplier": lambda cfg: 1.0,
    "lr_multipliers": lambda cfg, axes: jax.tree.map(lambda _: 1.0, axes),
  }
  monkeypatch.setattr(mup, dropped, ones[dropped])
  growth = _growth("mup")
  assert max(growth.values()) > FACTOR, growth


def test_activation_sizes_follow_the_model():
  cfg = coord_check.at_width(dataclasses.replace(FAMILY, parametrization="mup"), 128)
  assert (cfg.d_model, cfg.mlp_dim, cfg.num_heads, cfg.base_width) == (128, 512, 4, 64)
  sizes = coord_check.coordinate_check(
    dataclasses.replace(FAMILY, num_layers=1), _optim(), [32], steps=1, batch_size=2, seq_len=8
  )
  assert len(sizes[32]) == 2  # at init and after the step
  assert set(sizes[32][0]) == {"embedding", "block0.attn", "block0.mlp", "block0", "logits"}
  assert sizes[32][1]["logits"] != sizes[32][0]["logits"]
