"""Training objectives: next-token LM (decoder), masked LM (encoder), sequence classification.

Each gives per-batch sums (loss, squared loss, weight, correct) so that train steps divide them
and evaluation adds them up over batches first. Batches: LM and MLM take {'tokens': [B, T + 1]}
windows (MLM reads the first T; LM takes optional per-target 'weights' [B, T], 0 for padding);
classification takes {'tokens': [B, T] right-padded with `pad_id`, 'label': [B], 'weight': [B]}
(0: a row that only pads the batch).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lm.data.mlm import mask_tokens
from lm.model.numerics import cross_entropy

OBJECTIVES = ("lm", "mlm", "classify")


@dataclasses.dataclass(frozen=True)
class Objective:
  """What a step optimises, with the token ids it needs."""

  name: str = "lm"
  mask_id: int = -1       # mlm
  pad_id: int = -1        # mlm (never selected) and classify (hidden from attention)
  num_random: int = 0     # mlm: random replacements are drawn from [0, num_random)
  select_prob: float = 0.15
  mask_frac: float = 0.8
  random_frac: float = 0.1


def objective_for(model_cfg, tokenizer, mlm_cfg) -> Objective:
  """The objective a model implies: classify if it has classes, else LM or MLM by kind."""
  pad_id = tokenizer.special_ids.get("[PAD]", -1)
  if model_cfg.num_classes:
    return Objective("classify", pad_id=pad_id)
  if model_cfg.kind == "decoder":
    return Objective("lm")
  if "[MASK]" not in tokenizer.special_ids:
    raise ValueError("an encoder (MLM) needs a tokenizer with a [MASK] token")
  return Objective("mlm", mask_id=tokenizer.special_ids["[MASK]"], pad_id=pad_id,
                   num_random=tokenizer.num_ordinary, select_prob=mlm_cfg.select_prob,
                   mask_frac=mlm_cfg.mask_frac, random_frac=mlm_cfg.random_frac)


def batch_sums(model: nnx.Module, batch: dict[str, jax.Array], key: jax.Array, obj: Objective,
               *, rngs: nnx.Rngs | None = None, loss_fn=cross_entropy
               ) -> dict[str, jax.Array]:
  """{'loss': summed loss, 'loss_sq': summed squared loss, 'weight': number of predictions,
  'correct': right predictions}.

  `correct` is left out for the LM objective, to keep its step lean.
  """
  tokens = batch["tokens"]
  if obj.name == "lm":
    nll_BT = loss_fn(model(tokens[:, :-1], rngs=rngs), tokens[:, 1:])
    w_BT = batch.get("weights", jnp.ones_like(nll_BT))
    return {"loss": (nll_BT * w_BT).sum(), "loss_sq": (jnp.square(nll_BT) * w_BT).sum(),
            "weight": w_BT.sum()}
  if obj.name == "mlm":
    targets_BT = tokens[:, :-1]
    real_BT = targets_BT != obj.pad_id
    inputs_BT, selected_BT = mask_tokens(
        key, targets_BT, mask_id=obj.mask_id, num_random=obj.num_random,
        select_prob=obj.select_prob, mask_frac=obj.mask_frac, random_frac=obj.random_frac,
        maskable_BT=real_BT)
    logits_BTV = model(inputs_BT, key_mask_BT=real_BT, rngs=rngs)
    w_BT = selected_BT.astype(jnp.float32)
    nll_BT = loss_fn(logits_BTV, targets_BT)
    right_BT = (jnp.argmax(logits_BTV, -1) == targets_BT).astype(jnp.float32)
    return {"loss": (nll_BT * w_BT).sum(), "loss_sq": (jnp.square(nll_BT) * w_BT).sum(),
            "weight": w_BT.sum(), "correct": (right_BT * w_BT).sum()}
  if obj.name == "classify":
    logits_BC = model.classify(tokens, tokens != obj.pad_id, rngs=rngs)
    labels_B, w_B = batch["label"], batch["weight"]
    nll_B = loss_fn(logits_BC[:, None], labels_B[:, None])[:, 0]
    right_B = (jnp.argmax(logits_BC, -1) == labels_B).astype(jnp.float32)
    return {"loss": (nll_B * w_B).sum(), "loss_sq": (jnp.square(nll_B) * w_B).sum(),
            "weight": w_B.sum(), "correct": (right_B * w_B).sum()}
  raise ValueError(f"objective {obj.name!r}; valid: {', '.join(OBJECTIVES)}")
