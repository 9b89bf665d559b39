import itertools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sacrebleu
from flax import nnx
from rouge_score import rouge_scorer

from lm.data import labelled, pipeline, token_cache
from lm.data.tokenizer import CharTokenizer
from lm.infer import classify, evaluation
from lm.model.config import TransformerConfig
from lm.model.numerics import cross_entropy
from lm.model.transformer import DecoderLM
from lm.runs import loading
from lm.runtime import sharding
from lm.training import loop
from lm.training.objectives import objective_for
from lm.training.step import eval_sums, make_eval_step

TOKENIZER = CharTokenizer("abcdefghijklmnopqrstuvwxyz ." + "é")  # é: 2 UTF-8 bytes


def _model(**kw):
  cfg = TransformerConfig(
    vocab_size=32, num_layers=2, num_heads=4, d_model=32, mlp_dim=64, max_seq_len=16, **kw
  )
  return nnx.split(DecoderLM(cfg, rngs=nnx.Rngs(0)))


def _tokens(n=53):
  return np.asarray(jax.random.randint(jax.random.key(3), (n,), 0, TOKENIZER.num_ordinary))


def test_uniform_logits_give_perplexity_equal_to_the_vocabulary_size():
  graphdef, params = _model()
  params = jax.tree.map(jnp.zeros_like, params)  # zero tied embedding: every logit is 0
  tokens = _tokens()
  stats = evaluation.evaluate_loss(graphdef, params, tokens, TOKENIZER, seq_len=8, batch_size=3)
  assert stats.tokens == len(tokens) - 1
  np.testing.assert_allclose(stats.perplexity, 32, rtol=1e-5)
  np.testing.assert_allclose(stats.loss, math.log(32), rtol=1e-6)
  assert stats.stderr < 1e-3
  num_bytes = len(TOKENIZER.decode(tokens[1:].tolist()).encode("utf-8"))
  assert stats.bytes == num_bytes > stats.tokens  # the é tokens count twice
  np.testing.assert_allclose(stats.bits_per_byte, stats.tokens * 5 / num_bytes, rtol=1e-5)


def test_loss_covers_every_token_once_including_the_final_partial_batch():
  graphdef, params = _model()
  model = nnx.merge(graphdef, params)
  tokens = _tokens(53)  # 52 targets: 6 full windows of 8 and one of 4; batches of 3, 3 and 1
  nll = np.concatenate(
    [
      np.asarray(
        cross_entropy(
          model(jnp.asarray(tokens[None, s : min(s + 8, 52)])),
          jnp.asarray(tokens[None, s + 1 : min(s + 9, 53)]),
        )[0]
      )[0]
      for s in range(0, 52, 8)
    ]
  )
  assert nll.shape == (52,)
  stats = evaluation.evaluate_loss(graphdef, params, tokens, TOKENIZER, seq_len=8, batch_size=3)
  np.testing.assert_allclose(stats.loss, nll.mean(), rtol=1e-5)
  np.testing.assert_allclose(stats.stderr, nll.std() / math.sqrt(52), rtol=1e-3)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 1, "tensor": 1}, jax.devices()[:2])
  sharded = evaluation.evaluate_loss(
    graphdef, params, tokens, TOKENIZER, seq_len=8, batch_size=4, mesh=mesh
  )
  np.testing.assert_allclose(sharded.loss, nll.mean(), rtol=1e-5)


def test_document_masked_loss_scores_each_document_on_its_own():
  graphdef, params = _model(position="rotary")
  model = nnx.merge(graphdef, params)
  tokens, doc_starts = _tokens(53), np.asarray([0, 20, 37])
  # Reference: within each window of 8 targets, each document's part run alone from position
  # 0, predicting only its own next tokens.
  nll = []
  for s in range(0, 52, 8):
    end = min(s + 8, 52)  # the window's inputs [s, end), targets [s + 1, end]
    cuts = sorted({s, end, *[d for d in doc_starts if s < d < end]})
    for lo, hi in itertools.pairwise(cuts):
      last = hi if hi in doc_starts else hi + 1  # a target that starts a document: not scored
      if last - lo >= 2:
        piece = jnp.asarray(tokens[None, lo:last])
        nll.append(np.asarray(cross_entropy(model(piece[:, :-1]), piece[:, 1:])[0])[0])
  nll = np.concatenate(nll)
  assert nll.shape == (50,)  # 52 targets, less the first tokens of the 2nd and 3rd documents
  stats = evaluation.evaluate_loss(
    graphdef, params, tokens, TOKENIZER, seq_len=8, batch_size=3, doc_starts=doc_starts
  )
  assert stats.tokens == 50
  np.testing.assert_allclose(stats.loss, nll.mean(), rtol=1e-5)


def test_bleu_and_rouge_are_the_reference_libraries_values():
  hyps = ["the cat sat on the mat today", "a quick brown fox jumped"]
  refs = ["the cat sat on a mat", "the quick brown fox jumps over"]
  scores = evaluation.text_scores(hyps, refs)
  assert scores["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
  scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
  for name in evaluation.ROUGE_TYPES:
    expected = np.mean([scorer.score(r, h)[name].fmeasure for h, r in zip(hyps, refs)])
    assert scores[name] == pytest.approx(expected, abs=1e-12)
  # By hand: pair 1 shares unigrams the, cat, sat, on, mat (5 of 7 hypothesis, 5 of 6 reference).
  p, r = 5 / 7, 5 / 6
  assert scorer.score(refs[0], hyps[0])["rouge1"].fmeasure == pytest.approx(2 * p * r / (p + r))
  same = evaluation.text_scores(refs, refs)
  assert same["bleu"] == pytest.approx(100.0)
  assert all(same[name] == 1.0 for name in evaluation.ROUGE_TYPES)


@pytest.mark.parametrize("document_masking", [False, True])
def test_evaluate_run_on_a_restored_checkpoint(tiny_config, tmp_path, document_masking):
  if document_masking:  # the corpus as twelve files, a seeded sample of them held out
    text = pathlib.Path(tiny_config.data.path).read_text()
    (tmp_path / "docs").mkdir()
    cuts = np.linspace(0, len(text), 13).astype(int)
    for i, (lo, hi) in enumerate(itertools.pairwise(cuts)):
      (tmp_path / "docs" / f"{i:02d}.txt").write_text(text[lo:hi])
    tiny_config.data.path = str(tmp_path / "docs")
    tiny_config.data.validation_fraction = 0.25
    tiny_config.data.document_masking = True
  tiny_config.train.steps = 2
  tiny_config.optim.warmup_steps = 1
  tiny_config.train.checkpoint_every = 2
  tiny_config.train.eval_every = 2
  tiny_config.train.eval_batches = -1
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  summary = loop.train_and_evaluate(tiny_config, str(tmp_path / "run"), mesh=mesh)
  result = evaluation.evaluate_run(
    str(tmp_path / "run"), num_passages=5, prompt_len=6, continuation_len=10, temperature=0.0
  )
  assert result["step"] == 2
  # Training's eval drops the windows that do not fill a batch; the whole split is close.
  assert abs(result["loss"] - summary["eval_loss"]) < 0.05
  data = token_cache.tokenized_data(tiny_config.data)
  # Every token but the first is predicted; with document masking, no document's first token.
  predicted = len(data.splits["validation"]) - len(data.doc_starts["validation"])
  held_out = data.manifest["splits"]["validation"]["documents"] if document_masking else 1
  assert len(data.doc_starts["validation"]) == held_out and held_out >= document_masking + 1
  assert result["tokens"] == result["bytes"] == predicted
  assert 0 <= result["generation"]["bleu"] <= 100
  assert len(result["examples"]) == 5 and len(result["examples"][0]["generated"]) == 10
  json.dumps(result)


def _short_run(config, workdir):
  config.train.steps = 2
  config.optim.warmup_steps = 1
  config.train.checkpoint_every = 2
  config.train.eval_every = 2
  config.train.eval_batches = -1
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  return loop.train_and_evaluate(config, workdir, mesh=mesh)


def test_evaluate_run_without_passages_skips_generation(tiny_config, tmp_path):
  _short_run(tiny_config, str(tmp_path / "run"))
  result = evaluation.evaluate_run(
    str(tmp_path / "run"), num_passages=0, prompt_len=6, continuation_len=10
  )
  assert result["objective"] == "lm" and result["generation"] is None
  assert result["examples"] == [] and result["loss"] > 0
  json.dumps(result)


def test_evaluate_run_on_an_encoder_gives_masked_lm_loss_and_accuracy(tiny_config, tmp_path):
  tiny_config.model.kind = "encoder"
  tiny_config.model.norm_position = "post"
  tiny_config.model.activation = "gelu"
  summary = _short_run(tiny_config, str(tmp_path / "enc"))
  result = evaluation.evaluate_run(
    str(tmp_path / "enc"), num_passages=64, prompt_len=6, continuation_len=10
  )
  assert result["objective"] == "mlm" and "generation" not in result
  data = token_cache.tokenized_data(tiny_config.data)
  assert result["tokens"] == len(data.splits["validation"]) - 1
  # About select_prob (15%) of the tokens are masked, as in training.
  assert 0.1 < result["masked_tokens"] / result["tokens"] < 0.2
  assert 0 <= result["accuracy"] <= 1
  # Training's evaluation drops the windows that do not fill a batch; the whole split is close.
  assert abs(result["loss"] - summary["eval_loss"]) < 0.1
  again = evaluation.evaluate_run(
    str(tmp_path / "enc"), num_passages=0, prompt_len=6, continuation_len=10
  )
  assert again == result  # the masks are drawn from a fixed seed


def test_masked_lm_loss_over_whole_batches_is_trainings_evaluation(tiny_config, tmp_path):
  tiny_config.model.kind = "encoder"
  tiny_config.model.norm_position = "post"
  tiny_config.model.activation = "gelu"
  _short_run(tiny_config, str(tmp_path / "enc"))
  r = loading.load_run(str(tmp_path / "enc"))
  objective = objective_for(r.model_cfg, r.tokenizer, r.config.mlm)
  tokens = np.asarray(token_cache.tokenized_data(tiny_config.data).splits["validation"])
  tokens = tokens[: 3 * 8 * 16 + 1]  # three whole batches of 8 windows of 16
  stats = evaluation.evaluate_mlm(
    r.graphdef, r.params, tokens, objective, seq_len=16, batch_size=8, seed=r.config.seed
  )
  ds = pipeline.window_batches(tokens, 16, 8, shuffle_seed=None, repeat=False)
  sums = eval_sums(
    jax.jit(make_eval_step(r.graphdef, objective, r.config.seed)),
    r.params,
    (ds[i] for i in range(len(ds))),
  )
  assert len(ds) == 3 and stats.masked_tokens == sums["weight"]
  np.testing.assert_allclose(stats.loss, sums["loss"] / sums["weight"], rtol=1e-6)
  np.testing.assert_allclose(stats.accuracy, sums["correct"] / sums["weight"], rtol=1e-6)


def test_classifier_metrics_by_hand():
  m = classify.metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], num_classes=4)
  assert m["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
  assert m["accuracy"] == pytest.approx(4 / 6)
  p, r = [c["precision"] for c in m["per_class"]], [c["recall"] for c in m["per_class"]]
  assert p == pytest.approx([1, 1 / 2, 1 / 2, 0]) and r == pytest.approx([2 / 3, 1 / 2, 1, 0])
  assert m["per_class"][0]["f1"] == pytest.approx(2 * (2 / 3) / (1 + 2 / 3))
  assert m["per_class"][3] == {"class": 3, "precision": 0, "recall": 0, "f1": 0, "support": 0}
  assert m["macro_f1"] == pytest.approx(np.mean([c["f1"] for c in m["per_class"]]))


@pytest.mark.parametrize("kind", ["decoder", "encoder"])
def test_evaluate_run_on_a_classifier(tiny_config, tmp_path, kind):
  from tests.training.test_finetune import _classify

  config = _classify(tiny_config, tmp_path, steps=8)
  config.model.kind = kind
  if kind == "encoder":
    config.model.norm_position = "post"
  summary = loop.train_and_evaluate(
    config, str(tmp_path / "cls"), sharding.make_mesh(config.mesh, jax.devices()[:1])
  )
  result = evaluation.evaluate_run(
    str(tmp_path / "cls"), num_passages=64, prompt_len=6, continuation_len=10
  )
  assert result["objective"] == "classify" and result["examples"] == 96  # 20% of 480
  # 96 examples are 12 whole batches: exactly what training's evaluation saw.
  np.testing.assert_allclose(result["loss"], summary["eval_loss"], rtol=1e-5)
  np.testing.assert_allclose(result["accuracy"], summary["eval_accuracy"], rtol=1e-6)
  confusion = np.asarray(result["confusion"])
  truth = np.asarray([y for _, y in labelled.read_splits(config.data, 2)["validation"]])
  assert confusion.sum() == 96 and list(confusion.sum(1)) == [(truth == c).sum() for c in (0, 1)]
  assert [c["support"] for c in result["per_class"]] == list(confusion.sum(1))
  json.dumps(result)
