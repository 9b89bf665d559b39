"""Train and eval loss curves of several runs on one PNG (matplotlib Agg), against steps,
tokens or training FLOPs (lm/model/counts.py's `exact` convention, as MFU uses)."""

from __future__ import annotations

import dataclasses

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from lm.model import counts
from lm.runs import metrics, run_files

matplotlib.use("Agg")  # files only, no display

X_AXES = {"step": "step", "tokens": "tokens", "flops": "training FLOPs"}


@dataclasses.dataclass
class Curve:
  name: str
  train_x: np.ndarray
  train_loss: np.ndarray
  eval_x: np.ndarray
  eval_loss: np.ndarray


def x_per_step(workdir: str, x: str) -> float:
  """What one step of the run in `workdir` adds to the x axis `x` (a key of X_AXES)."""
  if x not in X_AXES:
    raise ValueError(f"--x={x!r}; valid: {', '.join(X_AXES)}")
  if x == "step":
    return 1.0
  seq_len = run_files.read_config_field(workdir, "data.seq_len", int)
  # The global batch: every process's and microbatch's rows.
  tokens = run_files.read_config_field(workdir, "data.batch_size", int) * seq_len
  if x == "tokens":
    return float(tokens)
  try:
    model_cfg = run_files.read_model_config(workdir)
  except (TypeError, ValueError) as e:
    raise run_files.UnreadableRun(f"model.json is not a model's architecture ({e})") from None
  return float(tokens * counts.training_flops_per_token(model_cfg, seq_len))


def read_curve(workdir: str, name: str, x: str = "step") -> Curve:
  """The run's logged train losses and evaluations from its metrics.jsonl (UnreadableRun if a
  file it needs holds what no run writes)."""
  scale = x_per_step(workdir, x)
  rows = metrics.read_checked_metrics(workdir)

  def series(key: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.array([(r["step"], r[key]) for r in rows if key in r], float).reshape(-1, 2)
    return pairs[:, 0] * scale, pairs[:, 1]

  return Curve(name, *series("loss"), *series("eval_loss"))


def plot(curves: list[Curve], x: str, path: str, log: bool = False) -> str:
  """One axes: each run in its own colour, train loss a line, eval loss dashed with markers."""
  fig, ax = plt.subplots(figsize=(8, 5))
  colors = plt.cm.tab10(np.arange(len(curves)) % 10)
  for color, c in zip(colors, curves):
    if len(c.train_x):
      ax.plot(c.train_x, c.train_loss, color=color, linewidth=1, alpha=0.8, label=f"{c.name} train")
    if len(c.eval_x):
      ax.plot(
        c.eval_x,
        c.eval_loss,
        color=color,
        linestyle="--",
        marker="o",
        markersize=4,
        label=f"{c.name} eval",
      )
  ax.set(xlabel=X_AXES[x], ylabel="loss")
  if log:
    ax.set(xscale="log", yscale="log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
