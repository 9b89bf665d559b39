"""Learning-rate transfer across width: the same learning-rate sweep at several widths, under
the standard parametrization and under μP (lm/model/mup.py), on character-level tiny
Shakespeare, on CPU.

    python -m benchmarks.lr_transfer [--widths=32,64,128,256] [--steps=200] [--batch_size=8] \
        [--mup_output_multiplier=1] [--out=benchmarks/results/lr_transfer_cpu.json] \
        [--plot=benchmarks/results/lr_transfer.png]

Every run has the same depth, heads (so head_dim grows with width), data order, steps and
tokens; only the width, the parametrization and the peak learning rate change (AdamW, warmup
then cosine, base.py's other optimizer defaults). μP's base width is the smallest width, where
the two parametrizations are the same model unless `--mup_output_multiplier` (μP's alpha, tuned
at the base width) is other than 1. The final loss is over the first `--eval_tokens`
tokens of the validation split. The table gives, per parametrization and width, the best
learning rate of the grid and how many grid steps it sits from the base width's best. Rows are
written after every run and an interrupted sweep with the same settings resumes.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import time

import jax
import numpy as np
from absl import app, flags, logging

from benchmarks.provenance import git_commit
from experiments.configs import base
from lm import logs
from lm.data.tokenizer import CharTokenizer
from lm.infer.evaluation import loss_batches
from lm.model.config import TransformerConfig
from lm.scaling import coord_check, plots
from lm.training.step import eval_sums, make_eval_step

_WIDTHS = flags.DEFINE_list("widths", ["32", "64", "128", "256"], "d_model values.")
_LRS = flags.DEFINE_list(
  "learning_rates",
  [str(2.0**e) for e in range(-11, -3)],
  "Peak learning rates (a factor of 2 apart).",
)
_PARAMETRIZATIONS = flags.DEFINE_list("parametrizations", ["standard", "mup"], "")
_ALPHA = flags.DEFINE_float(
  "mup_output_multiplier", 1.0, "μP's logits multiplier at the base width (model config's)."
)
_LAYERS = flags.DEFINE_integer("num_layers", 2, "Depth, the same at every width.")
_HEADS = flags.DEFINE_integer("num_heads", 4, "Heads, the same at every width.")
_STEPS = flags.DEFINE_integer("steps", 200, "Training steps.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Sequences per step.")
_SEQ = flags.DEFINE_integer("seq_len", 64, "Tokens per sequence.")
_EVAL_TOKENS = flags.DEFINE_integer("eval_tokens", 32768, "Validation tokens scored.")
_CORPUS = flags.DEFINE_string(
  "corpus", "data/tiny_shakespeare.txt", "Text; the last 10% is the validation split."
)
_OUT = flags.DEFINE_string("out", "benchmarks/results/lr_transfer_cpu.json", "JSON table.")
_PLOT = flags.DEFINE_string("plot", "benchmarks/results/lr_transfer.png", "PNG plot.")


def _settings() -> dict:
  return {
    "widths": [int(w) for w in _WIDTHS.value],
    "learning_rates": [float(x) for x in _LRS.value],
    "parametrizations": _PARAMETRIZATIONS.value,
    "mup_output_multiplier": _ALPHA.value,
    "num_layers": _LAYERS.value,
    "num_heads": _HEADS.value,
    "steps": _STEPS.value,
    "batch_size": _BATCH.value,
    "seq_len": _SEQ.value,
    "eval_tokens": _EVAL_TOKENS.value,
    "corpus": _CORPUS.value,
  }


def _rows_so_far(settings: dict) -> list[dict]:
  """The rows of an earlier sweep with these settings; of one that differs only in μP's output
  multiplier, its standard parametrization's rows."""
  if not os.path.exists(_OUT.value):
    return []
  with open(_OUT.value) as f:
    old = json.load(f)
  old_settings = {"mup_output_multiplier": 1.0, **old.get("settings", {})}
  if old_settings == settings:
    return old["rows"]
  if {**old_settings, "mup_output_multiplier": settings["mup_output_multiplier"]} == settings:
    return [r for r in old["rows"] if r["parametrization"] == "standard"]
  return []


def best_steps(rows: list[dict], learning_rates: list[float]) -> dict[str, dict[int, dict]]:
  """{parametrization: {width: {'lr', 'loss', 'shift'}}}: each width's best learning rate and
  its distance in grid steps from the smallest width's best (diverged runs never win)."""
  table: dict[str, dict[int, dict]] = {}
  for p in dict.fromkeys(r["parametrization"] for r in rows):
    by_width: dict[int, dict] = {}
    for width in sorted({r["width"] for r in rows if r["parametrization"] == p}):
      runs = [r for r in rows if r["parametrization"] == p and r["width"] == width]
      best = min(runs, key=lambda r: math.inf if r["eval_loss"] is None else r["eval_loss"])
      by_width[width] = {"lr": best["learning_rate"], "loss": best["eval_loss"]}
    first = learning_rates.index(by_width[min(by_width)]["lr"])
    for entry in by_width.values():
      entry["shift"] = learning_rates.index(entry["lr"]) - first
    table[p] = by_width
  return table


def main(argv):
  del argv
  logs.quiet_libraries()
  settings = _settings()
  widths, lrs = settings["widths"], settings["learning_rates"]
  with open(_CORPUS.value, encoding="utf-8") as f:
    text = f.read()
  tokenizer = CharTokenizer.train([text])
  tokens = np.asarray(tokenizer.encode(text), np.int32)
  split = int(len(tokens) * 0.9)
  train_tokens, eval_tokens = tokens[:split], tokens[split : split + _EVAL_TOKENS.value]
  rng = np.random.default_rng(0)  # one data order for every run
  starts = rng.integers(0, len(train_tokens) - _SEQ.value - 1, (_STEPS.value, _BATCH.value))
  batches = [
    {"tokens": np.stack([train_tokens[s : s + _SEQ.value + 1] for s in row])} for row in starts
  ]
  family = TransformerConfig(
    vocab_size=-(-tokenizer.vocab_size // 64) * 64,
    num_layers=_LAYERS.value,
    num_heads=_HEADS.value,
    d_model=widths[0],
    mlp_dim=4 * widths[0],
    max_seq_len=_SEQ.value,
    position="rotary",
    base_width=widths[0],
    base_head_dim=widths[0] // _HEADS.value,
    mup_output_multiplier=_ALPHA.value,
  )
  rows = _rows_so_far(settings)
  done = {(r["parametrization"], r["width"], r["learning_rate"]): r for r in rows}
  for p in settings["parametrizations"]:
    for width in widths:
      cfg = coord_check.at_width(dataclasses.replace(family, parametrization=p), width)
      eval_step = None  # one compiled evaluation per model shape
      for lr in lrs:
        if (p, width, lr) in done:
          continue
        at_base = p == "mup" and width == widths[0] and _ALPHA.value == 1.0
        if at_base and ("standard", width, lr) in done:
          # At its base width μP is the standard model, bit for bit (tests/model/test_mup.py).
          rows.append({**done[("standard", width, lr)], "parametrization": p, "wall_s": 0.0})
          continue
        optim_cfg = base.get_config().optim
        optim_cfg.update(learning_rate=lr, warmup_steps=_STEPS.value // 10)
        start = time.perf_counter()
        graphdef, params, losses = coord_check.train(cfg, optim_cfg, batches, _STEPS.value)
        eval_step = eval_step or jax.jit(make_eval_step(graphdef))
        sums = eval_sums(eval_step, params, loss_batches(eval_tokens, _SEQ.value, 64))
        loss = sums["loss"] / sums["weight"]
        rows.append(
          {
            "parametrization": p,
            "width": width,
            "learning_rate": lr,
            "eval_loss": loss if math.isfinite(loss) else None,
            "train_loss": float(np.mean(losses[-20:])),
            "wall_s": round(time.perf_counter() - start, 1),
          }
        )
        done[(p, width, lr)] = rows[-1]
        logging.info("%s", rows[-1])
        _write(settings, rows)
  table = best_steps(rows, lrs)
  _write(settings, rows, table)
  print(f"{'parametrization':<16} {'width':>6} {'best lr':>10} {'loss':>7} {'grid steps':>10}")
  for p, by_width in table.items():
    for width, e in by_width.items():
      print(f"{p:<16} {width:>6} {e['lr']:>10.3g} {e['loss']:>7.4f} {e['shift']:>+10d}")
  plots.lr_transfer(rows, table, _PLOT.value)
  print(f"wrote {_OUT.value} and {_PLOT.value}")


def _write(settings: dict, rows: list[dict], table: dict | None = None) -> None:
  result = {
    "time": datetime.datetime.now().isoformat(timespec="seconds"),
    "commit": git_commit(),
    "device": "cpu",
    "cpus": len(os.sched_getaffinity(0)),
    "settings": settings,
    "rows": rows,
  }
  if table is not None:
    result["best"] = {p: {str(w): e for w, e in t.items()} for p, t in table.items()}
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(result, f, indent=2)


if __name__ == "__main__":
  app.run(main)
