"""Parity with Hugging Face `transformers` (an optional extra: skipped without torch)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lm.convert import hf
from lm.model.transformer import make_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _randomise(model):
  torch.manual_seed(0)
  with torch.no_grad():
    for p in model.parameters():  # biases and norms too, so that every mapping is exercised
      p.add_(0.05 * torch.randn_like(p))
  return model.eval()


def _save(model, directory):
  model.save_pretrained(directory, safe_serialization=True)
  return str(directory)


def _gpt2(tmp_path):
  config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2,
                                   n_head=4)
  return _randomise(transformers.GPT2LMHeadModel(config)), tmp_path / "gpt2"


def _bert(tmp_path):
  config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=64,
                                   max_position_embeddings=32)
  return _randomise(transformers.BertForMaskedLM(config)), tmp_path / "bert"


def _ours(directory):
  cfg, params = hf.import_params(directory)
  graphdef, state = nnx.split(nnx.eval_shape(lambda: make_model(cfg, rngs=nnx.Rngs(0))))
  nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
  return nnx.merge(graphdef, state), cfg, params


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_imported_logits_match_transformers(tmp_path, family):
  model, directory = (_gpt2 if family == "gpt2" else _bert)(tmp_path)
  ours, _, _ = _ours(_save(model, directory))
  tokens = np.random.default_rng(0).integers(0, 100, (2, 24))
  with torch.no_grad():
    expected = model(torch.tensor(tokens)).logits.numpy()
  actual = np.asarray(ours(jnp.asarray(tokens)))
  print(f"{family}: max abs diff {np.abs(actual - expected).max():.2e}")
  np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)


def test_bert_padding_mask_matches_transformers(tmp_path):
  model, directory = _bert(tmp_path)
  ours, _, _ = _ours(_save(model, directory))
  tokens = np.random.default_rng(0).integers(0, 100, (2, 16))
  mask = np.arange(16)[None, :] < np.array([[16], [9]])
  with torch.no_grad():
    expected = model(torch.tensor(tokens), attention_mask=torch.tensor(mask.astype(np.int64))
                     ).logits.numpy()
  actual = np.asarray(ours(jnp.asarray(tokens), key_mask_BT=jnp.asarray(mask)))
  np.testing.assert_allclose(actual[mask], expected[mask], rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_export_then_import_round_trips_exactly(tmp_path, family):
  model, directory = (_gpt2 if family == "gpt2" else _bert)(tmp_path)
  _, cfg, params = _ours(_save(model, directory))
  hf.export(cfg, params, str(tmp_path / "exported"))
  cfg2, params2 = hf.import_params(str(tmp_path / "exported"))
  assert cfg2 == cfg
  jax.tree.map(np.testing.assert_array_equal, params2, params)
  reloaded = type(model).from_pretrained(str(tmp_path / "exported")).eval()
  tokens = torch.tensor(np.random.default_rng(0).integers(0, 100, (1, 12)))
  with torch.no_grad():
    np.testing.assert_array_equal(reloaded(tokens).logits.numpy(), model(tokens).logits.numpy())


def test_pytorch_bin_is_read_with_weights_only(tmp_path):
  model, directory = _gpt2(tmp_path)
  directory.mkdir()
  torch.save(model.state_dict(), directory / "pytorch_model.bin")
  (directory / "config.json").write_text(json.dumps(model.config.to_dict()))
  _, params = hf.import_params(str(directory))
  np.testing.assert_array_equal(params["embed"], model.transformer.wte.weight.detach().numpy())
