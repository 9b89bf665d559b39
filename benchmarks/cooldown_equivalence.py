"""Cooldown branches against independent runs at the same grid points: the final eval losses
and the training FLOPs of each method.

    python -m benchmarks.cooldown_equivalence --out=benchmarks/results/cooldown_equivalence_cpu.json

Trains one small IsoFLOP grid (tiny Shakespeare, character-level; 2-layer models of width
16-32; two budgets, so that sizes recur at two horizons) three times in this process:
`scaling.method='independent'` (each point a run of its own, cosine-decayed over its length),
`'cooldown'` (a constant-learning-rate run per size, and per point a linear cooldown over its
last `cooldown_fraction` of steps, branched from it), and independent runs with that WSD
schedule (`independent_wsd`: the cooldown's schedule without the branching; each run's warmup
is its own 5%, a branch's that of its size's shortest horizon). Prints per point the eval
losses and the cooldown's differences to both, their mean and largest magnitude, and each
sweep's training FLOPs and wall time; writes them as JSON to `--out`.
"""

import json
import os
import statistics
import subprocess
import tempfile
import time

from absl import app, flags, logging

from experiments.configs import base
from lm import logs
from lm.scaling import grid, sweep

_WORKDIR = flags.DEFINE_string(
  "workdir",
  None,
  "Folder for both sweeps (default: a new temporary one); a sweep found there is resumed.",
)
_OUT = flags.DEFINE_string("out", None, "Where to write the JSON result (default: only print).")
_FRACTION = flags.DEFINE_float("cooldown_fraction", 0.2, "The branches' cooldown fraction.")
_LR = flags.DEFINE_float("learning_rate", 3e-3, "The peak learning rate of every run.")

CORPUS = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "tiny_shakespeare.txt"
)
SWEEPS = {
  "independent": ("independent", "cosine"),
  "cooldown": ("cooldown", "cosine"),
  "independent_wsd": ("independent", "wsd"),
}  # name: (scaling.method, optim.schedule)


def grid_config(method: str, schedule: str, root: str):
  """The benchmark's grid under `method`, its independent runs with `schedule`."""
  c = base.get_config()
  c.data.path = CORPUS
  c.data.data_dir = os.path.join(root, "data")
  c.data.tokenizer = "char"
  c.data.seq_len = c.model.max_seq_len = 64
  c.data.batch_size = 16
  c.data.num_threads = 1
  c.model.dropout = 0.0
  c.optim.learning_rate = _LR.value
  c.optim.schedule = schedule  # the independent runs: decayed over their own length
  c.optim.wsd_decay_fraction = _FRACTION.value
  c.optim.final_lr_ratio = 0.1
  c.train.log_every = 50
  c.train.eval_batches = 20  # the same 20 x 16 windows of the validation split for all
  c.train.checkpoint_every = 10_000
  c.train.async_checkpoints = False
  s = c.scaling
  s.budgets = (1e10, 3e10)
  s.sizes_per_budget = 3
  s.size_ratio = 4.0
  s.tokens_per_param = 20.0
  s.flops_convention = "6N+attn"
  s.rule = "fixed_depth"
  s.fixed_num_layers = 2
  s.width_step = 8
  s.ladder_size = 8
  s.warmup_fraction = 0.05
  s.min_steps = 50
  s.method = method
  s.cooldown_fraction = _FRACTION.value
  return c


def _point(row) -> str:
  """The grid point a row stands for: its name without a branch's suffix."""
  return row["name"].removesuffix("_cooldown")


def main(argv):
  del argv
  logs.quiet_libraries()
  root = _WORKDIR.value or tempfile.mkdtemp(prefix="cooldown-equivalence-")
  tables, flops, wall = {}, {}, {}
  for name, (method, schedule) in SWEEPS.items():
    workdir = os.path.join(root, name)
    t0 = time.perf_counter()
    rows = sweep.run_sweep(
      grid_config(method, schedule, root), workdir, cache_dir=os.path.join(root, "jax_cache")
    )
    wall[name] = time.perf_counter() - t0
    tables[name] = {_point(r): r for r in rows}
    flops[name] = grid.load_plan(os.path.join(workdir, grid.PLAN_FILE))["training_flops"]
  points = []
  for name, ind in tables["independent"].items():
    cd, wsd = tables["cooldown"][name], tables["independent_wsd"][name]
    points.append(
      {
        "name": name,
        "budget": ind["budget"],
        "d_model": ind["d_model"],
        "params_non_embedding": ind["params_non_embedding"],
        "steps": ind["steps"],
        "cooldown_steps": cd["steps"] - cd["branch_step"],
        "eval_loss_independent": ind["eval_loss"],
        "eval_loss_cooldown": cd["eval_loss"],
        "eval_loss_independent_wsd": wsd["eval_loss"],
        "difference": cd["eval_loss"] - ind["eval_loss"],
        "difference_to_wsd": cd["eval_loss"] - wsd["eval_loss"],
      }
    )
  diffs = [abs(p["difference"]) for p in points]
  to_wsd = [abs(p["difference_to_wsd"]) for p in points]
  convention = grid_config("independent", "cosine", root).scaling.flops_convention
  result = {
    "benchmark": "cooldown_equivalence",
    "date": time.strftime("%Y-%m-%d"),
    "commit": subprocess.run(
      ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip(),
    "cooldown_fraction": _FRACTION.value,
    "learning_rate": _LR.value,
    "flops_convention": convention,
    "points": points,
    "mean_abs_difference": statistics.mean(diffs),
    "max_abs_difference": max(diffs),
    "mean_difference": statistics.mean(p["difference"] for p in points),
    "mean_abs_difference_to_wsd": statistics.mean(to_wsd),
    "max_abs_difference_to_wsd": max(to_wsd),
    "training_flops": {m: flops[m]["this_sweep"] for m in SWEEPS},
    "flops_ratio": flops["cooldown"]["this_sweep"] / flops["independent"]["this_sweep"],
    "wall_s": wall,
  }
  print(
    f"{'point':<16} {'N':>7} {'steps':>5} {'cooldown':>8} {'independent':>11} "
    f"{'cooldown':>9} {'diff':>8} {'indep. wsd':>10} {'diff':>8}"
  )
  for p in points:
    print(
      f"{p['name']:<16} {p['params_non_embedding']:>7,} {p['steps']:>5} "
      f"{p['cooldown_steps']:>8} {p['eval_loss_independent']:>11.4f} "
      f"{p['eval_loss_cooldown']:>9.4f} {p['difference']:>+8.4f} "
      f"{p['eval_loss_independent_wsd']:>10.4f} {p['difference_to_wsd']:>+8.4f}"
    )
  print(
    f"|cooldown - independent|: mean {result['mean_abs_difference']:.4f}, largest "
    f"{result['max_abs_difference']:.4f} (signed mean {result['mean_difference']:+.4f}); "
    f"|cooldown - independent wsd|: mean {result['mean_abs_difference_to_wsd']:.4f}, "
    f"largest {result['max_abs_difference_to_wsd']:.4f}"
  )
  print(
    f"training FLOPs ({convention}): independent {flops['independent']['this_sweep']:.3g}, "
    f"cooldown {flops['cooldown']['this_sweep']:.3g} (ratio {result['flops_ratio']:.3f}); "
    f"wall {wall['independent']:.0f} s against {wall['cooldown']:.0f} s (independent wsd "
    f"{wall['independent_wsd']:.0f} s)"
  )
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(result, f, indent=1)
    logging.info("wrote %s", _OUT.value)


if __name__ == "__main__":
  app.run(main)
