"""Training-step throughput of a config: compile time, step time, tokens/s, TFLOP/s, MFU, memory.

    python -m benchmarks.train_step --config=experiments/configs/gpt2_124m.py \
        [--config.data.batch_size=64 --config.execution.remat=dots ...] \
        [--steps=20 --warmup=3 --data=synthetic|real --tag=... --profile_dir=...]

Prints a table and appends one JSON row to `--out` (benchmarks/results/train_step.jsonl).
Synthetic data (one device-resident batch) takes input out of the picture; `--data=real` feeds
the grain pipeline through the host every step, showing whether input is the bottleneck. With
synthetic data nothing but JAX, Flax, Optax and ml_collections is imported, so it runs on a bare
accelerator machine (benchmarks/gpu.sh).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks.provenance import git_commit
from lm import cli
from lm.model import counts
from lm.model.config import architecture, execution
from lm.runtime import hardware, sharding
from lm.training.step import jit_train_step, state_layout

_CONFIG = config_flags.DEFINE_config_file("config", None, cli.CONFIG_HELP)
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
_DATA = flags.DEFINE_enum("data", "synthetic", ["synthetic", "real"], "Input source.")
_VOCAB = flags.DEFINE_integer(
  "vocab_size",
  None,
  "Synthetic data: vocabulary (default: a char config's corpus "
  "characters and special tokens, else config.data.vocab_size).",
)
_TAG = flags.DEFINE_string("tag", "", "A label for this measurement.")
_PROFILE = flags.DEFINE_string(
  "profile_dir",
  None,
  "If set, trace 5 more steps with jax.profiler into this folder (with a Perfetto JSON trace).",
)
_OUT = flags.DEFINE_string("out", "benchmarks/results/train_step.jsonl", "JSONL file to append to.")
flags.mark_flag_as_required("config")

# The figures printed, in order.
SUMMARY = (
  "params",
  "compile_s",
  "step_s_median",
  "step_s_pipelined",
  "tokens_per_s",
  "tflops_per_s",
  "mfu",
  "peak_memory_gib",
)


def synthetic_vocab_size(data_cfg) -> int:
  """The vocabulary the trained model would have: a local corpus's characters and the special
  tokens for a char tokenizer (as training builds it), else `data.vocab_size`."""
  if data_cfg.tokenizer != "char" or data_cfg.dataset != "local":
    return data_cfg.vocab_size

  from lm.data import local_text
  from lm.data.tokenizer import CharTokenizer

  return CharTokenizer.train(
    local_text.read_text(path, data_cfg.encoding, path, data_cfg.decode_errors)
    for path in local_text.corpus_files(data_cfg.path, data_cfg.include, tuple(data_cfg.exclude))
  ).vocab_size


def batches(config, mesh, data: str, vocab_size: int | None) -> tuple[int, Callable[[], Any]]:
  """(vocabulary size, a function giving the next global batch) from real or synthetic data."""
  if data == "real":
    from lm.data import pipeline, token_cache

    tokenized = token_cache.tokenized_data(config.data)
    ds = pipeline.window_batches(
      tokenized.splits[config.data.train_split],
      config.data.seq_len,
      config.data.batch_size,
      shuffle_seed=config.seed,
      repeat=True,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
    )
    it = pipeline.iterate(ds, config.data.prefetch, config.data.num_threads)
    return tokenized.tokenizer.vocab_size, lambda: sharding.global_batch(next(it), mesh)
  vocab = vocab_size or synthetic_vocab_size(config.data)
  local = {
    "tokens": np.random.default_rng(0).integers(
      0, vocab, (config.data.batch_size, config.data.seq_len + 1), dtype=np.int32
    )
  }
  batch = sharding.global_batch(local, mesh)
  return vocab, lambda: batch


def measure(
  config,
  *,
  steps: int,
  warmup: int,
  data: str = "synthetic",
  vocab_size: int | None = None,
  profile_dir: str | None = None,
) -> dict[str, Any]:
  """One row of measurements of `config`'s training step on all devices."""
  mesh = sharding.make_mesh(config.mesh)
  vocab, next_batch = batches(config, mesh, data, vocab_size)
  model_cfg, ex = architecture(config.model, vocab), execution(config.execution)
  layout = state_layout(model_cfg, ex, config.optim, config.train.steps, mesh)
  state = jax.jit(layout.init_fn, out_shardings=layout.shardings)(jax.random.key(0))
  step_fn = jit_train_step(layout, config.train, mesh)

  t0 = time.perf_counter()
  compiled = step_fn.lower(state, next_batch()).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    state, m = compiled(state, next_batch())
  jax.block_until_ready(state)

  synced = []  # each step timed alone, waiting for the device
  for _ in range(steps):
    t = time.perf_counter()
    state, m = compiled(state, next_batch())
    jax.block_until_ready(m)
    synced.append(time.perf_counter() - t)
  t = time.perf_counter()  # the same steps dispatched back to back, as the training loop does
  for _ in range(steps):
    state, m = compiled(state, next_batch())
  jax.block_until_ready((state, m))
  pipelined = (time.perf_counter() - t) / steps

  if profile_dir:
    with jax.profiler.trace(profile_dir, create_perfetto_trace=True):
      for _ in range(5):
        state, m = compiled(state, next_batch())
      jax.block_until_ready((state, m))

  device = mesh.devices.flat[0]
  peak, peak_name = hardware.mesh_peak_flops(list(mesh.devices.flat))
  flops_per_token = counts.training_flops_per_token(model_cfg, config.data.seq_len)
  tokens_per_s = config.data.batch_size * config.data.seq_len / pipelined
  return {
    "time": datetime.datetime.now().isoformat(timespec="seconds"),
    "data": data,
    "device": device.device_kind,
    "num_devices": mesh.size,
    "mesh": dict(mesh.shape),
    "jax": jax.__version__,
    "commit": git_commit(),
    "params": counts.param_counts(model_cfg)["total"],
    "batch": config.data.batch_size,
    "seq_len": config.data.seq_len,
    **dataclasses.asdict(ex),
    "grad_accum_steps": config.train.grad_accum_steps,
    "use_bias": model_cfg.use_bias,
    "compile_s": compile_s,
    "step_s_median": statistics.median(synced),
    "step_s_spread": [min(synced), max(synced)],
    "step_s_pipelined": pipelined,
    "tokens_per_s": tokens_per_s,
    "tflops_per_s": tokens_per_s * flops_per_token / 1e12,
    "mfu": hardware.mfu(tokens_per_s, flops_per_token, peak),
    "mfu_peak": peak_name,
    "flops_per_token": flops_per_token,
    "flops_convention": "6 * matmul params + 12 * layers * seq_len * d_model",
    "peak_memory_gib": (device.memory_stats() or {}).get("peak_bytes_in_use", float("nan")) / 2**30,
    "final_loss": float(m["loss"]),
  }


def main(argv):
  del argv
  row = {
    "tag": _TAG.value,
    "config": config_flags.get_config_filename(flags.FLAGS["config"]),
    **measure(
      _CONFIG.value,
      steps=_STEPS.value,
      warmup=_WARMUP.value,
      data=_DATA.value,
      vocab_size=_VOCAB.value,
      profile_dir=_PROFILE.value,
    ),
  }
  for k in SUMMARY:
    v = row[k]
    print(f"{k:>18}  {v:,.4g}" if isinstance(v, float) else f"{k:>18}  {v:,}")
  print(f"{'device':>18}  {row['device']} x {row['num_devices']}; MFU vs {row['mfu_peak']}")
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value, "a") as f:
    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  app.run(main)
