"""Evaluate a trained run over a whole split, by what it was trained for. A decoder: loss,
perplexity and bits-per-byte, and BLEU and ROUGE of generated continuations of held-out passages
(none with --num_passages=0). An encoder: masked-LM loss and accuracy. A classifier: loss,
accuracy, per-class precision / recall / F1 and the confusion matrix. Writes
<workdir>/eval_<split>_step<N>.json.

With --tasks, a decoder run (or a Hugging Face GPT-2 / Llama-family directory, --hf_dir) is
scored on lm-evaluation-harness tasks instead (the optional eval extra, requirements-eval.lock):
the harness's results JSON is written as <workdir>/harness_step<N>.json (<hf_dir>/harness.json)
and its table printed. Offline, tasks read local data: a task YAML and its JSONL in a folder
given as --include_path (docs/evaluation.md).

    python -m experiments.evaluate --workdir=runs/shakespeare_char
    python -m experiments.evaluate --workdir=runs/bert_shakespeare_char
    python -m experiments.evaluate --workdir=runs/shakespeare_char --tasks=hellaswag,arc_easy \\
        --num_fewshot=0 --limit=100
    python -m experiments.evaluate --hf_dir=/path/to/gpt2 --tasks=my_task --include_path=tasks/
"""

import json

from absl import flags

from lm import cli, logs
from lm.infer import evaluation
from lm.runs import loading
from lm.runtime import paths

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.")
_HF_DIR = flags.DEFINE_string(
  "hf_dir", None, "A local Hugging Face GPT-2 or Llama-family directory (with --tasks)."
)
_TASKS = flags.DEFINE_list(
  "tasks", None, "lm-evaluation-harness tasks (e.g. hellaswag,arc_easy) instead of the split."
)
_FEWSHOT = flags.DEFINE_integer("num_fewshot", 0, "Examples in each task's prompt.")
_LIMIT = flags.DEFINE_integer("limit", None, "At most this many documents of each task.")
_INCLUDE = flags.DEFINE_string(
  "include_path", None, "A folder of task YAMLs (local tasks, local data) besides lm-eval's."
)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_SPLIT = flags.DEFINE_string("split", None, "Split to evaluate (default: config.data.eval_split).")
_SEQ_LEN = flags.DEFINE_integer("seq_len", None, "Window length (default: config.data.seq_len).")
_BATCH = flags.DEFINE_integer(
  "batch_size", None, "Batch (default: config.data.batch_size; 16 for --hf_dir)."
)
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
flags.mark_flags_as_mutual_exclusive(["workdir", "hf_dir"])


def main(argv):
  del argv
  logs.quiet_libraries()
  if _TASKS.value:
    return _harness(_TASKS.value)
  if _WORKDIR.value is None:
    raise ValueError("--workdir is required (--hf_dir only with --tasks)")
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


def _harness(tasks: list[str]) -> None:
  """Scores the run (or --hf_dir) on `tasks`; writes and prints the harness's results."""
  try:
    from lm.infer import harness, harness_tasks
  except ImportError as e:
    raise ValueError(f"--tasks: {e}") from e
  run = loading.load_run_or_hf(_WORKDIR.value, _HF_DIR.value, _STEP.value)
  name = str(_HF_DIR.value or _WORKDIR.value)
  batch_size = _BATCH.value or (16 if run.config is None else run.config.data.batch_size)
  lm = harness.HarnessLM(run, name=name, batch_size=batch_size, seed=_SEED.value)
  results = harness_tasks.evaluate(
    lm,
    tasks,
    manager=harness_tasks.task_manager(_INCLUDE.value),
    num_fewshot=_FEWSHOT.value,
    limit=_LIMIT.value,
  )
  results["source"] = {
    "workdir": _WORKDIR.value,
    "hf_dir": _HF_DIR.value,
    "step": run.step,
    "tasks": list(tasks),
    "limit": _LIMIT.value or 0,
    "num_fewshot": _FEWSHOT.value,
  }
  if _HF_DIR.value is not None:
    path = paths.run_path(_HF_DIR.value) / "harness.json"
  else:
    path = paths.run_path(_WORKDIR.value) / f"harness_step{run.step}.json"
  path.write_text(harness_tasks.to_json(results))
  print(f"{name} step {run.step}, {len(tasks)} task(s), {_FEWSHOT.value}-shot")
  print(harness_tasks.table(results))
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
