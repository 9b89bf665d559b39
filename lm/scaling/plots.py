"""Scaling plots (matplotlib Agg, PNG) from the points and a `laws.fit_all` report.

Axes name the counting convention of N and C; log axes carry labels at decades only (at 1, 2
and 5 times a decade where they span less than two), and budgets are a colour bar.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors, ticker
from matplotlib.lines import Line2D

from lm.runs import metrics
from lm.scaling import laws, tables

matplotlib.use("Agg")  # files only, no display


@dataclasses.dataclass(frozen=True)
class Labels:
  """Axis labels for N and C, naming how they were counted."""

  n: str = "parameters N"
  c: str = "training FLOPs C"

  @classmethod
  def of_columns(cls, params_col: str, flops_col: str | None) -> Labels:
    """E.g. 'parameters N (non-embedding)' and 'training FLOPs C (6N+attn)' from the table's
    column names; without a FLOPs column C is 6ND."""
    kind = params_col.removeprefix("params_").replace("_", "-")
    return cls(
      n=f"parameters N ({kind})",
      c=f"training FLOPs C ({flops_col.removeprefix('flops_') if flops_col else '6ND'})",
    )


def _mark_verification(ax, x: float, y: float) -> None:
  """The verification run's point, as every plot marks it."""
  ax.scatter(
    [x], [y], marker="X", s=90, color="C3", edgecolor="k", zorder=3, label="verification run"
  )


def _plain(x: float, _=None) -> str:
  """To 2 significant digits: 1e+11 -> '1e11', 1.4e+11 -> '1.4e11', 2e+04 -> '2e4', 100 ->
  '100', 0.5 -> '0.5'."""
  if 0.01 <= x < 1000:
    return f"{float(f'{x:.2g}'):g}"
  mantissa, exponent = f"{x:.1e}".split("e")
  return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def log_axis(axis, values) -> None:
  """Log scale with labelled ticks at decades (at 1, 2, 5 x decades over a short span)."""
  values = np.asarray(values, float)
  values = values[values > 0]
  span = np.log10(values.max() / values.min()) if len(values) else 0.0
  subs = (1.0,) if span >= 2 else (1.0, 2.0, 5.0)
  axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
  axis.set_major_formatter(ticker.FuncFormatter(_plain))
  axis.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(2, 10))))
  axis.set_minor_formatter(ticker.NullFormatter())


def budget_colors(fig, ax, budgets, label: str):
  """A colour per budget (log scale) and the colour bar that reads them (a tick per budget)."""
  lo, hi = float(np.min(budgets)), float(np.max(budgets))
  norm = colors.LogNorm(lo / 1.5, hi * 1.5) if lo == hi else colors.LogNorm(lo, hi)
  mappable = plt.cm.ScalarMappable(norm=norm, cmap="viridis")
  bar = fig.colorbar(mappable, ax=ax, label=label)
  bar.set_ticks(np.unique(budgets), labels=[_plain(b) for b in np.unique(budgets)])
  bar.ax.yaxis.set_minor_locator(ticker.NullLocator())
  return mappable.to_rgba


def save(fig, path: str) -> str:
  """Writes `fig` to `path` and closes it; returns `path`."""
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def isoflop_curves(
  final: laws.Points,
  fit2: dict[str, Any],
  path: str,
  labels: Labels = Labels(),
  verification: dict[str, Any] | None = None,
) -> str:
  """Loss vs N per budget, with the fitted parabolas and their minima; a verification run
  (`lm.scaling.verify.compare`) where given: its loss and the prediction at its compute."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
  color = budget_colors(fig, ax, [r["budget"] for r in fit2["budgets"]], f"budget: {labels.c}")
  for row in fit2["budgets"]:
    g = final.take(final.budget == row["budget"])
    ax.scatter(g.n, g.loss, color=color(row["budget"]), s=18)
    x = np.linspace(np.log(g.n.min()), np.log(g.n.max()), 100)
    ax.plot(np.exp(x), np.polyval(row["n_parabola"], x), color=color(row["budget"]))
    ax.scatter(
      [row["n_opt"]],
      [row["loss_opt"]],
      color=color(row["budget"]),
      marker="*",
      s=120,
      edgecolor="k",
    )
  sizes = list(final.n)
  if verification:
    pred, run = verification["predicted"], verification["trained"]
    # N as this plot counts it: a law of every parameter's N_opt, scaled as the run's counts are
    scale = run["params"] / run["params_as_law_counts"]
    n_ci = pred["n_opt_ci"] and [scale * n for n in pred["n_opt_ci"]]
    _errorbar(
      ax,
      scale * pred["n_opt"],
      pred["loss"],
      n_ci,
      pred["loss_ci"],
      "D",
      f"predicted at C = {_plain(pred['flops'])} ({pred['law']})",
    )
    _mark_verification(ax, run["params"], run["eval_loss"])
    ax.legend(fontsize=8)
    sizes += [scale * pred["n_opt"], run["params"]]
  ax.set(
    xscale="log",
    xlabel=labels.n,
    ylabel="final loss",
    title="IsoFLOP curves (stars: fitted minima)",
  )
  log_axis(ax.xaxis, sizes)
  return save(fig, path)


def _errorbar(
  ax,
  x: float,
  y: float,
  x_ci: list[float] | None,
  y_ci: list[float] | None,
  marker: str,
  label: str,
) -> None:
  """A point with its 95% intervals (None: none) as error bars; a bootstrap interval can miss
  its point estimate, whose bar on that side is then empty."""

  def err(v: float, ci: list[float] | None):
    return None if ci is None else [[max(v - ci[0], 0.0)], [max(ci[1] - v, 0.0)]]

  ax.errorbar(
    [x], [y], err(y, y_ci), err(x, x_ci), fmt=marker, ms=9, capsize=3, mec="k", label=label
  )


def optimal_vs_compute(
  fit2: dict[str, Any],
  path: str,
  labels: Labels = Labels(),
  prediction: dict[str, Any] | None = None,
  verification: dict[str, Any] | None = None,
) -> str:
  """N_opt and D_opt vs C: the IsoFLOP minima, the power-law fit and its bootstrap band, a
  prediction (`selection.predict`) with its 95% intervals where given (its N_opt where its law
  counts N as the plot does), and a verification run (`lm.scaling.verify.compare`: the N and D
  it trained, and the prediction at its compute)."""
  c = np.array([r["c"] for r in fit2["budgets"]])
  marks = []  # (N_opt and D_opt with intervals, their C, marker, label)

  def mark(pred: dict[str, Any], label: str) -> tuple[dict[str, Any], float, str, str]:
    same_n = pred.get("params") != "total"
    shown = {k: v for k, v in pred.items() if same_n or not k.startswith("n_opt")}
    return shown, pred["flops"], "D", f"{label}, {pred['law']}"

  if prediction:
    marks.append(mark(prediction, "prediction"))
  span = [*c, *(m[1] for m in marks)]
  if verification:
    pred = verification["predicted"]
    if pred["flops"] != (prediction or {}).get("flops"):
      marks.append(mark(pred, "verification's prediction"))
    span += [pred["flops"], verification["trained"]["flops"]]
  grid = np.logspace(np.log10(min(span)) - 0.5, np.log10(max(span)) + 0.5, 50)
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
  for ax, key, exp_key, coef_key, label in (
    (axes[0], "n_opt", "a", "log_n_coef", f"optimal {labels.n}"),
    (axes[1], "d_opt", "b", "log_d_coef", "optimal tokens D"),
  ):
    ax.scatter(c, [r[key] for r in fit2["budgets"]], color="k", zorder=3)
    ax.plot(grid, np.exp(fit2[coef_key]) * grid ** fit2[exp_key], label=f"~ C^{fit2[exp_key]:.3f}")
    samples = fit2["ci"].get("samples", {})
    if samples.get(exp_key):
      # Refit lines are pinned at the geometric-mean budget, where the bootstrap varies least.
      c0 = np.exp(np.mean(np.log(c)))
      y0 = np.exp(fit2[coef_key]) * c0 ** fit2[exp_key]
      lines = np.array([y0 * (grid / c0) ** e for e in samples[exp_key]])
      lo, hi = np.percentile(lines, [2.5, 97.5], axis=0)
      ax.fill_between(grid, lo, hi, alpha=0.25, label="95% bootstrap band")
    for fit, at, marker, name in marks:
      if key in fit:
        _errorbar(ax, at, fit[key], None, fit[f"{key}_ci"], marker, name)
    if verification:
      run = verification["trained"]
      _mark_verification(ax, run["flops"], run["params" if key == "n_opt" else "tokens"])
    ax.set(xscale="log", yscale="log", xlabel=labels.c, ylabel=label)
    log_axis(ax.xaxis, grid)
    log_axis(ax.yaxis, [r[key] for r in fit2["budgets"]])
    ax.legend(fontsize=8)
  return save(fig, path)


def frontier(
  points: laws.Points, fit1: dict[str, Any], path: str, labels: Labels = Labels()
) -> str:
  """Loss vs compute of every run (curves where given) and the lower envelope."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
  color = budget_colors(fig, ax, points.budget, f"budget: {labels.c}")
  for run in np.unique(points.run):
    g = points.take(points.run == run)
    ax.plot(g.c, g.loss, color=color(g.budget[0]), lw=0.8, alpha=0.8)
  env = fit1["envelope"]
  ax.plot(env["c"], env["loss"], "o-", color="C3", ms=3, label="envelope (Approach 1)")
  ax.set(xscale="log", xlabel=labels.c, ylabel="training loss", title="Loss vs compute")
  log_axis(ax.xaxis, points.c)
  ax.legend(fontsize=8)
  return save(fig, path)


def residuals(
  final: laws.Points, fit3: dict[str, Any], path: str, labels: Labels = Labels()
) -> str:
  """Approach 3: log-loss residuals vs N and vs D."""
  r = np.log(final.loss) - np.log(laws.predict(fit3, final.n, final.d))
  fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
  color = budget_colors(fig, list(axes), final.budget, f"budget: {labels.c}")
  for ax, x, label in ((axes[0], final.n, labels.n), (axes[1], final.d, "tokens D")):
    ax.scatter(x, r, color=[color(b) for b in final.budget], s=18)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel=label, ylabel="log L - log L_fit")
    log_axis(ax.xaxis, x)
  fig.suptitle(
    f"L(N,D) = {fit3['E']:.3g} + {fit3['A']:.3g}/N^{fit3['alpha']:.3f} + "
    f"{fit3['B']:.3g}/D^{fit3['beta']:.3f}"
  )
  return save(fig, path)


def backtest(report: dict[str, Any], path: str, labels: Labels = Labels()) -> str:
  """Per law (lm/scaling/backtest.py), the measured optimal loss of each budget (Approach 2's
  minima; a budget it left out, its best run) and what the law fitted on the smaller budgets
  predicted for the larger ones, a line per origin; the prediction at --predict_flops where the
  report has one, on its law's panel."""
  bt, prediction = report["backtest"], report.get("prediction")
  names = list(bt["laws"])
  fig, axes = plt.subplots(
    1, len(names), figsize=(3.6 * len(names), 3.8), layout="constrained", sharex=True, sharey=True
  )
  axes = np.atleast_1d(axes)
  origins = sorted({p["origin"] for p in bt["pairs"]})
  cmap = plt.get_cmap("viridis")
  # per budget (c, optimal loss): Approach 2's minima, and where the backtest measured a budget
  # (on its trim of the table), the backtest's
  by_budget = {
    r["budget"]: (r["c"], r["loss_opt"]) for r in report.get("approach2", {}).get("budgets", [])
  }
  by_budget |= {p["budget"]: (p["c"], p["loss_measured"]) for p in bt["pairs"]}
  measured = dict(by_budget.values())
  span = [*measured, *([prediction["flops"]] if prediction else [])]
  for ax, law in zip(axes, names):
    own = [p for p in bt["pairs"] if p["law"] == law]
    for i, k in enumerate(origins):
      line = sorted((p["c"], p["loss"]) for p in own if p["origin"] == k)
      if line:
        x, y = zip(*line)
        color = cmap(i / max(len(origins) - 1, 1))
        ax.plot(x, y, "o--", ms=3, color=color, label=f"fitted on {k} budgets")
    ax.scatter(list(measured), list(measured.values()), color="k", zorder=3, label="measured")
    if prediction and prediction["law"] == law:
      ci = prediction["loss_ci"]
      _errorbar(ax, prediction["flops"], prediction["loss"], None, ci, "D", "prediction")
    summary = bt["laws"][law]["all"]
    ax.set(
      xscale="log",
      xlabel=labels.c,
      title=f"{law}: |e| {summary['loss_mean_abs']:.2%}, signed {summary['loss_mean_signed']:+.2%}",
    )
    ax.title.set_fontsize(9)
  log_axis(axes[0].xaxis, span)
  axes[0].set_ylabel("optimal loss")
  axes[0].legend(fontsize=7)
  return save(fig, path)


def all_plots(
  final: laws.Points,
  curves: laws.Points | None,
  report: dict[str, Any],
  plots_dir: str,
  labels: Labels = Labels(),
) -> tuple[list[str], dict[str, str]]:
  """Writes every plot the report supports into `plots_dir`; returns their paths, and for each
  plot not written, its path and why."""
  os.makedirs(plots_dir, exist_ok=True)
  out = os.path.join
  paths, not_written = [], {}
  fit1, fit2, fit3 = (report.get(f"approach{k}", {"error": "not run"}) for k in (1, 2, 3))
  iso_png, optimal_png = out(plots_dir, "isoflop.png"), out(plots_dir, "optimal_vs_compute.png")
  if "error" in fit2:
    for path in (iso_png, optimal_png):
      not_written[path] = fit2["error"]
  else:
    paths.append(isoflop_curves(final, fit2, iso_png, labels, report.get("verification")))
    paths.append(
      optimal_vs_compute(
        fit2, optimal_png, labels, report.get("prediction"), report.get("verification")
      )
    )
  frontier_png = out(plots_dir, "frontier.png")
  if "error" in fit1:
    not_written[frontier_png] = fit1["error"]
  else:
    paths.append(frontier(curves if curves is not None else final, fit1, frontier_png, labels))
  residuals_png = out(plots_dir, "residuals.png")
  if "error" in fit3:
    not_written[residuals_png] = fit3["error"]
  elif laws.degenerate(fit3):
    not_written[residuals_png] = f"Approach 3 is degenerate ({'; '.join(laws.degenerate(fit3))})"
  else:
    paths.append(residuals(final, fit3, residuals_png, labels))
  bt = report.get("backtest")
  if bt is None:
    not_written[out(plots_dir, "backtest.png")] = "the report has no backtest"
  elif "error" in bt:
    not_written[out(plots_dir, "backtest.png")] = f"no backtest: {bt['error']}"
  elif not bt["pairs"]:
    not_written[out(plots_dir, "backtest.png")] = "the backtest forecast no budget"
  else:
    paths.append(backtest(report, out(plots_dir, "backtest.png"), labels))
  return paths, not_written


def cooldown_lines(
  branches: list[dict[str, Any]], results_dir: str
) -> list[tuple[dict[str, Any], str, list[float], list[float]]]:
  """What `cooldown_curves` draws per branch row: its stable run's training loss against tokens
  (once per stable run), then its own from its branch point, as (row, 'stable' or 'branch',
  tokens, losses); from each run's workdir or a published table's `curves/<name>.jsonl`
  (`tables.curve_path`). A run whose curve is at hand nowhere is left out."""
  out = []
  drawn = set()
  for r in sorted(branches, key=lambda r: float(r["tokens"])):
    per_step = float(r["tokens"]) / float(r["steps"])
    stable = {"workdir": r["branch_of"], "name": r["branch_of"]}
    runs = [] if r["branch_of"] in drawn else [("stable", stable, 0)]
    drawn.add(r["branch_of"])
    runs.append(("branch", r, int(r["branch_step"])))
    for kind, row, from_step in runs:
      logged = [
        (m["step"] * per_step, m["loss"])
        for m in metrics.read_metrics_file(tables.curve_path(results_dir, row))
        if "loss" in m and m["step"] >= from_step
      ]
      if logged:
        tokens, losses = zip(*logged)
        out.append((r, kind, list(tokens), list(losses)))
  return out


def cooldown_curves(rows: list[dict[str, Any]], results_dir: str, path: str) -> str | None:
  """A cooldown sweep's runs (`scaling.method='cooldown'`): per size, its stable run's training
  loss against tokens and each branch's from its branch point (`cooldown_lines`), a dot at each
  branch's final eval loss; None without branches."""
  branches = [r for r in rows if r.get("branch_of")]
  if not branches:
    return None
  fig, ax = plt.subplots(figsize=(7, 4.5))
  sizes = sorted({float(r["params_non_embedding"]) for r in branches})
  norm = colors.LogNorm(min(sizes) / 1.5, max(sizes) * 1.5)

  def color(r):
    return plt.cm.viridis(norm(float(r["params_non_embedding"])))

  for r, kind, tokens, losses in cooldown_lines(branches, results_dir):
    thin = kind == "stable"
    ax.plot(tokens, losses, color=color(r), lw=0.8 if thin else 1.5, alpha=0.5 if thin else 1.0)
  for r in branches:
    ax.scatter(
      [float(r["tokens"])],
      [float(r["eval_loss"])],
      color=color(r),
      s=18,
      zorder=3,
      edgecolor="k",
      linewidth=0.5,
    )
  bar = fig.colorbar(
    plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label="parameters N (non-embedding)"
  )
  bar.ax.yaxis.set_minor_locator(ticker.NullLocator())
  ax.set(
    xscale="log",
    xlabel="tokens D",
    ylabel="loss",
    title="stable runs (thin), cooldown branches (thick), eval loss (dots)",
  )
  log_axis(ax.xaxis, [float(r["tokens"]) for r in branches])
  return save(fig, path)


def lr_sweep(choices: dict[str, dict[str, Any]], path: str) -> str:
  """A sweep's learning-rate trials (`lr_choice.json`): eval loss against learning rate, one
  line per size, a star at each size's choice (hollow where it is at an end of the grid)."""
  fig, ax = plt.subplots(figsize=(6, 4))
  shades = plt.cm.viridis(np.linspace(0, 0.9, len(choices)))
  for shade, (size, c) in zip(shades, choices.items()):
    ax.plot(c["learning_rates"], c["eval_losses"], "o-", color=shade, ms=3, label=size)
    ax.scatter(
      [c["learning_rate"]],
      [min(c["eval_losses"])],
      marker="*",
      s=160,
      zorder=3,
      color="none" if c["at_edge"] else shade,
      edgecolor=shade if c["at_edge"] else "k",
    )
  ax.set(
    xscale="log",
    xlabel="peak learning rate",
    ylabel="eval loss (shortest horizon)",
    title="learning rate per size (hollow star: best at the grid's edge)",
  )
  ax.legend(fontsize=7)
  return save(fig, path)


def coord_check(results: dict[str, dict[int, list[dict[str, float]]]], path: str) -> str:
  """Mean |activation| vs width after the last step, one panel per parametrization
  (`coord_check.coordinate_check`'s results by parametrization); dotted: at init."""
  fig, axes = plt.subplots(
    1, len(results), figsize=(5 * len(results), 4), sharey=True, squeeze=False
  )
  for ax, (name, by_width) in zip(axes[0], results.items()):
    widths = sorted(by_width)
    layers = list(by_width[widths[0]][-1])
    for color, layer in zip(plt.cm.tab10(np.arange(len(layers)) % 10), layers):
      ax.plot(widths, [by_width[w][-1][layer] for w in widths], "o-", color=color, label=layer)
      ax.plot(widths, [by_width[w][0][layer] for w in widths], ":", color=color)
    steps = len(by_width[widths[0]]) - 1
    ax.set(
      xscale="log",
      yscale="log",
      xlabel="width (d_model)",
      ylabel="mean |x|",
      title=f"{name}: after {steps} Adam steps",
    )
    ax.set_xticks(widths, [str(w) for w in widths])
  handles, _ = axes[0][-1].get_legend_handles_labels()
  styles = [
    Line2D([], [], color="gray", marker="o", label="solid: after the last step"),
    Line2D([], [], color="gray", linestyle=":", label="dotted: at init"),
  ]
  axes[0][-1].legend(handles=[*handles, *styles], fontsize=7)
  return save(fig, path)


def lr_transfer(
  rows: list[dict[str, Any]], best: dict[str, dict[int, dict[str, Any]]], path: str
) -> str:
  """Final loss vs learning rate, one line per width, one panel per parametrization; stars
  at each width's best."""
  fig, axes = plt.subplots(1, len(best), figsize=(5 * len(best), 4), sharey=True, squeeze=False)
  for ax, (name, by_width) in zip(axes[0], best.items()):
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(by_width)))
    for color, (width, b) in zip(colors, by_width.items()):
      runs = sorted(
        (r["learning_rate"], r["eval_loss"])
        for r in rows
        if r["parametrization"] == name and r["width"] == width and r["eval_loss"] is not None
      )
      ax.plot(*zip(*runs), "o-", color=color, ms=3, label=f"width {width}")
      ax.scatter([b["lr"]], [b["loss"]], color=color, marker="*", s=140, edgecolor="k", zorder=3)
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="validation loss", title=name)
    ax.legend(fontsize=8)
  return save(fig, path)
