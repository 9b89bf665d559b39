"""Where a small CPU run's time goes, per step and per run, and the levers that cut it.

    python -m benchmarks.cpu_breakdown --part=step      # per step, at both shapes, in-process
    python -m benchmarks.cpu_breakdown --part=run --shape=demo \
        --variants=main,dispatch10,threads1 [--main_tree=/path/to/main/checkout]

Shapes: 'demo' is `make demo`'s recipe (experiments/configs/shakespeare_char.py: 4 x 128,
context 64, batch 12, 2000 steps); 'scaling' a mid-size model of the CPU scaling study (4
layers of width 48, head size 8, context 128, batch 16) on the same corpus, 600 steps;
'startup' the scaling shape for 10 steps (start-up dominates).

`--part=step`, per step (ms), each on the same model in one process:
  input     the grain pipeline's next host batch (its read-ahead threads included)
  transfer  the host batch made a device array (`sharding.global_batch`)
  compute   steps back to back inside one program (a lax.scan over 20 batches), per step
  loop      what the training loop does per step: place a batch, dispatch one step, fetch the
            previous step's metrics; `loop - compute` is the fixed cost per dispatch
  loop_k    the same with `train.steps_per_dispatch=k` (k steps per dispatch)
  gflop     a step's floating-point work (XLA's cost analysis of the one-step program) and
            compute_gflops its rate; compute_floor the step at `matmul_peak_gflops`, the best
            rate of one large float32 matmul on this machine: no lever gets a step under it
  dots      the step's matrix products alone, each timed as its own program at its shapes

`--part=run`: each variant trains the shape's run as its own `experiments.train` process, in
turn, `--repeats` times interleaved (the machine's drift hits every variant alike); per variant
the median process wall time, its eval loss, and the run's phases from its final log line
(setup: data and model built; init; compile: the first dispatch; input; steps: dispatches and
waiting for their results; eval; checkpoint); start-up = process wall - the run's own wall
(imports, JAX's start). A variant is a named set of config overrides and environment (VARIANTS);
`main` runs the tree at `--main_tree` (today's main checked out there) with no overrides.
Prints a table and writes `--out` (JSON).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import hlo_kernels
from benchmarks.provenance import git_commit
from experiments.configs import shakespeare_char
from lm.data import pipeline, token_cache
from lm.model.config import architecture, execution
from lm.runtime import sharding
from lm.training.step import jit_train_step, state_layout

_PART = flags.DEFINE_enum("part", "step", ["step", "run"], "What to measure.")
_SHAPES = flags.DEFINE_list("shape", ["demo", "scaling"], "Shapes to measure.")
_VARIANTS = flags.DEFINE_list("variants", ["main", "head"], "--part=run: variants (VARIANTS).")
_MAIN_TREE = flags.DEFINE_string(
  "main_tree",
  None,
  "--part=run: a checkout of today's main, which the `main` variant runs (with this tree's venv).",
)
_REPEATS = flags.DEFINE_integer("repeats", 1, "--part=run: runs per variant, interleaved.")
_STEPS = flags.DEFINE_integer("steps", 100, "--part=step: timed steps per figure.")
_OUT = flags.DEFINE_string(
  "out", None, "JSON file to write (default: benchmarks/results/cpu_breakdown_<part>.json)."
)

# Config overrides per shape (the demo's recipe is shakespeare_char.py's own).
SHAPES = {
  "demo": [],
  "scaling": [
    "--config.model.d_model=48",
    "--config.model.num_heads=6",
    "--config.model.mlp_dim=192",
    "--config.data.seq_len=128",
    "--config.model.max_seq_len=128",
    "--config.data.batch_size=16",
    "--config.train.steps=600",
    "--config.train.eval_every=600",
    "--config.train.checkpoint_every=600",
    "--config.train.eval_batches=50",
    "--config.train.log_every=50",
    "--config.optim.learning_rate=3e-3",
    "--config.optim.warmup_steps=30",
  ],
}
# The old study's widest size (width 96, head size 8), for fewer steps.
SHAPES["scaling96"] = [
  *SHAPES["scaling"],
  "--config.model.d_model=96",
  "--config.model.num_heads=12",
  "--config.model.mlp_dim=384",
  "--config.train.steps=200",
  "--config.train.eval_every=200",
  "--config.train.checkpoint_every=200",
]
# Start-up: the scaling shape for 10 steps (one dispatch), evaluated and saved once.
SHAPES["startup"] = [
  *SHAPES["scaling"],
  "--config.train.steps=10",
  "--config.train.eval_every=10",
  "--config.train.checkpoint_every=10",
  "--config.train.eval_batches=5",
  "--config.train.log_every=10",
  "--config.optim.warmup_steps=2",
]
# Levers: (config overrides, environment). Every variant but `main` runs this tree.
VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
  "main": ([], {}),
  "head": ([], {}),
  "dispatch10": (["--config.train.steps_per_dispatch=10"], {}),
  "dispatch50": (["--config.train.steps_per_dispatch=50"], {}),
  "eigen1": ([], {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}),
  "read1": (["--config.data.num_threads=1", "--config.data.prefetch=2"], {}),
  "dispatch10+eigen1": (
    ["--config.train.steps_per_dispatch=10"],
    {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"},
  ),
  "accum2": (["--config.train.grad_accum_steps=2"], {}),
  "dispatch10+accum2": (
    ["--config.train.steps_per_dispatch=10", "--config.train.grad_accum_steps=2"],
    {},
  ),
  # The same parameters in 2 heads (scaling_cpu.py's study has 2 heads at every width).
  "heads2": (["--config.model.num_heads=2"], {}),
  # Start-up once the shapes were compiled by an earlier run (run it twice: the first fills).
  "cache": (["--compilation_cache=/tmp/cpu_breakdown_jax_cache"], {}),
}


def _config(shape: str):
  config = shakespeare_char.get_config()
  for override in SHAPES[shape]:
    key, value = override.removeprefix("--config.").split("=")
    section, field = key.split(".")
    old = config[section][field]
    config[section][field] = type(old)(value)
  return config


def _per_step_ms(fn, n: int) -> float:
  t = time.perf_counter()
  fn(n)
  return 1e3 * (time.perf_counter() - t) / n


def step_breakdown(shape: str, steps: int) -> dict[str, float]:
  """Milliseconds per step of each part (see the module docstring) at `shape`."""
  config = _config(shape)
  mesh = sharding.make_mesh(config.mesh)
  data = token_cache.tokenized_data(config.data)
  ds = pipeline.window_batches(
    data.splits[config.data.train_split],
    config.data.seq_len,
    config.data.batch_size,
    shuffle_seed=0,
    repeat=True,
  )
  it = pipeline.iterate(ds, config.data.prefetch, config.data.num_threads)
  model_cfg = architecture(config.model, data.tokenizer.vocab_size)
  layout = state_layout(
    model_cfg, execution(config.execution), config.optim, config.train.steps, mesh
  )
  state = jax.jit(layout.init_fn, out_shardings=layout.shardings)(jax.random.key(0))
  single = jit_train_step(layout, config.train, mesh)
  k_scan, k_loop = 20, 10
  scan = jit_train_step(layout, config.train, mesh, num_steps=k_scan)
  loop_k = jit_train_step(layout, config.train, mesh, num_steps=k_loop)
  host = [next(it) for _ in range(k_scan)]

  def stack(n):
    return sharding.global_batch({"tokens": np.stack([b["tokens"] for b in host[:n]])}, mesh, True)

  placed = sharding.global_batch(host[0], mesh)
  for fn, batch in ((single, placed), (scan, stack(k_scan)), (loop_k, stack(k_loop))):
    state, _m = fn(state, batch)  # compile and warm up
  jax.block_until_ready(state)
  out: dict[str, float] = {"params": int(sum(x.size for x in jax.tree.leaves(state.params)))}

  def read(n):
    for _ in range(n):
      next(it)

  out["input"] = _per_step_ms(read, steps)

  def transfer(n):
    for _ in range(n):
      jax.block_until_ready(sharding.global_batch(host[0], mesh))

  out["transfer"] = _per_step_ms(transfer, steps)

  def compute(n):
    nonlocal state
    batch = stack(k_scan)
    for _ in range(max(n // k_scan, 1)):
      state, _m = scan(state, batch)
    jax.block_until_ready(state)

  out["compute"] = _per_step_ms(compute, steps) * steps / (max(steps // k_scan, 1) * k_scan)

  def loop(n):
    nonlocal state
    pending = None
    for _ in range(n):
      state, m = single(state, sharding.global_batch(next(it), mesh))
      if pending is not None:
        jax.device_get(pending)
      pending = m
    jax.device_get(pending)

  out["loop"] = _per_step_ms(loop, steps)

  def loop_scan(n):
    nonlocal state
    pending = None
    for _ in range(max(n // k_loop, 1)):
      local = [next(it) for _ in range(k_loop)]
      state, m = loop_k(
        state, sharding.global_batch({"tokens": np.stack([b["tokens"] for b in local])}, mesh, True)
      )
      if pending is not None:
        jax.device_get(pending)
      pending = m
    jax.device_get(pending)

  out[f"loop_{k_loop}"] = (
    _per_step_ms(loop_scan, steps) * steps / (max(steps // k_loop, 1) * k_loop)
  )
  out["fixed_per_dispatch"] = out["loop"] - out["compute"]
  compiled = single.lower(state, placed).compile()
  out["gflop"] = compiled.cost_analysis()["flops"] / 1e9
  out["compute_gflops"] = out["gflop"] / out["compute"] * 1e3
  out["dots"] = dots_ms(compiled.as_text())
  return out


def dots_ms(hlo_text: str, repeats: int = 50) -> float:
  """Milliseconds of a program's dots, each timed alone as its own jitted `lax.dot_general` at
  its shapes (the best of 3 rounds of `repeats`): the step's matrix products at the rate XLA
  reaches for each shape, with none of the step's other work."""
  total = 0.0
  for d in hlo_kernels.dots(hlo_text):
    lhs, rhs = (jnp.ones(d[k], d["dtype"]) for k in ("lhs", "rhs"))
    f = jax.jit(functools.partial(jax.lax.dot_general, dimension_numbers=d["dimension_numbers"]))
    f(lhs, rhs).block_until_ready()
    rounds = []
    for _ in range(3):
      t = time.perf_counter()
      for _ in range(repeats):
        r = f(lhs, rhs)
      r.block_until_ready()
      rounds.append((time.perf_counter() - t) / repeats)
    total += min(rounds)
  return 1e3 * total


def matmul_peak(sizes: tuple[int, ...] = (256, 512, 1024, 2048), repeats: int = 5) -> float:
  """The best GFLOP/s of one jitted float32 square matmul over `sizes`: what XLA's CPU GEMM
  reaches on this machine, the ceiling a training step's own small GEMMs stay under."""
  best = 0.0
  for n in sizes:
    x = jnp.ones((n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    f(x, x).block_until_ready()
    for _ in range(repeats):
      t = time.perf_counter()
      f(x, x).block_until_ready()
      best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
  return best


DONE = re.compile(
  r"done: step (\d+), train loss ([\d.na]+), eval loss ([\d.na]+), .*?, "
  r"([\d.]+)s \((.*)\)"
)


def _phases(text: str) -> dict[str, float]:
  return {k: float(v.rstrip("s")) for k, v in (p.split() for p in text.split(", "))}


def run_once(shape: str, variant: str, main_tree: str | None, workdir: str) -> dict[str, Any]:
  """Trains `shape`'s run as `variant` in a fresh process; its wall time, losses, phases."""
  overrides, env_extra = VARIANTS[variant]
  cwd = main_tree if variant == "main" else os.getcwd()
  if variant == "main" and not main_tree:
    raise ValueError("the `main` variant needs --main_tree")
  command = [
    sys.executable,
    "-m",
    "experiments.train",
    "--config=experiments/configs/shakespeare_char.py",
    f"--workdir={workdir}",
    "--config.data.data_dir=" + os.path.abspath("runs/data"),
    "--config.data.path=" + os.path.abspath("data/tiny_shakespeare.txt"),
    *SHAPES[shape],
    *overrides,
  ]
  if variant != "main" and not any(o.startswith("--compilation_cache") for o in overrides):
    command.append("--compilation_cache=")  # compiles as today's main does
  env = {**os.environ, **env_extra, "PYTHONPATH": cwd}
  t = time.perf_counter()
  proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
  wall = time.perf_counter() - t
  if proc.returncode:
    raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}")
  done = DONE.search(proc.stderr)
  row: dict[str, Any] = {"wall_s": wall}
  if done:  # today's main logs no phases; its run's own wall time is on the same line
    row.update(
      train_loss=float(done[2]),
      eval_loss=float(done[3]),
      run_s=float(done[4]),
      start_s=wall - float(done[4]),
    )
    if "(" in done[0]:
      row["phases_s"] = _phases(done[5])
  else:
    old = re.search(
      r"done: step \d+, train loss ([\d.]+), eval loss ([\d.]+), .*?([\d.]+)s", proc.stderr
    )
    row.update(
      train_loss=float(old[1]),
      eval_loss=float(old[2]),
      run_s=float(old[3]),
      start_s=wall - float(old[3]),
    )
  config = _config(shape)
  row["tokens_per_s"] = config.train.steps * config.data.batch_size * config.data.seq_len / wall
  return row


def run_breakdown(
  shapes: list[str], variants: list[str], repeats: int, main_tree: str | None
) -> dict[str, Any]:
  """Per shape and variant: every repeat's row and the medians."""
  out: dict[str, Any] = {}
  for shape in shapes:
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(repeats):
      for variant in variants:
        workdir = tempfile.mkdtemp(prefix=f"cpu_breakdown_{variant}_")
        try:
          rows[variant].append(run_once(shape, variant, main_tree, workdir))
        finally:
          shutil.rmtree(workdir, ignore_errors=True)
        print(f"{shape} {variant}: {rows[variant][-1]}", flush=True)
    out[shape] = {
      v: {
        "runs": r,
        "wall_s": statistics.median(x["wall_s"] for x in r),
        "eval_loss": r[0]["eval_loss"],
      }
      for v, r in rows.items()
    }
  return out


def main(argv):
  del argv
  result: dict[str, Any] = {
    "time": datetime.datetime.now().isoformat(timespec="seconds"),
    "commit": git_commit(),
    "jax": jax.__version__,
    "cpus": len(os.sched_getaffinity(0)),
    "part": _PART.value,
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }
  if _PART.value == "step":
    result["matmul_peak_gflops"] = matmul_peak()
    print(f"matmul peak {result['matmul_peak_gflops']:.1f} GFLOP/s", flush=True)
    for shape in _SHAPES.value:
      r = step_breakdown(shape, _STEPS.value)
      r["compute_floor"] = r["gflop"] / result["matmul_peak_gflops"] * 1e3
      result[shape] = r
      print(shape, " | ".join(f"{k} {v:.2f}" for k, v in r.items()), flush=True)
  else:
    result.update(run_breakdown(_SHAPES.value, _VARIANTS.value, _REPEATS.value, _MAIN_TREE.value))
    for shape in _SHAPES.value:
      base = result[shape][_VARIANTS.value[0]]["wall_s"]
      print(
        f"\n{shape}: variant, median wall s, x {_VARIANTS.value[0]}, tokens/s (of the "
        "process wall), eval loss, phases"
      )
      for variant, r in result[shape].items():
        phases = r["runs"][0].get("phases_s", {})
        tokens_per_s = statistics.median(x["tokens_per_s"] for x in r["runs"])
        print(
          f"  {variant:<11} {r['wall_s']:7.1f} {r['wall_s'] / base:6.2f}x {tokens_per_s:8.0f} "
          f"{r['eval_loss']:.4f}  start {r['runs'][0]['start_s']:.1f}s "
          + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
        )
  out = _OUT.value or f"benchmarks/results/cpu_breakdown_{_PART.value}.json"
  with open(out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"wrote {out}")


if __name__ == "__main__":
  app.run(main)
