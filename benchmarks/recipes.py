"""Named training recipes side by side: eval loss, steady tokens/s and wall time, one run each.

    python -m benchmarks.recipes [--configs=shakespeare_char,llama_style] [--steps=2000] \
        [--out=benchmarks/results/recipes_cpu.json]
    python -m benchmarks.recipes --out=benchmarks/results/optimizers_cpu.json --configs=\
llama_style,llama_style+optim.name=muon+optim.learning_rate=0.02+optim.adam_learning_rate=0.001

A recipe is a config name (experiments/configs/<name>.py), optionally followed by
`+section.field=value` overrides. Each trains from scratch in a fresh workdir under
`--workdir`, in this process, one after the other; the table gives the final eval loss over the
whole validation split, the parameter count, the median tokens/s of the logged intervals (eval
intervals excluded), and the wall time of the run. Ratios are meaningful within one invocation
only: the machine's speed drifts between days.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import statistics
import tempfile

from absl import app, flags, logging

from benchmarks.provenance import git_commit
from lm import logs
from lm.model import counts
from lm.model.config import TransformerConfig
from lm.runs import metrics
from lm.training import loop

_CONFIGS = flags.DEFINE_list(
  "configs",
  ["shakespeare_char", "llama_style"],
  "Recipes: config names, each with optional +section.field=value.",
)
_STEPS = flags.DEFINE_integer("steps", None, "Override config.train.steps.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the runs go (default: a temp folder).")
_OUT = flags.DEFINE_string("out", "benchmarks/results/recipes_cpu.json", "JSON results.")


def _config(recipe: str, steps: int | None):
  name, *overrides = recipe.split("+")
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  if steps:
    config.train.steps = steps
  for item in overrides:
    field, value = item.split("=", 1)
    section, key = field.split(".")
    current = config[section][key]
    config[section][key] = (
      type(current)(value) if not isinstance(current, bool) else (value.lower() == "true")
    )
  return config


def _steady_tokens_per_s(workdir: str, eval_every: int, log_every: int) -> float:
  """Median tokens/s of the logged intervals that contain no evaluation."""
  rows = metrics.read_metrics(workdir)
  speeds = [
    r["tokens_per_s"]
    for r in rows
    if "tokens_per_s" in r
    and (r["step"] - 1) // eval_every == (r["step"] - log_every) // eval_every
  ]
  return statistics.median(speeds)


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  logs.quiet_libraries()
  root = _WORKDIR.value or tempfile.mkdtemp(prefix="recipes-")
  rows = []
  for i, recipe in enumerate(_CONFIGS.value):
    config = _config(recipe, _STEPS.value)
    workdir = os.path.join(root, f"{i}_{recipe.split('+')[0]}")
    if os.path.exists(workdir):
      raise SystemExit(f"{workdir} exists; every recipe trains from scratch: pass a new --workdir")
    summary = loop.train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, "model.json")) as f:
      model_cfg = TransformerConfig(**json.load(f))
    rows.append(
      {
        "recipe": recipe,
        "steps": summary["step"],
        "params": counts.param_counts(model_cfg)["total"],
        "eval_loss": summary["eval_loss"],
        "train_loss": summary["train_loss"],
        "tokens_per_s": _steady_tokens_per_s(
          workdir, config.train.eval_every, config.train.log_every
        ),
        "wall_s": summary["wall_s"],
      }
    )
  print(f"{'recipe':<40} {'params':>9} {'eval loss':>9} {'tokens/s':>9} {'wall s':>7}")
  for r in rows:
    print(
      f"{r['recipe'][:40]:<40} {r['params']:>9,} {r['eval_loss']:>9.4f} "
      f"{r['tokens_per_s']:>9,.0f} {r['wall_s']:>7.1f}"
    )
  result = {
    "time": datetime.datetime.now().isoformat(timespec="seconds"),
    "commit": git_commit(),
    "device": "cpu",
    "cpus": len(os.sched_getaffinity(0)),
    "rows": rows,
  }
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(result, f, indent=2)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
