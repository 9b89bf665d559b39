"""Label texts with a trained classifier: each line of a text file, or each record's text of a
`.jsonl` / `.csv` file (config.data.text_key, as the labelled data holds them). Writes one JSON
line per text ({"text", "label", "probabilities"}) to --out, or prints "label<TAB>text".

    python -m experiments.predict --workdir=runs/sst2_classifier --input=reviews.txt \\
        --out=labels.jsonl
"""

import json

from absl import flags

from lm import cli, logs
from lm.data import labelled
from lm.infer import classify
from lm.runs import loading

_WORKDIR = flags.DEFINE_string("workdir", None, "A classifier's training workdir.", required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_INPUT = flags.DEFINE_string(
  "input", None, "Texts: a text file (a line each), .jsonl or .csv.", required=True
)
_OUT = flags.DEFINE_string("out", None, "JSON lines to write (default: print the labels).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Batch (default: config.data.batch_size).")


def main(argv):
  del argv
  logs.quiet_libraries()
  r = loading.load_run(_WORKDIR.value, _STEP.value)
  if not r.model_cfg.num_classes:
    raise ValueError(
      f"{_WORKDIR.value} holds no classifier (config.model.num_classes=0); "
      "use experiments.sample or experiments.fill_mask"
    )
  if r.config is None:
    raise ValueError(f"{_WORKDIR.value}: labelling needs a training run's config")
  data_cfg = r.config.data
  texts = labelled.read_texts(
    _INPUT.value, data_cfg.text_key, data_cfg.encoding, data_cfg.decode_errors
  )
  if not texts:
    raise ValueError(f"--input={_INPUT.value} holds no text")
  probs = classify.probabilities(r, texts, _BATCH.value or data_cfg.batch_size)
  labels = probs.argmax(-1).tolist()
  if _OUT.value is None:
    for text, label in zip(texts, labels):
      print(f"{label}\t{text}")
    return
  with open(_OUT.value, "w", encoding="utf-8") as f:
    for text, label, p in zip(texts, labels, probs.tolist()):
      f.write(json.dumps({"text": text, "label": label, "probabilities": p}) + "\n")
  counts = {c: labels.count(c) for c in range(r.model_cfg.num_classes)}
  print(
    f"labelled {len(texts)} texts ({', '.join(f'class {c}: {n}' for c, n in counts.items())})"
    f"; wrote {_OUT.value}"
  )


def run() -> None:
  """The `lm-predict` command."""
  cli.run(cli.one_line_errors(main), __name__)


if __name__ == "__main__":
  run()
