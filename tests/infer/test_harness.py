"""The lm-evaluation-harness model over our runs: its log-likelihoods against the model's own
logits, its rolling log-likelihood against the evaluation's loss, generation against the
sampler, and `experiments.evaluate --tasks` on local tasks (offline) for a run, a Hugging Face
GPT-2 directory and a Llama-family directory."""

import importlib
import json

import jax
import numpy as np
import pytest
from flax import nnx

from lm.infer import evaluation, sampling, scoring
from lm.runs import loading
from lm.runtime import paths, sharding
from lm.training import loop
from tests.conftest import make_tiny_config, run_module, write_corpus

Instance = pytest.importorskip("lm_eval.api.instance").Instance
harness = importlib.import_module("lm.infer.harness")
harness_tasks = importlib.import_module("lm.infer.harness_tasks")

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
MC = [
  {"question": "First Citizen:\nBefore we proceed", "choices": ["any", "xqz"], "answer": 0},
  {"question": "You are all resolved rather", "choices": ["to die", "qqqq"], "answer": 0},
  {"question": "We are accounted poor", "choices": ["zzzz", "citizens"], "answer": 1},
]
TEXTS = ["First Citizen:\nBefore we proceed any further, hear me speak.", "All:\nSpeak, speak."]
GEN = [{"prompt": "First Citizen:\n", "target": "Before"}, {"prompt": "All:\n", "target": "We"}]


def _train(directory, **model):
  config = make_tiny_config(directory, write_corpus(directory))
  for field, value in model.items():
    config.model[field] = value
  config.train.steps = config.train.checkpoint_every = config.train.eval_every = 2
  config.optim.warmup_steps = 1
  workdir = str(directory / "run")
  loop.train_and_evaluate(config, workdir, sharding.make_mesh(config.mesh, jax.devices()[:1]))
  return workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return _train(tmp_path_factory.mktemp("harness"))


@pytest.fixture(scope="module")
def model(workdir):
  return harness.HarnessLM(loading.load_run(workdir), name=workdir, batch_size=3)


def _requests(kind, *args):
  return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def _direct_log_prob(run, ids, num_scored):
  """log P(the last `num_scored` of `ids` | the ones before), from the model's logits over the
  last max_seq_len + 1 tokens."""
  window = ids[-(run.model_cfg.max_seq_len + 1) :]
  logits = nnx.merge(run.graphdef, run.params)(np.asarray([window[:-1]], np.int32))[0]
  log_probs = np.asarray(jax.nn.log_softmax(logits.astype(np.float32), axis=-1))
  n = len(window) - 1
  return sum(log_probs[t, window[t + 1]] for t in range(n - num_scored, n))


def test_the_run_is_placed_on_a_mesh_and_the_requests_split_over_it(model):
  mesh = scoring.mesh_of(model.run.params)
  assert mesh is not None and mesh.shape["data"] == len(jax.devices()) == 8
  assert scoring.num_rows(3, mesh) == 8


def test_scores_do_not_depend_on_the_batch_or_the_mesh(model):
  pairs = [("First Citizen:", "\nBefore"), ("You", " are all"), ("All:\nSpeak, speak", ".")]
  requests = _requests("loglikelihood", *pairs)
  on_mesh = model.loglikelihood(requests)
  run = model.run
  one_device = loading.TrainedRun(
    run.config,
    run.model_cfg,
    run.tokenizer,
    run.graphdef,
    jax.device_put(run.params, jax.devices()[0]),
    run.step,
  )
  alone = harness.HarnessLM(one_device, name="one device", batch_size=1)
  assert scoring.mesh_of(one_device.params) is None
  for (a, greedy_a), (b, greedy_b) in zip(on_mesh, alone.loglikelihood(requests)):
    assert abs(a - b) < 1e-5 and greedy_a == greedy_b


def test_loglikelihood_is_the_sum_of_the_models_token_log_probs(model):
  tok, run = model.tok, model.run
  long_context = "First Citizen:\nBefore we proceed any further, hear me"  # > max_seq_len
  pairs = [
    ("First Citizen:", "\nBefore"),
    ("You are ", "all"),
    (long_context, " speak."),
    ("", "Hear"),
  ]
  got = model.loglikelihood(_requests("loglikelihood", *pairs))
  prefix = tok.vocab_size  # a character vocabulary's: the padded id its export names
  assert model.prefix == prefix < run.model_cfg.vocab_size
  for (context, continuation), (log_prob, _) in zip(pairs, got):
    # "You are " gives its trailing space to the continuation; an empty context's continuation
    # is scored after the prefix id, from its first token.
    ids = tok.encode(context + continuation) if context else [prefix, *tok.encode(continuation)]
    scored = len(continuation) + len(context) - len(context.rstrip())
    assert abs(log_prob - _direct_log_prob(run, ids, scored)) < 1e-5
  assert all(lp < 0 for lp, _ in got)


def test_is_greedy_is_true_exactly_for_the_models_argmax_continuation(model):
  context = "First Citizen:\nBefore"
  ids = model.tok.encode(context)
  net = nnx.merge(model.run.graphdef, model.run.params)
  for _ in range(3):
    ids.append(int(np.argmax(net(np.asarray([ids[-16:]], np.int32))[0, -1])))
  greedy = model.tok.decode(ids[-3:])
  other = greedy[:2] + ("a" if greedy[2] != "a" else "b")
  (_, first), (_, second) = model.loglikelihood(
    _requests("loglikelihood", (context, greedy), (context, other))
  )
  assert first and not second


def test_rolling_loglikelihood_is_the_evaluations_summed_loss_after_the_prefix(model):
  run = model.run
  # 32 characters after the prefix id: two whole windows of 16 predictions, as the evaluation's
  # loss makes them.
  for text in (TEXTS[0][:32], TEXTS[1][:9]):
    tokens = np.asarray([model.prefix, *model.tok.encode(text)])
    stats = evaluation.evaluate_loss(
      run.graphdef, run.params, tokens, model.tok, seq_len=16, batch_size=2
    )
    (rolling,) = model.loglikelihood_rolling(_requests("loglikelihood_rolling", (text,)))
    assert stats.tokens == len(text)  # every character, the first after the prefix
    assert abs(rolling + stats.loss * stats.tokens) < 1e-4


def test_rolling_windows_score_every_token_once_the_first_after_the_prefix(model):
  text = TEXTS[0]  # 61 characters: four windows, the last with full context
  windows = model.rolling_windows(text)
  ids = model.tok.encode(text)
  assert [c for _, cont in windows for c in cont] == ids
  assert windows[0][0] == [model.prefix]
  for context, continuation in windows:
    assert len(context) + len(continuation) - 1 <= 16


def test_generate_until_is_the_greedy_sampler_cut_at_until(model):
  run, tok = model.run, model.tok
  contexts = ["First Citizen:\n", "All:\nSpeak, sp"]
  got = model.generate_until(
    _requests("generate_until", *((c, {"until": ["e"], "max_gen_toks": 6}) for c in contexts))
  )
  for context, text in zip(contexts, got):
    # The context is cut from the left so that it and the 6 new tokens fit max_seq_len 16.
    prompt, lengths = sampling.pad_prompts([tok.encode(context)[-10:]])
    out = sampling.generate(
      run.graphdef,
      run.params,
      prompt,
      lengths,
      jax.random.key(0),
      max_new_tokens=6,
      temperature=0.0,
      vocab_limit=tok.vocab_size,
    )
    full = tok.decode(np.asarray(out.tokens)[0].tolist())
    assert text == full.split("e")[0] and "e" not in text


def _write_tasks(directory):
  """Three local tasks in `directory`: multiple choice, rolling log-likelihood, generation."""
  common = "dataset_path: json\ntest_split: test\n"
  for name, rows, spec in (
    (
      "tiny_mc",
      MC,
      'output_type: multiple_choice\ndoc_to_text: "{{question}}"\n'
      'doc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
      "metric_list:\n  - metric: acc\n",
    ),
    (
      "tiny_rolling",
      [{"text": t} for t in TEXTS],
      'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{text}}"\n'
      "metric_list:\n  - metric: word_perplexity\n  - metric: bits_per_byte\n",
    ),
    (
      "tiny_gen",
      GEN,
      'output_type: generate_until\ndoc_to_text: "{{prompt}}"\ndoc_to_target: "{{target}}"\n'
      'generation_kwargs:\n  until: [" "]\n  max_gen_toks: 8\n'
      "metric_list:\n  - metric: exact_match\n",
    ),
  ):
    data = directory / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / f"{name}.yaml").write_text(
      f"task: {name}\n{common}dataset_kwargs:\n  data_files:\n    test: {data}\n{spec}"
    )
  return directory


def _evaluate(*args):
  return run_module("experiments.evaluate", *args, env=OFFLINE, timeout=600)


def _check_command(out, written):
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads(written.read_text())["results"]
  assert set(results) == {"tiny_mc", "tiny_rolling", "tiny_gen"}
  assert results["tiny_mc"]["acc,none"] in (0, 1 / 3, 2 / 3, 1)
  assert results["tiny_rolling"]["word_perplexity,none"] > 1
  assert results["tiny_gen"]["exact_match,none"] in (0, 0.5, 1)
  assert "|tiny_mc " in out.stdout and "|acc " in out.stdout and f"wrote {written}" in out.stdout
  return results


@pytest.mark.slow  # a process that indexes lm-eval's tasks (~8 s); `make test-eval` runs it
def test_evaluate_command_writes_the_harness_json_and_prints_its_table(workdir, model, tmp_path):
  tasks = _write_tasks(tmp_path)
  out = _evaluate(
    f"--workdir={workdir}", "--tasks=tiny_mc,tiny_rolling,tiny_gen", f"--include_path={tasks}"
  )
  results = _check_command(out, paths.run_path(workdir) / "harness_step2.json")
  # The accuracy is the one our log-likelihoods give.
  right = 0
  for doc in MC:
    scores = model.loglikelihood(
      _requests("loglikelihood", *((doc["question"], " " + c) for c in doc["choices"]))
    )
    right += int(np.argmax([s for s, _ in scores])) == doc["answer"]
  assert abs(results["tiny_mc"]["acc,none"] - right / len(MC)) < 1e-9


@pytest.mark.slow  # a process that indexes lm-eval's tasks (~8 s); `make test-eval` runs it
def test_task_errors_are_one_line(workdir, model, tmp_path):
  missing = tmp_path / "missing"
  missing.mkdir()
  (missing / "gone.yaml").write_text(
    "task: gone\ndataset_path: json\ntest_split: test\ndataset_kwargs:\n  data_files:\n"
    f"    test: {tmp_path}/nothing.jsonl\noutput_type: loglikelihood_rolling\n"
    'doc_to_text: ""\ndoc_to_target: "{{text}}"\n'
  )
  local = harness_tasks.task_manager(str(missing), include_defaults=False)
  with pytest.raises(ValueError, match=r"data is not here .*nothing\.jsonl.*--include_path.*"):
    harness_tasks.evaluate(model, ["gone"], manager=local)
  with pytest.raises(ValueError, match=r"no task 'gnoe'.*close names: gone"):
    harness_tasks.evaluate(model, ["gnoe"], manager=local)
  out = _evaluate(f"--workdir={workdir}", "--tasks=hellaswg")
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  assert (
    out.stderr.strip()
    .splitlines()[-1]
    .startswith(
      "error: --tasks: no task 'hellaswg' in lm-eval's tasks or --include_path; "
      "close names: hellaswag, "
    )
  ), out.stderr[-3000:]
  out = _evaluate(f"--workdir={workdir}", "--tasks=hellaswag", "--limit=1")
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: a task's data is not here") and "HF_DATASETS_OFFLINE" in last


@pytest.mark.slow  # a process that indexes lm-eval's tasks (~8 s); `make test-eval` runs it
def test_an_encoder_run_is_refused_in_one_line(tmp_path):
  workdir = _train(tmp_path, kind="encoder", norm_position="post", activation="gelu")
  out = _evaluate(f"--workdir={workdir}", "--tasks=tiny_mc")
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  assert out.stderr.strip().splitlines()[-1] == (
    f"error: {workdir} is an encoder: the harness's tasks need a decoder (a language model's "
    "log-likelihoods and generations)"
  )


@pytest.mark.slow  # a process that indexes lm-eval's tasks (~8 s); `make test-eval` runs it
def test_evaluate_command_on_hf_gpt2_and_llama_directories(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("transformers")
  from tests.convert import test_hf

  (tmp_path / "tasks").mkdir()
  tasks = _write_tasks(tmp_path / "tasks")
  gpt2 = test_hf._gpt2_with_tokenizer(tmp_path)
  llama = test_hf.tiny_llama_dir(tmp_path / "llama")
  for directory in (gpt2, llama):
    out = _evaluate(
      f"--hf_dir={directory}", "--tasks=tiny_mc,tiny_rolling,tiny_gen", f"--include_path={tasks}"
    )
    _check_command(out, directory / "harness.json")
