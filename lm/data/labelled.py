"""Labelled text for sequence classification: a local CSV / JSONL file or a TFDS dataset.

Local: a `.csv` (with a header) or `.jsonl` file, decoded strictly with `data.encoding`, whose
records hold `data.text_key` and `data.label_key` (an integer class id); the last
`validation_fraction` of the records is the validation split. TFDS (e.g. 'glue/sst2',
text_key='sentence'): the usual splits. A bad record fails naming its file and line (or split
and index) with DataError. Each example is tokenized, wrapped in [CLS] ... [SEP] for an
encoder whose tokenizer has them, cut to `seq_len` and right-padded with [PAD]; batches are
{'tokens': [B, seq_len], 'label': [B], 'weight': [B]}, the weight 0 on the rows that pad the
last batch of a single pass.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os

import grain
import numpy as np

from lm.data import sources
from lm.data.local_text import DataError, read_text
from lm.data.pipeline import host_rows, index_batches
from lm.data.tokenizer import Tokenizer

LOCAL_FORMATS = (".csv", ".jsonl")


@dataclasses.dataclass
class LabelledData:
  tokenizer: Tokenizer
  splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (tokens [N, T], labels [N])


def _integer(value) -> int | None:
  """`value` as an int if it is an integer, an integral float, or a string of either."""
  if isinstance(value, str):
    try:
      return int(value)
    except ValueError:
      try:
        value = float(value)
      except ValueError:
        return None
  if isinstance(value, float):
    return int(value) if value.is_integer() else None
  return value if isinstance(value, int) and not isinstance(value, bool) else None


def class_id(value, num_classes: int | None, where: str) -> int:
  """`value` as a class id in [0, num_classes) (>= 0 without `num_classes`); DataError
  starting with `where` if it is not one."""
  if isinstance(value, np.generic):  # TFDS features
    value = value.item()
  if isinstance(value, bytes):
    value = value.decode("utf-8", errors="replace")
  label = _integer(value)
  if label is None or label < 0 or (num_classes and label >= num_classes):
    valid = f"in [0, {num_classes})" if num_classes else ">= 0"
    raise DataError(f"{where}: label {value!r} is not an integer class id {valid}")
  return label


def _record(record, data_cfg, num_classes: int | None, where: str) -> tuple[str, int]:
  """(text, label) of one record; DataError starting with `where` if either is missing or bad."""
  for key, field in ((data_cfg.text_key, "text_key"), (data_cfg.label_key, "label_key")):
    if record.get(key) is None:
      held = [repr(k) for k, v in record.items() if k is not None and v is not None]
      raise DataError(
        f"{where}: no {key!r} (config.data.{field}) in the record; it holds "
        f"{', '.join(held) or 'nothing'}"
      )
  text = record[data_cfg.text_key]
  if not isinstance(text, (str, bytes)):
    raise DataError(f"{where}: the text {data_cfg.text_key!r} is {text!r}, not a string")
  return (
    sources.record_text(record, data_cfg.text_key),
    class_id(record[data_cfg.label_key], num_classes, where),
  )


def _local_records(
  path: str, encoding: str, decode_errors: str, name: str
) -> list[tuple[dict, str]]:
  """(record, where: `name` and its line) of each record of a `.csv` (with a header) or
  `.jsonl` file; DataError names the file and line of one that is not a record."""
  text = read_text(os.path.expanduser(path), encoding, name, decode_errors)
  records = []
  if path.endswith(".csv"):
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:  # reader.line_num: the row's last line, the header being line 1
      records.append((row, f"{name} line {reader.line_num}"))
  else:
    for n, line in enumerate(text.split("\n"), 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"{name} line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
      if not isinstance(record, dict):
        raise DataError(f"{name} line {n}: not a JSON object but {type(record).__name__}")
      records.append((record, f"{name} line {n}"))
  return records


def _local_examples(data_cfg, num_classes: int | None) -> list[tuple[str, int]]:
  """(text, label) of each record of the local file; DataError names the file and line."""
  ext = os.path.splitext(data_cfg.path)[1]
  if ext not in LOCAL_FORMATS:
    raise DataError(
      f"config.data.path={data_cfg.path!r}: labelled local data must be one of "
      f"{', '.join(LOCAL_FORMATS)}"
    )
  name = f"config.data.path={data_cfg.path!r}"
  examples = [
    _record(record, data_cfg, num_classes, where)
    for record, where in _local_records(
      data_cfg.path, data_cfg.encoding, data_cfg.decode_errors, name
    )
  ]
  if not examples:
    raise DataError(f"{name} holds no records")
  return examples


def read_texts(
  path: str, text_key: str, encoding: str = "utf-8", decode_errors: str = "strict"
) -> list[str]:
  """The texts to label in `path`: each record's `text_key` of a `.csv` or `.jsonl` file (as
  the labelled data holds them, labels not needed), else each non-empty line."""
  if os.path.splitext(path)[1] not in LOCAL_FORMATS:
    text = read_text(os.path.expanduser(path), encoding, path, decode_errors)
    return [line for line in text.split("\n") if line.strip()]
  texts = []
  for record, where in _local_records(path, encoding, decode_errors, path):
    if not isinstance(record.get(text_key), (str, bytes)):
      raise DataError(f"{where}: no text {text_key!r} in the record")
    texts.append(sources.record_text(record, text_key))
  return texts


def read_splits(data_cfg, num_classes: int | None = None) -> dict[str, list[tuple[str, int]]]:
  """{split: [(text, label)]} for the train and eval splits.

  Every label must be an integer class id, in [0, num_classes) when `num_classes` is given;
  a bad record fails naming the file and line (local) or the split and index (TFDS).
  """
  if data_cfg.dataset == sources.LOCAL:
    examples = _local_examples(data_cfg, num_classes)
    cut = round(len(examples) * (1 - data_cfg.validation_fraction))
    return {data_cfg.train_split: examples[:cut], data_cfg.eval_split: examples[cut:]}
  _, split_sources = sources.prepare_splits(data_cfg)
  return {
    s: [
      _record(
        split_sources[s][i],
        data_cfg,
        num_classes,
        f"config.data.dataset={data_cfg.dataset!r} split {s!r} record {i}",
      )
      for i in range(len(split_sources[s]))
    ]
    for s in (data_cfg.train_split, data_cfg.eval_split)
  }


def encode(tokenizer: Tokenizer, texts: list[str], seq_len: int, wrap: bool) -> np.ndarray:
  """Token ids [N, seq_len]: ([CLS]) text ([SEP]) cut to seq_len, right-padded with [PAD]."""
  sp = tokenizer.special_ids
  if "[PAD]" not in sp:
    raise ValueError("classification needs a tokenizer with a [PAD] token")
  first = [sp["[CLS]"]] if wrap and "[CLS]" in sp else []
  last = [sp["[SEP]"]] if wrap and "[SEP]" in sp else []
  out = np.full((len(texts), seq_len), sp["[PAD]"], np.int32)
  for i, text_ids in enumerate(tokenizer.encode_batch(texts)):
    ids = (first + text_ids)[: seq_len - len(last)] + last
    out[i, : len(ids)] = ids
  return out


def labelled_data(
  data_cfg, tokenizer: Tokenizer, wrap: bool, num_classes: int | None = None
) -> LabelledData:
  """Reads and tokenizes both splits (in memory: classification sets are small); with
  `num_classes`, a label outside [0, num_classes) fails naming its record."""
  splits = {}
  for split, examples in read_splits(data_cfg, num_classes).items():
    texts = [t for t, _ in examples]
    splits[split] = (
      encode(tokenizer, texts, data_cfg.seq_len, wrap),
      np.asarray([label for _, label in examples], np.int32),
    )
  return LabelledData(tokenizer, splits)


def example_batches(
  tokens: np.ndarray,
  labels: np.ndarray,
  global_batch: int,
  *,
  shuffle_seed: int | None,
  repeat: bool,
  process_index: int = 0,
  process_count: int = 1,
) -> grain.MapDataset:
  """A MapDataset of this process's {'tokens', 'label', 'weight'} batches (seeded shuffle per
  epoch). Without `repeat` the last partial batch is kept, padded with weight-0 rows."""
  if len(labels) < global_batch:
    raise ValueError(
      f"a split of {len(labels)} examples is smaller than one batch of "
      f"config.data.batch_size={global_batch}"
    )
  rows = host_rows(global_batch, process_index, process_count)
  ds = index_batches(
    len(labels), global_batch, shuffle_seed=shuffle_seed, repeat=repeat, drop_remainder=repeat
  )

  def gather(idx):
    weight = np.zeros((global_batch,), np.float32)
    weight[: len(idx)] = 1.0
    idx = np.pad(idx, (0, global_batch - len(idx)))[rows]
    return {"tokens": tokens[idx], "label": labels[idx], "weight": weight[rows]}

  return ds.map(gather)
