"""A trained sequence classifier: class probabilities of texts, and the metrics of a split's
predictions against its labels (accuracy, per-class precision / recall / F1, confusion matrix).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import numpy.typing as npt
from flax import nnx

from lm.data import labelled
from lm.training.objectives import Objective
from lm.training.step import eval_sums, make_eval_step


def class_logits(
  graphdef: nnx.GraphDef, params, tokens_NT: np.ndarray, pad_id: int, batch_size: int
) -> np.ndarray:
  """Class logits [N, C] of right-padded token rows, in batches of `batch_size` (the last one
  filled up with copies of its first row, so that one program serves every batch)."""

  @jax.jit
  def logits(params, tokens_BT):
    return nnx.merge(graphdef, params).classify(tokens_BT, tokens_BT != pad_id)

  out = []
  for first in range(0, len(tokens_NT), batch_size):
    chunk = tokens_NT[first : first + batch_size]
    filled = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - len(chunk), 0)])
    out.append(np.asarray(logits(params, filled))[: len(chunk)])
  return np.concatenate(out)


def metrics(labels: npt.ArrayLike, predictions: npt.ArrayLike, num_classes: int) -> dict[str, Any]:
  """Accuracy, per-class precision / recall / F1 / support, their macro-average F1, and the
  confusion matrix (rows: true class, columns: predicted). A ratio with nothing to count
  (no prediction of a class, no example of it) is 0."""
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (np.asarray(labels), np.asarray(predictions)), 1)
  right = np.diag(confusion).astype(np.float64)
  predicted, actual = confusion.sum(0), confusion.sum(1)
  precision = np.divide(right, predicted, out=np.zeros_like(right), where=predicted > 0)
  recall = np.divide(right, actual, out=np.zeros_like(right), where=actual > 0)
  both = precision + recall
  f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(right), where=both > 0)
  return {
    "accuracy": float(right.sum() / max(confusion.sum(), 1)),
    "macro_f1": float(f1.mean()),
    "per_class": [
      {
        "class": c,
        "precision": float(precision[c]),
        "recall": float(recall[c]),
        "f1": float(f1[c]),
        "support": int(actual[c]),
      }
      for c in range(num_classes)
    ],
    "confusion": confusion.tolist(),
  }


def encode_texts(r, texts: Sequence[str], seq_len: int) -> np.ndarray:
  """Token rows [N, seq_len] of `texts` as the run's classifier was trained on them."""
  return labelled.encode(r.tokenizer, list(texts), seq_len, wrap=r.model_cfg.kind == "encoder")


def probabilities(r, texts: Sequence[str], batch_size: int) -> np.ndarray:
  """Class probabilities [N, C] of `texts` under the run `r` (a `lm.runs.loading.TrainedRun`)."""
  tokens = encode_texts(r, texts, r.config.data.seq_len)
  logits = class_logits(
    r.graphdef, r.params, tokens, r.tokenizer.special_ids["[PAD]"], min(batch_size, len(texts))
  )
  return np.asarray(jax.nn.softmax(logits, axis=-1))


def evaluate_split(
  r, objective: Objective, split: str, seq_len: int, batch_size: int
) -> dict[str, Any]:
  """The run's loss (training's evaluation, over every example) and `metrics` on `split` of
  its labelled data."""
  data_cfg = r.config.data.copy_and_resolve_references()
  data_cfg.seq_len = seq_len
  data = labelled.labelled_data(
    data_cfg, r.tokenizer, wrap=r.model_cfg.kind == "encoder", num_classes=r.model_cfg.num_classes
  )
  if split not in data.splits:
    raise ValueError(f"split {split!r}; the labelled data has {', '.join(data.splits)}")
  tokens, labels = data.splits[split]
  batch_size = min(batch_size, len(labels))
  ds = labelled.example_batches(tokens, labels, batch_size, shuffle_seed=None, repeat=False)
  sums = eval_sums(
    jax.jit(make_eval_step(r.graphdef, objective)), r.params, (ds[i] for i in range(len(ds)))
  )
  logits = class_logits(r.graphdef, r.params, tokens, objective.pad_id, batch_size)
  return {
    "examples": len(labels),
    "loss": sums["loss"] / sums["weight"],
    **metrics(labels, logits.argmax(-1), r.model_cfg.num_classes),
  }
