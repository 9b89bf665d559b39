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
  config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=4)
  return _randomise(transformers.GPT2LMHeadModel(config)), tmp_path / "gpt2"


def _bert(tmp_path):
  torch.manual_seed(0)
  config = transformers.BertConfig(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=32,
  )
  return _randomise(transformers.BertForMaskedLM(config)), tmp_path / "bert"


def _model(cfg, params):
  graphdef, state = nnx.split(nnx.eval_shape(lambda: make_model(cfg, rngs=nnx.Rngs(0))))
  nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
  return nnx.merge(graphdef, state)


def _ours(directory):
  cfg, params = hf.import_params(directory)
  return _model(cfg, params), cfg, params


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
    expected = model(
      torch.tensor(tokens), attention_mask=torch.tensor(mask.astype(np.int64))
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
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.fill_mask",
      f"--hf_dir={directory}",
      "--text=w1 [MASK] w3",
      "--top_k=3",
    ],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  assert out.startswith("[MASK] 0:") and len(out.strip().splitlines()) == 4
  with torch.no_grad():  # [CLS] w1 [MASK] w3 [SEP]; special tokens are never candidates
    logits = model(torch.tensor([[2, 6, 4, 8, 3]])).logits[0, 2]
    probs = torch.softmax(logits.masked_fill(torch.arange(100) < 5, -torch.inf), -1)
  best = int(probs.argmax())
  assert f"'{words[best]}'" in out.splitlines()[1]
  assert abs(float(out.splitlines()[1].split()[0]) - float(probs[best])) < 1e-4


def _write_bpe(directory):
  """GPT-2 BPE files (vocab.json + merges.txt) of `gpt2_tokens()` in `directory`."""
  from tests.data.test_hf_tokenizers import MERGES, gpt2_tokens

  (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(gpt2_tokens())}))
  (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")


def _write_tokenizer_json(directory):
  """A Llama-style tokenizer: `tokenizer.json` and `tokenizer_config.json` only."""
  from lm.data import hf_tokenizer

  _write_bpe(directory)
  tok = hf_tokenizer.load(str(directory))
  tok.config = {"eos_token": "<|endoftext|>"}
  tok.save(str(directory))
  for name in ("vocab.json", "merges.txt"):
    (directory / name).unlink()


def _gpt2_with_tokenizer(tmp_path):
  from tests.data.test_hf_tokenizers import gpt2_tokens

  torch.manual_seed(0)
  config = transformers.GPT2Config(
    vocab_size=len(gpt2_tokens()), n_positions=32, n_embd=32, n_layer=2, n_head=4
  )
  directory = tmp_path / "gpt2tok"
  _save(_randomise(transformers.GPT2LMHeadModel(config)), directory)
  _write_bpe(directory)
  return directory


def test_sample_cli_on_a_hf_gpt2_dir(tmp_path):
  import subprocess
  import sys

  directory = _gpt2_with_tokenizer(tmp_path)
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.sample",
      f"--hf_dir={directory}",
      "--prompt=Hello world",
      "--max_new_tokens=5",
      "--temperature=0",
    ],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  assert out.splitlines()[1].startswith("Hello world")


def test_export_writes_a_tokenizer_that_transformers_loads(tmp_path):
  directory = _gpt2_with_tokenizer(tmp_path)
  _, cfg, params = _ours(str(directory))
  hf.export(cfg, params, str(tmp_path / "exported"), hf.load_tokenizer(str(directory)))
  ref = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "exported"))
  ours = hf.load_tokenizer(str(tmp_path / "exported"))
  for text in ("Hello world, the end.<|endoftext|>", "naïve 123"):
    assert ours.encode(text) == ref.encode(text)
  assert ours.eos_id == ref.eos_token_id == cfg.vocab_size - 1


def test_gpt2_fine_tuned_from_hf_classifies(tiny_config, tmp_path):
  from lm.runtime import sharding
  from lm.training import loop
  from tests.training.test_finetune import _classify

  config = _classify(tiny_config, tmp_path, steps=120)
  config.init_from = f"hf:{_gpt2_with_tokenizer(tmp_path)}"
  config.data.seq_len = 32
  config.model.max_seq_len = 32
  out = loop.train_and_evaluate(
    config, str(tmp_path / "ft"), sharding.make_mesh(config.mesh, jax.devices()[:1])
  )
  print(f"gpt2 (hf:) fine-tune eval accuracy {out['eval_accuracy']:.3f}")
  assert out["eval_accuracy"] >= 0.95


# The Llama family: 2 layers, width 32 (4 heads of 8), SwiGLU 48, 100 tokens.
LLAMA_CASES = {
  "gqa": ("llama", {"num_key_value_heads": 2}),
  "mha": ("llama", {"num_key_value_heads": 4}),
  "mqa_biases": ("llama", {"num_key_value_heads": 1, "attention_bias": True, "mlp_bias": True}),
  "tied_smollm": ("llama", {"num_key_value_heads": 2, "tie_word_embeddings": True}),
  "rope_linear": (
    "llama",
    {
      "num_key_value_heads": 2,
      "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
    },
  ),
  # Wavelengths 6, 167, 4443, 118000 positions around 512 / 4 and 512: kept, blended, divided.
  "rope_llama3": (
    "llama",
    {
      "num_key_value_heads": 2,
      "max_position_embeddings": 2048,
      "rope_parameters": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 512,
        "rope_theta": 500000.0,
      },
    },
  ),
  "mistral": ("mistral", {"num_key_value_heads": 2, "sliding_window": None}),
  "qwen2_biases": ("qwen2", {"num_key_value_heads": 2, "use_sliding_window": False}),
  "qwen2_mha": ("qwen2", {"num_key_value_heads": 4, "tie_word_embeddings": True}),
  "qwen3_qk_norm": ("qwen3", {"num_key_value_heads": 2, "head_dim": 8}),
}
HF_CLASSES = {
  "llama": ("LlamaConfig", "LlamaForCausalLM"),
  "mistral": ("MistralConfig", "MistralForCausalLM"),
  "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
  "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
}


def _llama(tmp_path, case):
  kind, kw = LLAMA_CASES[case]
  config_cls, model_cls = (getattr(transformers, c) for c in HF_CLASSES[kind])
  torch.manual_seed(0)
  config = config_cls(
    **{
      "vocab_size": 100,
      "hidden_size": 32,
      "intermediate_size": 48,
      "num_hidden_layers": 2,
      "num_attention_heads": 4,
      "max_position_embeddings": 64,
      "rms_norm_eps": 1e-5,
      **kw,
    }
  )
  return _randomise(model_cls(config)), tmp_path / case


def _logits_diff(model, ours, tokens):
  with torch.no_grad():
    expected = model(torch.tensor(tokens)).logits.numpy()
  return np.abs(np.asarray(ours(jnp.asarray(tokens))) - expected).max()


@pytest.mark.parametrize("case", LLAMA_CASES)
def test_imported_llama_family_logits_match_transformers(tmp_path, case):
  model, directory = _llama(tmp_path, case)
  ours, cfg, _ = _ours(_save(model, directory))
  diff = _logits_diff(model, ours, np.random.default_rng(0).integers(0, 100, (2, 24)))
  print(f"{case}: max |logit difference| {diff:.2e}")
  assert diff <= 1e-5
  assert cfg.kv_heads == model.config.num_key_value_heads


def test_sharded_llama_checkpoint_is_read_through_its_index(tmp_path):
  model, directory = _llama(tmp_path, "gqa")
  model.save_pretrained(directory, max_shard_size="10KB")
  shards = sorted(p.name for p in directory.glob("model-*-of-*.safetensors"))
  assert len(shards) > 1 and (directory / "model.safetensors.index.json").exists()
  assert not (directory / "model.safetensors").exists()
  ours, _, _ = _ours(str(directory))
  assert _logits_diff(model, ours, np.random.default_rng(0).integers(0, 100, (2, 24))) <= 1e-5


def test_bfloat16_llama_weights_are_read_as_float32(tmp_path):
  model, directory = _llama(tmp_path, "gqa")
  _save(model.to(torch.bfloat16), directory)
  _, params = hf.import_params(str(directory))
  assert params["embed"].dtype == np.float32
  expected = model.model.embed_tokens.weight.detach().float().numpy()
  np.testing.assert_array_equal(params["embed"], expected)


@pytest.mark.parametrize(
  "change, message",
  [
    ({"sliding_window": 16}, "sliding_window=16 < max_position_embeddings=64"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 2.0}}, "RoPE type 'yarn'"),
    ({"head_dim": 16}, "head_dim=16 differs from hidden_size / num_attention_heads = 8"),
    ({"hidden_act": "gelu"}, "activation 'gelu'"),
    ({"attention_bias": True, "mlp_bias": False}, "attention_bias=True with mlp_bias=False"),
  ],
)
def test_unsupported_llama_configs_are_refused_by_name(change, message):
  config = {
    "model_type": "mistral",
    "vocab_size": 100,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
    **change,
  }
  with pytest.raises(ValueError, match=message):
    hf.model_config(config)


@pytest.mark.parametrize(
  "case",
  ["gqa", "mha", "tied_smollm", "rope_llama3", "qwen2_biases", "qwen3_qk_norm", "mqa_biases"],
)
def test_llama_export_then_import_round_trips_exactly(tmp_path, case):
  model, directory = _llama(tmp_path, case)
  _, cfg, params = _ours(_save(model, directory))
  hf.export(cfg, params, str(tmp_path / "exported"))
  cfg2, params2 = hf.import_params(str(tmp_path / "exported"))
  assert cfg2 == cfg
  jax.tree.map(np.testing.assert_array_equal, params2, params)
  reloaded = type(model).from_pretrained(str(tmp_path / "exported")).eval()
  tokens = torch.tensor(np.random.default_rng(0).integers(0, 100, (1, 12)))
  with torch.no_grad():
    np.testing.assert_array_equal(reloaded(tokens).logits.numpy(), model(tokens).logits.numpy())


LLAMA_STYLE = {
  "vocab_size": 128,
  "num_layers": 2,
  "num_heads": 4,
  "d_model": 32,
  "mlp_dim": 96,
  "max_seq_len": 64,
  "position": "rotary",
  "norm": "rmsnorm",
  "mlp": "swiglu",
  "num_kv_heads": 2,
  "use_bias": False,
  "tie_embeddings": False,
}


@pytest.mark.parametrize(
  "kw, architecture",
  [
    ({}, "LlamaForCausalLM"),
    (
      {"num_kv_heads": 0, "tie_embeddings": True, "use_bias": True, "rope_theta": 500000.0},
      "LlamaForCausalLM",
    ),
    # Wavelengths 6, 35, 199, 1117 positions around 48 / 4 and 48: kept, blended, divided.
    (
      {
        "rope_theta": 1000.0,
        "rope_scaling": "llama3",
        "rope_scaling_factor": 8.0,
        "rope_original_max_len": 48,
      },
      "LlamaForCausalLM",
    ),
    ({"rope_scaling": "linear", "rope_scaling_factor": 4.0}, "LlamaForCausalLM"),
    ({"qkv_bias": True}, "Qwen2ForCausalLM"),
    ({"qk_norm": True}, "Qwen3ForCausalLM"),
  ],
)
def test_our_llama_style_model_exported_matches_in_transformers(tmp_path, kw, architecture):
  from lm.model.config import TransformerConfig

  cfg = TransformerConfig(**{**LLAMA_STYLE, **kw})
  state = nnx.state(make_model(cfg, rngs=nnx.Rngs(0)))
  # Perturbed, so that zero biases and unit norm scales are told apart from their mappings.
  keys = iter(jax.random.split(jax.random.key(1), len(jax.tree.leaves(state))))
  params = jax.tree.map(
    lambda x: np.asarray(x + 0.05 * jax.random.normal(next(keys), x.shape)), nnx.to_pure_dict(state)
  )
  hf.export(cfg, params, str(tmp_path / "exported"))
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "exported")).eval()
  assert type(reloaded).__name__ == architecture
  tokens = np.random.default_rng(0).integers(0, 128, (2, 24))
  diff = _logits_diff(reloaded, _model(cfg, params), tokens)
  print(f"{architecture} {kw}: max |logit difference| {diff:.2e}")
  assert diff <= 1e-5


def test_sample_cli_on_a_llama_dir_without_tokenizer_matches_greedy_transformers(tmp_path):
  import subprocess
  import sys

  model, directory = _llama(tmp_path, "rope_llama3")
  _save(model, directory)
  prompt = [5, 17, 42, 3]
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.sample",
      f"--hf_dir={directory}",
      f"--prompt_ids={','.join(map(str, prompt))}",
      "--max_new_tokens=8",
      "--temperature=0",
    ],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  model.generation_config.eos_token_id = None  # ours has no end token without a tokenizer
  with torch.no_grad():
    expected = model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False)
  assert out.splitlines()[1].split() == [str(i) for i in expected[0].tolist()]
  refused = subprocess.run(
    [sys.executable, "-m", "experiments.sample", f"--hf_dir={directory}", "--prompt=Hello"],
    capture_output=True,
    check=False,
    text=True,
  )
  assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1] == (
    f"error: {directory} has no tokenizer that this code reads; pass the prompt as --prompt_ids"
  )


def tiny_llama_dir(directory):
  """A randomised 2-layer Llama (grouped-query attention) saved to `directory` with GPT-2's
  tokenizer.json, as Llama-family directories hold their tokenizer."""
  from tests.data.test_hf_tokenizers import gpt2_tokens

  config = transformers.LlamaConfig(
    vocab_size=len(gpt2_tokens()),
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
  )
  _save(_randomise(transformers.LlamaForCausalLM(config)), directory)
  _write_tokenizer_json(directory)
  return directory


def test_llama_trained_from_hf_starts_from_its_weights(tiny_config, tmp_path):
  from lm.runtime import sharding
  from lm.training import loop
  from tests.data.test_hf_tokenizers import gpt2_tokens

  torch.manual_seed(0)
  directory = tiny_llama_dir(tmp_path / "llamatok")
  tok = hf.load_tokenizer(str(directory))
  assert tok.decode(tok.encode("Hello world")) == "Hello world"
  assert tok.eos_id == gpt2_tokens().index("<|endoftext|>")
  tiny_config.init_from = f"hf:{directory}"
  tiny_config.optim.learning_rate = 1e-7  # two tiny steps: the weights stay the imported ones
  tiny_config.optim.warmup_steps = 1
  tiny_config.train.steps = tiny_config.train.eval_every = tiny_config.train.checkpoint_every = 2
  out = loop.train_and_evaluate(
    tiny_config, str(tmp_path / "ft"), sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  )
  _, imported = hf.import_params(str(directory))
  print(f"llama (hf:) eval loss after 2 steps {out['eval_loss']:.3f}")
  assert np.isfinite(out["eval_loss"])
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5),
    sharding.host_copy(out["state"].params),
    imported,
  )


def test_export_hf_cli_on_a_llama_style_run_loads_in_transformers(tiny_config, tmp_path):
  import subprocess
  import sys

  from experiments.configs import llama_style
  from lm.runs import loading
  from lm.runtime import sharding
  from lm.training import loop

  style = llama_style.get_config().model
  for field in ("position", "norm", "mlp", "num_kv_heads", "use_bias", "tie_embeddings"):
    tiny_config.model[field] = style[field]
  tiny_config.model.mlp_dim = 96
  tiny_config.train.steps = 4
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(
    tiny_config, workdir, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  )
  subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.export_hf",
      f"--workdir={workdir}",
      f"--out_dir={tmp_path / 'hf'}",
    ],
    capture_output=True,
    text=True,
    check=True,
  )
  reloaded = transformers.LlamaForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
  r = loading.load_run(workdir)
  ours = nnx.merge(r.graphdef, r.params)
  tokens = np.random.default_rng(0).integers(0, r.tokenizer.vocab_size, (2, 16))
  diff = _logits_diff(reloaded, ours, tokens)
  print(f"llama_style run exported: max |logit difference| {diff:.2e}")
  assert diff <= 1e-5


def _short_run(config, workdir, **model):
  from lm.runtime import sharding
  from lm.training import loop

  for field, value in model.items():
    config.model[field] = value
  config.train.steps = config.train.eval_every = config.train.checkpoint_every = 2
  config.optim.warmup_steps = 1
  loop.train_and_evaluate(config, workdir, sharding.make_mesh(config.mesh, jax.devices()[:1]))
  return workdir


def test_char_tokenizer_exported_encodes_alike_in_transformers_and_ours(tmp_path):
  from lm.convert import hf_tokenizers
  from lm.data.tokenizer import CharTokenizer

  tok = CharTokenizer("\n !,.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzé\t")
  hf_tokenizers.save(tok, str(tmp_path))
  ref = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  ours = hf.load_tokenizer(str(tmp_path))
  for text in ("First Citizen:\nBefore we proceed,  hear me.", "  é\t[MASK] a[CLS]b[SEP][PAD]"):
    expected = tok.encode(text)
    assert ours.encode(text) == ref.encode(text) == expected
    assert ours.decode(expected) == tok.decode(expected)
  assert ref.decode(tok.encode("Hello, world.")) == "Hello, world."
  eos = tok.vocab_size  # a decoder's end of text, past the characters and specials
  assert ours.special_ids == tok.special_ids | {"<|endoftext|>": eos}
  assert ours.num_ordinary == tok.num_ordinary and ours.eos_id == ref.eos_token_id == eos
  assert ours.vocab_size == len(ref) == tok.vocab_size + 1
  assert (ref.mask_token_id, ref.pad_token_id) == (
    tok.special_ids["[MASK]"],
    tok.special_ids["[PAD]"],
  )
  assert ref("ab")["input_ids"] == tok.encode("ab")  # a decoder's: nothing added
  hf_tokenizers.save(tok, str(tmp_path / "encoder"), wrap=True)
  wrapped = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "encoder"))
  cls, sep = tok.special_ids["[CLS]"], tok.special_ids["[SEP]"]
  assert wrapped("ab")["input_ids"] == [cls, *tok.encode("ab"), sep]  # as BertTokenizer
  assert hf.load_tokenizer(str(tmp_path / "encoder")).encode("ab") == tok.encode("ab")


def test_sentencepiece_tokenizer_exported_is_read_back_and_loads_in_transformers(tmp_path):
  from lm.convert import hf_tokenizers
  from lm.data.tokenizer import SentencePieceTokenizer
  from tests.conftest import CORPUS

  with open(CORPUS) as f:
    tok = SentencePieceTokenizer.train(f.read(50_000).split("\n"), str(tmp_path / "sp"), 500)
  hf_tokenizers.save(tok, str(tmp_path / "hf"))
  ours = hf.load_tokenizer(str(tmp_path / "hf"))
  ref = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
  assert len(ref) == tok.vocab_size  # no start token added to the vocabulary
  # The model keeps text as it is, so transformers' converter (no normalisation) encodes alike.
  code = "def f(x):\n\tif x:\n        return  x  # naïve\n\n"
  for text in ("First Citizen: Before we proceed, hear me.", "naïve 123 [MASK] x", code):
    assert ours.encode(text) == ref.encode(text) == tok.encode(text)
  assert ref.decode(tok.encode(code)) == code
  assert ours.special_ids == tok.special_ids and ours.eos_id == tok.eos_id
  assert ref.mask_token_id == tok.special_ids["[MASK]"]


@pytest.mark.parametrize("tokenizer", ["char", "sentencepiece"])
def test_sample_on_our_export_continues_as_the_run_does(tiny_config, tmp_path, tokenizer):
  import subprocess
  import sys

  tiny_config.data.tokenizer = tokenizer
  tiny_config.data.vocab_size = 400
  workdir = _short_run(tiny_config, str(tmp_path / "run"))
  out_dir = str(tmp_path / "hf")
  subprocess.run(
    [sys.executable, "-m", "experiments.export_hf", f"--workdir={workdir}", f"--out_dir={out_dir}"],
    capture_output=True,
    text=True,
    check=True,
  )
  sample = [
    sys.executable,
    "-m",
    "experiments.sample",
    "--prompt=ROMEO:",
    "--max_new_tokens=8",
    "--temperature=0",
  ]
  from_run = subprocess.run(
    sample + [f"--workdir={workdir}"], capture_output=True, text=True, check=True
  ).stdout.splitlines()
  from_hf = subprocess.run(
    sample + [f"--hf_dir={out_dir}"], capture_output=True, text=True, check=True
  ).stdout.splitlines()
  assert from_hf[1:] == from_run[1:] and from_hf[1].startswith("ROMEO:")
  assert from_hf[0] == f"--- sample 0 ({out_dir}) ---"  # the directory, not a step
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out_dir).eval()
  ids = transformers.AutoTokenizer.from_pretrained(out_dir)("ROMEO:", return_tensors="pt")
  with torch.no_grad():
    greedy = reloaded.generate(**ids, max_new_tokens=8, do_sample=False)
  from lm.runs import loading

  assert loading.load_run(workdir).tokenizer.decode(greedy[0].tolist()) == from_run[1]


def _perturbed(cfg):
  state = nnx.state(make_model(cfg, rngs=nnx.Rngs(0)))
  keys = iter(jax.random.split(jax.random.key(1), len(jax.tree.leaves(state))))
  return jax.tree.map(
    lambda x: np.asarray(x + 0.05 * jax.random.normal(next(keys), x.shape)), nnx.to_pure_dict(state)
  )


def test_bert_classifier_exported_matches_bert_for_sequence_classification(tmp_path):
  from lm.model.config import TransformerConfig

  cfg = TransformerConfig(
    vocab_size=100,
    num_layers=2,
    num_heads=4,
    d_model=32,
    mlp_dim=64,
    max_seq_len=32,
    kind="encoder",
    norm_position="post",
    activation="gelu",
    num_classes=3,
  )
  params = _perturbed(cfg)
  hf.export(cfg, params, str(tmp_path / "exported"))
  reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(
    str(tmp_path / "exported")
  ).eval()
  assert type(reloaded).__name__ == "BertForSequenceClassification"
  assert reloaded.config.num_labels == 3
  tokens = np.random.default_rng(0).integers(1, 100, (3, 12))
  mask = np.arange(12)[None] < np.asarray([[12], [7], [3]])  # right-padded rows
  tokens = np.where(mask, tokens, 0)
  with torch.no_grad():
    expected = reloaded(
      torch.tensor(tokens), attention_mask=torch.tensor(mask.astype(int))
    ).logits.numpy()
  ours = np.asarray(_model(cfg, params).classify(jnp.asarray(tokens), jnp.asarray(mask)))
  diff = np.abs(ours - expected).max()
  print(f"BERT classifier exported: max |logit difference| {diff:.2e}")
  assert diff <= 1e-5


@pytest.mark.parametrize("model, name", [({}, "GPT2"), (LLAMA_STYLE, "Llama")])
def test_a_decoder_classifier_is_refused_by_name(tmp_path, model, name):
  from lm.model.config import TransformerConfig

  cfg = TransformerConfig(
    **{
      "vocab_size": 100,
      "num_layers": 1,
      "num_heads": 4,
      "d_model": 32,
      "mlp_dim": 64,
      "max_seq_len": 32,
      "activation": "gelu_tanh",
      **model,
      "num_classes": 2,
    }
  )
  with pytest.raises(ValueError, match=f"no exact Hugging Face form: .*{name}ForSequence"):
    hf.export(cfg, _perturbed(cfg), str(tmp_path / "exported"))
  assert not (tmp_path / "exported").exists()


def test_an_encoder_classifier_run_exported_labels_as_predict_does(tiny_config, tmp_path):
  import subprocess
  import sys

  from lm.infer import classify
  from lm.runs import loading
  from tests.training.test_finetune import _classify

  config = _classify(tiny_config, tmp_path, steps=8)
  workdir = _short_run(
    config, str(tmp_path / "cls"), kind="encoder", norm_position="post", activation="gelu"
  )
  subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.export_hf",
      f"--workdir={workdir}",
      f"--out_dir={tmp_path / 'hf'}",
    ],
    capture_output=True,
    text=True,
    check=True,
  )
  texts = ["abc good cba", "kih bad hik", "good"]
  ref_tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
  ref = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "hf"))
  with torch.no_grad():
    probs = ref(**ref_tok(texts, padding=True, return_tensors="pt")).logits.softmax(-1).numpy()
  np.testing.assert_allclose(
    probs, classify.probabilities(loading.load_run(workdir), texts, 8), atol=1e-5
  )
