"""A local multiple-choice task made from a text, for lm-evaluation-harness offline: a line, and
its true next line among four (the others drawn from the text's other lines).

`write_task` writes it as lm-eval documents custom tasks: `<name>.yaml` (`dataset_path: json`,
its data file named in `dataset_kwargs`) and `<name>.jsonl` beside it, one document a line
(`{"line": ..., "choices": [...], "answer": k}`); a folder holding them is an `include_path`.
The YAML's `metadata.chance` is the accuracy of a guess (1 / choices). Deterministic: the same
text and seed give the same documents.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import numpy as np

NUM_CHOICES = 4
MIN_CHARS = 8  # a shorter line (or one of only spaces) has too little to choose by

_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{line}}}}\\n"
target_delimiter: ""
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  chance: {chance}
"""


def make_documents(
  text: str, num_docs: int, seed: int = 0, max_chars: int | None = None
) -> list[dict[str, Any]]:
  """Up to `num_docs` documents from `text`: a line of MIN_CHARS to `max_chars` characters
  whose next line is one too, that next line and NUM_CHOICES - 1 other distinct such lines of
  the text in a random order, and the true one's index. ValueError where the text has too few
  such lines."""
  lines = text.split("\n")
  longest = max_chars or max(map(len, lines))

  def usable(line: str) -> bool:
    return len(line.strip()) >= MIN_CHARS and len(line) <= longest

  choices_from = sorted({line for line in lines if usable(line)})
  pairs = [(a, b) for a, b in itertools.pairwise(lines) if usable(a) and usable(b)]
  if not pairs or len(choices_from) < NUM_CHOICES:
    raise ValueError(
      f"the text has {len(pairs)} pairs of consecutive lines and {len(choices_from)} distinct "
      f"lines of {MIN_CHARS} to {longest} characters: too few for a next-line task"
    )
  rng = np.random.default_rng(seed)
  docs = []
  for index in sorted(rng.choice(len(pairs), min(num_docs, len(pairs)), replace=False)):
    line, true_next = pairs[index]
    others = [u for u in choices_from if u != true_next]
    picked = rng.choice(len(others), NUM_CHOICES - 1, replace=False)
    choices = [others[i] for i in picked]
    answer = int(rng.integers(NUM_CHOICES))
    choices.insert(answer, true_next)
    docs.append({"line": line, "choices": choices, "answer": answer})
  return docs


def write_task(directory: str, name: str, documents: list[dict[str, Any]]) -> str:
  """Writes task `name` (`<directory>/<name>.yaml` and `<name>.jsonl`); returns the YAML's
  path."""
  os.makedirs(directory, exist_ok=True)
  data = os.path.abspath(os.path.join(directory, f"{name}.jsonl"))
  with open(data, "w") as f:
    f.writelines(json.dumps(doc) + "\n" for doc in documents)
  path = os.path.join(directory, f"{name}.yaml")
  with open(path, "w") as f:
    f.write(_YAML.format(name=name, data=json.dumps(data), chance=1 / NUM_CHOICES))
  return path
