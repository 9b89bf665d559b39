"""μP's base-width tuning for a scaling study: the learning rate and output multiplier (alpha)
that every size of a `scaling.mup_base_width` sweep then trains with.

    python -m benchmarks.mup_base_tuning \
        [--config=experiments/configs/scaling_cpu_mup.py] [--steps=759] \
        [--pairs=4.3e-3:1,4.3e-3:4,8.7e-3:4,2.2e-3:4,4.3e-3:16,8.7e-3:1,...] \
        [--out=benchmarks/results/mup_base_tuning_cpu.json]

Each pair trains the family's member at the base width (the config's grid, corpus, batch and
μP rules) for `--steps` (scaling_cpu_mup.py's width 32 trains branches of 116 to 2074 steps), as
a warmup-stable-decay run decaying over its last `scaling.cooldown_fraction` of steps: what a
cooldown branch at that horizon trains. Runs go to
`--workdir`; rows are written after each run and a rerun with the same settings skips the pairs
it has. The table lists every pair's eval loss and the best, which the config's
LEARNING_RATE and OUTPUT_MULTIPLIER should hold.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from typing import Any

from absl import app, flags, logging
from ml_collections import config_flags

from benchmarks.provenance import git_commit
from lm import logs
from lm.scaling import grid, sweep
from lm.training import loop

_CONFIG = config_flags.DEFINE_config_file(
  "config", "experiments/configs/scaling_cpu_mup.py", "A scaling config with mup_base_width."
)
_STEPS = flags.DEFINE_integer("steps", 759, "The tuning runs' horizon.")
_PAIRS = flags.DEFINE_list(
  "pairs",
  [f"{lr}:{a}" for lr in ("2.2e-3", "4.3e-3", "8.7e-3") for a in ("1", "4", "16")],
  "learning_rate:output_multiplier pairs to train.",
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/mup_base_tuning", "Where the runs train.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/mup_base_tuning_cpu.json", "JSON table.")


def tuning_config(config, learning_rate: float, alpha: float):
  """`config` as one tuning run's sweep config: a WSD run at `learning_rate` and `alpha`."""
  c = config.copy_and_resolve_references()
  c.optim.learning_rate = learning_rate
  c.model.mup_output_multiplier = alpha
  c.optim.schedule = "wsd"
  c.optim.wsd_decay_fraction = c.scaling.cooldown_fraction
  c.scaling.method = "independent"
  return c


def train_pair(config, steps: int, learning_rate: float, alpha: float) -> dict[str, Any]:
  """Trains the base width at (`learning_rate`, `alpha`) for `steps`; returns its row."""
  c = tuning_config(config, learning_rate, alpha)
  base = c.scaling.mup_base_width
  model = next(m for m in grid.ladder(c, sweep.vocab_size(c)) if m.d_model == base)
  plan = dataclasses.replace(
    grid.plan_point(c, c.scaling.budgets[0], model),
    steps=steps,
    warmup_steps=round(c.scaling.warmup_fraction * steps),
  )
  workdir = os.path.join(_WORKDIR.value, f"d{base}_s{steps}_lr{learning_rate:g}_a{alpha:g}")
  t0 = time.perf_counter()
  summary = loop.train_and_evaluate(grid.run_config(c, plan), workdir)
  return {
    "width": base,
    "steps": steps,
    "learning_rate": learning_rate,
    "output_multiplier": alpha,
    "eval_loss": summary["eval_loss"],
    "wall_s": round(time.perf_counter() - t0, 1),
  }


def main(argv):
  del argv
  logs.quiet_libraries()
  config = _CONFIG.value
  if not config.scaling.mup_base_width:
    raise app.UsageError("--config needs scaling.mup_base_width > 0")
  rows = []
  if os.path.exists(_OUT.value):
    with open(_OUT.value) as f:
      rows = json.load(f)["rows"]
  done = {(r["steps"], r["learning_rate"], r["output_multiplier"]) for r in rows}
  for pair in _PAIRS.value:
    lr, alpha = (float(x) for x in pair.split(":"))
    if (_STEPS.value, lr, alpha) not in done:
      rows.append(train_pair(config, _STEPS.value, lr, alpha))
      logging.info("%s", json.dumps(rows[-1]))
      _write(rows)
  ours = [r for r in rows if r["steps"] == _STEPS.value]
  print(f"{'learning rate':>14} {'alpha':>6} {'eval loss':>10}")
  for r in sorted(ours, key=lambda r: (r["output_multiplier"], r["learning_rate"])):
    print(f"{r['learning_rate']:>14.3g} {r['output_multiplier']:>6g} {r['eval_loss']:>10.4f}")
  best = min(ours, key=lambda r: r["eval_loss"])
  print(f"best: learning rate {best['learning_rate']:g}, alpha {best['output_multiplier']:g}")


def _write(rows: list[dict[str, Any]]) -> None:
  result = {
    "device": "CPU",
    "date": datetime.date.today().isoformat(),
    "commit": git_commit(),
    "rows": rows,
  }
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(result, f, indent=2)


if __name__ == "__main__":
  app.run(main)
