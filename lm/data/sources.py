"""TFDS catalog datasets: prepared by their builders, read by record.

Everything is prepared in array_record format and read with `tfds.data_source`, which
gives random access without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import tensorflow_datasets as tfds

from lm import logs
from lm.runtime import paths

LOCAL = "local"


def data_dir(data_cfg) -> str:
  """TFDS's data folder: config.data.data_dir (paths.data_dir)."""
  return str(paths.data_dir(data_cfg.data_dir))


def check_dataset_name(name: str) -> None:
  """Fails with the valid choices if `name` is neither 'local' nor a TFDS catalog name."""
  base = name.split("/")[0].split(":")[0]
  if name != LOCAL and base not in tfds.list_builders(with_community_datasets=False):
    raise ValueError(
      f"config.data.dataset={name!r} is unknown; use {LOCAL!r} with "
      "config.data.path, or a TFDS catalog name such as 'lm1b' or 'tiny_shakespeare'"
    )


def _builder(data_cfg) -> tfds.core.DatasetBuilder:
  check_dataset_name(data_cfg.dataset)
  return tfds.builder(data_cfg.dataset, data_dir=data_dir(data_cfg), file_format="array_record")


def prepared_builder(data_cfg) -> tfds.core.DatasetBuilder:
  """The dataset's builder, its splits prepared in array_record format if they are not yet;
  TFDS's progress bars and printed lines only with --verbosity raised (lm/logs.py)."""
  builder = _builder(data_cfg)
  tfds.display_progress_bar(logs.chatty())
  with logs.library_prints():
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
  return builder


def dataset_id(builder: tfds.core.DatasetBuilder) -> str:
  """A stable id of a prepared dataset: its name, config and version."""
  config = builder.builder_config.name if builder.builder_config else "default"
  return f"{builder.name}/{config}/{builder.version}"


def check_splits(data_cfg, available: Iterable[str]) -> None:
  """Fails naming the available splits if the train or eval split is not one of them."""
  available = list(available)
  for split in (data_cfg.train_split, data_cfg.eval_split):
    if split not in available:
      raise ValueError(
        f"config.data: split {split!r} not in {data_cfg.dataset!r}; available: "
        f"{', '.join(available)}"
      )


def prepare_splits(data_cfg) -> tuple[str, dict[str, Any]]:
  """Prepares the dataset if needed; returns (a stable dataset id, {split: data source})."""
  builder = prepared_builder(data_cfg)
  sources = builder.as_data_source()
  check_splits(data_cfg, sources)
  return dataset_id(builder), sources


def record_text(record: dict, text_key: str) -> str:
  """The text of one record, decoded from bytes."""
  value = record[text_key]
  return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
