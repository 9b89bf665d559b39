"""A run's files: what a training run writes to its workdir (config, model, tokenizer, how it
ended) and loading it back with its params, or a Hugging Face GPT-2 / BERT / Llama-family
directory, or either named by an `init_from` string."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from lm import checkpoint, paths, sharding
from lm.config_checks import ConfigError
from lm.convert import hf
from lm.data.tokenizer import Tokenizer, load_tokenizer
from lm.model import config as model_config
from lm.model.config import ExecutionConfig, TransformerConfig
from lm.model.transformer import make_model
from lm.step import state_layout

HF_PREFIX = "hf:"

# What a run's identity leaves out: a sweep's plan (more sizes or budgets leave a run as it
# was), the execution (how fast a step runs, not what it computes), and the fields that change
# how the loop reports, saves and watches, not what it trains. A sweep skips a run whose
# identity it has finished; a resume may change only these fields.
NOT_IDENTITY = ("scaling", "execution", "train.log_every", "train.checkpoint_every",
                "train.keep_checkpoints", "train.keep_steps", "train.async_checkpoints",
                "train.stop_after_steps", "train.steps_per_dispatch", "train.watchdog_s",
                "train.wandb_project", "train.wandb_mode", "data.num_threads", "data.prefetch",
                "data.data_dir")

# A run's state in `<workdir>/status.json`: RUNNING from its start until it ends in one of the
# others (a process killed outright, e.g. SIGKILL, leaves RUNNING behind).
RUNNING, FINISHED, PREEMPTED, FAILED, STALLED = (
    "running", "finished", "preempted", "failed", "stalled")
STATUS_FILE = "status.json"


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
    # .get: runs saved before the field existed trained without it.
    return self.config is not None and bool(self.config.data.get("document_masking", False))

  @property
  def document_end_id(self) -> int | None:
    """With document masking, the id that ends a document (the tokenizer's end-of-sequence),
    which sampling then treats as a boundary; else None."""
    return self.tokenizer.eos_id if self.document_masking and self.tokenizer else None


def identity(fields: dict[str, Any]) -> dict[str, Any]:
  """A config's fields (`ConfigDict.to_dict()`) without NOT_IDENTITY: what a run trains."""
  fields = {k: dict(v) if isinstance(v, dict) else v for k, v in fields.items()}
  for name in NOT_IDENTITY:
    section, _, field = name.partition(".")
    if field:
      fields.get(section, {}).pop(field, None)
    else:
      fields.pop(section, None)
  return fields


def _changed_fields(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """'config.a.b=new (the run's: old)' for each field of what a run trains that differs; a
  field the saved config lacks (older than the field) is not compared."""
  out = []
  for key, value in new.items():
    if key not in saved:
      continue
    if isinstance(value, dict) and isinstance(saved[key], dict):
      out += [f"{key}.{item}" for item in _changed_fields(saved[key], value)]
    elif json.dumps(value, default=str) != json.dumps(saved[key], default=str):
      out.append(f"{key}={value!r} (the run's: {saved[key]!r})")
  return out


def check_workdir(workdir: str, model_cfg: TransformerConfig, config: ml_collections.ConfigDict,
                  allow_config_change: bool = False) -> None:
  """Raises ConfigError if `workdir` cannot hold this run: a file, not writable, a run with
  checkpoints whose architecture differs (restoring would fail), or one trained with other
  settings (steps, schedule, data, ...) unless `allow_config_change`. Nothing is written first.
  """
  root = paths.run_path(workdir)
  if not paths.is_remote(root):
    if root.exists() and not root.is_dir():
      raise ConfigError(f"--workdir={workdir} is a file, not a folder")
    try:
      root.mkdir(parents=True, exist_ok=True)
      probe = root / f".write_test.{os.getpid()}"  # one per process: several may share root
      probe.write_text("")
      probe.unlink()
    except OSError as e:
      raise ConfigError(f"--workdir={workdir} is not writable: {e.strerror or e}") from None
  stored = root / "model.json"
  checkpoints = root / "checkpoints"
  if not (stored.exists() and checkpoints.exists() and any(checkpoints.iterdir())):
    return
  old, new = json.loads(stored.read_text()), dataclasses.asdict(model_cfg)
  differ = [f"{'the padded vocab_size' if k == 'vocab_size' else 'config.model.' + k}="
            f"{new[k]!r} (the run's: {old[k]!r})" for k in new if k in old and old[k] != new[k]]
  if differ:
    raise ConfigError(f"--workdir={workdir} holds a run of another model, whose checkpoints "
                      f"cannot be restored: {', '.join(differ)}; use a new --workdir, or the "
                      f"run's config ({root / 'config.json'})")
  saved = root / "config.json"
  if allow_config_change or not saved.exists():
    return
  changed = _changed_fields(identity(json.loads(saved.read_text())),
                            identity(json.loads(config.to_json_best_effort())))
  if changed:
    raise ConfigError(
        f"--workdir={workdir} holds a run trained with other settings: "
        f"{', '.join('config.' + c for c in changed)}; resume with the run's config "
        f"({saved}), use a new --workdir, or pass --allow_config_change to continue with these "
        "(config.json stays the run's; this config is kept beside it)")


def write_run_files(workdir: str, config: ml_collections.ConfigDict,
                    model_cfg: TransformerConfig, tokenizer: Tokenizer,
                    resumed_step: int | None = None) -> None:
  """Writes `config.json`, `model.json` (the architecture) and the tokenizer to `workdir`.

  A resumed run keeps its `config.json`; a config that differs from it is written beside it as
  `config.step<N>.json`, N the step it resumed from.
  """
  root = paths.run_path(workdir)
  root.mkdir(parents=True, exist_ok=True)
  tokenizer.save(str(root))
  text = config.to_json_best_effort(indent=2)
  saved = root / "config.json"
  if resumed_step is None or not saved.exists():
    saved.write_text(text)
  elif json.loads(saved.read_text()) != json.loads(text):
    (root / f"config.step{resumed_step}.json").write_text(text)
  (root / "model.json").write_text(json.dumps(dataclasses.asdict(model_cfg), indent=2))


def _execution(config: ml_collections.ConfigDict, model_json: dict[str, Any]) -> ExecutionConfig:
  """The run's execution config; runs from before the split kept it in model.json."""
  if "execution" in config:
    return model_config.execution(config.execution)
  return ExecutionConfig(**{k: model_json[k] for k in model_config.fields_of(ExecutionConfig)
                            if k in model_json})


def load_run(workdir: str, step: int | None = None) -> TrainedRun:
  """Restores the params of `workdir`'s latest (or given) checkpoint onto all local devices."""
  config, model_cfg = read_config(workdir), read_model_config(workdir)
  model_json = json.loads((paths.run_path(workdir) / "model.json").read_text())
  # Runs from before these fields: nothing frozen, AdamW.
  for field, default in (("freeze_embeddings", False), ("freeze_layers", 0), ("name", "adamw"),
                         ("adam_learning_rate", 0.0)):
    if field not in config.optim:
      config.optim[field] = default
  if "encoding" not in config.data:  # runs from before the fields: UTF-8, bad bytes replaced
    config.data.encoding, config.data.decode_errors = "utf-8", "replace"
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  layout = state_layout(model_cfg, _execution(config, model_json), config.optim,
                        config.train.steps, mesh)
  mngr = checkpoint.manager(workdir, every=1, keep=1 << 30, use_async=False)
  state, _ = checkpoint.restore(mngr, layout.abstract, step, with_data=False)
  return TrainedRun(config, model_cfg, load_tokenizer(workdir), layout.graphdef, state.params,
                    int(jax.device_get(state.step)))


def is_run(workdir: str) -> bool:
  """Whether `workdir` holds a training run's files (config.json and model.json)."""
  root = paths.run_path(workdir)
  return (root / "config.json").exists() and (root / "model.json").exists()


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in `workdir` trained with (its config.json)."""
  if not is_run(workdir):
    raise FileNotFoundError(f"{workdir} holds no training run (no config.json and model.json)")
  return ml_collections.ConfigDict(
      json.loads((paths.run_path(workdir) / "config.json").read_text()))


def read_model_config(workdir: str) -> TransformerConfig:
  """The architecture of the run in `workdir` (its model.json)."""
  model_json = json.loads((paths.run_path(workdir) / "model.json").read_text())
  return TransformerConfig(**{k: model_json[k] for k in model_config.fields_of(TransformerConfig)
                              if k in model_json})


def write_status(workdir: str, status: str, step: int | None = None, detail: str = "") -> None:
  """Records the run's state (RUNNING, FINISHED, ...) with the step, what stopped it, the time,
  host and process id, in `<workdir>/status.json`."""
  row = {"status": status, "step": step, "detail": detail, "time": time.time(),
         "host": socket.gethostname(), "pid": os.getpid()}
  (paths.run_path(workdir) / STATUS_FILE).write_text(json.dumps(row) + "\n")


def read_status(workdir: str) -> dict[str, Any] | None:
  """What `write_status` last recorded in `workdir`, or None (a run from before status.json,
  or a file cut short)."""
  path = paths.run_path(workdir) / STATUS_FILE
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except ValueError:
    return None


def load_hf(directory: str) -> TrainedRun:
  """A Hugging Face GPT-2 / BERT / Llama-family directory (weights, config.json, tokenizer
  files; the tokenizer is None where this code does not read them)."""
  model_cfg, params = hf.import_params(directory)
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: make_model(model_cfg, rngs=nnx.Rngs(0))))
  return TrainedRun(None, model_cfg, hf.load_tokenizer(directory), graphdef,
                    jax.tree.map(jnp.asarray, params), 0)


def load_pretrained(spec: str) -> TrainedRun:
  """`hf:/dir`, a run's workdir (latest checkpoint) or `<workdir>/checkpoints/<step>`."""
  if spec.startswith(HF_PREFIX):
    return load_hf(os.path.expanduser(spec[len(HF_PREFIX):]))
  path = str(paths.run_path(spec.rstrip("/")))
  match = re.fullmatch(r"(.*)/checkpoints/(\d+)", path)
  if match:
    return load_run(match.group(1), int(match.group(2)))
  if (paths.run_path(path) / "model.json").exists():
    return load_run(path)
  raise FileNotFoundError(f"config.init_from={spec!r}: neither 'hf:<dir>', a run's workdir "
                          "(with model.json) nor <workdir>/checkpoints/<step>")
