"""What the checksums of a checkpoint cost (lm/training/checksums.py): saving and restoring the
GPT-2 124M train state (params and Adam's two moments, float32) with them and without them
(Orbax alone, as checkpoints were saved before), and the rates of the hashes that could take
them.

    python -m benchmarks.checkpoint_integrity --out=benchmarks/results/checkpoint_integrity_cpu.json
    python -m benchmarks.checkpoint_integrity --config=cpu_10m --repeats=1    # a quick check

Each figure is the median of --repeats, the variants interleaved. `save` is synchronous (all
written); `async save, blocking` is the time until an asynchronous save returns, what the
training loop waits for. Restores read what was just written (from the page cache).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import json
import os
import pathlib
import platform
import shutil
import statistics
import tempfile
import time
import timeit
import zlib
from collections.abc import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from benchmarks.provenance import git_commit
from lm.model.config import architecture, execution
from lm.runtime import sharding
from lm.training import checkpoint, checksums
from lm.training.step import state_layout

HASHES: dict[str, Callable[[memoryview], object]] = {
  "crc32": zlib.crc32,
  "adler32": zlib.adler32,
  "blake2b": lambda b: hashlib.blake2b(b).digest(),
  "sha256": lambda b: hashlib.sha256(b).digest(),
}


def _host_buffers(state) -> list[memoryview]:
  leaves = [np.asarray(checksums.plain(x)) for x in jax.tree.leaves(state)]
  return [np.ascontiguousarray(a).reshape(-1).view(np.uint8).data for a in leaves]


def hash_rates(state, repeats: int) -> dict[str, dict[str, float]]:
  """Seconds and GB/s of each hash over the state's bytes, on one thread."""
  buffers = _host_buffers(state)
  total = sum(b.nbytes for b in buffers)
  out = {}
  for name, fn in HASHES.items():
    s = statistics.median(
      timeit.repeat(lambda fn=fn: [fn(b) for b in buffers], number=1, repeat=repeats)
    )
    out[name] = {"s": s, "gb_per_s": total / s / 1e9}
  return out


def _orbax_alone(state) -> ocp.args.Composite:
  """What a checkpoint of the state held before checksums were recorded."""
  return ocp.args.Composite(state=ocp.args.StandardSave(state))


def save_and_restore(state, abstract, directory: str, repeats: int) -> dict[str, float]:
  """Medians of saving and restoring `state` with and without checksums, and of the checksums
  alone, over `repeats` rounds after one uncounted round."""
  times: dict[str, list[float]] = {}
  for repeat in range(repeats + 1):
    for use_async in (False, True):
      shutil.rmtree(directory, ignore_errors=True)
      ckpts = checkpoint.manager(directory, every=1, keep=-1, use_async=use_async)
      _one_round(ckpts, state, abstract, use_async, times if repeat else {}, repeat % 2 == 1)
      ckpts.close()
    print(f"round {repeat + 1}/{repeats + 1} done", flush=True)
  return {name: statistics.median(ts) for name, ts in times.items()}


def _one_round(
  ckpts, state, abstract, use_async: bool, times: dict[str, list[float]], flip: bool
) -> None:
  """Saves `state` without checksums (step 1) and with them (step 2), the other way round if
  `flip`; after a synchronous save, restores both; appends each time to `times`."""

  def in_turn(runs: dict[str, Callable[[], object]]) -> dict[str, object]:
    out = {}
    for name in reversed(runs) if flip else runs:
      t0 = time.perf_counter()
      out[name] = jax.block_until_ready(runs[name]())
      times.setdefault(name, []).append(time.perf_counter() - t0)
      ckpts.wait_until_finished()  # an asynchronous save's writes, outside its blocking time
    return out

  mode = "async save, blocking" if use_async else "save"
  in_turn(
    {
      f"{mode}, without": lambda: ckpts.save(1, args=_orbax_alone(state), force=True),
      f"{mode}, with checksums": lambda: checkpoint.save(ckpts, 2, state, None, force=True),
    }
  )
  if use_async:
    return
  restore_args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
  restored = in_turn(
    {
      "restore, without": lambda: ckpts.restore(1, args=restore_args)["state"],
      "restore, checked": lambda: checkpoint.restore(ckpts, abstract, 2, with_data=False)[0],
    }
  )["restore, checked"]
  records = checksums.read(ckpts.directory / "2")
  assert records is not None
  checked = in_turn(
    {
      "record alone": lambda: checksums.record(state, None),
      "check alone": lambda: checksums.mismatch(records, restored, None),
    }
  )
  assert checked["check alone"] is None


def measure(config_name: str, repeats: int, directory: str) -> dict:
  """One row: the state's size, the hash rates, and save and restore times."""
  config = importlib.import_module(f"experiments.configs.{config_name}").get_config()
  mesh = sharding.make_mesh(config.mesh)
  model_cfg = architecture(config.model, config.data.vocab_size)
  layout = state_layout(
    model_cfg, execution(config.execution), config.optim, config.train.steps, mesh
  )
  state = jax.jit(layout.init_fn, out_shardings=layout.shardings)(jax.random.key(0))
  leaves = jax.tree.leaves(layout.abstract)
  return {
    "config": config_name,
    "arrays": len(leaves),
    "state_gb": sum(x.size * x.dtype.itemsize for x in leaves) / 1e9,
    "hashes": hash_rates(state, repeats),
    "seconds": save_and_restore(state, layout.abstract, directory, repeats),
    "device": f"{jax.devices()[0].device_kind} x {jax.device_count()}",
    "host": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "load_average": os.getloadavg(),
    "commit": git_commit(),
    "date": datetime.date.today().isoformat(),
    "jax": jax.__version__,
    "orbax": ocp.__version__,
  }


def print_table(row: dict) -> None:
  print(
    f"{row['config']}: {row['arrays']} arrays, {row['state_gb']:.3f} GB; {row['device']}"
    f" ({row['host']}, {row['cpu_count']} cores, load {row['load_average'][0]:.1f})"
  )
  for name, h in row["hashes"].items():
    print(f"  hash {name:<10} {h['s']:7.3f} s  {h['gb_per_s']:6.2f} GB/s")
  s = row["seconds"]
  for mode in ("save", "async save, blocking", "restore"):
    plain = s[f"{mode}, without"]
    checked = s.get(f"{mode}, with checksums", s.get(f"{mode}, checked"))
    extra = checked - plain
    change = f"{extra:+.3f} s, {extra / plain:+.1%}"
    print(f"  {mode:<22} {plain:7.3f} s -> {checked:7.3f} s  ({change})")
  print(f"  record alone {s['record alone']:.3f} s, check alone {s['check alone']:.3f} s")


def main() -> None:
  parser = argparse.ArgumentParser(description="What the checksums of a checkpoint cost.")
  parser.add_argument("--config", default="gpt2_124m", help="a module of experiments/configs")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--dir", default=None, help="where to write checkpoints (default: a temp)")
  parser.add_argument("--out", default=None, help="a JSON file for the row")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory(prefix="ckpt-integrity-") as tmp:
    row = measure(args.config, args.repeats, args.dir or os.path.join(tmp, "run"))
  print_table(row)
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
  main()
