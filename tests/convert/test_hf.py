"""Parity with Hugging Face `transformers` (an optional extra: skipped without torch)."""

import dataclasses
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
  with torch.no_grad():
    for p in model.parameters():  # biases and norms too, so that every mapping is exercised
      p.add_(0.05 * torch.randn_like(p))
  return model.eval()


def _save(model, directory):
  model.save_pretrained(directory, safe_serialization=True)
  return str(directory)


def _gpt2(tmp_path):
  torch.manual_seed(0)
  config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2,
                                   n_head=4)
  return _randomise(transformers.GPT2LMHeadModel(config)), tmp_path / "gpt2"


def _bert(tmp_path):
  torch.manual_seed(0)
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
  assert cfg2 == cfg and cfg.parametrization == "standard"
  jax.tree.map(np.testing.assert_array_equal, params2, params)
  reloaded = type(model).from_pretrained(str(tmp_path / "exported")).eval()
  tokens = torch.tensor(np.random.default_rng(0).integers(0, 100, (1, 12)))
  with torch.no_grad():
    np.testing.assert_array_equal(reloaded(tokens).logits.numpy(), model(tokens).logits.numpy())


def test_a_mup_model_is_not_exported(tmp_path):
  model, directory = _gpt2(tmp_path)
  _, cfg, params = _ours(_save(model, directory))
  mup_cfg = dataclasses.replace(cfg, parametrization="mup", base_width=16, base_head_dim=4)
  with pytest.raises(ValueError, match="parametrization='mup' model has no Hugging Face"):
    hf.export(mup_cfg, params, str(tmp_path / "exported"))


def test_pytorch_bin_is_read_with_weights_only(tmp_path):
  model, directory = _gpt2(tmp_path)
  directory.mkdir()
  torch.save(model.state_dict(), directory / "pytorch_model.bin")
  (directory / "config.json").write_text(json.dumps(model.config.to_dict()))
  _, params = hf.import_params(str(directory))
  np.testing.assert_array_equal(params["embed"], model.transformer.wte.weight.detach().numpy())


def test_fill_mask_cli_on_a_hf_bert_dir(tmp_path):
  import subprocess
  import sys
  model, directory = _bert(tmp_path)
  _save(model, directory)
  words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]
  (directory / "vocab.txt").write_text("\n".join(words) + "\n")
  out = subprocess.run([sys.executable, "-m", "experiments.fill_mask", f"--hf_dir={directory}",
                        "--text=w1 [MASK] w3", "--top_k=3"], capture_output=True, text=True,
                       check=True).stdout
  assert out.startswith("[MASK] 0:") and len(out.strip().splitlines()) == 4
  with torch.no_grad():  # [CLS] w1 [MASK] w3 [SEP]; special tokens are never candidates
    logits = model(torch.tensor([[2, 6, 4, 8, 3]])).logits[0, 2]
    probs = torch.softmax(logits.masked_fill(torch.arange(100) < 5, -torch.inf), -1)
  best = int(probs.argmax())
  assert f"'{words[best]}'" in out.splitlines()[1]
  assert abs(float(out.splitlines()[1].split()[0]) - float(probs[best])) < 1e-4


def _gpt2_with_tokenizer(tmp_path):
  from tests.data.test_hf_tokenizers import MERGES
  from lm.data.bpe import bytes_to_unicode
  tokens = list(bytes_to_unicode().values()) + ["".join(m.split(" ")) for m in MERGES]
  tokens.append("<|endoftext|>")
  torch.manual_seed(0)
  config = transformers.GPT2Config(vocab_size=len(tokens), n_positions=32, n_embd=32,
                                   n_layer=2, n_head=4)
  directory = tmp_path / "gpt2tok"
  _save(_randomise(transformers.GPT2LMHeadModel(config)), directory)
  (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
  (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
  return directory


def test_sample_cli_on_a_hf_gpt2_dir(tmp_path):
  import subprocess
  import sys
  directory = _gpt2_with_tokenizer(tmp_path)
  out = subprocess.run([sys.executable, "-m", "experiments.sample", f"--hf_dir={directory}",
                        "--prompt=Hello world", "--max_new_tokens=5", "--temperature=0"],
                       capture_output=True, text=True, check=True).stdout
  assert out.splitlines()[1].startswith("Hello world")


def test_gpt2_fine_tuned_from_hf_classifies(tiny_config, tmp_path):
  from lm import sharding, train
  from tests.test_finetune import _classify
  config = _classify(tiny_config, tmp_path, steps=120)
  config.init_from = f"hf:{_gpt2_with_tokenizer(tmp_path)}"
  config.data.seq_len = 32
  config.model.max_seq_len = 32
  out = train.train_and_evaluate(config, str(tmp_path / "ft"),
                                 sharding.make_mesh(config.mesh, jax.devices()[:1]))
  print(f"gpt2 (hf:) fine-tune eval accuracy {out['eval_accuracy']:.3f}")
  assert out["eval_accuracy"] >= 0.95
