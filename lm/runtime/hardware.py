"""Peak FLOP/s (for MFU) and memory bandwidth (for decode bounds) of the device in use, named,
and the MFU arithmetic itself.

Accelerators: the data-sheet peak. A CPU has none: its "peak" is a float32 matmul rate measured
once per machine and cached (`$LM_CACHE_DIR`, default ~/.cache/lm, `cpu_peak_flops.json`), so
that the MFU of runs on one machine divide by the same figure; `$LM_PEAK_FLOPS` names a fixed
peak instead.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import time
from typing import Any

import jax
import jax.numpy as jnp

from lm.runtime import paths

# A `Device`: jaxlib's class, which ships no type information.
Device = Any

# Dense (no sparsity) peak FLOP/s per chip, bfloat16, from the vendors' data sheets.
PEAK_BF16_FLOPS = {
  "H100": 989e12,
  "H200": 989e12,
  "A100": 312e12,
  "L4": 121e12,
  "TPU v4": 275e12,
  "TPU v5 lite": 197e12,
  "TPU v5e": 197e12,
  "TPU v5p": 459e12,
  "TPU v6 lite": 918e12,
  "TPU v6e": 918e12,
}

# Peak HBM bandwidth per chip, bytes/s, from the same data sheets (the SXM/HBM3 parts for GPUs).
PEAK_MEMORY_BANDWIDTH = {
  "H100": 3.35e12,
  "H200": 4.8e12,
  "A100": 2.0e12,
  "L4": 0.3e12,
  "TPU v4": 1.2e12,
  "TPU v5 lite": 0.82e12,
  "TPU v5e": 0.82e12,
  "TPU v5p": 2.76e12,
  "TPU v6 lite": 1.64e12,
  "TPU v6e": 1.64e12,
}


@functools.cache
def measured_matmul_flops(size: int = 1024, repeats: int = 20) -> float:
  """Achieved float32 FLOP/s of a square matmul on the default device (the best of `repeats`)."""
  x = jnp.ones((size, size), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(x).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(x).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * size**3 / best


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return names[0] if names else platform.processor()
  except OSError:
    return platform.processor()


def cpu_peak_flops(kind: str) -> tuple[float, str]:
  """(the CPU's float32 matmul FLOP/s, its name): `$LM_PEAK_FLOPS` if set, else measured once
  per machine (processor, usable cores, jax version) and read from the cache after that."""
  if os.environ.get("LM_PEAK_FLOPS"):
    flops = float(os.environ["LM_PEAK_FLOPS"])
    return flops, f"{kind} LM_PEAK_FLOPS {flops / 1e9:.0f} GFLOP/s"
  key = f"{_cpu_model()} | {len(os.sched_getaffinity(0))} cores | jax {jax.__version__}"
  path = paths.user_cache_dir() / "cpu_peak_flops.json"
  try:
    cache = json.loads(path.read_text())
  except (OSError, ValueError):
    cache = {}
  if key not in cache:
    cache[key] = {"flops": measured_matmul_flops(), "measured": datetime.date.today().isoformat()}
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      tmp = path.with_suffix(f".{os.getpid()}.tmp")
      tmp.write_text(json.dumps(cache, indent=2))
      tmp.replace(path)
    except OSError:
      pass  # a read-only home: this process keeps its measurement
  flops, when = cache[key]["flops"], cache[key]["measured"]
  return flops, f"{kind} f32 matmul {flops / 1e9:.0f} GFLOP/s (measured {when}, {path})"


def device_peak_flops(device: Device | None = None) -> tuple[float, str]:
  """(peak FLOP/s per device, a name saying where it came from)."""
  kind = (jax.devices()[0] if device is None else device).device_kind
  for name, flops in PEAK_BF16_FLOPS.items():
    if name.lower() in kind.lower():
      return flops, f"{kind} bf16 dense peak {flops / 1e12:.0f} TFLOP/s"
  return cpu_peak_flops(kind)


def mesh_peak_flops(devices: list[Device]) -> tuple[float, str]:
  """(peak FLOP/s of a step running on `devices`, a name saying where it came from).

  Accelerators: the per-chip peak times the chips. CPU: one measured matmul rate, since the
  host's forced devices share its cores.
  """
  peak, name = device_peak_flops(devices[0])
  chips = 1 if devices[0].platform == "cpu" else len(devices)
  return peak * chips, f"{name} x {chips}"


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
  """Model FLOPs utilisation: the training FLOP/s a step achieves over the peak."""
  return tokens_per_s * flops_per_token / peak_flops


def device_memory_bandwidth(device: Device | None = None) -> tuple[float, str] | None:
  """(peak memory bytes/s per device, its name), or None for a device not in the table."""
  kind = (jax.devices()[0] if device is None else device).device_kind
  for name, bandwidth in PEAK_MEMORY_BANDWIDTH.items():
    if name.lower() in kind.lower():
      return bandwidth, f"{kind} {bandwidth / 1e12:.2f} TB/s"
  return None
