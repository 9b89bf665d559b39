"""Fill-mask with an encoder (MLM): the most likely tokens at each [MASK] of a text."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lm.data.tokenizer import Tokenizer


def fill_mask(
  graphdef: nnx.GraphDef,
  params,
  tokenizer: Tokenizer,
  text: str,
  *,
  top_k: int = 5,
  add_cls_sep: bool = False,
) -> list[list[tuple[str, float]]]:
  """For each [MASK] in `text`, left to right: the `top_k` (token, probability) candidates.

  Special tokens are never candidates. `add_cls_sep` wraps the text in [CLS] ... [SEP], as
  BERT was trained.
  """
  special = tokenizer.special_ids
  if "[MASK]" not in special:
    raise ValueError("the tokenizer has no [MASK] token")
  ids = tokenizer.encode(text)
  if add_cls_sep:
    ids = (
      [special[t] for t in ("[CLS]",) if t in special]
      + ids
      + [special[t] for t in ("[SEP]",) if t in special]
    )
  positions = [i for i, t in enumerate(ids) if t == special["[MASK]"]]
  if not positions:
    raise ValueError(f"no [MASK] in {text!r}")
  model = nnx.merge(graphdef, params)
  if model.cfg.kind != "encoder":
    raise ValueError("fill-mask needs an encoder (MLM) model")
  if len(ids) > model.cfg.max_seq_len:
    raise ValueError(f"{len(ids)} tokens exceed the model's max_seq_len={model.cfg.max_seq_len}")
  logits_TV = model(jnp.asarray([ids], jnp.int32))[0, :, : tokenizer.vocab_size]
  banned = np.zeros((tokenizer.vocab_size,), bool)
  banned[list(special.values())] = True
  probs_TV = jax.nn.softmax(jnp.where(banned, -jnp.inf, logits_TV.astype(jnp.float32)), -1)
  probs_MV = np.asarray(probs_TV[jnp.asarray(positions)])
  out = []
  for probs_V in probs_MV:
    best = [i for i in np.argsort(-probs_V) if not banned[i]][:top_k]
    out.append([(tokenizer.decode([int(i)]), float(probs_V[i])) for i in best])
  return out
