"""An export names its end-of-text (and start) token as Hugging Face tooling expects, for every
tokenizer we export (an optional extra: skipped without torch)."""

import dataclasses
import json
import logging
import warnings

import jax
import numpy as np
import pytest
from flax import nnx

from lm.convert import hf, hf_tokenizers
from lm.data import hf_tokenizer
from lm.data.tokenizer import CharTokenizer, SentencePieceTokenizer
from lm.model.config import TransformerConfig
from lm.model.transformer import make_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHARS = "\n !,.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TEXTS = ["First Citizen:\nBefore we proceed any further, hear me speak.", "All: Speak, speak."]


def _decoder(vocab_size):
  return TransformerConfig(
    vocab_size=vocab_size,
    num_layers=1,
    num_heads=2,
    d_model=16,
    mlp_dim=32,
    max_seq_len=32,
    activation="gelu_tanh",
  )


def _params(cfg):
  return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(make_model(cfg, rngs=nnx.Rngs(0)))))


def _read(directory, name):
  return json.loads((directory / name).read_text())


def _load_tokenizer(directory):
  tok = hf.load_tokenizer(str(directory))
  assert tok is not None
  return tok


def _tokenizer(kind, tmp_path):
  if kind == "sentencepiece":
    return SentencePieceTokenizer.train(TEXTS * 20, str(tmp_path / "sp"), 320)
  if kind == "bpe":
    return hf_tokenizer.train_byte_level_bpe(TEXTS * 20, str(tmp_path / "bpe"), 280)
  if kind == "gpt2":  # imported: GPT-2's vocab.json + merges.txt, no tokenizer_config.json
    from tests.convert.test_hf import _write_bpe

    (tmp_path / "gpt2").mkdir()
    _write_bpe(tmp_path / "gpt2")
    return _load_tokenizer(tmp_path / "gpt2")
  return CharTokenizer(CHARS)


# tokenizer, the padded vocabulary's spare ids, the end-of-text token
CASES = [
  ("char", 3, "<|endoftext|>"),
  ("char", 0, "[SEP]"),  # no spare id: [SEP], which a decoder's text never holds
  ("sentencepiece", 0, "</s>"),
  ("bpe", 0, "<|endoftext|>"),
  ("gpt2", 0, "<|endoftext|>"),
]


@pytest.mark.parametrize("kind, spare, eos", CASES)
def test_export_names_its_end_of_text_in_tokenizer_and_configs(tmp_path, kind, spare, eos):
  tok = _tokenizer(kind, tmp_path)
  cfg = _decoder(tok.vocab_size + spare)
  out = tmp_path / "hf"
  hf.export(cfg, _params(cfg), str(out), tok)
  ref = transformers.AutoTokenizer.from_pretrained(str(out))
  assert ref.eos_token == ref.bos_token == eos  # GPT-2's convention: one token for both
  for name in ("tokenizer_config.json", "special_tokens_map.json"):
    assert _read(out, name)["eos_token"] == _read(out, name)["bos_token"] == eos
  ids = {"bos_token_id": ref.bos_token_id, "eos_token_id": ref.eos_token_id}
  if "[PAD]" in tok.special_ids and kind != "gpt2":
    ids["pad_token_id"] = ref.pad_token_id
  for name in ("config.json", "generation_config.json"):
    assert {k: _read(out, name).get(k) for k in ids} == ids
  assert ref.eos_token_id < cfg.vocab_size and ref("ab")["input_ids"] == tok.encode("ab")
  if kind == "char":
    assert ref.eos_token_id == (tok.vocab_size if spare else tok.special_ids["[SEP]"])
  assert _load_tokenizer(out).eos_id == ref.eos_token_id


def test_an_encoder_export_names_its_padding_and_no_end_of_text(tmp_path):
  tok = CharTokenizer(CHARS)
  cfg = dataclasses.replace(
    _decoder(tok.vocab_size), kind="encoder", norm_position="post", activation="gelu"
  )
  hf.export(cfg, _params(cfg), str(tmp_path / "hf"), tok)
  ref = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
  assert ref.eos_token is None and ref.bos_token is None  # BERT's convention: [CLS] / [SEP]
  assert _read(tmp_path / "hf", "config.json")["pad_token_id"] == tok.special_ids["[PAD]"]
  assert not (tmp_path / "hf" / "generation_config.json").exists()


def test_an_old_char_export_without_end_of_text_still_loads(tmp_path):
  tok = CharTokenizer(CHARS)
  cfg = _decoder(tok.vocab_size + 3)
  hf.export(cfg, _params(cfg), str(tmp_path))  # config.json as before: no token ids
  hf_tokenizers.from_chars(tok).save(str(tmp_path))  # the tokenizer files as before
  ours = _load_tokenizer(tmp_path)
  assert ours.eos_id is None and ours.encode(TEXTS[0]) == tok.encode(TEXTS[0])
  assert hf.import_params(str(tmp_path))[0] == cfg


class _Records(logging.Handler):
  def __init__(self):
    super().__init__(logging.WARNING)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


def _generate_quietly(directory, prompt):
  """`generate` on an export as it is, every Python warning an error and transformers' logged
  warnings collected."""
  records = _Records()
  logger = logging.getLogger("transformers")
  logger.addHandler(records)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      ref_tok = transformers.AutoTokenizer.from_pretrained(directory)
      model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
      with torch.no_grad():
        out = model.generate(**ref_tok(prompt, return_tensors="pt"), max_new_tokens=6)
  finally:
    logger.removeHandler(records)
  return out, model, records.messages


@pytest.mark.parametrize("tokenizer", ["char", "sentencepiece"])
def test_a_run_exported_generates_unmodified_and_keeps_its_logits(tiny_config, tmp_path, tokenizer):
  from lm.runs import loading
  from lm.runtime import sharding
  from tests.convert.test_hf import _logits_diff, _short_run

  tiny_config.data.tokenizer = tokenizer
  tiny_config.data.vocab_size = 400
  r = loading.load_run(_short_run(tiny_config, str(tmp_path / "run")))
  out = str(tmp_path / "hf")
  tok = r.tokenizer
  assert tok is not None
  hf.export(r.model_cfg, sharding.host_copy(r.params), out, tok)
  generated, model, messages = _generate_quietly(out, "ROMEO:")
  assert generated.shape[1] > len(tok.encode("ROMEO:"))
  assert not [m for m in messages if "pad" in m.lower() or "eos" in m.lower()], messages
  eos = model.config.eos_token_id
  assert eos == model.config.bos_token_id == model.generation_config.eos_token_id is not None
  if tokenizer == "char":  # past the characters and specials, inside the padded vocabulary
    assert tok.vocab_size == eos < r.model_cfg.vocab_size
  else:
    assert eos == tok.eos_id  # the separator every document of its data follows
  rows = [[eos, *tok.encode(TEXTS[0])[:15]], tok.encode(TEXTS[1])[:16]]
  rows = [row + [0] * (16 - len(row)) for row in rows]
  diff = _logits_diff(model, nnx.merge(r.graphdef, r.params), np.asarray(rows))
  print(f"{tokenizer} run exported: max |logit difference| {diff:.2e}")
  assert diff <= 1e-5


def _log_probs(model, ids):
  """Our model's log-probability of each of `ids[1:]` after the ids before it."""
  logits = np.asarray(model(np.asarray([ids[:-1]])), np.float64)[0]
  logits -= logits.max(-1, keepdims=True)
  log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return log_softmax[np.arange(len(ids) - 1), ids[1:]]


def test_lm_eval_hf_backend_scores_our_char_export_as_our_model(tmp_path, monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
  huggingface = pytest.importorskip("lm_eval.models.huggingface")
  from lm_eval.api.instance import Instance

  from tests.convert.test_hf import _model, _perturbed

  tok = CharTokenizer(CHARS)
  cfg = _decoder(tok.vocab_size + 3)
  params = _perturbed(cfg)
  hf.export(cfg, params, str(tmp_path), tok)
  lm = huggingface.HFLM(pretrained=str(tmp_path), device="cpu", batch_size=2)
  pairs = [("First Citizen:", " Speak."), ("", "All: Speak."), ("Before we", " proceed")]
  scored = lm.loglikelihood(
    [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
  )
  rolling = lm.loglikelihood_rolling(
    [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(TEXTS[1:])]
  )
  ours = _model(cfg, params)
  eos = tok.vocab_size  # the prefix of an empty context and of a rolling text's first window
  for (context, continuation), (log_prob, _) in zip(pairs, scored):
    start = tok.encode(context) or [eos]
    expected = _log_probs(ours, start + tok.encode(continuation))[len(start) - 1 :].sum()
    assert abs(log_prob - expected) < 1e-4
  assert abs(rolling[0] - _log_probs(ours, [eos, *tok.encode(TEXTS[1])]).sum()) < 1e-4
