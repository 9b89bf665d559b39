"""Export a run's weights as a Hugging Face GPT-2, BERT or Llama-family checkpoint:
`model.safetensors` + `config.json` + the tokenizer's files (a character vocabulary as a
`tokenizer.json`; a SentencePiece model as `tokenizer.model`, read by transformers'
LlamaTokenizer; lm/convert/hf_tokenizers.py), loadable by `transformers` as GPT2LMHeadModel,
BertForMaskedLM or LlamaForCausalLM (Qwen2ForCausalLM / Qwen3ForCausalLM for q/k/v-only biases /
QK-norm), and AutoTokenizer; and by `experiments.sample --hf_dir`. A BERT-like classifier is
exported as BertForSequenceClassification; a decoder's classifier is refused, its head (dense +
tanh, then a linear layer with a bias) having no Hugging Face form.

    python -m experiments.export_hf --workdir=runs/shakespeare_char --out_dir=runs/gpt2_hf
    python -m experiments.export_hf --workdir=runs/llama_style --out_dir=runs/llama_style_hf
"""

from absl import flags

from lm import cli, logs
from lm.convert import hf
from lm.runs import loading
from lm.runtime import sharding

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.", required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT_DIR = flags.DEFINE_string(
  "out_dir", None, "Where to write the Hugging Face files.", required=True
)


def main(argv):
  del argv
  logs.quiet_libraries()
  r = loading.load_run(_WORKDIR.value, _STEP.value)
  hf.export(r.model_cfg, sharding.host_copy(r.params), _OUT_DIR.value, r.tokenizer)
  print(f"wrote {_OUT_DIR.value}")


def run() -> None:
  """The `lm-export-hf` command."""
  cli.run(cli.one_line_errors(main), __name__)


if __name__ == "__main__":
  run()
