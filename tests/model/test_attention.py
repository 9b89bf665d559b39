import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lm.model.attention import rotary_frequencies
from lm.model.config import TransformerConfig
from lm.model.transformer import DecoderLM

# Head size 8: frequencies 1, 0.1, 0.01, 0.001 (wavelengths ~6, 63, 628, 6283 positions).
ROTARY = TransformerConfig(
  vocab_size=64,
  num_layers=2,
  num_heads=4,
  d_model=32,
  mlp_dim=64,
  max_seq_len=64,
  position="rotary",
)


def test_unscaled_frequencies_are_inverse_powers_of_theta():
  np.testing.assert_allclose(rotary_frequencies(ROTARY), [1, 0.1, 0.01, 0.001], rtol=1e-6)


def test_linear_scaling_is_positions_divided_by_the_factor():
  scaled = dataclasses.replace(ROTARY, rope_scaling="linear", rope_scaling_factor=2.0)
  plain_model = DecoderLM(ROTARY, rngs=nnx.Rngs(0))
  scaled_model = DecoderLM(scaled, rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)
  positions = jnp.broadcast_to(jnp.arange(16), (2, 16))
  np.testing.assert_allclose(
    scaled_model(tokens, positions_BT=2 * positions),
    plain_model(tokens, positions_BT=positions),
    rtol=0,
    atol=1e-6,
  )


def test_llama3_keeps_short_wavelengths_divides_long_ones_and_blends_between():
  scaled = dataclasses.replace(
    ROTARY,
    rope_scaling="llama3",
    rope_scaling_factor=8.0,
    rope_low_freq_factor=1.0,
    rope_high_freq_factor=4.0,
    rope_original_max_len=64,
  )
  plain, out = np.array(rotary_frequencies(ROTARY)), np.array(rotary_frequencies(scaled))
  # Wavelength 6 < 64 / 4: kept; 628 and 6283 > 64 / 1: divided; 63 in [16, 64]: between.
  assert out[0] == plain[0]
  np.testing.assert_allclose(out[2:], plain[2:] / 8, rtol=1e-6)
  assert plain[1] / 8 < out[1] < plain[1]
