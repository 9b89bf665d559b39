"""Evaluation of a trained LM: exact loss, perplexity and bits-per-byte over a whole split,
and BLEU / ROUGE of generated continuations of held-out passages.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import sacrebleu
from flax import nnx
from jax.sharding import Mesh
from rouge_score import rouge_scorer

from lm import run
from lm.data import pipeline, token_cache
from lm.data.tokenizer import Tokenizer
from lm.infer import sampling
from lm.step import eval_sums, make_eval_step

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


def loss_batches(tokens: np.ndarray, seq_len: int, batch_size: int,
                 doc_starts: np.ndarray | None = None) -> Iterator[dict[str, np.ndarray]]:
  """LM batches {'tokens': [batch_size, seq_len + 1], 'weights': [batch_size, seq_len]} that
  predict every token after the first once; with `doc_starts` (document masking) every token
  but each document's first, from its own document only ('segment_ids', 'positions').

  Windows of seq_len targets, stride seq_len; the last window and the last batch are
  padded with weight 0, so nothing is dropped.
  """
  num_targets = len(tokens) - 1
  num_windows = -(-num_targets // seq_len)
  for first in range(0, num_windows, batch_size):
    batch = {"tokens": np.zeros((batch_size, seq_len + 1), np.int32),
             "weights": np.zeros((batch_size, seq_len), np.float32)}
    if doc_starts is not None:
      batch.update(segment_ids=np.zeros((batch_size, seq_len), np.int32),
                   positions=np.zeros((batch_size, seq_len), np.int32))
    for row, w in enumerate(range(first, min(first + batch_size, num_windows))):
      start = w * seq_len
      n = min(seq_len, num_targets - start)
      batch["tokens"][row, :n + 1] = tokens[start:start + n + 1]
      batch["weights"][row, :n] = 1.0
      if doc_starts is not None:
        for k, v in pipeline.document_fields(doc_starts, start, n).items():
          batch[k][row, :n] = v
    yield batch


def evaluate_loss(graphdef: nnx.GraphDef, params, tokens: np.ndarray, tokenizer: Tokenizer, *,
                  seq_len: int, batch_size: int, mesh: Mesh | None = None,
                  doc_starts: np.ndarray | None = None) -> LossStats:
  """Exact loss over all of `tokens` (each token after the first predicted once; with
  `doc_starts`, document masking, each but the documents' first tokens).

  The standard error treats token losses as independent. Bits per byte divide the total
  nats by ln 2 and by the UTF-8 bytes of the predicted tokens' text.
  """
  sums = eval_sums(jax.jit(make_eval_step(graphdef)), params,
                   loss_batches(tokens, seq_len, batch_size, doc_starts), mesh)
  total, total_sq, count = sums["loss"], sums["loss_sq"], sums["weight"]
  mean = total / count
  var = max(total_sq / count - mean * mean, 0.0)
  predicted = np.asarray(tokens[1:])
  if doc_starts is not None:
    predicted = np.delete(predicted, doc_starts[doc_starts > 0] - 1)
  num_bytes = len(tokenizer.decode(predicted.tolist()).encode("utf-8"))
  return LossStats(loss=mean, stderr=math.sqrt(var / count), perplexity=math.exp(mean),
                   bits_per_byte=total / math.log(2) / num_bytes, tokens=int(count),
                   bytes=num_bytes)


def text_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
  """Corpus BLEU (sacrebleu, 0-100) and mean ROUGE-1/2/L F1 (rouge-score, 0-1)."""
  scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
  per_pair = [scorer.score(ref, hyp) for hyp, ref in zip(hypotheses, references)]
  scores = {"bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score}
  for name in ROUGE_TYPES:
    scores[name] = float(np.mean([s[name].fmeasure for s in per_pair]))
  return scores


def passages(tokens: np.ndarray, num: int, prompt_len: int, continuation_len: int
             ) -> tuple[np.ndarray, np.ndarray]:
  """`num` evenly spaced passages: prompts [num, prompt_len], true continuations [num, m]."""
  span = prompt_len + continuation_len
  if len(tokens) < span:
    raise ValueError(f"a split of {len(tokens)} tokens is shorter than one passage of {span}")
  starts = np.linspace(0, len(tokens) - span, num).astype(int)
  windows = np.stack([np.asarray(tokens[s:s + span], np.int32) for s in starts])
  return windows[:, :prompt_len], windows[:, prompt_len:]


def continuation_scores(graphdef: nnx.GraphDef, params, tokens: np.ndarray, tokenizer: Tokenizer,
                        key: jax.Array, *, num: int, prompt_len: int, continuation_len: int,
                        batch_size: int, **sample_kw) -> tuple[dict[str, float], list[dict]]:
  """BLEU and ROUGE of generated against true continuations; also the (prompt, ref, hyp) texts."""
  prompts, refs = passages(tokens, num, prompt_len, continuation_len)
  hyps = []
  for first in range(0, num, batch_size):
    chunk = prompts[first:first + batch_size]
    out = sampling.generate(graphdef, params, jnp.asarray(chunk),
                            jnp.full((len(chunk),), prompt_len, jnp.int32),
                            jax.random.fold_in(key, first), max_new_tokens=continuation_len,
                            vocab_limit=tokenizer.vocab_size, **sample_kw)
    hyps.extend(np.asarray(out.tokens).tolist())

  def decode(ids) -> str:
    return tokenizer.decode([int(i) for i in ids])

  hyp_texts, ref_texts = [decode(h) for h in hyps], [decode(r) for r in refs]
  examples = [{"prompt": decode(p), "reference": r, "generated": h}
              for p, r, h in zip(prompts, ref_texts, hyp_texts)]
  return text_scores(hyp_texts, ref_texts), examples


def evaluate_run(workdir: str, *, step: int | None = None, split: str | None = None,
                 seq_len: int | None = None, batch_size: int | None = None, num_passages: int,
                 prompt_len: int, continuation_len: int, seed: int = 0, **sample_kw) -> dict:
  """Loss statistics over a whole split and continuation scores for a run's checkpoint.

  Defaults (split, seq_len, batch_size) are the run's config.data values.
  """
  r = run.load_run(workdir, step)
  sample_kw["document_end_id"] = r.document_end_id
  data_cfg = r.config.data
  split = split or data_cfg.eval_split
  data = token_cache.tokenized_data(data_cfg)
  tokens = data.splits[split]
  seq_len, batch_size = seq_len or data_cfg.seq_len, batch_size or data_cfg.batch_size
  stats = evaluate_loss(r.graphdef, r.params, tokens, r.tokenizer, seq_len=seq_len,
                        batch_size=batch_size,
                        doc_starts=data.doc_starts[split] if r.document_masking else None)
  scores, examples = continuation_scores(
      r.graphdef, r.params, tokens, r.tokenizer, jax.random.key(seed), num=num_passages,
      prompt_len=prompt_len, continuation_len=continuation_len, batch_size=batch_size,
      **sample_kw)
  return {"workdir": workdir, "step": r.step, "split": split, "seq_len": seq_len,
          **dataclasses.asdict(stats), "generation": {
              "num_passages": num_passages, "prompt_tokens": prompt_len,
              "continuation_tokens": continuation_len, "seed": seed, **sample_kw, **scores},
          "examples": examples[:5]}
