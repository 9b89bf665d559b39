"""Hugging Face GPT-2 (GPT2LMHeadModel) and BERT (BertForMaskedLM) checkpoints: import to our
parameters, and export back to `model.safetensors` + `config.json`.

One table per family maps each of our parameters to its Hugging Face tensor(s), with the
reshapes both ways, so import and export cannot disagree. Weights are read from
`model.safetensors` (numpy, no torch); `pytorch_model.bin` only through
`torch.load(weights_only=True)`, which never unpickles arbitrary objects.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from lm.data import bpe, wordpiece
from lm.data.tokenizer import Tokenizer
from lm.model.config import TransformerConfig

SAFETENSORS, TORCH_BIN, CONFIG = "model.safetensors", "pytorch_model.bin", "config.json"
FAMILIES = ("gpt2", "bert")


@dataclasses.dataclass(frozen=True)
class Entry:
  """Our parameter at `path` from the Hugging Face tensors `keys`, and back."""

  path: tuple[Any, ...]
  keys: tuple[str, ...]
  to_ours: Callable[..., np.ndarray]
  to_hf: Callable[[np.ndarray], tuple[np.ndarray, ...]]


def _same(key: str, path: tuple) -> Entry:
  return Entry(path, (key,), lambda x: x, lambda x: (x,))


def _linear_t(key: str, path: tuple, ours_shape: tuple[int, ...]) -> Entry:
  """A torch Linear weight [out, in] to our [in, ...out] layout."""
  return Entry(path, (key,), lambda w: w.T.reshape(ours_shape),
               lambda x: (x.reshape(-1, ours_shape[-1]).T,))


def _reshaped(key: str, path: tuple, ours_shape: tuple[int, ...], hf_shape: tuple[int, ...]
              ) -> Entry:
  return Entry(path, (key,), lambda w: w.reshape(ours_shape), lambda x: (x.reshape(hf_shape),))


def _norm(prefix: str, path: tuple) -> list[Entry]:
  return [_same(f"{prefix}.weight", path + ("scale",)), _same(f"{prefix}.bias", path + ("bias",))]


def _gpt2_table(c: TransformerConfig) -> list[Entry]:
  d, n, h = c.d_model, c.num_heads, c.head_dim
  table = [_same("wte.weight", ("embed",)), _same("wpe.weight", ("pos_embed",))]
  for i in range(c.num_layers):
    p, b = f"h.{i}", ("blocks", i)
    table += _norm(f"{p}.ln_1", b + ("norm_attn",)) + _norm(f"{p}.ln_2", b + ("norm_mlp",)) + [
        _reshaped(f"{p}.attn.c_attn.weight", b + ("attn", "w_qkv"), (d, 3, n, h), (d, 3 * d)),
        _reshaped(f"{p}.attn.c_attn.bias", b + ("attn", "b_qkv"), (3, n, h), (3 * d,)),
        _reshaped(f"{p}.attn.c_proj.weight", b + ("attn", "w_out"), (n, h, d), (d, d)),
        _same(f"{p}.attn.c_proj.bias", b + ("attn", "b_out")),
        _same(f"{p}.mlp.c_fc.weight", b + ("mlp", "w_in")),
        _same(f"{p}.mlp.c_fc.bias", b + ("mlp", "b_in")),
        _same(f"{p}.mlp.c_proj.weight", b + ("mlp", "w_out")),
        _same(f"{p}.mlp.c_proj.bias", b + ("mlp", "b_out"))]
  return table + _norm("ln_f", ("norm_out",))


def _bert_table(c: TransformerConfig) -> list[Entry]:
  d, n, h = c.d_model, c.num_heads, c.head_dim
  e = "bert.embeddings"
  table = [_same(f"{e}.word_embeddings.weight", ("embed",)),
           _same(f"{e}.position_embeddings.weight", ("pos_embed",)),
           _same(f"{e}.token_type_embeddings.weight", ("segment_embed",))]
  table += _norm(f"{e}.LayerNorm", ("norm_embed",))
  for i in range(c.num_layers):
    p, b = f"bert.encoder.layer.{i}", ("blocks", i)
    qkv = tuple(f"{p}.attention.self.{m}" for m in ("query", "key", "value"))
    table += [
        Entry(b + ("attn", "w_qkv"), tuple(f"{k}.weight" for k in qkv),
              lambda *ws: np.stack([w.T.reshape(d, n, h) for w in ws], axis=1),
              lambda x: tuple(x[:, j].reshape(d, d).T for j in range(3))),
        Entry(b + ("attn", "b_qkv"), tuple(f"{k}.bias" for k in qkv),
              lambda *bs: np.stack([v.reshape(n, h) for v in bs]),
              lambda x: tuple(x[j].reshape(d) for j in range(3))),
        _linear_t(f"{p}.attention.output.dense.weight", b + ("attn", "w_out"), (n, h, d)),
        _same(f"{p}.attention.output.dense.bias", b + ("attn", "b_out")),
        _linear_t(f"{p}.intermediate.dense.weight", b + ("mlp", "w_in"), (d, c.mlp_dim)),
        _same(f"{p}.intermediate.dense.bias", b + ("mlp", "b_in")),
        _linear_t(f"{p}.output.dense.weight", b + ("mlp", "w_out"), (c.mlp_dim, d)),
        _same(f"{p}.output.dense.bias", b + ("mlp", "b_out"))]
    table += _norm(f"{p}.attention.output.LayerNorm", b + ("norm_attn",))
    table += _norm(f"{p}.output.LayerNorm", b + ("norm_mlp",))
  t = "cls.predictions"
  table += [_linear_t(f"{t}.transform.dense.weight", ("mlm_head", "w"), (d, d)),
            _same(f"{t}.transform.dense.bias", ("mlm_head", "b")),
            _same(f"{t}.bias", ("mlm_head", "bias"))]
  return table + _norm(f"{t}.transform.LayerNorm", ("mlm_head", "norm"))


def model_config(hf: dict[str, Any]) -> TransformerConfig:
  """Our architecture for a Hugging Face `config.json` (GPT-2 or BERT)."""
  kind = hf.get("model_type")
  if kind == "gpt2":
    if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
      raise ValueError(f"GPT-2 activation {hf['activation_function']!r} is not supported")
    return TransformerConfig(
        vocab_size=hf["vocab_size"], num_layers=hf["n_layer"], num_heads=hf["n_head"],
        d_model=hf["n_embd"], mlp_dim=hf.get("n_inner") or 4 * hf["n_embd"],
        max_seq_len=hf["n_positions"], layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        activation="gelu_tanh")
  if kind == "bert":
    if hf.get("hidden_act", "gelu") != "gelu":
      raise ValueError(f"BERT activation {hf['hidden_act']!r} is not supported")
    return TransformerConfig(
        vocab_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"], d_model=hf["hidden_size"],
        mlp_dim=hf["intermediate_size"], max_seq_len=hf["max_position_embeddings"],
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12), kind="encoder", norm_position="post",
        activation="gelu", type_vocab_size=hf.get("type_vocab_size", 2))
  raise ValueError(f"config.json model_type={kind!r}; supported: {', '.join(FAMILIES)}")


def _family(cfg: TransformerConfig) -> str:
  if (cfg.kind, cfg.norm_position, cfg.activation) == ("decoder", "pre", "gelu_tanh"):
    return "gpt2"
  if (cfg.kind, cfg.norm_position, cfg.activation) == ("encoder", "post", "gelu"):
    return "bert"
  raise ValueError("only GPT-2-like (decoder, pre-LN, gelu_tanh) and BERT-like (encoder, "
                   "post-LN, gelu) models map to Hugging Face checkpoints")


def _table(cfg: TransformerConfig) -> list[Entry]:
  if cfg.position != "learned" or not cfg.use_bias or not cfg.tie_embeddings:
    raise ValueError("Hugging Face GPT-2 / BERT need learned positions, biases and a tied head")
  return _gpt2_table(cfg) if _family(cfg) == "gpt2" else _bert_table(cfg)


def read_weights(directory: str) -> dict[str, np.ndarray]:
  """The checkpoint's tensors as float32 numpy arrays, read safely."""
  path = os.path.join(directory, SAFETENSORS)
  if os.path.exists(path):
    tensors = load_file(path)
  elif os.path.exists(os.path.join(directory, TORCH_BIN)):
    try:
      import torch  # pylint: disable=import-outside-toplevel (optional)
    except ImportError:
      raise ImportError(f"{directory} has only {TORCH_BIN}, a pickle; reading it safely needs "
                        f"torch (pip install 'lm[hf]'), or convert it to {SAFETENSORS}") from None
    state = torch.load(os.path.join(directory, TORCH_BIN), map_location="cpu", weights_only=True)
    tensors = {k: v.float().numpy() for k, v in state.items()}
  else:
    raise FileNotFoundError(f"no {SAFETENSORS} or {TORCH_BIN} in {directory}")
  return {k: np.asarray(v, np.float32) for k, v in tensors.items()}


def _normalise_keys(tensors: dict[str, np.ndarray], family: str) -> dict[str, np.ndarray]:
  out = {}
  for k, v in tensors.items():
    if family == "gpt2" and k.startswith("transformer."):
      k = k[len("transformer."):]
    if family == "bert":
      k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta",
                                                                   "LayerNorm.bias")
      k = "cls.predictions.bias" if k == "cls.predictions.decoder.bias" else k
      k = k if k.startswith(("bert.", "cls.")) else "bert." + k
    out[k] = v
  return out


def _set(tree: dict, path: tuple, value) -> None:
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _get(tree: dict, path: tuple):
  for p in path:
    tree = tree[p]
  return tree


def import_params(directory: str) -> tuple[TransformerConfig, dict]:
  """(our architecture, our params as a pure dict of float32 numpy arrays) of a HF directory."""
  with open(os.path.join(directory, CONFIG)) as f:
    cfg = model_config(json.load(f))
  family = _family(cfg)
  tensors = _normalise_keys(read_weights(directory), family)
  params: dict = {}
  for entry in _table(cfg):
    missing = [k for k in entry.keys if k not in tensors]
    if missing:
      raise KeyError(f"{directory}: {family} checkpoint lacks {', '.join(missing)}")
    _set(params, entry.path, entry.to_ours(*(tensors[k] for k in entry.keys)))
  return cfg, params


def load_tokenizer(directory: str) -> Tokenizer | None:
  """GPT-2's BPE (vocab.json + merges.txt) or BERT's WordPiece (vocab.txt), if present."""
  if os.path.exists(os.path.join(directory, bpe.MERGES_FILE)):
    return bpe.ByteBPETokenizer(directory)
  if os.path.exists(os.path.join(directory, wordpiece.VOCAB_FILE)):
    return wordpiece.WordPieceTokenizer(directory)
  return None


def hf_config(cfg: TransformerConfig) -> dict[str, Any]:
  """The Hugging Face `config.json` of our architecture."""
  if _family(cfg) == "gpt2":
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": cfg.vocab_size, "n_positions": cfg.max_seq_len, "n_embd": cfg.d_model,
            "n_layer": cfg.num_layers, "n_head": cfg.num_heads, "n_inner": cfg.mlp_dim,
            "activation_function": "gelu_new", "layer_norm_epsilon": cfg.layer_norm_eps,
            "tie_word_embeddings": True}
  return {"model_type": "bert", "architectures": ["BertForMaskedLM"],
          "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
          "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
          "intermediate_size": cfg.mlp_dim, "hidden_act": "gelu",
          "max_position_embeddings": cfg.max_seq_len,
          "type_vocab_size": max(cfg.type_vocab_size, 1), "layer_norm_eps": cfg.layer_norm_eps,
          "tie_word_embeddings": True}


def export(cfg: TransformerConfig, params: dict, directory: str,
           tokenizer: Tokenizer | None = None) -> None:
  """Writes `model.safetensors` + `config.json` (and the tokenizer's files, if it has HF ones)
  that `transformers` loads as GPT2LMHeadModel / BertForMaskedLM."""
  if cfg.parametrization != "standard":
    raise ValueError(f"a parametrization={cfg.parametrization!r} model has no Hugging Face "
                     "equivalent (its attention scale and logit multiplier are not in the format)")
  os.makedirs(directory, exist_ok=True)
  params = dict(params)
  if _family(cfg) == "bert" and not cfg.type_vocab_size:
    params["segment_embed"] = np.zeros((1, cfg.d_model), np.float32)  # adds nothing
  tensors = {}
  for entry in _table(cfg):
    values = entry.to_hf(np.asarray(_get(params, entry.path), np.float32))
    tensors.update({k: np.ascontiguousarray(v) for k, v in zip(entry.keys, values)})
  if _family(cfg) == "gpt2":
    tensors = {"transformer." + k: v for k, v in tensors.items()}
  save_file(tensors, os.path.join(directory, SAFETENSORS), metadata={"format": "pt"})
  with open(os.path.join(directory, CONFIG), "w") as f:
    json.dump(hf_config(cfg), f, indent=2)
  if isinstance(tokenizer, (bpe.ByteBPETokenizer, wordpiece.WordPieceTokenizer)):
    tokenizer.save(directory)
