"""Training objectives: next-token LM (decoder), masked LM (encoder), sequence classification.

Each gives per-batch sums (loss, squared loss, weight, correct, and with a z-loss its term) so
that train steps divide them and evaluation adds them up over batches first. The z-loss
(`train.z_loss`, PaLM) adds z * log(Z)^2 per prediction, log Z the logits' log-normaliser, to
the training objective only; `loss` stays the cross-entropy. Batches: LM and MLM take
{'tokens': [B, T + 1]} windows (MLM reads the first T; LM takes optional per-target 'weights'
[B, T], 0 for padding, and with document masking 'segment_ids' and 'positions' [B, T]);
classification takes {'tokens': [B, T] right-padded with `pad_id`, 'label': [B], 'weight': [B]}
(0: a row that only pads the batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lm.data.mlm import mask_tokens
from lm.model.numerics import cross_entropy

OBJECTIVES = ("lm", "mlm", "classify")


# Per-token (cross-entropy, log-normaliser) from logits [B, T, V] and targets [B, T].
LossFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Objective:
  """What a step optimises, with the token ids it needs."""

  name: str = "lm"
  mask_id: int = -1  # mlm
  pad_id: int = -1  # mlm (never selected) and classify (hidden from attention)
  num_random: int = 0  # mlm: random replacements are drawn from [0, num_random)
  select_prob: float = 0.15
  mask_frac: float = 0.8
  random_frac: float = 0.1
  z_loss: float = 0.0  # coefficient of log(Z)^2 in the training objective; 0: none


def objective_for(model_cfg, tokenizer, mlm_cfg, z_loss: float = 0.0) -> Objective:
  """The objective a model implies: classify if it has classes, else LM or MLM by kind."""
  pad_id = tokenizer.special_ids.get("[PAD]", -1)
  if model_cfg.num_classes:
    return Objective("classify", pad_id=pad_id, z_loss=z_loss)
  if model_cfg.kind == "decoder":
    return Objective("lm", z_loss=z_loss)
  if "[MASK]" not in tokenizer.special_ids:
    raise ValueError("an encoder (MLM) needs a tokenizer with a [MASK] token")
  return Objective(
    "mlm",
    mask_id=tokenizer.special_ids["[MASK]"],
    pad_id=pad_id,
    num_random=tokenizer.num_ordinary,
    select_prob=mlm_cfg.select_prob,
    mask_frac=mlm_cfg.mask_frac,
    random_frac=mlm_cfg.random_frac,
    z_loss=z_loss,
  )


def _sums(nll, lse, w, obj: Objective) -> dict[str, jax.Array]:
  sums = {"loss": (nll * w).sum(), "loss_sq": (jnp.square(nll) * w).sum(), "weight": w.sum()}
  if obj.z_loss:
    sums["z_loss"] = obj.z_loss * (jnp.square(lse) * w).sum()
  return sums


def batch_sums(
  model: Any,
  batch: dict[str, jax.Array],
  key: jax.Array,
  obj: Objective,
  *,
  rngs: nnx.Rngs | None = None,
  loss_fn: LossFn = cross_entropy,
) -> dict[str, jax.Array]:
  """{'loss': summed loss, 'loss_sq': summed squared loss, 'weight': number of predictions,
  'correct': right predictions, 'z_loss': the summed z-loss term (with one)}.

  `model` is the objective's: a DecoderLM for 'lm', an EncoderMLM for 'mlm', either for
  'classify'. `correct` is left out for the LM objective, to keep its step lean.
  """
  tokens = batch["tokens"]
  if obj.name == "lm":
    logits_BTV = model(
      tokens[:, :-1],
      positions_BT=batch.get("positions"),
      segment_ids_BT=batch.get("segment_ids"),
      rngs=rngs,
    )
    nll_BT, lse_BT = loss_fn(logits_BTV, tokens[:, 1:])
    return _sums(nll_BT, lse_BT, batch.get("weights", jnp.ones_like(nll_BT)), obj)
  if obj.name == "mlm":
    targets_BT = tokens[:, :-1]
    real_BT = targets_BT != obj.pad_id
    inputs_BT, selected_BT = mask_tokens(
      key,
      targets_BT,
      mask_id=obj.mask_id,
      num_random=obj.num_random,
      select_prob=obj.select_prob,
      mask_frac=obj.mask_frac,
      random_frac=obj.random_frac,
      maskable_BT=real_BT,
    )
    logits_BTV = model(inputs_BT, key_mask_BT=real_BT, rngs=rngs)
    w_BT = selected_BT.astype(jnp.float32)
    nll_BT, lse_BT = loss_fn(logits_BTV, targets_BT)
    right_BT = (jnp.argmax(logits_BTV, -1) == targets_BT).astype(jnp.float32)
    return {**_sums(nll_BT, lse_BT, w_BT, obj), "correct": (right_BT * w_BT).sum()}
  if obj.name == "classify":
    logits_BC = model.classify(tokens, tokens != obj.pad_id, rngs=rngs)
    labels_B, w_B = batch["label"], batch["weight"]
    nll_B1, lse_B1 = loss_fn(logits_BC[:, None], labels_B[:, None])
    right_B = (jnp.argmax(logits_BC, -1) == labels_B).astype(jnp.float32)
    return {**_sums(nll_B1[:, 0], lse_B1[:, 0], w_B, obj), "correct": (right_B * w_B).sum()}
  raise ValueError(f"objective {obj.name!r}; valid: {', '.join(OBJECTIVES)}")
