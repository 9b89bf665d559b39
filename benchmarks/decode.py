"""Decode throughput of `lm.infer.sampling.generate` (KV cache) at several batch sizes, with
random weights.

    python -m benchmarks.decode                                  # shakespeare_char, CPU
    python -m benchmarks.decode --size=gpt2_small --batch_sizes=1,64 \
        --out=benchmarks/results/decode_h100.json                 # GPT-2 small, bf16, GPU

Compile time is measured apart from the steady state (the median of --repeats runs). Decode
tokens/s exclude the prefill: B * (N - 1) / (t(N new tokens) - t(1 new token)). On a device
with a known memory bandwidth (`lm.runtime.hardware`), the memory-bandwidth bound is B tokens per
weights-bytes / bandwidth (every decode step reads all weights once); `vs bound` is the measured
decode tokens/s over it. A second bound also charges the KV cache read at the mean context.
Imports only the model and the sampler (no TFDS, no grain), so it runs on a bare accelerator
machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx

from lm.infer import sampling
from lm.model.config import ExecutionConfig, TransformerConfig
from lm.model.transformer import DecoderLM
from lm.runtime import hardware

SIZES = {
  # experiments/configs/shakespeare_char.py: 65 characters padded to 128 ids.
  "shakespeare_char": (
    TransformerConfig(
      vocab_size=128, num_layers=4, num_heads=4, d_model=128, mlp_dim=512, max_seq_len=64
    ),
    ExecutionConfig(),
  ),
  "gpt2_small": (
    TransformerConfig(
      vocab_size=50304, num_layers=12, num_heads=12, d_model=768, mlp_dim=3072, max_seq_len=1024
    ),
    ExecutionConfig(param_dtype="bfloat16", compute_dtype="bfloat16"),
  ),
}


def _timed(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def measure(
  cfg: TransformerConfig,
  ex: ExecutionConfig,
  batch: int,
  prompt_len: int,
  new_tokens: int,
  repeats: int,
  temperature: float,
) -> dict:
  """Compile seconds and steady-state seconds / tokens per second for one batch size."""
  graphdef, params = nnx.split(DecoderLM(cfg, ex, rngs=nnx.Rngs(0)))
  prompts = jax.random.randint(jax.random.key(1), (batch, prompt_len), 0, cfg.vocab_size)
  lengths = jnp.full((batch,), prompt_len, jnp.int32)
  key = jax.random.key(2)
  seconds, compile_s = {}, {}
  for n in (1, new_tokens):
    t0 = time.perf_counter()
    compiled = sampling.generate.lower(
      graphdef, params, prompts, lengths, key, max_new_tokens=n, temperature=temperature
    ).compile()
    compile_s[n] = time.perf_counter() - t0
    jax.block_until_ready(compiled(params, prompts, lengths, key))  # warm-up
    seconds[n] = _timed(lambda c=compiled: c(params, prompts, lengths, key), repeats)
  return {
    "batch": batch,
    "prompt_tokens": prompt_len,
    "new_tokens": new_tokens,
    "compile_s": compile_s[new_tokens],
    "generate_s": seconds[new_tokens],
    "prefill_plus_one_s": seconds[1],
    "end_to_end_tokens_per_s": batch * new_tokens / seconds[new_tokens],
    "decode_tokens_per_s": batch * (new_tokens - 1) / (seconds[new_tokens] - seconds[1]),
    **_bandwidth_bounds(cfg, ex, params, batch, prompt_len + new_tokens / 2),
  }


def _bandwidth_bounds(
  cfg: TransformerConfig, ex: ExecutionConfig, params, batch: int, mean_context: float
) -> dict:
  """Weight and KV-cache bytes read per decode step, and the tokens/s that bandwidth allows."""
  weight_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
  kv_bytes = (
    2 * cfg.num_layers * batch * mean_context * cfg.d_model * jnp.dtype(ex.compute_dtype).itemsize
  )
  row = {"weight_bytes": weight_bytes, "kv_bytes_mean_context": kv_bytes}
  bandwidth = hardware.device_memory_bandwidth()
  if bandwidth:
    row.update(
      bandwidth_bytes_per_s=bandwidth[0],
      bandwidth_name=bandwidth[1],
      bound_weights_tokens_per_s=batch * bandwidth[0] / weight_bytes,
      bound_weights_kv_tokens_per_s=batch * bandwidth[0] / (weight_bytes + kv_bytes),
    )
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", choices=sorted(SIZES), default="shakespeare_char")
  parser.add_argument("--batch_sizes", default="1,32")
  parser.add_argument("--prompt_tokens", type=int, default=8)
  parser.add_argument(
    "--new_tokens",
    type=int,
    default=None,
    help="default: fill the context (max_seq_len - prompt_tokens)",
  )
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--temperature", type=float, default=1.0)
  parser.add_argument("--out", default="benchmarks/results/decode_cpu.json")
  args = parser.parse_args()
  cfg, ex = SIZES[args.size]
  new_tokens = args.new_tokens or cfg.max_seq_len - args.prompt_tokens
  rows = [
    measure(cfg, ex, int(b), args.prompt_tokens, new_tokens, args.repeats, args.temperature)
    for b in args.batch_sizes.split(",")
  ]
  device = jax.devices()[0]
  result = {
    "size": args.size,
    "model": cfg.__dict__,
    "execution": ex.__dict__,
    "device": device.device_kind,
    "platform": device.platform,
    "host": platform.processor() or platform.machine(),
    "jax": jax.__version__,
    "temperature": args.temperature,
    "repeats": args.repeats,
    "rows": rows,
  }
  print(f"{args.size} on {device.device_kind} ({device.platform}), jax {jax.__version__}")
  print(
    f"{'batch':>5} {'prompt':>6} {'new':>5} {'compile s':>10} {'generate s':>11} "
    f"{'e2e tok/s':>10} {'decode tok/s':>13} {'bound tok/s':>12} {'vs bound':>9} "
    f"{'vs w+kv':>8}"
  )
  for r in rows:
    print(
      f"{r['batch']:>5} {r['prompt_tokens']:>6} {r['new_tokens']:>5} {r['compile_s']:>10.2f} "
      f"{r['generate_s']:>11.4f} {r['end_to_end_tokens_per_s']:>10.0f} "
      f"{r['decode_tokens_per_s']:>13.0f}",
      end="",
    )
    if "bound_weights_tokens_per_s" in r:
      print(
        f" {r['bound_weights_tokens_per_s']:>12.0f} "
        f"{r['decode_tokens_per_s'] / r['bound_weights_tokens_per_s']:>9.1%} "
        f"{r['decode_tokens_per_s'] / r['bound_weights_kv_tokens_per_s']:>8.1%}",
        end="",
      )
    print()
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
