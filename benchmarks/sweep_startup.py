"""Wall time per run of a small sweep: one process per run without a compilation cache (the
sweep before reusable workers), reusable workers, and reusable workers with the sweep's
compilation cache (the default).

    python -m benchmarks.sweep_startup --repeats=2

Runs `experiments.sweep --workers=N` on the same tiny grid (tiny Shakespeare, 1-layer models of
width 8-32, 7-176 steps, so start-up dominates; widths 8 and 16 in both budgets) in fresh
workdirs, the three ways in turn, and prints each sweep's wall time per run and whether they
gave the same eval losses and config hashes.
"""

import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from lm.scaling import results

_REPEATS = flags.DEFINE_integer("repeats", 1, "Sweeps of each kind, alternating.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Worker processes.")

GRID = [
  "--config=experiments/configs/base.py",
  "--config.data.seq_len=16",
  "--config.model.max_seq_len=16",
  "--config.data.batch_size=8",
  "--config.data.num_threads=1",
  "--config.model.dropout=0.0",
  "--config.train.checkpoint_every=1000",
  "--config.train.eval_batches=1",
  "--config.scaling.budgets=(4e7,1.2e8)",
  "--config.scaling.sizes_per_budget=3",
  "--config.scaling.size_ratio=8.0",
  "--config.scaling.tokens_per_param=1.0",
  "--config.scaling.rule=fixed_depth",
  "--config.scaling.fixed_num_layers=1",
  "--config.scaling.width_step=8",
  "--config.scaling.ladder_size=8",
  "--config.scaling.min_steps=5",
]


def main(argv):
  del argv
  root = tempfile.mkdtemp(prefix="sweep-startup-")
  data = [f"--config.data.data_dir={root}/data"]
  # The data is prepared once, before any timing.
  subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.sweep",
      *GRID,
      *data,
      f"--workdir={root}/prepare",
      "--emit_commands",
    ],
    check=True,
    stdout=subprocess.DEVNULL,
  )
  modes = {
    "per_run": ["--noreuse_workers", "--compilation_cache="],
    "reuse": ["--compilation_cache="],
    "reuse+cache": [],
  }
  tables = {}
  for i in range(_REPEATS.value):
    for mode, flags_ in modes.items():
      name = f"{mode}_{i}"
      workdir = os.path.join(root, name)
      t0 = time.perf_counter()
      subprocess.run(
        [
          sys.executable,
          "-m",
          "experiments.sweep",
          *GRID,
          *data,
          f"--workdir={workdir}",
          f"--workers={_WORKERS.value}",
          *flags_,
        ],
        check=True,
        stderr=subprocess.DEVNULL,
      )
      wall = time.perf_counter() - t0
      rows = results.read_results(workdir)
      tables[name] = {r["name"]: r for r in rows}
      run_wall = sum(r["wall_s"] for r in rows) / len(rows)
      print(
        f"{name:<13} {len(rows)} runs, sweep {wall:6.1f} s ({wall / len(rows):5.1f} s a "
        f"run), run wall {run_wall:5.1f} s on average",
        flush=True,
      )
  ref = tables["per_run_0"]
  for name, table in tables.items():
    loss = max(abs(table[k]["eval_loss"] - ref[k]["eval_loss"]) for k in ref)
    same_hash = all(table[k]["config_hash"] == ref[k]["config_hash"] for k in ref)
    print(
      f"{name:<13} against per_run_0: max |eval loss difference| {loss:.2g}, "
      f"config hashes {'equal' if same_hash else 'DIFFER'}"
    )


if __name__ == "__main__":
  app.run(main)
