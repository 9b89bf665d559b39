"""Our task harness (lm/infer/harness.py) on a trained run against lm-eval's own `hf` backend
(`HFLM`) on the run's export: the same log-likelihood (within 1e-4) and is_greedy for every
request, and the same metrics, on a local 4-way multiple-choice task and a local
rolling-log-likelihood task, offline (optional extras: skipped without torch or lm-eval)."""

import importlib
import json
import math

import pytest

from lm.convert import hf
from lm.runs import loading
from lm.runtime import sharding
from tests.convert.test_hf import _short_run

pytest.importorskip("torch")
pytest.importorskip("transformers")
huggingface = pytest.importorskip("lm_eval.models.huggingface")
evaluator = importlib.import_module("lm_eval.evaluator")
harness = importlib.import_module("lm.infer.harness")
harness_tasks = importlib.import_module("lm.infer.harness_tasks")

TASKS = ("next_line", "passages")
METRICS = {
  "next_line": ("acc", "acc_norm"),
  "passages": ("word_perplexity", "byte_perplexity", "bits_per_byte"),
}
NEXT_LINE = (
  "output_type: multiple_choice\n"
  'doc_to_text: "{{line}}\\n"\ntarget_delimiter: ""\n'
  'doc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
  "metric_list:\n  - metric: acc\n  - metric: acc_norm\n"
)
PASSAGES = (
  'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{text}}"\n'
  "metric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n"
  "  - metric: bits_per_byte\n"
)


def next_line_docs(text: str, num_docs: int) -> list[dict]:
  """Choose a line's true next line among four: the other three are lines further on."""
  lines = [line for line in text.splitlines() if 10 <= len(line) <= 40]
  docs = []
  for i in range(num_docs):
    k = 3 * i
    choices = [lines[k + 7], lines[k + 13], lines[k + 29]]
    choices.insert(i % 4, lines[k + 1])
    docs.append({"line": lines[k], "choices": choices, "answer": i % 4})
  return docs


def passage_docs(text: str, num_docs: int, length: int) -> list[dict]:
  """`num_docs` passages of `length` characters from the second half of `text`."""
  start = len(text) // 2
  return [{"text": text[start + 997 * i : start + 997 * i + length]} for i in range(num_docs)]


def write_tasks(directory, text: str, num_docs: int = 8, passage_length: int = 150) -> str:
  """The two tasks' YAML and JSONL files in `directory` (lm-eval's custom tasks, offline)."""
  for name, docs, spec in (
    ("next_line", next_line_docs(text, num_docs), NEXT_LINE),
    ("passages", passage_docs(text, num_docs // 2, passage_length), PASSAGES),
  ):
    data = directory / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (directory / f"{name}.yaml").write_text(
      f"task: {name}\ndataset_path: json\ntest_split: test\n"
      f"dataset_kwargs:\n  data_files:\n    test: {data}\n{spec}"
    )
  return str(directory)


def _evaluate(lm, tasks_dir):
  manager = harness_tasks.task_manager(tasks_dir, include_defaults=False)
  return evaluator.simple_evaluate(
    model=lm, tasks=list(TASKS), num_fewshot=0, task_manager=manager, log_samples=True
  )


def _responses(results, task):
  """Each request's response ((log-likelihood, is_greedy), or a rolling log-likelihood), in
  document order."""
  samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
  return [r[0] for s in samples for r in s["resps"]]


@pytest.mark.parametrize("tokenizer", ["char", "sentencepiece"])
def test_harness_and_lm_evals_hf_backend_agree_per_request(
  tiny_config, tmp_path, monkeypatch, tokenizer
):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
  tiny_config.data.tokenizer = tokenizer
  tiny_config.data.vocab_size = 400
  tiny_config.model.max_seq_len = 64  # the passages span several windows of it (char)
  run = loading.load_run(_short_run(tiny_config, str(tmp_path / "run")))
  assert run.tokenizer is not None
  export = str(tmp_path / "hf")
  hf.export(run.model_cfg, sharding.host_copy(run.params), export, run.tokenizer)
  (tmp_path / "tasks").mkdir()
  with open(tiny_config.data.path) as f:
    tasks_dir = write_tasks(tmp_path / "tasks", f.read())

  ours_lm = harness.HarnessLM(run, name="run", batch_size=4)
  theirs_lm = huggingface.HFLM(pretrained=export, device="cpu", batch_size=4)
  assert ours_lm.prefix == theirs_lm.prefix_token_id is not None
  ours, theirs = _evaluate(ours_lm, tasks_dir), _evaluate(theirs_lm, tasks_dir)

  mc_ours, mc_theirs = _responses(ours, "next_line"), _responses(theirs, "next_line")
  assert len(mc_ours) == len(mc_theirs) == 8 * 4
  assert [a[1] for a in mc_ours] == [b[1] for b in mc_theirs]  # is_greedy
  mc_diff = max(abs(a[0] - b[0]) for a, b in zip(mc_ours, mc_theirs))
  rolling_ours, rolling_theirs = _responses(ours, "passages"), _responses(theirs, "passages")
  assert len(rolling_ours) == len(rolling_theirs) == 4
  rolling_diff = max(abs(a - b) for a, b in zip(rolling_ours, rolling_theirs))
  largest = max(abs(b) for b in rolling_theirs)
  print(
    f"{tokenizer}: max |log-likelihood difference| {mc_diff:.1e} (multiple choice), "
    f"{rolling_diff:.1e} (rolling, sums of up to {largest:.0f} nats)"
  )
  assert mc_diff < 1e-4
  # A passage's log-likelihood is a float32 sum of hundreds of nats (at 512 nats float32's
  # spacing is 6e-5): 1e-4 absolute, or 1e-6 of the sum beyond 100 nats.
  for a, b in zip(rolling_ours, rolling_theirs):
    assert abs(a - b) < max(1e-4, 1e-6 * abs(b)), (a, b)
  for task in TASKS:
    for metric in METRICS[task]:
      a, b = ours["results"][task][f"{metric},none"], theirs["results"][task][f"{metric},none"]
      assert a == b if metric.startswith("acc") else math.isclose(a, b, rel_tol=1e-6), (
        metric,
        a,
        b,
      )
