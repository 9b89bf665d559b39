"""Train and eval loss curves of several runs on one PNG (matplotlib Agg), against steps,
tokens or training FLOPs (lm/model/counts.py's `exact` convention, as MFU uses)."""

from __future__ import annotations

import dataclasses

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from lm.model import counts
from lm.runs import listing, metrics, run_files

matplotlib.use("Agg")  # files only, no display

X_AXES = {"step": "step", "tokens": "tokens", "flops": "training FLOPs"}


# Runs whose curves coincide (a stopped and a killed run of one config) stay apart: each run
# has its own line style and marker, its markers start at its own offset along the curve, and
# its end is labelled with its name and status, each label a line below the one before.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")
MARKS_PER_CURVE = 8


@dataclasses.dataclass
class Curve:
  name: str
  train_x: np.ndarray
  train_loss: np.ndarray
  eval_x: np.ndarray
  eval_loss: np.ndarray
  status: str = ""  # listing.summarise's: finished, preempted, killed, ...


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

  status = listing.summarise(workdir, name).status
  return Curve(name, *series("loss"), *series("eval_loss"), status=status)


def _draw_one(ax, c: Curve, i: int, color) -> None:
  """Run `i`'s train line (its own style, markers from its own offset), its eval points (its
  marker, hollow) and its end labelled with its name and status, `i` lines down."""
  style, marker = LINE_STYLES[i % len(LINE_STYLES)], MARKERS[i % len(MARKERS)]
  label = f"{c.name} ({c.status})" if c.status else c.name
  if len(c.train_x):
    every = max(len(c.train_x) // MARKS_PER_CURVE, 1)
    ax.plot(
      c.train_x,
      c.train_loss,
      color=color,
      linestyle=style,
      marker=marker,
      markevery=(i % every, every),
      markersize=4,
      linewidth=1.2,
      alpha=0.8,
      label=f"{label} train",
    )
  if len(c.eval_x):
    ax.plot(
      c.eval_x,
      c.eval_loss,
      color=color,
      linestyle="none",
      marker=marker,
      markerfacecolor="none",
      markersize=7,
      label=f"{label} eval",
    )
  xs, ys = (c.train_x, c.train_loss) if len(c.train_x) else (c.eval_x, c.eval_loss)
  if len(xs):
    ax.annotate(
      label,
      (xs[-1], ys[-1]),
      xytext=(4, -10 * i),
      textcoords="offset points",
      color=color,
      fontsize=7,
    )


def draw(curves: list[Curve], x: str, log: bool = False):
  """The figure of `plot`: one axes, each run in its own colour, line style and marker; train
  loss a line, eval loss hollow markers; each run's end labelled with its name and status."""
  fig, ax = plt.subplots(figsize=(8, 5))
  colors = plt.cm.tab10(np.arange(len(curves)) % 10)
  for i, (color, c) in enumerate(zip(colors, curves)):
    _draw_one(ax, c, i, color)
  ax.set(xlabel=X_AXES[x], ylabel="loss")
  if log:
    ax.set(xscale="log", yscale="log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return fig


def plot(curves: list[Curve], x: str, path: str, log: bool = False) -> str:
  """Writes `draw`'s figure of the curves to `path` (PNG); returns it."""
  fig = draw(curves, x, log)
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
