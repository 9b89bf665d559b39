"""Laws that forecast the compute-optimal loss, size and tokens beyond a table's budgets.

- `chinchilla`: Approach 3's L(N, D) = E + A/N^alpha + B/D^beta (`laws.approach3`) with N as
  the plan counts it (non-embedding by default), at its optimum along the table's compute.
- `chinchilla_total`: the same law with N counting every parameter, embeddings and head
  included (Pearce & Song 2024: at small widths a non-embedding count biases the fit).
- `frontier`: L_opt(C) = E + k (C / C_ref)^-gamma fitted on the IsoFLOP minima (Approach 2's
  parabolas), as DeepSeek LLM (2024) forecast its loss; N_opt and D_opt from Approach 2's
  power laws.
- `power`: L_opt(C) = k (C / C_ref)^-gamma on the minima, with no floor: the optimistic bracket.

A `Forecast` holds a fitted law as JSON numbers (`fit`), so that a report's laws are rebuilt
from fit.json (`from_fit`). lm/scaling/backtest.py ranks the laws by how well they predicted
the table's own larger budgets.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import optimize

from lm.scaling import laws

LAWS = ("chinchilla", "chinchilla_total", "frontier", "power")
MIN_MINIMA = {"frontier": 3, "power": 2}  # IsoFLOP minima each loss-frontier law needs
GAMMAS = np.linspace(0.005, 1.5, 300)  # the frontier's exponent is searched on this grid first


@dataclasses.dataclass(frozen=True)
class Table:
  """A table's final points and, per point where the table has them, N counting every
  parameter (`n_total`, for `chinchilla_total`)."""

  final: laws.Points
  n_total: np.ndarray | None = None

  @property
  def run(self) -> np.ndarray:
    return self.final.run

  @property
  def budget(self) -> np.ndarray:
    return self.final.budget

  def take(self, mask_or_index) -> Table:
    total = None if self.n_total is None else self.n_total[mask_or_index]
    return Table(self.final.take(mask_or_index), total)

  def total(self) -> laws.Points:
    """The points with N counting every parameter; ValueError without them."""
    if self.n_total is None:
      raise ValueError("the table has no count of every parameter (column params_total)")
    return dataclasses.replace(self.final, n=self.n_total)

  def budget_compute(self) -> dict[float, float]:
    """Each budget's mean compute (C as the table counts it)."""
    return {
      float(b): float(np.mean(self.final.c[self.budget == b])) for b in np.unique(self.budget)
    }


@dataclasses.dataclass(frozen=True)
class Forecast:
  """A fitted law (`fit`: its numbers as JSON) and what it says of the optimum at compute c."""

  law: str
  fit: dict[str, Any]

  @property
  def parametric(self) -> bool:
    """Whether the law is L(N, D) (it gives a loss at any N and D, not only the optimum's)."""
    return self.law.startswith("chinchilla")

  def n_opt(self, c: float) -> float:
    """The optimal N at c, counted as the law counts it (`params`)."""
    if self.parametric:
      return laws.optimum3(self.fit, c)[0]
    return float(np.exp(self.fit["log_n_coef"] + self.fit["a"] * np.log(c)))

  def d_opt(self, c: float) -> float:
    if self.parametric:
      return laws.optimum3(self.fit, c)[1]
    return float(np.exp(self.fit["log_d_coef"] + self.fit["b"] * np.log(c)))

  def loss(self, c: float) -> float:
    """The optimal loss at compute c."""
    if self.parametric:
      n, d = laws.optimum3(self.fit, c)
      return float(laws.predict(self.fit, n, d))
    return float(self.fit["E"] + self.fit["k"] * (c / self.fit["c_ref"]) ** -self.fit["gamma"])

  def loss_of_run(self, n: float, d: float, c: float) -> float:
    """The law's loss for a run of N (counted as `params`), D and C: L(N, D) for a parametric
    law, else the optimal loss at C (a loss-frontier law knows nothing else)."""
    return float(laws.predict(self.fit, n, d)) if self.parametric else self.loss(c)

  @property
  def params(self) -> str:
    """How the law counts N: 'total' (every parameter) or 'plan' (as the table's N column)."""
    return "total" if self.law == "chinchilla_total" else "plan"


def from_fit(law: str, fit: dict[str, Any]) -> Forecast:
  """The forecast of a law's numbers as `fit_law` stored them (e.g. read from fit.json)."""
  if law not in LAWS:
    raise ValueError(f"unknown law {law!r}; known: {', '.join(LAWS)}")
  return Forecast(law, fit)


def _loss_frontier(c: np.ndarray, loss: np.ndarray, floor: bool) -> dict[str, float]:
  """E + k (c / c_ref)^-gamma through (c, loss) by least squares of the relative residuals;
  E = 0 without a `floor` (then a straight line in log-log). E and k are non-negative: for each
  gamma of `GAMMAS` they are a non-negative least-squares solution, and the best gamma is
  refined by a bounded scalar search."""
  c_ref = float(np.exp(np.mean(np.log(c))))
  x = c / c_ref
  if not floor:
    slope, coef = np.polyfit(np.log(x), np.log(loss), 1)
    return {"E": 0.0, "k": float(np.exp(coef)), "gamma": float(-slope), "c_ref": c_ref}

  def solve(gamma: float) -> tuple[np.ndarray, float]:
    cols = np.stack([np.ones_like(x), x**-gamma], 1) / loss[:, None]
    return optimize.nnls(cols, np.ones_like(loss))

  start = int(np.argmin([solve(g)[1] for g in GAMMAS]))
  lo, hi = GAMMAS[max(start - 1, 0)], GAMMAS[min(start + 1, len(GAMMAS) - 1)]
  best = optimize.minimize_scalar(lambda g: solve(g)[1], bounds=(lo, hi), method="bounded")
  gamma = float(best.x) if best.fun <= solve(GAMMAS[start])[1] else float(GAMMAS[start])
  (e, k), _ = solve(gamma)
  return {"E": float(e), "k": float(k), "gamma": gamma, "c_ref": c_ref}


def fit_law(law: str, table: Table, start: Forecast | None = None) -> Forecast:
  """`law` fitted on `table`. `start`: the same law fitted on more data, whose parameters start
  a refit (a bootstrap's) in place of a grid search. Raises ValueError where the table cannot
  fit it (too few points or minima, no `params_total`)."""
  if law in ("chinchilla", "chinchilla_total"):
    points = table.final if law == "chinchilla" else table.total()
    if start is None:
      return Forecast(law, laws.approach3(points))
    fit = laws.approach3(points, 0, (np.array(start.fit["theta"]),), start.fit["cost"])
    return Forecast(law, fit)
  if law not in MIN_MINIMA:
    raise ValueError(f"unknown law {law!r}; known: {', '.join(LAWS)}")
  fit2 = laws.approach2(table.final)
  minima = fit2["budgets"]
  if len(minima) < MIN_MINIMA[law]:
    raise ValueError(
      f"{law} needs >= {MIN_MINIMA[law]} IsoFLOP minima; the table has {len(minima)}"
    )
  c = np.array([m["c"] for m in minima])
  loss = np.array([m["loss_opt"] for m in minima])
  n_law = {k: float(fit2[k]) for k in ("a", "b", "log_n_coef", "log_d_coef")}
  return Forecast(law, {**_loss_frontier(c, loss, floor=law == "frontier"), **n_law})


def describe(forecast: Forecast) -> str:
  """The fitted law as a formula."""
  f = forecast.fit
  if forecast.parametric:
    n = "N_total" if forecast.params == "total" else "N"
    return f"L = {f['E']:.4g} + {f['A']:.4g}/{n}^{f['alpha']:.3f} + {f['B']:.4g}/D^{f['beta']:.3f}"
  floor = f"{f['E']:.4g} + " if forecast.law == "frontier" else ""
  return f"L_opt = {floor}{f['k']:.4g} (C/{f['c_ref']:.3g})^-{f['gamma']:.4f}"
