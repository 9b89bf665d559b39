"""Evaluate a trained run over a whole split, by what it was trained for. A decoder: loss,
perplexity and bits-per-byte, and BLEU and ROUGE of generated continuations of held-out passages
(none with --num_passages=0). An encoder: masked-LM loss and accuracy. A classifier: loss,
accuracy, per-class precision / recall / F1 and the confusion matrix. Writes
<workdir>/eval_<split>_step<N>.json.

    python -m experiments.evaluate --workdir=runs/shakespeare_char
    python -m experiments.evaluate --workdir=runs/bert_shakespeare_char
"""

import json

from absl import flags

from lm import cli, logs
from lm.infer import evaluation
from lm.runtime import paths

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.", required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_SPLIT = flags.DEFINE_string("split", None, "Split to evaluate (default: config.data.eval_split).")
_SEQ_LEN = flags.DEFINE_integer("seq_len", None, "Window length (default: config.data.seq_len).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Batch (default: config.data.batch_size).")
_PASSAGES = flags.DEFINE_integer(
  "num_passages", 64, "Held-out passages to continue (a decoder); 0: none."
)
_PROMPT = flags.DEFINE_integer("prompt_tokens", 32, "Prompt: the first k tokens of a passage.")
_CONTINUATION = flags.DEFINE_integer(
  "continuation_tokens", 32, "Reference: the next m tokens, generated as many."
)
_TEMPERATURE = flags.DEFINE_float("temperature", 0.0, "Softmax temperature; 0 is greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens; 0: all.")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Sample among the most likely tokens of this mass.")
_SEED = flags.DEFINE_integer(
  "seed",
  0,
  "Random seed of sampling (an encoder's masks are drawn "
  "from the run's config.seed, as training's evaluation drew them).",
)


def main(argv):
  del argv
  logs.quiet_libraries()
  result = evaluation.evaluate_run(
    _WORKDIR.value,
    step=_STEP.value,
    split=_SPLIT.value,
    seq_len=_SEQ_LEN.value,
    batch_size=_BATCH.value,
    num_passages=_PASSAGES.value,
    prompt_len=_PROMPT.value,
    continuation_len=_CONTINUATION.value,
    seed=_SEED.value,
    temperature=_TEMPERATURE.value,
    top_k=_TOP_K.value,
    top_p=_TOP_P.value,
  )
  path = paths.run_path(_WORKDIR.value) / f"eval_{result['split']}_step{result['step']}.json"
  path.write_text(json.dumps(result, indent=2))
  print(f"{result['workdir']} step {result['step']}, split {result['split']}")
  for name, value in _rows(result):
    print(f"  {name:<24} {value}")
  print(f"wrote {path}")


def _rows(result: dict) -> list[tuple[str, str]]:
  """(name, value) lines of a result, by its objective."""
  loss = f"{result['loss']:.4f}"
  if result["objective"] == "classify":
    rows = [
      ("loss (nats/example)", loss),
      ("accuracy", f"{result['accuracy']:.4f}"),
      ("macro F1", f"{result['macro_f1']:.4f}"),
      ("examples", str(result["examples"])),
    ]
    rows += [
      (
        f"class {c['class']} P / R / F1",
        f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f} ({c['support']})",
      )
      for c in result["per_class"]
    ]
    return rows + [("confusion (true x pred)", str(result["confusion"]))]
  if result["objective"] == "mlm":
    return [
      ("masked-LM loss (nats)", f"{loss} +- {result['stderr']:.4f}"),
      ("masked-LM accuracy", f"{result['accuracy']:.4f}"),
      ("masked / tokens", f"{result['masked_tokens']} / {result['tokens']}"),
    ]
  rows = [
    ("loss (nats/token)", f"{loss} +- {result['stderr']:.4f}"),
    ("perplexity", f"{result['perplexity']:.3f}"),
    ("bits per byte", f"{result['bits_per_byte']:.4f}"),
    ("tokens / bytes", f"{result['tokens']} / {result['bytes']}"),
  ]
  gen = result["generation"]
  if gen is not None:
    rows += [
      (f"BLEU ({gen['num_passages']} passages)", f"{gen['bleu']:.2f}"),
      *((f"{name} F1", f"{gen[name]:.4f}") for name in evaluation.ROUGE_TYPES),
    ]
  return rows


def run() -> None:
  """The `lm-evaluate` command."""
  cli.run(cli.one_line_errors(main), __name__)


if __name__ == "__main__":
  run()
