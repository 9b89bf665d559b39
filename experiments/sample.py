"""Sample text from a trained run.

    python -m experiments.sample --workdir=runs/shakespeare_char --prompt="ROMEO:"
"""

import jax
import jax.numpy as jnp
from absl import app, flags

from lm import logs, run, sampling

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_PROMPT = flags.DEFINE_string("prompt", "\n", "Text to continue.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "Samples to draw.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate per sample.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Softmax temperature; 0 is greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens; 0: all.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  logs.quiet_libraries()
  r = run.load_run(_WORKDIR.value, _STEP.value)
  prompt = jnp.asarray([r.tokenizer.encode(_PROMPT.value)] * _NUM_SAMPLES.value, jnp.int32)
  tokens = sampling.generate(r.graphdef, r.params, prompt, jax.random.key(_SEED.value),
                             max_new_tokens=_MAX_NEW.value, temperature=_TEMPERATURE.value,
                             top_k=_TOP_K.value, vocab_limit=r.tokenizer.vocab_size)
  for i, row in enumerate(jax.device_get(tokens)):
    print(f"--- sample {i} (step {r.step}) ---")
    print(r.tokenizer.decode(row.tolist()))


if __name__ == "__main__":
  app.run(main)
