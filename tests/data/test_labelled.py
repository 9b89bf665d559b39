import json

import jax
import numpy as np
import pytest

from experiments.configs import base
from lm.data import labelled, sources
from lm.data.local_text import DataError
from lm.data.tokenizer import CharTokenizer
from lm.runtime import sharding
from lm.training import config_checks, experiment

GOOD = [{"text": f"text {i}", "label": i % 2} for i in range(9)]


def _data_cfg(path):
  c = base.get_config().data
  c.path, c.validation_fraction, c.seq_len = str(path), 0.25, 8
  return c


def _jsonl(tmp_path, bad_line: str):
  """GOOD as JSONL with a blank line 3, and `bad_line` as line 7."""
  lines = [json.dumps(r) for r in GOOD]
  lines.insert(2, "")
  lines.insert(6, bad_line)
  path = tmp_path / "x.jsonl"
  path.write_text("\n".join(lines) + "\n")
  return _data_cfg(path)


def test_good_files_read_as_before(tmp_path):
  splits = labelled.read_splits(
    _jsonl(tmp_path, '{"text": "caf\u00e9", "label": 1.0}'), num_classes=2
  )
  assert splits["validation"] == [(r["text"], r["label"]) for r in GOOD[-2:]]
  assert splits["train"][5] == ("caf\u00e9", 1) and len(splits["train"]) == 8
  (tmp_path / "x.csv").write_text("text,label\n" + '"a, b",0\nc,1\n' * 4)
  splits = labelled.read_splits(_data_cfg(tmp_path / "x.csv"), num_classes=2)
  assert splits["train"] == [("a, b", 0), ("c", 1)] * 3 and len(splits["validation"]) == 2


@pytest.mark.parametrize(
  "line, message",
  [
    ('{"text": "a", "label": 1', "not valid JSON (Expecting ',' delimiter at column 25)"),
    ('["a", 1]', "not a JSON object but list"),
    ('{"label": 1}', "no 'text' (config.data.text_key) in the record; it holds 'label'"),
    ('{"text": "a"}', "no 'label' (config.data.label_key) in the record; it holds 'text'"),
    ('{"text": 3, "label": 1}', "the text 'text' is 3, not a string"),
    ('{"text": "a", "label": "positive"}', "label 'positive' is not an integer class id in [0, 2)"),
    ('{"text": "a", "label": 1.5}', "label 1.5 is not an integer class id in [0, 2)"),
    ('{"text": "a", "label": -1}', "label -1 is not an integer class id in [0, 2)"),
    ('{"text": "a", "label": true}', "label True is not an integer class id in [0, 2)"),
    ('{"text": "a", "label": 2}', "label 2 is not an integer class id in [0, 2)"),
  ],
)
def test_bad_jsonl_record_fails_naming_file_and_line(tmp_path, line, message):
  data_cfg = _jsonl(tmp_path, line)
  tok = CharTokenizer.train(["atex 0123456789"])
  with pytest.raises(DataError) as e:
    labelled.labelled_data(data_cfg, tok, wrap=False, num_classes=2)
  assert str(e.value) == f"config.data.path={data_cfg.path!r} line 7: {message}"


def test_label_range_is_checked_only_with_num_classes(tmp_path):
  data_cfg = _jsonl(tmp_path, '{"text": "a", "label": 2}')
  assert labelled.read_splits(data_cfg)["train"][5] == ("a", 2)
  with pytest.raises(DataError, match=r"line 7: label -1 is not an integer class id >= 0$"):
    labelled.read_splits(_jsonl(tmp_path, '{"text": "a", "label": -1}'))


def test_bad_csv_row_fails_naming_the_line_with_the_header_as_line_1(tmp_path):
  path = tmp_path / "x.csv"
  path.write_text("text,label\ngood,1\nbad,positive\n")
  with pytest.raises(
    DataError,
    match=r"^config.data.path='.*x.csv' line 3: label 'positive' is "
    r"not an integer class id in \[0, 2\)$",
  ):
    labelled.read_splits(_data_cfg(path), num_classes=2)
  path.write_text("text,label\ngood,1\nshort\n")
  with pytest.raises(
    DataError,
    match=r"line 3: no 'label' \(config.data.label_key\) in the "
    r"record; it holds 'text'$",
  ):
    labelled.read_splits(_data_cfg(path))


def test_labelled_file_is_decoded_strictly_with_the_encoding(tmp_path):
  path = tmp_path / "x.csv"
  path.write_bytes("text,label\nok,0\ncaf\u00e9,1\n".encode("latin-1"))
  data_cfg = _data_cfg(path)
  with pytest.raises(
    DataError,
    match=r"^config.data.path='.*x.csv' line 3: byte 19 \(b'\\xe9'\) "
    r"is not valid utf-8; set config.data.encoding",
  ):
    labelled.read_splits(data_cfg)
  data_cfg.encoding = "latin-1"
  assert labelled.read_splits(data_cfg)["train"] == [("ok", 0), ("caf\u00e9", 1)]


def test_tfds_label_fails_naming_dataset_split_and_record(monkeypatch):
  data_cfg = base.get_config().data
  data_cfg.dataset, data_cfg.text_key = "glue/sst2", "sentence"
  records = [
    {"sentence": b"fine", "label": np.int64(1)},
    {"sentence": b"odd", "label": np.int64(5)},
  ]
  monkeypatch.setattr(
    sources, "prepare_splits", lambda cfg: ("glue", {"train": records[:1], "validation": records})
  )
  with pytest.raises(
    DataError,
    match=r"^config.data.dataset='glue/sst2' split 'validation' "
    r"record 1: label 5 is not an integer class id in \[0, 2\)$",
  ):
    labelled.read_splits(data_cfg, num_classes=2)
  assert labelled.read_splits(data_cfg, num_classes=6)["train"] == [("fine", 1)]


def test_a_validation_split_smaller_than_a_batch_fails_when_the_experiment_is_built(
  tiny_config, tmp_path
):
  path = tmp_path / "x.jsonl"
  path.write_text(
    "".join(json.dumps({"text": f"text {i}", "label": i % 2}) + "\n" for i in range(200))
  )
  tiny_config.data.path, tiny_config.data.batch_size = str(path), 32
  tiny_config.model.num_classes = 2
  # 20 validation examples: the first evaluation failed, after the training.
  with pytest.raises(
    config_checks.ConfigError,
    match=r"^the validation split \(config.data.eval_split\) has 20 examples, fewer than one batch "
    r"\(config.data.batch_size=32\); lower config.data.batch_size to 20, or raise "
    r"config.data.validation_fraction$",
  ):
    experiment.build(tiny_config, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
