import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lm.infer import sampling
from lm.model.config import TransformerConfig
from lm.model.transformer import DecoderLM
from lm.runtime import sharding

# 'llama': the modern blocks, with grouped-query attention (the cache holds 2 KV heads of 4).
LLAMA = {
  "position": "rotary",
  "norm": "rmsnorm",
  "mlp": "swiglu",
  "num_kv_heads": 2,
  "qk_norm": True,
  "use_bias": False,
  "tie_embeddings": False,
  "rope_theta": 500000.0,
}


def _model(position="learned", max_seq_len=16):
  blocks = LLAMA if position == "llama" else {"position": position}
  cfg = TransformerConfig(
    vocab_size=64,
    num_layers=2,
    num_heads=4,
    d_model=32,
    mlp_dim=64,
    max_seq_len=max_seq_len,
    **blocks,
  )
  return DecoderLM(cfg, rngs=nnx.Rngs(0))


def _greedy(model, prompts, padding="left", **kw):
  graphdef, params = nnx.split(model)
  tokens, lengths = sampling.pad_prompts(prompts, padding)
  return sampling.generate(
    graphdef,
    params,
    jnp.asarray(tokens),
    jnp.asarray(lengths),
    jax.random.key(0),
    temperature=0.0,
    padding=padding,
    **kw,
  )


@pytest.mark.parametrize("position", ["learned", "llama"])  # llama: rotary, GQA, QK-norm, ...
def test_cached_decode_matches_full_forward_at_every_position(position):
  model = _model(position)
  tokens = np.asarray(jax.random.randint(jax.random.key(1), (2, 12), 0, 64))
  short = tokens[1, :9]
  full = [model(jnp.asarray(tokens[:1])), model(jnp.asarray(short[None]))]
  # Row 1 is 3 tokens shorter, left-padded: its slots are shifted but its positions are not.
  batch = np.stack([tokens[0], np.concatenate([np.full(3, 7), short])])
  cache = model.init_cache(2, 12, start_B=jnp.asarray([0, 3]))
  logits, cache = model(jnp.asarray(batch[:, :5]), cache=cache)
  steps = [logits]
  for t in range(5, 12):
    logits, cache = model(jnp.asarray(batch[:, t : t + 1]), cache=cache)
    steps.append(logits)
  cached = np.concatenate(steps, axis=1)
  np.testing.assert_allclose(cached[0], full[0][0], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(cached[1, 3:], full[1][0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position", ["learned", "rotary"])
def test_greedy_is_deterministic_and_the_argmax_of_the_full_forward(position):
  model = _model(position)
  prompt = [5, 1, 9]
  out = _greedy(model, [prompt], max_new_tokens=10)
  again = _greedy(model, [prompt], max_new_tokens=10)
  np.testing.assert_array_equal(out.tokens, again.tokens)
  seq = np.concatenate([prompt, np.asarray(out.tokens[0])])
  log_probs = jax.nn.log_softmax(model(jnp.asarray(seq[None]))[0], axis=-1)
  for i in range(10):
    assert int(out.tokens[0, i]) == int(jnp.argmax(log_probs[2 + i]))
    np.testing.assert_allclose(out.log_probs[0, i], log_probs[2 + i, seq[3 + i]], atol=1e-5)
  assert int(out.lengths[0]) == 10


@pytest.mark.parametrize("padding", ["left", "right"])
def test_padding_does_not_change_a_prompts_continuation(padding):
  model = _model("llama")
  prompts = [[3, 4, 5, 6, 7, 8], [9], [10, 11, 12]]
  batched = _greedy(model, prompts, padding, max_new_tokens=8)
  for row, prompt in enumerate(prompts):
    alone = _greedy(model, [prompt], max_new_tokens=8)
    np.testing.assert_array_equal(batched.tokens[row], alone.tokens[0])
    np.testing.assert_allclose(batched.log_probs[row], alone.log_probs[0], atol=1e-5)


def _draws(logits_V, **kw):
  logits = jnp.log(jnp.asarray(logits_V))[None]
  keys = jax.random.split(jax.random.key(0), 2000)
  draws = jax.vmap(lambda k: sampling.sample_logits(logits, k, **kw))(keys)
  return set(np.unique(draws).tolist())


def test_top_k_and_top_p_never_emit_a_token_outside_the_allowed_set():
  probs = [0.05, 0.1, 0.15, 0.3, 0.4]
  assert _draws(probs, top_k=2) == {3, 4}
  assert _draws(probs, top_p=0.6) == {3, 4}  # 0.4 + 0.3 covers 0.6
  assert _draws(probs, top_p=0.75) == {2, 3, 4}  # 0.7 does not cover 0.75
  assert _draws(probs, top_p=0.3) == {4}
  assert _draws(probs, top_k=2, top_p=0.5) == {4}  # top_p acts on the renormalised top 2
  assert _draws(probs, temperature=2.0) == {0, 1, 2, 3, 4}


def test_vocab_limit_end_token_and_seed():
  model = _model()
  graphdef, params = nnx.split(model)
  prompts, lengths = jnp.zeros((4, 1), jnp.int32), jnp.ones((4,), jnp.int32)

  def run(seed, **kw):
    return sampling.generate(
      graphdef,
      params,
      prompts,
      lengths,
      jax.random.key(seed),
      max_new_tokens=12,
      temperature=2.0,
      **kw,
    )

  limited = run(1, vocab_limit=5)
  assert int(limited.tokens.max()) < 5
  np.testing.assert_array_equal(run(1).tokens, run(1).tokens)
  assert not np.array_equal(run(1).tokens, run(2).tokens)
  # Stop each row at its first 3: later tokens and log-probs are zeroed.
  free, stopped = run(3, vocab_limit=5), run(3, vocab_limit=5, end_id=3)
  for row in range(4):
    hits = np.flatnonzero(np.asarray(free.tokens[row]) == 3)
    n = hits[0] + 1 if len(hits) else 12
    assert int(stopped.lengths[row]) == n
    np.testing.assert_array_equal(stopped.tokens[row, :n], free.tokens[row, :n])
    assert not np.any(stopped.tokens[row, n:]) and not np.any(stopped.log_probs[row, n:])


def test_too_long_a_generation_fails_clearly():
  with pytest.raises(ValueError, match="max_seq_len=16"):
    _greedy(_model(), [[1, 2, 3]], max_new_tokens=14)


def test_sharded_batch_matches_one_device():
  model = _model("rotary")
  graphdef, params = nnx.split(model)
  prompts, lengths = sampling.pad_prompts([[i, i + 1, i + 2][: 1 + i % 3] for i in range(8)])
  args = {"max_new_tokens": 6, "temperature": 0.0}
  one = sampling.generate(
    graphdef, params, jnp.asarray(prompts), jnp.asarray(lengths), jax.random.key(0), **args
  )
  mesh = sharding.make_mesh({"data": 8, "fsdp": 1, "tensor": 1})
  data = jax.device_put((prompts, lengths), sharding.batch_sharding(mesh))
  params = jax.device_put(params, sharding.replicated(mesh))
  many = sampling.generate(graphdef, params, *data, jax.random.key(0), **args)
  assert len(many.tokens.sharding.device_set) == 8
  np.testing.assert_array_equal(many.tokens, one.tokens)


def test_generate_long_goes_past_the_window_in_chunks_of_the_window():
  model = _model()
  graphdef, params = nnx.split(model)
  out = sampling.generate_long(
    graphdef, params, np.asarray([[1, 2, 3]]), jax.random.key(0), max_new_tokens=20, temperature=0.0
  )
  assert out.shape == (1, 20)
  seq = np.concatenate([[1, 2, 3], out[0]])
  # Chunks of 8 new tokens, each from the last 8 tokens before it (the first: the prompt).
  windows = {}  # window start -> the positions predicted from it
  for i in range(3, 23):
    windows.setdefault(0 if i < 11 else 3 + 8 * ((i - 3) // 8) - 8, []).append(i)
  for start, positions in windows.items():
    # One forward per window: causal, so logits at i - 1 see only seq[start:i].
    logits = model(jnp.asarray(seq[None, start : positions[-1]]))
    for i in positions:
      assert int(seq[i]) == int(jnp.argmax(logits[0, i - 1 - start])), i


@pytest.mark.parametrize("position", ["learned", "llama"])
def test_document_masked_decoding_sees_only_the_last_document(position):
  model, end = _model(position), 63
  doc = [10, 11, 12]
  # Rows of different lengths (left padding), the last document after one or two others.
  prompts = [[1, 2, 3, 4, end] + doc, [5, end, 6, 7, end] + doc, doc]
  out = _greedy(model, prompts, max_new_tokens=6, document_end_id=end)
  alone = _greedy(model, [doc], max_new_tokens=6)
  for row in range(3):
    np.testing.assert_array_equal(out.tokens[row], alone.tokens[0])
    np.testing.assert_allclose(out.log_probs[row], alone.log_probs[0], atol=1e-5)
  # Without the end id the earlier documents are context, and the scores differ.
  mixed = _greedy(model, prompts[:1], max_new_tokens=6)
  assert not np.allclose(mixed.log_probs[0], alone.log_probs[0], atol=1e-4)


def test_prompt_documents_segments_and_positions():
  prompts = jnp.asarray([[0, 0, 4, 9, 5, 9, 6], [4, 5, 9, 6, 7, 8, 9]])
  segments, positions = sampling.prompt_documents(prompts, jnp.asarray([2, 0]), end_id=9)
  np.testing.assert_array_equal(segments, [[0, 0, 0, 0, 1, 1, 2], [0, 0, 0, 1, 1, 1, 1]])
  np.testing.assert_array_equal(positions, [[0, 0, 0, 1, 0, 1, 0], [0, 1, 2, 0, 1, 2, 3]])


def test_top_k_beyond_the_vocabulary_keeps_every_token():
  probs = [0.05, 0.1, 0.15, 0.3, 0.4]
  assert _draws(probs, top_k=1000) == {0, 1, 2, 3, 4}
  assert _draws(probs, top_k=5, top_p=0.6) == {3, 4}
