import json
import subprocess
import sys

import jax
import numpy as np

from lm.infer import classify
from lm.runs import loading
from lm.runtime import sharding
from lm.training import loop
from tests.training.test_finetune import _classify


def test_predict_labels_each_line_or_record_as_the_classifier_does(tiny_config, tmp_path):
  config = _classify(tiny_config, tmp_path, steps=8)
  loop.train_and_evaluate(
    config, str(tmp_path / "cls"), sharding.make_mesh(config.mesh, jax.devices()[:1])
  )
  texts = ["abc good cba", "kih bad hik", "good", "dddd bad"]
  (tmp_path / "in.txt").write_text("\n".join(texts[:2]) + "\n\n" + "\n".join(texts[2:]) + "\n")
  (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
  r = loading.load_run(str(tmp_path / "cls"))
  probs = classify.probabilities(r, texts, batch_size=3)  # a last batch of one, filled up
  assert probs.shape == (4, 2)
  np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-6)
  tokens = classify.encode_texts(r, texts, config.data.seq_len)
  one_by_one = np.concatenate(
    [
      classify.class_logits(
        r.graphdef, r.params, tokens[i : i + 1], r.tokenizer.special_ids["[PAD]"], 1
      )
      for i in range(4)
    ]
  )
  np.testing.assert_allclose(probs, jax.nn.softmax(one_by_one, axis=-1), rtol=1e-5)
  cmd = [sys.executable, "-m", "experiments.predict", f"--workdir={tmp_path / 'cls'}"]
  printed = subprocess.run(
    cmd + [f"--input={tmp_path / 'in.txt'}"], capture_output=True, text=True, check=True
  ).stdout
  assert printed.splitlines() == [f"{y}\t{t}" for y, t in zip(probs.argmax(-1), texts)]
  out = subprocess.run(
    cmd + [f"--input={tmp_path / 'in.jsonl'}", f"--out={tmp_path / 'o.jsonl'}"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  assert out.startswith("labelled 4 texts")
  rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
  assert [row["text"] for row in rows] == texts
  assert [row["label"] for row in rows] == probs.argmax(-1).tolist()
  np.testing.assert_allclose([row["probabilities"] for row in rows], probs, rtol=1e-5)
  (tmp_path / "bad.jsonl").write_text(json.dumps({"sentence": "x"}) + "\n")
  bad = subprocess.run(
    cmd + [f"--input={tmp_path / 'bad.jsonl'}"], capture_output=True, text=True, check=False
  )
  assert bad.returncode != 0 and "line 1: no text 'text' in the record" in bad.stderr
