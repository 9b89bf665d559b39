"""Labelled text for sequence classification: a local CSV / JSONL file or a TFDS dataset.

Local: a `.csv` (with a header) or `.jsonl` file whose records hold `data.text_key` and
`data.label_key` (an integer class id); the last `validation_fraction` of the records is the
validation split. TFDS (e.g. 'glue/sst2', text_key='sentence'): the usual splits. Each example
is tokenized, wrapped in [CLS] ... [SEP] for an encoder whose tokenizer has them, cut to
`seq_len` and right-padded with [PAD]; batches are {'tokens': [B, seq_len], 'label': [B],
'weight': [B]}, the weight 0 on the rows that pad the last batch of a single pass.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import grain
import numpy as np

from lm.data import sources
from lm.data.pipeline import host_rows, index_batches
from lm.data.tokenizer import Tokenizer

LOCAL_FORMATS = (".csv", ".jsonl")


@dataclasses.dataclass
class LabelledData:
  tokenizer: Tokenizer
  splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (tokens [N, T], labels [N])


def _local_records(data_cfg) -> list[dict]:
  path = os.path.expanduser(data_cfg.path)
  ext = os.path.splitext(path)[1]
  if ext not in LOCAL_FORMATS:
    raise ValueError(f"config.data.path={data_cfg.path!r}: labelled local data must be one of "
                     f"{', '.join(LOCAL_FORMATS)}")
  with open(path, encoding="utf-8") as f:
    return list(csv.DictReader(f)) if ext == ".csv" else [json.loads(l) for l in f if l.strip()]


def read_splits(data_cfg) -> dict[str, list[tuple[str, int]]]:
  """{split: [(text, label)]} for the train and eval splits."""
  if data_cfg.dataset == sources.LOCAL:
    records = _local_records(data_cfg)
    cut = int(round(len(records) * (1 - data_cfg.validation_fraction)))
    parts = {data_cfg.train_split: records[:cut], data_cfg.eval_split: records[cut:]}
  else:
    _, split_sources = sources.prepare_splits(data_cfg)
    parts = {s: [split_sources[s][i] for i in range(len(split_sources[s]))]
             for s in (data_cfg.train_split, data_cfg.eval_split)}
  return {s: [(sources.record_text(r, data_cfg.text_key), int(r[data_cfg.label_key]))
              for r in recs] for s, recs in parts.items()}


def encode(tokenizer: Tokenizer, texts: list[str], seq_len: int, wrap: bool) -> np.ndarray:
  """Token ids [N, seq_len]: ([CLS]) text ([SEP]) cut to seq_len, right-padded with [PAD]."""
  sp = tokenizer.special_ids
  if "[PAD]" not in sp:
    raise ValueError("classification needs a tokenizer with a [PAD] token")
  first = [sp["[CLS]"]] if wrap and "[CLS]" in sp else []
  last = [sp["[SEP]"]] if wrap and "[SEP]" in sp else []
  out = np.full((len(texts), seq_len), sp["[PAD]"], np.int32)
  for i, text in enumerate(texts):
    ids = (first + tokenizer.encode(text))[:seq_len - len(last)] + last
    out[i, :len(ids)] = ids
  return out


def labelled_data(data_cfg, tokenizer: Tokenizer, wrap: bool) -> LabelledData:
  """Reads and tokenizes both splits (in memory: classification sets are small)."""
  splits = {}
  for split, examples in read_splits(data_cfg).items():
    texts = [t for t, _ in examples]
    splits[split] = (encode(tokenizer, texts, data_cfg.seq_len, wrap),
                     np.asarray([l for _, l in examples], np.int32))
  return LabelledData(tokenizer, splits)


def example_batches(tokens: np.ndarray, labels: np.ndarray, global_batch: int, *,
                    shuffle_seed: int | None, repeat: bool, process_index: int = 0,
                    process_count: int = 1) -> grain.MapDataset:
  """A MapDataset of this process's {'tokens', 'label', 'weight'} batches (seeded shuffle per
  epoch). Without `repeat` the last partial batch is kept, padded with weight-0 rows."""
  if len(labels) < global_batch:
    raise ValueError(f"a split of {len(labels)} examples is smaller than one batch of "
                     f"config.data.batch_size={global_batch}")
  rows = host_rows(global_batch, process_index, process_count)
  ds = index_batches(len(labels), global_batch, shuffle_seed=shuffle_seed, repeat=repeat,
                     drop_remainder=repeat)

  def gather(idx):
    weight = np.zeros((global_batch,), np.float32)
    weight[:len(idx)] = 1.0
    idx = np.pad(idx, (0, global_batch - len(idx)))[rows]
    return {"tokens": tokens[idx], "label": labels[idx], "weight": weight[rows]}
  return ds.map(gather)
