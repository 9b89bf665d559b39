import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lm import sampling
from lm.model.transformer import DecoderLM, TransformerConfig


def _model():
  cfg = TransformerConfig(vocab_size=64, num_layers=2, num_heads=4, d_model=32, mlp_dim=64,
                          max_seq_len=8)
  return nnx.split(DecoderLM(cfg, rngs=nnx.Rngs(0)))


def test_greedy_equals_argmax_of_full_forward_and_slides_past_the_context():
  graphdef, params = _model()
  model = nnx.merge(graphdef, params)
  prompt = jnp.asarray([[1, 2, 3]], jnp.int32)
  out = sampling.generate(graphdef, params, prompt, jax.random.key(0), max_new_tokens=9,
                          temperature=0.0)
  assert out.shape == (1, 12)
  for i in range(3, 12):
    ctx = out[:, max(0, i - 8):i]
    assert int(out[0, i]) == int(jnp.argmax(model(ctx)[0, -1]))


def test_top_k_and_vocab_limit_restrict_the_choices():
  logits = jnp.log(jnp.asarray([[0.1, 0.2, 0.3, 0.4] * 2]))
  draws = jax.vmap(lambda k: sampling.sample_logits(logits, k, 1.0, 2))(
      jax.random.split(jax.random.key(0), 200))
  assert set(np.unique(draws).tolist()) <= {3, 7}
  graphdef, params = _model()
  out = sampling.generate(graphdef, params, jnp.zeros((4, 1), jnp.int32), jax.random.key(1),
                          max_new_tokens=20, temperature=2.0, vocab_limit=5)
  assert int(out.max()) < 5
