"""Fill in the [MASK]s of a text with an encoder: a BERT run's workdir or Hugging Face BERT.

    python -m experiments.fill_mask --workdir=runs/bert_shakespeare_char \\
        --text="ROMEO: I lo[MASK]e thee" --top_k=5
    python -m experiments.fill_mask --hf_dir=/path/to/bert-base-uncased \\
        --text="[MASK] is a great language model" --top_k=5
"""

from absl import flags

from lm import cli, logs
from lm.infer import fill_mask
from lm.runs import loading

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.")
_HF_DIR = flags.DEFINE_string("hf_dir", None, "A local Hugging Face BERT directory.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_TEXT = flags.DEFINE_string("text", None, "Text with one or more [MASK].", required=True)
_TOP_K = flags.DEFINE_integer("top_k", 5, "Candidates per mask.")
_ADD_CLS_SEP = flags.DEFINE_bool(
  "add_cls_sep", None, "Wrap in [CLS] ... [SEP] (default: yes for --hf_dir only)."
)
flags.mark_flags_as_mutual_exclusive(["workdir", "hf_dir"])


def main(argv):
  del argv
  logs.quiet_libraries()
  r = loading.load_run_or_hf(_WORKDIR.value, _HF_DIR.value, _STEP.value)
  if r.tokenizer is None:
    raise ValueError(f"{_HF_DIR.value or _WORKDIR.value} has no tokenizer that this code reads")
  wrap = _ADD_CLS_SEP.value if _ADD_CLS_SEP.value is not None else bool(_HF_DIR.value)
  results = fill_mask.fill_mask(
    r.graphdef, r.params, r.tokenizer, _TEXT.value, top_k=_TOP_K.value, add_cls_sep=wrap
  )
  for i, candidates in enumerate(results):
    print(f"[MASK] {i}:")
    for token, prob in candidates:
      print(f"  {prob:.4f}  {token!r}")


def run() -> None:
  """The `lm-fill-mask` command."""
  cli.run(cli.one_line_errors(main), __name__)


if __name__ == "__main__":
  run()
