"""An architecture Hugging Face cannot hold is refused by export with the reason (no torch
needed)."""

import pytest
from flax import nnx

from lm.convert import hf
from lm.model.config import TransformerConfig
from lm.model.transformer import make_model

BERT_LIKE = {
  "kind": "encoder",
  "norm_position": "post",
  "activation": "gelu",
  "vocab_size": 20,
  "num_layers": 1,
  "num_heads": 2,
  "d_model": 8,
  "mlp_dim": 16,
  "max_seq_len": 16,
}


def _params(cfg):
  return nnx.to_pure_dict(nnx.state(make_model(cfg, rngs=nnx.Rngs(0)), nnx.Param))


def test_a_bert_like_encoder_with_rotary_positions_is_refused_naming_them(tmp_path):
  cfg = TransformerConfig(**BERT_LIKE, position="rotary")  # bert_shakespeare_char's blocks
  with pytest.raises(
    ValueError,
    match=r"^a BERT-like encoder with rotary positions has no Hugging Face form: "
    r"BertForMaskedLM has a learned position table only; train with "
    r"--config.model.position=learned to export one$",
  ):
    hf.export(cfg, _params(cfg), str(tmp_path / "exported"))
  assert not (tmp_path / "exported").exists()
  learned = TransformerConfig(**BERT_LIKE, position="learned")
  hf.export(learned, _params(learned), str(tmp_path / "exported"))
  assert (tmp_path / "exported" / "config.json").exists()
