"""A trained model loaded back with its params: a run's workdir (a checkpoint of it), a Hugging
Face GPT-2 / BERT / Llama-family directory, or either named by an `init_from` string."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from lm.convert import hf
from lm.data.tokenizer import Tokenizer, load_tokenizer
from lm.model.config import TransformerConfig
from lm.model.transformer import make_model
from lm.runs import compat, run_files
from lm.runtime import paths, sharding
from lm.training import checkpoint
from lm.training.step import state_layout

HF_PREFIX = "hf:"


@dataclasses.dataclass
class TrainedRun:
  config: ml_collections.ConfigDict | None  # None for Hugging Face weights
  model_cfg: TransformerConfig
  tokenizer: Tokenizer | None
  graphdef: nnx.GraphDef
  params: Any
  step: int

  @property
  def document_masking(self) -> bool:
    """Whether the run trained with document masking."""
    return self.config is not None and bool(self.config.data.document_masking)

  @property
  def document_end_id(self) -> int | None:
    """With document masking, the id that ends a document (the tokenizer's end-of-sequence),
    which sampling then treats as a boundary; else None."""
    return self.tokenizer.eos_id if self.document_masking and self.tokenizer else None


def load_run(workdir: str, step: int | None = None) -> TrainedRun:
  """Restores the params of `workdir`'s newest checkpoint that restores (one line names each
  newer one that does not; none is moved) or of the given one, onto all local devices."""
  config, model_cfg = run_files.read_config(workdir), run_files.read_model_config(workdir)
  model_json = json.loads((paths.run_path(workdir) / "model.json").read_text())
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  layout = state_layout(
    model_cfg, compat.execution_config(config, model_json), config.optim, config.train.steps, mesh
  )
  checkpoints = checkpoint.manager(workdir, every=1, keep=1 << 30, use_async=False)
  if step is not None:
    state, _ = checkpoint.restore(checkpoints, layout.abstract, step, with_data=False)
  else:
    newest = checkpoint.restore_newest(
      checkpoints, layout.abstract, with_data=False, set_aside=False
    )
    if newest is None:
      raise FileNotFoundError(f"no checkpoint in {checkpoints.directory}")
    state = newest[0]
  return TrainedRun(
    config,
    model_cfg,
    load_tokenizer(workdir),
    layout.graphdef,
    state.params,
    int(jax.device_get(state.step)),
  )


def load_hf(directory: str) -> TrainedRun:
  """A Hugging Face GPT-2 / BERT / Llama-family directory (weights, config.json, tokenizer
  files; the tokenizer is None where this code does not read them)."""
  model_cfg, params = hf.import_params(directory)
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: make_model(model_cfg, rngs=nnx.Rngs(0))))
  return TrainedRun(
    None, model_cfg, hf.load_tokenizer(directory), graphdef, jax.tree.map(jnp.asarray, params), 0
  )


def load_run_or_hf(workdir: str | None, hf_dir: str | None, step: int | None = None) -> TrainedRun:
  """A Hugging Face directory if `hf_dir`, else the run in `workdir` at `step` (default: its
  newest checkpoint); the entry points that take either (`--workdir` or `--hf_dir`)."""
  if hf_dir is not None:
    return load_hf(hf_dir)
  if workdir is not None:
    return load_run(workdir, step)
  raise ValueError("one of --workdir and --hf_dir is required")


def load_pretrained(spec: str) -> TrainedRun:
  """`hf:/dir`, a run's workdir (latest checkpoint) or `<workdir>/checkpoints/<step>`."""
  if spec.startswith(HF_PREFIX):
    return load_hf(os.path.expanduser(spec[len(HF_PREFIX) :]))
  path = str(paths.run_path(spec.rstrip("/")))
  match = re.fullmatch(r"(.*)/checkpoints/(\d+)", path)
  if match:
    return load_run(match.group(1), int(match.group(2)))
  if (paths.run_path(path) / "model.json").exists():
    return load_run(path)
  raise FileNotFoundError(
    f"config.init_from={spec!r}: neither 'hf:<dir>', a run's workdir "
    "(with model.json) nor <workdir>/checkpoints/<step>"
  )
