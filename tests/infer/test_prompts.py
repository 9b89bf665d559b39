"""A sampling prompt: unknown characters named once with their counts, an empty prompt begun
from the end-of-text token or refused in one line."""

import jax
import pytest

from lm.data import hf_tokenizer
from lm.data.tokenizer import CharTokenizer
from lm.infer import prompts
from lm.runtime import sharding
from lm.training import loop
from tests.conftest import run_module


def test_every_unknown_character_is_named_once_with_its_count_and_dropped(caplog):
  tok = CharTokenizer.train(["Caf x\n"])
  with caplog.at_level("WARNING"):
    ids = prompts.encode(tok, "Café {x} é[MASK]")
  assert ids == tok.encode("Caf x ") + [tok.special_ids["[MASK]"]]
  assert caplog.messages == [
    "prompt has 4 characters the tokenizer lacks, dropped: 'é' x2, '{' x1, '}' x1"
  ]
  assert not tok.unknown  # the data's count is not the prompt's


def test_a_known_prompt_logs_nothing_and_one_unknown_character_is_singular(caplog):
  tok = CharTokenizer.train(["ab"])
  with caplog.at_level("WARNING"):
    assert prompts.encode(tok, "ab") == tok.encode("ab")
    prompts.encode(tok, "abc")
  assert caplog.messages == ["prompt has 1 character the tokenizer lacks, dropped: 'c' x1"]


def test_an_empty_prompt_begins_after_the_end_of_text_token_or_is_refused(tmp_path):
  bpe = hf_tokenizer.train_byte_level_bpe(["some text\n"], str(tmp_path), 300)
  assert prompts.start(bpe) == [bpe.eos_id]
  with pytest.raises(ValueError, match=r"the prompt is empty .* no end-of-text token"):
    prompts.start(CharTokenizer.train(["ab"]))
  with pytest.raises(ValueError, match="the prompt is empty"):
    prompts.start(None)  # a Hugging Face directory whose tokenizer we do not read


def _sample(workdir, prompt):
  return run_module(
    "experiments.sample", f"--workdir={workdir}", f"--prompt={prompt}", "--max_new_tokens=5"
  )


@pytest.mark.parametrize(
  "tokenizer", ["char", pytest.param("sentencepiece", marks=pytest.mark.slow)]
)
def test_sample_cli_with_an_empty_prompt_or_unknown_characters(tiny_config, tmp_path, tokenizer):
  tiny_config.data.tokenizer = tokenizer
  tiny_config.data.vocab_size = 400
  tiny_config.train.steps = tiny_config.train.checkpoint_every = 2
  tiny_config.optim.warmup_steps = 1
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(
    tiny_config, workdir, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  )
  empty = _sample(workdir, "")
  if tokenizer == "sentencepiece":  # begun after the end-of-text token, which is not printed
    assert empty.returncode == 0, empty.stderr[-3000:]
    assert empty.stdout.splitlines()[0] == "--- sample 0 (step 2) ---"
    return
  assert empty.returncode == 1 and "Traceback" not in empty.stderr, empty.stderr[-3000:]
  assert empty.stderr.strip().splitlines()[-1].startswith("error: the prompt is empty")
  unknown = _sample(workdir, "Café {x}")
  assert unknown.returncode == 0, unknown.stderr[-3000:]
  assert unknown.stdout.splitlines()[1].startswith("Caf x")
  said = [line for line in unknown.stderr.splitlines() if "lacks" in line or "vocabulary" in line]
  assert len(said) == 1
  assert said[0].endswith(
    "prompt has 3 characters the tokenizer lacks, dropped: 'é' x1, '{' x1, '}' x1"
  )
