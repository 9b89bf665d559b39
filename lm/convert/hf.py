"""Hugging Face checkpoints of three families: GPT-2 (GPT2LMHeadModel), BERT (BertForMaskedLM)
and Llama (LlamaForCausalLM and its kin Mistral, Qwen2, Qwen3, SmolLM): import to our
parameters, and export back to `model.safetensors` + `config.json` (a BERT classifier as
BertForSequenceClassification; a decoder's classifier has no exact Hugging Face form).

One table per family maps each of our parameters to its Hugging Face tensor(s), with the
reshapes both ways, so import and export cannot disagree. Weights are read from
`model.safetensors` or the shards its index `model.safetensors.index.json` names (numpy, no
torch; bfloat16 through ml_dtypes, which jax registers with numpy); `pytorch_model.bin` only
through `torch.load(weights_only=True)`, which never unpickles arbitrary objects. An export is
one `model.safetensors` file, in float32. A truncated or garbled file, a `config.json` that
lacks a field, weights that lack a tensor, or `pytorch_model.bin` without torch raise
ValueError naming the file.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pickle
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from lm.convert import hf_tokenizers
from lm.data import hf_tokenizer
from lm.data.tokenizer import Tokenizer
from lm.model.config import TransformerConfig

SAFETENSORS, TORCH_BIN, CONFIG = "model.safetensors", "pytorch_model.bin", "config.json"
SAFETENSORS_INDEX = "model.safetensors.index.json"
GENERATION_CONFIG = "generation_config.json"  # what `generate` reads: the tokens' ids
# The Llama family's model types and their architectures; SmolLM is a Llama with a tied head.
LLAMA_ARCHITECTURES = {
  "llama": "LlamaForCausalLM",
  "mistral": "MistralForCausalLM",
  "qwen2": "Qwen2ForCausalLM",
  "qwen3": "Qwen3ForCausalLM",
}
MODEL_TYPES = ("gpt2", "bert", *LLAMA_ARCHITECTURES)
ROPE_TYPES = {"default": "none", "linear": "linear", "llama3": "llama3"}  # HF's: ours


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
  return Entry(
    path, (key,), lambda w: w.T.reshape(ours_shape), lambda x: (x.reshape(-1, ours_shape[-1]).T,)
  )


def _reshaped(
  key: str, path: tuple, ours_shape: tuple[int, ...], hf_shape: tuple[int, ...]
) -> Entry:
  return Entry(path, (key,), lambda w: w.reshape(ours_shape), lambda x: (x.reshape(hf_shape),))


def _split_out(key: str, path: tuple, ours_shape: tuple[int, ...]) -> Entry:
  """A torch Linear weight [out, in] to our [in, *out] layout (e.g. queries [D, N, H])."""
  return Entry(
    path, (key,), lambda w: w.T.reshape(ours_shape), lambda x: (x.reshape(ours_shape[0], -1).T,)
  )


def _stacked(keys: tuple[str, ...], path: tuple, ours_shape: tuple[int, ...]) -> Entry:
  """Torch Linear weights [out, in] (queries, keys, values) stacked on our axis 1:
  [in, len(keys), *out]."""
  return Entry(
    path,
    keys,
    lambda *ws: np.stack([w.T.reshape(ours_shape) for w in ws], axis=1),
    lambda x: tuple(x[:, j].reshape(ours_shape[0], -1).T for j in range(len(keys))),
  )


def _stacked_bias(keys: tuple[str, ...], path: tuple, ours_shape: tuple[int, ...]) -> Entry:
  """Biases [out] stacked on our axis 0: [len(keys), *out]."""
  return Entry(
    path,
    keys,
    lambda *bs: np.stack([v.reshape(ours_shape) for v in bs]),
    lambda x: tuple(x[j].reshape(-1) for j in range(len(keys))),
  )


def _norm(prefix: str, path: tuple) -> list[Entry]:
  return [_same(f"{prefix}.weight", path + ("scale",)), _same(f"{prefix}.bias", path + ("bias",))]


def _gpt2_table(c: TransformerConfig) -> list[Entry]:
  d, n, h = c.d_model, c.num_heads, c.head_dim
  table = [_same("wte.weight", ("embed",)), _same("wpe.weight", ("pos_embed",))]
  for i in range(c.num_layers):
    p, b = f"h.{i}", ("blocks", i)
    table += (
      _norm(f"{p}.ln_1", b + ("norm_attn",))
      + _norm(f"{p}.ln_2", b + ("norm_mlp",))
      + [
        _reshaped(f"{p}.attn.c_attn.weight", b + ("attn", "w_qkv"), (d, 3, n, h), (d, 3 * d)),
        _reshaped(f"{p}.attn.c_attn.bias", b + ("attn", "b_qkv"), (3, n, h), (3 * d,)),
        _reshaped(f"{p}.attn.c_proj.weight", b + ("attn", "w_out"), (n, h, d), (d, d)),
        _same(f"{p}.attn.c_proj.bias", b + ("attn", "b_out")),
        _same(f"{p}.mlp.c_fc.weight", b + ("mlp", "w_in")),
        _same(f"{p}.mlp.c_fc.bias", b + ("mlp", "b_in")),
        _same(f"{p}.mlp.c_proj.weight", b + ("mlp", "w_out")),
        _same(f"{p}.mlp.c_proj.bias", b + ("mlp", "b_out")),
      ]
    )
  return table + _norm("ln_f", ("norm_out",))


def _bert_table(c: TransformerConfig) -> list[Entry]:
  d, n, h = c.d_model, c.num_heads, c.head_dim
  e = "bert.embeddings"
  table = [
    _same(f"{e}.word_embeddings.weight", ("embed",)),
    _same(f"{e}.position_embeddings.weight", ("pos_embed",)),
    _same(f"{e}.token_type_embeddings.weight", ("segment_embed",)),
  ]
  table += _norm(f"{e}.LayerNorm", ("norm_embed",))
  for i in range(c.num_layers):
    p, b = f"bert.encoder.layer.{i}", ("blocks", i)
    qkv = tuple(f"{p}.attention.self.{m}" for m in ("query", "key", "value"))
    table += [
      _stacked(tuple(f"{k}.weight" for k in qkv), b + ("attn", "w_qkv"), (d, n, h)),
      _stacked_bias(tuple(f"{k}.bias" for k in qkv), b + ("attn", "b_qkv"), (n, h)),
      _linear_t(f"{p}.attention.output.dense.weight", b + ("attn", "w_out"), (n, h, d)),
      _same(f"{p}.attention.output.dense.bias", b + ("attn", "b_out")),
      _linear_t(f"{p}.intermediate.dense.weight", b + ("mlp", "w_in"), (d, c.mlp_dim)),
      _same(f"{p}.intermediate.dense.bias", b + ("mlp", "b_in")),
      _linear_t(f"{p}.output.dense.weight", b + ("mlp", "w_out"), (c.mlp_dim, d)),
      _same(f"{p}.output.dense.bias", b + ("mlp", "b_out")),
    ]
    table += _norm(f"{p}.attention.output.LayerNorm", b + ("norm_attn",))
    table += _norm(f"{p}.output.LayerNorm", b + ("norm_mlp",))
  if c.num_classes:  # BertForSequenceClassification: pooler (dense + tanh) and classifier
    return table + [
      _linear_t("bert.pooler.dense.weight", ("classifier", "w_pool"), (d, d)),
      _same("bert.pooler.dense.bias", ("classifier", "b_pool")),
      _linear_t("classifier.weight", ("classifier", "w_out"), (d, c.num_classes)),
      _same("classifier.bias", ("classifier", "b_out")),
    ]
  t = "cls.predictions"
  table += [
    _linear_t(f"{t}.transform.dense.weight", ("mlm_head", "w"), (d, d)),
    _same(f"{t}.transform.dense.bias", ("mlm_head", "b")),
    _same(f"{t}.bias", ("mlm_head", "bias")),
  ]
  return table + _norm(f"{t}.transform.LayerNorm", ("mlm_head", "norm"))


def _llama_attention(c: TransformerConfig, prefix: str, path: tuple) -> list[Entry]:
  """q/k/v projections: one fused `w_qkv` with as many KV heads as heads, else `w_q`, `w_kv`."""
  d, n, k, h = c.d_model, c.num_heads, c.kv_heads, c.head_dim
  weights = tuple(f"{prefix}.{m}_proj.weight" for m in "qkv")
  biases = tuple(f"{prefix}.{m}_proj.bias" for m in "qkv")
  with_bias = c.use_bias or c.qkv_bias
  if k == n:
    table = [_stacked(weights, path + ("w_qkv",), (d, n, h))]
    return table + ([_stacked_bias(biases, path + ("b_qkv",), (n, h))] if with_bias else [])
  table = [
    _split_out(weights[0], path + ("w_q",), (d, n, h)),
    _stacked(weights[1:], path + ("w_kv",), (d, k, h)),
  ]
  if with_bias:
    table += [
      _reshaped(biases[0], path + ("b_q",), (n, h), (n * h,)),
      _stacked_bias(biases[1:], path + ("b_kv",), (k, h)),
    ]
  return table


def _llama_table(c: TransformerConfig) -> list[Entry]:
  d, n, h, f = c.d_model, c.num_heads, c.head_dim, c.mlp_dim
  table = [_same("model.embed_tokens.weight", ("embed",))]
  for i in range(c.num_layers):
    p, b = f"model.layers.{i}", ("blocks", i)
    a, m = f"{p}.self_attn", f"{p}.mlp"
    table += _llama_attention(c, a, b + ("attn",)) + [
      _linear_t(f"{a}.o_proj.weight", b + ("attn", "w_out"), (n, h, d)),
      _linear_t(f"{m}.gate_proj.weight", b + ("mlp", "w_gate"), (d, f)),
      _linear_t(f"{m}.up_proj.weight", b + ("mlp", "w_in"), (d, f)),
      _linear_t(f"{m}.down_proj.weight", b + ("mlp", "w_out"), (f, d)),
      _same(f"{p}.input_layernorm.weight", b + ("norm_attn", "scale")),
      _same(f"{p}.post_attention_layernorm.weight", b + ("norm_mlp", "scale")),
    ]
    if c.use_bias:
      table += [
        _same(f"{a}.o_proj.bias", b + ("attn", "b_out")),
        _same(f"{m}.gate_proj.bias", b + ("mlp", "b_gate")),
        _same(f"{m}.up_proj.bias", b + ("mlp", "b_in")),
        _same(f"{m}.down_proj.bias", b + ("mlp", "b_out")),
      ]
    if c.qk_norm:
      table += [
        _same(f"{a}.q_norm.weight", b + ("attn", "q_norm", "scale")),
        _same(f"{a}.k_norm.weight", b + ("attn", "k_norm", "scale")),
      ]
  table.append(_same("model.norm.weight", ("norm_out", "scale")))
  if not c.tie_embeddings:
    table.append(_linear_t("lm_head.weight", ("head",), (d, c.vocab_size)))
  return table


def _rope_fields(hf: dict[str, Any]) -> dict[str, Any]:
  """Our rotary fields from `rope_scaling` + `rope_theta` (transformers 4) or
  `rope_parameters` (transformers 5), preferring the former as transformers does."""
  rope = hf.get("rope_scaling") or hf.get("rope_parameters") or {}
  if any(isinstance(v, dict) for v in rope.values()):
    raise ValueError("config.json: per-layer-type RoPE parameters are not supported")
  kind = rope.get("rope_type", rope.get("type", "default"))
  if kind not in ROPE_TYPES:
    raise ValueError(
      f"config.json: RoPE type {kind!r} is not supported; supported: {', '.join(ROPE_TYPES)}"
    )
  if rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)) != 1.0:
    raise ValueError("config.json: partial_rotary_factor != 1 is not supported")
  fields = {
    "rope_theta": float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
    "rope_scaling": ROPE_TYPES[kind],
  }
  if kind != "default":
    fields["rope_scaling_factor"] = float(rope["factor"])
  if kind == "llama3":
    fields.update(
      rope_low_freq_factor=float(rope["low_freq_factor"]),
      rope_high_freq_factor=float(rope["high_freq_factor"]),
      rope_original_max_len=int(
        rope.get("original_max_position_embeddings", hf["max_position_embeddings"])
      ),
    )
  return fields


def _llama_config(hf: dict[str, Any]) -> TransformerConfig:
  kind, d, n = hf["model_type"], hf["hidden_size"], hf["num_attention_heads"]
  if hf.get("hidden_act", "silu") != "silu":
    raise ValueError(f"{kind} activation {hf['hidden_act']!r} is not supported (only silu)")
  if hf.get("head_dim") not in (None, d // n):
    raise ValueError(
      f"{kind} head_dim={hf['head_dim']} differs from hidden_size / "
      f"num_attention_heads = {d // n}; not supported"
    )
  window = hf.get("sliding_window") if hf.get("use_sliding_window", True) else None
  if window is not None and window < hf["max_position_embeddings"]:
    raise ValueError(
      f"{kind} sliding_window={window} < max_position_embeddings="
      f"{hf['max_position_embeddings']}: sliding-window attention is not "
      "supported"
    )
  attention_bias, mlp_bias = hf.get("attention_bias", False), hf.get("mlp_bias", False)
  if attention_bias != mlp_bias:
    raise ValueError(
      f"{kind} attention_bias={attention_bias} with mlp_bias={mlp_bias} is not "
      "supported: biases are on every projection or none (Qwen2: q/k/v only)"
    )
  kv = hf.get("num_key_value_heads") or n
  return TransformerConfig(
    vocab_size=hf["vocab_size"],
    num_layers=hf["num_hidden_layers"],
    num_heads=n,
    d_model=d,
    mlp_dim=hf["intermediate_size"],
    max_seq_len=hf["max_position_embeddings"],
    position="rotary",
    tie_embeddings=hf.get("tie_word_embeddings", False),
    use_bias=attention_bias,
    layer_norm_eps=hf.get("rms_norm_eps", 1e-6),
    norm="rmsnorm",
    mlp="swiglu",
    num_kv_heads=0 if kv == n else kv,
    qk_norm=kind == "qwen3",
    qkv_bias=kind == "qwen2",
    **_rope_fields(hf),
  )


class _Sizes(TypedDict):
  vocab_size: int
  num_layers: int
  num_heads: int
  d_model: int
  max_seq_len: int


def _sizes(hf: dict[str, Any], layers: str, heads: str, width: str, context: str) -> _Sizes:
  """The vocabulary, depth, heads, width and context of a Hugging Face `config.json`, whose
  names for the last four are given."""
  return _Sizes(
    vocab_size=hf["vocab_size"],
    num_layers=hf[layers],
    num_heads=hf[heads],
    d_model=hf[width],
    max_seq_len=hf[context],
  )


def model_config(hf: dict[str, Any]) -> TransformerConfig:
  """Our architecture for a Hugging Face `config.json` (GPT-2, BERT or the Llama family)."""
  kind = hf.get("model_type")
  if kind == "gpt2":
    if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
      raise ValueError(f"GPT-2 activation {hf['activation_function']!r} is not supported")
    return TransformerConfig(
      **_sizes(hf, "n_layer", "n_head", "n_embd", "n_positions"),
      mlp_dim=hf.get("n_inner") or 4 * hf["n_embd"],
      layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
      activation="gelu_tanh",
    )
  if kind == "bert":
    if hf.get("hidden_act", "gelu") != "gelu":
      raise ValueError(f"BERT activation {hf['hidden_act']!r} is not supported")
    return TransformerConfig(
      **_sizes(
        hf, "num_hidden_layers", "num_attention_heads", "hidden_size", "max_position_embeddings"
      ),
      mlp_dim=hf["intermediate_size"],
      layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
      kind="encoder",
      norm_position="post",
      activation="gelu",
      type_vocab_size=hf.get("type_vocab_size", 2),
    )
  if kind in LLAMA_ARCHITECTURES:
    return _llama_config(hf)
  raise ValueError(f"config.json model_type={kind!r}; supported: {', '.join(MODEL_TYPES)}")


def _family(cfg: TransformerConfig) -> str:
  """'gpt2', 'bert' or 'llama': the Hugging Face layout our architecture maps to."""
  blocks = (cfg.kind, cfg.norm_position, cfg.norm, cfg.mlp)
  if (
    blocks == ("decoder", "pre", "rmsnorm", "swiglu")
    and cfg.position == "rotary"
    and not cfg.type_vocab_size
  ):
    return "llama"
  classic = (
    cfg.use_bias and cfg.tie_embeddings and cfg.kv_heads == cfg.num_heads and not cfg.qk_norm
  )
  learned = cfg.position == "learned"
  if (
    classic
    and learned
    and blocks == ("decoder", "pre", "layernorm", "gelu")
    and (cfg.activation == "gelu_tanh")
  ):
    return "gpt2"
  if classic and blocks == ("encoder", "post", "layernorm", "gelu") and cfg.activation == "gelu":
    if not learned:
      raise ValueError(
        f"a BERT-like encoder with {cfg.position} positions has no Hugging Face form: "
        "BertForMaskedLM has a learned position table only; train with "
        "--config.model.position=learned to export one"
      )
    return "bert"
  raise ValueError(
    "only GPT-2-like (decoder, pre-LN, gelu_tanh), BERT-like (encoder, post-LN, "
    "gelu) models with learned positions, biases, a tied head and as many KV heads "
    "as heads, and Llama-like ones (decoder, pre-RMSNorm, SwiGLU, rotary) map to "
    "Hugging Face checkpoints"
  )


def _llama_type(cfg: TransformerConfig) -> str:
  """The Hugging Face model type of a Llama-family architecture."""
  if cfg.qk_norm and (cfg.use_bias or cfg.qkv_bias):
    raise ValueError(
      "QK-norm with biases has no Hugging Face Llama-family model (Qwen3: QK-norm, no biases)"
    )
  if cfg.qk_norm:
    return "qwen3"
  return "qwen2" if cfg.qkv_bias and not cfg.use_bias else "llama"


def _table(cfg: TransformerConfig) -> list[Entry]:
  return {"gpt2": _gpt2_table, "bert": _bert_table, "llama": _llama_table}[_family(cfg)](cfg)


def _safetensors(path: str) -> dict[str, np.ndarray]:
  try:
    return load_file(path)
  except SafetensorError as e:
    raise ValueError(
      f"{path} is not a readable safetensors file ({e}): truncated or corrupted? download or "
      "export it again"
    ) from e


def _torch_bin(path: str) -> dict[str, np.ndarray]:
  """A `pytorch_model.bin`'s tensors, unpickled by torch with weights only."""
  try:
    torch = importlib.import_module("torch")  # the optional `hf` extra
  except ImportError:
    raise ValueError(
      f"{path} is a pickle that only torch reads safely: install the `hf` extra "
      f"(pip install 'lm[hf]'), or convert it to {SAFETENSORS}"
    ) from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(f"{path} cannot be read by torch ({reason}): truncated or corrupted?") from e
  return {k: v.float().numpy() for k, v in state.items()}


def read_weights(directory: str) -> dict[str, np.ndarray]:
  """The checkpoint's tensors as float32 numpy arrays, read safely."""
  path, index = os.path.join(directory, SAFETENSORS), os.path.join(directory, SAFETENSORS_INDEX)
  if os.path.exists(path):
    tensors = _safetensors(path)
  elif os.path.exists(index):
    shards = sorted(set(hf_tokenizer.read_json(index)["weight_map"].values()))
    tensors = {
      k: v for shard in shards for k, v in _safetensors(os.path.join(directory, shard)).items()
    }
  elif os.path.exists(os.path.join(directory, TORCH_BIN)):
    tensors = _torch_bin(os.path.join(directory, TORCH_BIN))
  else:
    raise FileNotFoundError(f"no {SAFETENSORS}, {SAFETENSORS_INDEX} or {TORCH_BIN} in {directory}")
  return {k: np.asarray(v, np.float32) for k, v in tensors.items()}


def _normalise_keys(tensors: dict[str, np.ndarray], family: str) -> dict[str, np.ndarray]:
  return {_normalised_key(k, family): v for k, v in tensors.items()}


def _normalised_key(key: str, family: str) -> str:
  """`key` as the current transformers names it (GPT-2 without the `transformer.` prefix; BERT
  with its prefix and LayerNorm weight/bias, not gamma/beta)."""
  if family == "gpt2" and key.startswith("transformer."):
    return key[len("transformer.") :]
  if family != "bert":
    return key
  key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
    "LayerNorm.beta", "LayerNorm.bias"
  )
  key = "cls.predictions.bias" if key == "cls.predictions.decoder.bias" else key
  return key if key.startswith(("bert.", "cls.")) else "bert." + key


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
  config = os.path.join(directory, CONFIG)
  try:
    cfg = model_config(hf_tokenizer.read_json(config))
  except KeyError as e:
    raise ValueError(f"{config} lacks the field {e}") from e
  family = _family(cfg)
  tensors = _normalise_keys(read_weights(directory), family)
  params: dict = {}
  for entry in _table(cfg):
    missing = [k for k in entry.keys if k not in tensors]
    if missing:
      raise ValueError(f"{directory}: the {family} weights lack {', '.join(missing)}")
    _set(params, entry.path, entry.to_ours(*(tensors[k] for k in entry.keys)))
  return cfg, params


def load_tokenizer(directory: str) -> Tokenizer | None:
  """The directory's `tokenizer.json`, GPT-2's BPE (vocab.json + merges.txt), BERT's
  WordPiece (vocab.txt) or a SentencePiece `tokenizer.model`, if present."""
  return hf_tokenizers.load(directory)


def _llama_hf_config(cfg: TransformerConfig) -> dict[str, Any]:
  kind = _llama_type(cfg)
  rope: dict[str, Any] = {"rope_type": {v: k for k, v in ROPE_TYPES.items()}[cfg.rope_scaling]}
  if cfg.rope_scaling != "none":
    rope["factor"] = cfg.rope_scaling_factor
  if cfg.rope_scaling == "llama3":
    rope.update(
      low_freq_factor=cfg.rope_low_freq_factor,
      high_freq_factor=cfg.rope_high_freq_factor,
      original_max_position_embeddings=cfg.rope_original_max_len,
    )
  out = {
    "model_type": kind,
    "architectures": [LLAMA_ARCHITECTURES[kind]],
    "vocab_size": cfg.vocab_size,
    "hidden_size": cfg.d_model,
    "intermediate_size": cfg.mlp_dim,
    "num_hidden_layers": cfg.num_layers,
    "num_attention_heads": cfg.num_heads,
    "num_key_value_heads": cfg.kv_heads,
    "head_dim": cfg.head_dim,
    "hidden_act": "silu",
    "max_position_embeddings": cfg.max_seq_len,
    "rms_norm_eps": cfg.layer_norm_eps,
    "tie_word_embeddings": cfg.tie_embeddings,
    # transformers 4 reads rope_theta + rope_scaling, transformers 5 rope_parameters.
    "rope_theta": cfg.rope_theta,
    "rope_scaling": rope if cfg.rope_scaling != "none" else None,
    "rope_parameters": {**rope, "rope_theta": cfg.rope_theta},
  }
  if kind == "llama":
    out["attention_bias"] = out["mlp_bias"] = cfg.use_bias
  return out


def hf_config(cfg: TransformerConfig) -> dict[str, Any]:
  """The Hugging Face `config.json` of our architecture."""
  if _family(cfg) == "llama":
    return _llama_hf_config(cfg)
  if _family(cfg) == "gpt2":
    return {
      "model_type": "gpt2",
      "architectures": ["GPT2LMHeadModel"],
      "vocab_size": cfg.vocab_size,
      "n_positions": cfg.max_seq_len,
      "n_embd": cfg.d_model,
      "n_layer": cfg.num_layers,
      "n_head": cfg.num_heads,
      "n_inner": cfg.mlp_dim,
      "activation_function": "gelu_new",
      "layer_norm_epsilon": cfg.layer_norm_eps,
      "tie_word_embeddings": True,
    }
  labels = {
    "num_labels": cfg.num_classes,
    "id2label": {str(i): f"LABEL_{i}" for i in range(cfg.num_classes)},
    "label2id": {f"LABEL_{i}": i for i in range(cfg.num_classes)},
  }
  return {
    "model_type": "bert",
    "architectures": ["BertForSequenceClassification" if cfg.num_classes else "BertForMaskedLM"],
    **(labels if cfg.num_classes else {}),
    "vocab_size": cfg.vocab_size,
    "hidden_size": cfg.d_model,
    "num_hidden_layers": cfg.num_layers,
    "num_attention_heads": cfg.num_heads,
    "intermediate_size": cfg.mlp_dim,
    "hidden_act": "gelu",
    "max_position_embeddings": cfg.max_seq_len,
    "type_vocab_size": max(cfg.type_vocab_size, 1),
    "layer_norm_eps": cfg.layer_norm_eps,
    "tie_word_embeddings": True,
  }


def _refuse_decoder_classifier(cfg: TransformerConfig) -> None:
  """Raises ValueError for a decoder with a classifier, whose head Hugging Face cannot hold."""
  if not cfg.num_classes or cfg.kind != "decoder":
    return
  family = _family(cfg)
  name = {"gpt2": "GPT2", "llama": "Llama", "qwen2": "Qwen2", "qwen3": "Qwen3"}[
    family if family == "gpt2" else _llama_type(cfg)
  ]
  raise ValueError(
    f"a decoder classifier has no exact Hugging Face form: our head puts the last "
    f"real token through dense + tanh and then a linear layer with a bias, "
    f"{name}ForSequenceClassification through one linear layer without a bias"
  )


def export(
  cfg: TransformerConfig, params: dict, directory: str, tokenizer: Tokenizer | None = None
) -> None:
  """Writes `model.safetensors` + `config.json` and the tokenizer's Hugging Face files
  (lm/convert/hf_tokenizers.py) that `transformers` loads as GPT2LMHeadModel, BertForMaskedLM
  (BertForSequenceClassification with a classifier) or a Llama-family model (LlamaForCausalLM;
  Qwen2ForCausalLM with q/k/v biases only, Qwen3ForCausalLM with QK-norm); with a tokenizer,
  `config.json` (and a decoder's `generation_config.json`) name its start, end and padding
  tokens' ids. A decoder with a classifier is refused (ValueError), as is an architecture no
  family holds."""
  _refuse_decoder_classifier(cfg)
  if cfg.parametrization != "standard":
    raise ValueError(
      f"a parametrization={cfg.parametrization!r} model has no Hugging Face "
      "equivalent (its attention scale and logit multiplier are not in the format)"
    )
  family = _family(cfg)  # refuses an architecture no family holds, before writing anything
  os.makedirs(directory, exist_ok=True)
  params = dict(params)
  if family == "bert" and not cfg.type_vocab_size:
    params["segment_embed"] = np.zeros((1, cfg.d_model), np.float32)  # adds nothing
  tensors = {}
  for entry in _table(cfg):
    values = entry.to_hf(np.asarray(_get(params, entry.path), np.float32))
    tensors.update({k: np.ascontiguousarray(v) for k, v in zip(entry.keys, values)})
  if family == "gpt2":
    tensors = {"transformer." + k: v for k, v in tensors.items()}
  save_file(tensors, os.path.join(directory, SAFETENSORS), metadata={"format": "pt"})
  token_ids = {}
  if tokenizer is not None:
    token_ids = hf_tokenizers.save(tokenizer, directory, cfg.kind == "encoder", cfg.vocab_size)
  with open(os.path.join(directory, CONFIG), "w") as f:
    json.dump(hf_config(cfg) | token_ids, f, indent=2)
  if cfg.kind == "decoder" and token_ids:
    with open(os.path.join(directory, GENERATION_CONFIG), "w") as f:
      json.dump(token_ids, f, indent=2)
