"""Evaluation of a trained run over a whole split, by what it was trained for: a decoder's exact
loss, perplexity and bits-per-byte and the BLEU / ROUGE of generated continuations of held-out
passages; an encoder's masked-LM loss and accuracy; a classifier's (lm/infer/classify.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import sacrebleu
from flax import nnx
from jax.sharding import Mesh
from rouge_score import rouge_scorer

from lm.data import pipeline, token_cache
from lm.data.tokenizer import Tokenizer
from lm.infer import classify, sampling
from lm.runs import loading
from lm.training.objectives import Objective, objective_for
from lm.training.step import eval_sums, make_eval_step

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclasses.dataclass
class LossStats:
  """Token-weighted mean loss (nats) and its standard error, perplexity and bits per byte."""

  loss: float
  stderr: float
  perplexity: float
  bits_per_byte: float
  tokens: int
  bytes: int


def loss_batches(
  tokens: pipeline.Tokens, seq_len: int, batch_size: int, doc_starts: np.ndarray | None = None
) -> Iterator[dict[str, np.ndarray]]:
  """LM batches {'tokens': [batch_size, seq_len + 1], 'weights': [batch_size, seq_len]} that
  predict every token after the first once; with `doc_starts` (document masking) every token
  but each document's first, from its own document only ('segment_ids', 'positions').

  Windows of seq_len targets, stride seq_len; the last window and the last batch are
  padded with weight 0, so nothing is dropped.
  """
  num_targets = len(tokens) - 1
  num_windows = -(-num_targets // seq_len)
  for first in range(0, num_windows, batch_size):
    batch = {
      "tokens": np.zeros((batch_size, seq_len + 1), np.int32),
      "weights": np.zeros((batch_size, seq_len), np.float32),
    }
    if doc_starts is not None:
      batch.update(
        segment_ids=np.zeros((batch_size, seq_len), np.int32),
        positions=np.zeros((batch_size, seq_len), np.int32),
      )
    for row, w in enumerate(range(first, min(first + batch_size, num_windows))):
      start = w * seq_len
      n = min(seq_len, num_targets - start)
      batch["tokens"][row, : n + 1] = tokens[start : start + n + 1]
      batch["weights"][row, :n] = 1.0
      if doc_starts is not None:
        for k, v in pipeline.document_fields(doc_starts, start, n).items():
          batch[k][row, :n] = v
    yield batch


def evaluate_loss(
  graphdef: nnx.GraphDef,
  params,
  tokens: pipeline.Tokens,
  tokenizer: Tokenizer,
  *,
  seq_len: int,
  batch_size: int,
  mesh: Mesh | None = None,
  doc_starts: np.ndarray | None = None,
) -> LossStats:
  """Exact loss over all of `tokens` (each token after the first predicted once; with
  `doc_starts`, document masking, each but the documents' first tokens).

  The standard error treats token losses as independent. Bits per byte divide the total
  nats by ln 2 and by the UTF-8 bytes of the predicted tokens' text.
  """
  sums = eval_sums(
    jax.jit(make_eval_step(graphdef)),
    params,
    loss_batches(tokens, seq_len, batch_size, doc_starts),
    mesh,
  )
  total, total_sq, count = sums["loss"], sums["loss_sq"], sums["weight"]
  mean = total / count
  var = max(total_sq / count - mean * mean, 0.0)
  predicted = np.asarray(tokens[1:])
  if doc_starts is not None:
    predicted = np.delete(predicted, doc_starts[doc_starts > 0] - 1)
  num_bytes = len(tokenizer.decode(predicted.tolist()).encode("utf-8"))
  return LossStats(
    loss=mean,
    stderr=math.sqrt(var / count),
    perplexity=math.exp(mean),
    bits_per_byte=total / math.log(2) / num_bytes,
    tokens=int(count),
    bytes=num_bytes,
  )


@dataclasses.dataclass
class MLMStats:
  """Masked-LM loss (nats per masked token) and its standard error, and accuracy."""

  loss: float
  stderr: float
  accuracy: float
  masked_tokens: int
  tokens: int


def evaluate_mlm(
  graphdef: nnx.GraphDef,
  params,
  tokens: pipeline.Tokens,
  objective: Objective,
  *,
  seq_len: int,
  batch_size: int,
  seed: int,
  mesh: Mesh | None = None,
) -> MLMStats:
  """Masked-LM loss and accuracy over windows of every token of `tokens` but the last.

  Masks are drawn as training's evaluation draws them (from `seed`, the same for each batch),
  so that they are reproducible; the last window is padded with [PAD], which is never masked.
  """
  if objective.pad_id < 0:
    raise ValueError("masked-LM evaluation pads the last window and needs a [PAD] token")

  def padded(batches):
    for batch in batches:
      inputs = batch["tokens"][:, :-1]  # the windows MLM reads; a view, so this pads them
      inputs[batch["weights"] == 0] = objective.pad_id
      yield batch

  sums = eval_sums(
    jax.jit(make_eval_step(graphdef, objective, seed)),
    params,
    padded(loss_batches(tokens, seq_len, batch_size)),
    mesh,
  )
  count = sums["weight"]
  if count == 0:
    raise ValueError(f"no token of the {len(tokens)} was masked; the split is too short")
  mean = sums["loss"] / count
  var = max(sums["loss_sq"] / count - mean * mean, 0.0)
  return MLMStats(
    loss=mean,
    stderr=math.sqrt(var / count),
    accuracy=sums["correct"] / count,
    masked_tokens=int(count),
    tokens=len(tokens) - 1,
  )


def text_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
  """Corpus BLEU (sacrebleu, 0-100) and mean ROUGE-1/2/L F1 (rouge-score, 0-1)."""
  scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
  per_pair = [scorer.score(ref, hyp) for hyp, ref in zip(hypotheses, references)]
  scores = {"bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score}
  for name in ROUGE_TYPES:
    scores[name] = float(np.mean([s[name].fmeasure for s in per_pair]))
  return scores


def passages(
  tokens: pipeline.Tokens, num: int, prompt_len: int, continuation_len: int
) -> tuple[np.ndarray, np.ndarray]:
  """`num` evenly spaced passages: prompts [num, prompt_len], true continuations [num, m]."""
  span = prompt_len + continuation_len
  if len(tokens) < span:
    raise ValueError(f"a split of {len(tokens)} tokens is shorter than one passage of {span}")
  starts = np.linspace(0, len(tokens) - span, num).astype(int)
  windows = np.stack([np.asarray(tokens[s : s + span], np.int32) for s in starts])
  return windows[:, :prompt_len], windows[:, prompt_len:]


def continuation_scores(
  graphdef: nnx.GraphDef,
  params,
  tokens: pipeline.Tokens,
  tokenizer: Tokenizer,
  key: jax.Array,
  *,
  num: int,
  prompt_len: int,
  continuation_len: int,
  batch_size: int,
  **sample_kw,
) -> tuple[dict[str, float], list[dict]]:
  """BLEU and ROUGE of generated against true continuations; also the (prompt, ref, hyp) texts."""
  prompts, refs = passages(tokens, num, prompt_len, continuation_len)
  hyps = []
  for first in range(0, num, batch_size):
    chunk = prompts[first : first + batch_size]
    out = sampling.generate(
      graphdef,
      params,
      jnp.asarray(chunk),
      jnp.full((len(chunk),), prompt_len, jnp.int32),
      jax.random.fold_in(key, first),
      max_new_tokens=continuation_len,
      vocab_limit=tokenizer.vocab_size,
      **sample_kw,
    )
    hyps.extend(np.asarray(out.tokens).tolist())

  def decode(ids) -> str:
    return tokenizer.decode([int(i) for i in ids])

  hyp_texts, ref_texts = [decode(h) for h in hyps], [decode(r) for r in refs]
  examples = [
    {"prompt": decode(p), "reference": r, "generated": h}
    for p, r, h in zip(prompts, ref_texts, hyp_texts)
  ]
  return text_scores(hyp_texts, ref_texts), examples


def evaluate_run(
  workdir: str,
  *,
  step: int | None = None,
  split: str | None = None,
  seq_len: int | None = None,
  batch_size: int | None = None,
  num_passages: int,
  prompt_len: int,
  continuation_len: int,
  seed: int = 0,
  **sample_kw,
) -> dict:
  """What a run's checkpoint scores over a whole split, by its objective ('objective'):
  'lm', loss statistics and (unless `num_passages` is 0) continuation scores; 'mlm', masked-LM
  loss and accuracy, with the masks of training's evaluation (the run's config.seed);
  'classify', loss, accuracy, per-class precision / recall / F1 and the confusion matrix.

  Defaults (split, seq_len, batch_size) are the run's config.data values.
  """
  r = loading.load_run(workdir, step)
  config, tokenizer = r.config, r.tokenizer
  if config is None or tokenizer is None:
    raise ValueError(f"{workdir}: evaluation needs a training run's config and tokenizer")
  objective = objective_for(r.model_cfg, tokenizer, config.mlm)
  split = split or config.data.eval_split
  seq_len, batch_size = seq_len or config.data.seq_len, batch_size or config.data.batch_size
  head = {
    "workdir": workdir,
    "step": r.step,
    "split": split,
    "objective": objective.name,
    "seq_len": seq_len,
  }
  if objective.name == "classify":
    return {**head, **classify.evaluate_split(r, objective, split, seq_len, batch_size)}
  # A fine-tuned run tokenized its data with the pretrained tokenizer; one from scratch trained
  # its own, which the data cache keeps under the config's id.
  data = token_cache.tokenized_data(config.data, tokenizer if config.init_from else None)
  tokens = data.splits[split]
  if objective.name == "mlm":
    stats = evaluate_mlm(
      r.graphdef,
      r.params,
      tokens,
      objective,
      seq_len=seq_len,
      batch_size=batch_size,
      seed=config.seed,
    )
    return {**head, **dataclasses.asdict(stats)}
  doc_starts = data.doc_starts[split] if r.document_masking else None
  loss = evaluate_loss(
    r.graphdef,
    r.params,
    tokens,
    tokenizer,
    seq_len=seq_len,
    batch_size=batch_size,
    doc_starts=doc_starts,
  )
  result = {**head, **dataclasses.asdict(loss), "generation": None, "examples": []}
  if num_passages > 0:
    generation = {
      "num_passages": num_passages,
      "prompt_tokens": prompt_len,
      "continuation_tokens": continuation_len,
      "seed": seed,
      "document_end_id": r.document_end_id,
      **sample_kw,
    }
    result.update(_continuations(r, tokens, tokenizer, batch_size, generation))
  return result


def _continuations(
  r: loading.TrainedRun,
  tokens: pipeline.Tokens,
  tokenizer: Tokenizer,
  batch_size: int,
  generation: dict[str, Any],
) -> dict[str, Any]:
  """'generation': the settings in `generation` with the scores of continuations sampled
  under them; 'examples': the first five."""
  settings = {k: v for k, v in generation.items() if k not in _CONTINUATION_FIELDS}
  scores, examples = continuation_scores(
    r.graphdef,
    r.params,
    tokens,
    tokenizer,
    jax.random.key(generation["seed"]),
    num=generation["num_passages"],
    prompt_len=generation["prompt_tokens"],
    continuation_len=generation["continuation_tokens"],
    batch_size=batch_size,
    **settings,
  )
  return {"generation": {**generation, **scores}, "examples": examples[:5]}


# What `_continuations` reads from its settings itself; the rest go to the sampler.
_CONTINUATION_FIELDS = ("num_passages", "prompt_tokens", "continuation_tokens", "seed")
