"""Sample text from a trained run's latest (or given) checkpoint, or from Hugging Face weights
(GPT-2 or the Llama family).

    python -m experiments.sample --workdir=runs/shakespeare_char --prompt="ROMEO:" \\
        --num_samples=3 --max_new_tokens=300 --temperature=0.8 --top_k=40 --top_p=0.95
    python -m experiments.sample --hf_dir=/path/to/gpt2 --prompt="Hello, I'm a language model,"
    python -m experiments.sample --hf_dir=/path/to/llama --prompt_ids=1,15043 --temperature=0

With `--prompt_ids` the prompt is token ids, and without a tokenizer (one whose files this code
does not read) the samples are printed as ids. Characters a character vocabulary lacks are
named in one line and left out. An empty prompt (`--prompt=""`) begins a text where the
training data's documents begin, after the end-of-text token, where the tokenizer has one
(SentencePiece, BPE, GPT-2); a character vocabulary has none, and is refused in one line.
"""

import jax
import numpy as np
from absl import app, flags

from lm import cli, logs
from lm.infer import prompts, sampling
from lm.runs import loading

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.")
_HF_DIR = flags.DEFINE_string(
  "hf_dir", None, "A local Hugging Face GPT-2 or Llama-family directory."
)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_PROMPT = flags.DEFINE_string("prompt", "\n", "Text to continue.")
_PROMPT_IDS = flags.DEFINE_list(
  "prompt_ids", None, "Token ids to continue instead of --prompt, e.g. 1,15043."
)
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "Samples to draw.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate per sample.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Softmax temperature; 0 is greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens; 0: all.")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Sample among the most likely tokens of this mass.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
flags.mark_flags_as_mutual_exclusive(["workdir", "hf_dir"])


def main(argv):
  del argv
  logs.quiet_libraries()
  r = loading.load_run_or_hf(_WORKDIR.value, _HF_DIR.value, _STEP.value)
  if r.model_cfg.kind != "decoder":
    raise app.UsageError("sampling needs a decoder; for an encoder use experiments.fill_mask")
  tok = r.tokenizer
  if _PROMPT_IDS.value is not None:
    prompt = [int(i) for i in _PROMPT_IDS.value]
  elif tok is None:
    raise ValueError(
      f"{_HF_DIR.value or _WORKDIR.value} has no tokenizer that this code reads;"
      " pass the prompt as --prompt_ids"
    )
  else:
    prompt = prompts.encode(tok, _PROMPT.value)
  start = [] if prompt else prompts.start(tok)  # not printed
  tokens = sampling.generate_long(
    r.graphdef,
    r.params,
    np.asarray([start + prompt] * _NUM_SAMPLES.value, np.int32),
    jax.random.key(_SEED.value),
    max_new_tokens=_MAX_NEW.value,
    temperature=_TEMPERATURE.value,
    top_k=_TOP_K.value,
    top_p=_TOP_P.value,
    vocab_limit=None if tok is None else tok.vocab_size,
    document_end_id=r.document_end_id,
  )
  eos = None if tok is None else tok.eos_id
  for i, row in enumerate(tokens.tolist()):
    new = row[: row.index(eos)] if eos is not None and eos in row else row
    print(f"--- sample {i} ({_HF_DIR.value or f'step {r.step}'}) ---")
    print(" ".join(map(str, prompt + new)) if tok is None else tok.decode(prompt + new))


def run() -> None:
  """The `lm-sample` command."""
  cli.run(cli.one_line_errors(main), __name__)


if __name__ == "__main__":
  run()
