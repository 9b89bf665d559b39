"""An optional Weights & Biases mirror of the metrics (`config.train.wandb_project`); wandb is
imported only when it is on, and never required otherwise.

One W&B run per workdir: its id is kept in `<workdir>/wandb_id`, so a restart in the same
workdir resumes it. W&B cannot take back what it was sent, so after a resume the steps replayed
since the checkpoint keep their first values there (metrics.jsonl and TensorBoard drop them).
Offline runs are written under `<workdir>/wandb/` (local workdirs) for `wandb sync`.
"""

from __future__ import annotations

import importlib.util
import secrets
from typing import Any

import ml_collections

from lm.runtime import paths

MODES = ("online", "offline")
ID_FILE = "wandb_id"


def installed() -> bool:
  """Whether the wandb package can be imported."""
  return importlib.util.find_spec("wandb") is not None


class WandbWriter:
  """`write(step, scalars)` logs to the workdir's W&B run; `close()` finishes it."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    wandb = importlib.import_module("wandb")  # an optional extra, imported only when on
    root = paths.run_path(workdir)
    id_file = root / ID_FILE
    run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(6)
    self._run = wandb.init(
      project=config.train.wandb_project,
      mode=config.train.wandb_mode,
      id=run_id,
      resume="allow",
      name=root.name,
      config=config.to_dict(),
      dir=None if paths.is_remote(root) else str(root),
    )
    paths.write_atomically(id_file, run_id + "\n")

  def write(self, step: int, scalars: dict[str, Any]) -> None:
    self._run.log(dict(scalars), step=step)

  def close(self) -> None:
    self._run.finish()
