import jax
import jax.numpy as jnp
import numpy as np

from lm.data.mlm import mask_tokens
from lm.training.objectives import Objective, batch_sums


def test_masking_statistics_are_15_80_10_10():
  tokens = jax.random.randint(jax.random.key(0), (64, 512), 0, 1000)
  inputs, selected = mask_tokens(jax.random.key(1), tokens, mask_id=1000, num_random=1000)
  inputs, selected, tokens = map(np.asarray, (inputs, selected, tokens))
  n = selected.sum()
  assert abs(n / tokens.size - 0.15) < 0.005
  masked = (inputs == 1000) & selected
  replaced = (inputs != 1000) & (inputs != tokens) & selected
  kept = (inputs == tokens) & selected
  assert abs(masked.sum() / n - 0.8) < 0.01
  assert abs(replaced.sum() / n - 0.1) < 0.01  # a random id equal to the original: 1/1000
  assert abs(kept.sum() / n - 0.1) < 0.01
  np.testing.assert_array_equal(inputs[~selected], tokens[~selected])


def test_masking_never_selects_unmaskable_positions():
  tokens = jnp.ones((8, 64), jnp.int32)
  maskable = jnp.arange(64)[None, :] < 32
  _, selected = mask_tokens(
    jax.random.key(0),
    tokens,
    mask_id=5,
    num_random=5,
    maskable_BT=jnp.broadcast_to(maskable, tokens.shape),
  )
  assert not np.asarray(selected)[:, 32:].any()


def test_mlm_loss_ignores_unselected_positions():
  obj = Objective("mlm", mask_id=9, pad_id=-1, num_random=9)
  tokens = jax.random.randint(jax.random.key(0), (4, 33), 0, 9)
  key = jax.random.key(3)
  _, selected = mask_tokens(
    key, tokens[:, :-1], mask_id=9, num_random=9, maskable_BT=tokens[:, :-1] != -1
  )
  selected = np.asarray(selected)
  noise = np.asarray(jax.random.normal(jax.random.key(5), (4, 32, 10)))

  def model_with(unselected_noise):
    def model(inputs, key_mask_BT=None, rngs=None):
      del inputs, key_mask_BT, rngs
      return jnp.asarray(np.where(selected[..., None], noise, unselected_noise))

    return model

  a = batch_sums(model_with(0.0), {"tokens": tokens}, key, obj)
  b = batch_sums(model_with(100.0 * noise), {"tokens": tokens}, key, obj)
  np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
  assert float(a["weight"]) == selected.sum()
