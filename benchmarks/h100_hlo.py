"""Compile a config's training step for an H100 on a machine without a GPU, and summarise the
kernels XLA chose: GEMMs and their cuBLASLt epilogues, fusions, copies, and each kernel's bytes
at its boundary (read + written: a bandwidth lower bound on its time, not a measurement).

Deviceless compilation needs the CUDA plugin, not a GPU; autotuning is off without a device,
so GEMMs come out as Triton fusions unless `--xla_gpu_enable_triton_gemm=false` (on a real
H100 the autotuner picked cuBLAS for every GEMM of the 124M step). Setup, once:

    python3 -m venv .venv-cuda && .venv-cuda/bin/pip install -r requirements.lock \
        "jax[cuda12]==$(.venv/bin/python -c 'import jax; print(jax.__version__)')"
    JAX_SKIP_CUDA_CONSTRAINTS_CHECK=1 XLA_FLAGS=--xla_gpu_enable_triton_gemm=false \
        .venv-cuda/bin/python -m benchmarks.h100_hlo \
        --config=experiments/configs/gpt2_124m.py [--hlo_out=step.hlo.txt]
"""

import collections

import jax
import jax.numpy as jnp
from absl import app, flags
from jax.experimental import topologies
from ml_collections import config_flags

from benchmarks.hlo_kernels import kernels
from lm import cli
from lm.model.config import architecture, execution
from lm.runtime import sharding
from lm.training.step import jit_train_step, state_layout

_CONFIG = config_flags.DEFINE_config_file("config", None, cli.CONFIG_HELP)
_HLO_OUT = flags.DEFINE_string("hlo_out", None, "Write the optimised HLO text here.")
_TOP = flags.DEFINE_integer("top", 25, "Kernel groups to list, by bytes.")
_BANDWIDTH = flags.DEFINE_float("bandwidth", 3.35e12, "HBM bytes/s (H100 SXM).")
flags.mark_flag_as_required("config")

# An H100 SXM as XLA's GPU compiler sees it (xla/stream_executor GpuTargetConfig).
H100 = """
gpu_device_info {
  threads_per_block_limit: 1024 threads_per_warp: 32 shared_memory_per_block: 49152
  shared_memory_per_core: 233472 threads_per_core_limit: 2048 core_count: 132
  fpus_per_core: 128 block_dim_limit_x: 2147483647 block_dim_limit_y: 65535
  block_dim_limit_z: 65535 memory_bandwidth: 3352320000000 l2_cache_size: 52428800
  clock_rate_ghz: 1.98 device_memory_size: 84929347584 shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 } registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 8 }
runtime_version { major: 12 minor: 9 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""


def main(argv):
  del argv
  config = _CONFIG.value
  topology = topologies.get_topology_desc(platform="cuda", target_config=H100, topology="1x1x1")
  mesh = sharding.make_mesh(config.mesh, devices=topology.devices)
  layout = state_layout(
    architecture(config.model, config.data.vocab_size),
    execution(config.execution),
    config.optim,
    config.train.steps,
    mesh,
  )
  batch = {
    "tokens": jax.ShapeDtypeStruct(
      (config.data.batch_size, config.data.seq_len + 1),
      jnp.int32,
      sharding=sharding.batch_sharding(mesh),
    )
  }
  compiled = jit_train_step(layout, config.train, mesh).lower(layout.abstract, batch).compile()
  text = compiled.as_text()
  if _HLO_OUT.value:
    with open(_HLO_OUT.value, "w") as f:
      f.write(text)
  ks = kernels(text)
  bw = _BANDWIDTH.value
  by_kind = collections.defaultdict(lambda: [0, 0])
  groups = collections.defaultdict(lambda: [0, 0])
  for k in ks:
    by_kind[k["kind"]][0] += 1
    by_kind[k["kind"]][1] += k["bytes"]
    g = groups[(k["kind"], k["op"], k["shape"])]
    g[0] += 1
    g[1] += k["bytes"]
  print(f"{'kernels':46s} {'count':>6s} {'GB':>8s} {'ms at bw':>9s}")
  for kind, (n, b) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
    print(f"{kind[:46]:46s} {n:6d} {b / 1e9:8.2f} {b / bw * 1e3:9.3f}")
  total = sum(k["bytes"] for k in ks)
  print(f"{'all':46s} {len(ks):6d} {total / 1e9:8.2f} {total / bw * 1e3:9.3f}")
  print(f"temp buffer: {compiled.memory_analysis().temp_size_in_bytes / 2**30:.2f} GiB\n")
  print(f"{'count':>5s} {'GB':>7s}  kind | op | shape")
  for (kind, op, shape), (n, b) in sorted(groups.items(), key=lambda kv: -kv[1][1])[: _TOP.value]:
    print(f"{n:5d} {b / 1e9:7.2f}  {kind} | {op} | {shape}")


if __name__ == "__main__":
  app.run(main)
