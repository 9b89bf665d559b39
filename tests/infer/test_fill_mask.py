import numpy as np
from flax import nnx

from lm.data.tokenizer import CharTokenizer
from lm.infer.fill_mask import fill_mask
from lm.model.config import TransformerConfig
from lm.model.transformer import make_model


def test_fill_mask_ranks_ordinary_tokens_at_each_mask():
  tok = CharTokenizer("abcdefgh ")
  cfg = TransformerConfig(
    vocab_size=64,
    num_layers=2,
    num_heads=4,
    d_model=32,
    mlp_dim=64,
    max_seq_len=16,
    kind="encoder",
    norm_position="post",
    activation="gelu",
  )
  graphdef, params = nnx.split(make_model(cfg, rngs=nnx.Rngs(0)))
  out = fill_mask(graphdef, params, tok, "ab[MASK] c[MASK]", top_k=4)
  assert len(out) == 2
  for candidates in out:
    probs = [p for _, p in candidates]
    assert len(candidates) == 4 and probs == sorted(probs, reverse=True) and sum(probs) <= 1
    assert all(len(t) == 1 and t in tok.chars for t, _ in candidates)
  everything = fill_mask(graphdef, params, tok, "[MASK]", top_k=100)[0]
  assert len(everything) == tok.num_ordinary  # never a special token
  np.testing.assert_allclose(sum(p for _, p in everything), 1.0, atol=1e-5)
