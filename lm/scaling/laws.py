"""Scaling-law fits (Hoffmann et al. 2022) with bootstrap confidence intervals.

Approach 1: the envelope of loss-vs-compute points; the run that is best at each compute
  bin gives N_opt(C) and D_opt(C).
Approach 2: per IsoFLOP budget, parabolas of loss in log N and in log D; their minima.
Approach 3: L(N, D) = E + A / N^alpha + B / D^beta, fitted as log L = LSE(a - alpha log N,
  b - beta log D, e) with a Huber loss (delta 1e-3) by L-BFGS from the best points of a grid;
  its optimum minimises L along the table's own compute (`compute_cost`: 6 N D, or attention
  counted too), so its a and b compare with Approaches 1 and 2, fitted on that compute.
Each gives a (N_opt ~ C^a), b (D_opt ~ C^b) and tokens per parameter at a reference compute.
Intervals: percentiles over refits on runs resampled with replacement (within each budget).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import optimize

HUBER_DELTA = 1e-3
REPORT_FILE = "fit.json"  # experiments.fit_scaling's report, beside the results by default
LOG_FLOAT_MAX = float(np.log(np.finfo(float).max))  # exp of more overflows
# Approach 3's law is degenerate (`degenerate`) with an exponent outside (0, MAX_EXPONENT] or a
# coefficient outside (0, MAX_COEFFICIENT]: published fits have exponents of 0.07-0.7 and A, B
# in the hundreds; a law so far off fits noise, not scaling.
MAX_EXPONENT = 5.0
MAX_COEFFICIENT = 1e30


@dataclasses.dataclass
class Points:
  """Training outcomes: per point its run, params N, tokens D, compute C, loss, budget."""

  run: np.ndarray
  n: np.ndarray
  d: np.ndarray
  c: np.ndarray
  loss: np.ndarray
  budget: np.ndarray

  def take(self, mask_or_index) -> Points:
    return Points(*(getattr(self, f.name)[mask_or_index] for f in dataclasses.fields(self)))


def power_law(c: np.ndarray, y: np.ndarray) -> tuple[float, float]:
  """(exponent, log-coefficient) of y = exp(coef) * c^exponent by least squares in log-log."""
  slope, coef = np.polyfit(np.log(c), np.log(y), 1)
  return float(slope), float(coef)


def _budgets(p: Points) -> str:
  """How many budgets `p` has, and which (a reason in an error)."""
  budgets = np.unique(p.budget)
  return f"{len(budgets)} ({', '.join(f'{b:.3g}' for b in budgets)})"


def approach1(p: Points, num_bins: int = 20) -> dict[str, Any]:
  """Envelope of loss vs compute: in each log-compute bin, the N and D of the lowest loss.

  Raises ValueError with fewer than 2 budgets: one budget's compute spans too little for
  power laws in C.
  """
  if len(np.unique(p.budget)) < 2:
    raise ValueError(f"Approach 1 needs >= 2 budgets; the table has {_budgets(p)}")
  edges = np.linspace(np.log(p.c.min()), np.log(p.c.max()), num_bins + 1)
  which = np.clip(np.digitize(np.log(p.c), edges) - 1, 0, num_bins - 1)
  best = [
    np.flatnonzero(which == i)[np.argmin(p.loss[which == i])]
    for i in range(num_bins)
    if np.any(which == i)
  ]
  env = p.take(np.array(best))
  a, a0 = power_law(env.c, env.n)
  b, b0 = power_law(env.c, env.d)
  return {
    "a": a,
    "b": b,
    "log_n_coef": a0,
    "log_d_coef": b0,
    "envelope": {
      "c": env.c.tolist(),
      "n": env.n.tolist(),
      "d": env.d.tolist(),
      "loss": env.loss.tolist(),
    },
  }


def _parabola_min(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
  coef = np.polyfit(x, y, 2)
  if coef[0] <= 0:
    raise ValueError("the parabola is not convex")
  return float(-coef[1] / (2 * coef[0])), coef


def _isoflop_minimum(g: Points) -> dict[str, Any]:
  """One budget's parabola minima, or `reason` why it has none to trust."""
  sizes = np.unique(g.n)
  out: dict[str, Any] = {
    "budget": float(g.budget[0]),
    "sampled_n": [float(sizes[0]), float(sizes[-1])],
  }
  if len(sizes) < 3:
    return {**out, "reason": f"{len(sizes)} distinct sizes (needs >= 3)"}
  try:
    log_n, n_coef = _parabola_min(np.log(g.n), g.loss)
    log_d, d_coef = _parabola_min(np.log(g.d), g.loss)
  except ValueError as e:
    return {**out, "reason": str(e)}
  if not sizes[0] <= np.exp(log_n) <= sizes[-1]:
    return {
      **out,
      "reason": "the minimum is outside the sampled sizes",
      "n_opt_extrapolated": float(np.exp(log_n)),
    }
  best = g.n[np.argmin(g.loss)]
  if best in (sizes[0], sizes[-1]):
    end = "smallest" if best == sizes[0] else "largest"
    return {
      **out,
      "reason": f"the lowest loss is at the {end} size sampled: the sizes do not "
      "bracket the optimum",
      "n_opt_extrapolated": float(np.exp(log_n)),
    }
  return {
    **out,
    "c": float(np.mean(g.c)),
    "n_opt": float(np.exp(log_n)),
    "d_opt": float(np.exp(log_d)),
    "loss_opt": float(np.polyval(n_coef, log_n)),
    "n_parabola": n_coef.tolist(),
    "d_parabola": d_coef.tolist(),
  }


def approach2(p: Points) -> dict[str, Any]:
  """IsoFLOP parabolas: per budget, the loss-minimising N and D; power laws in C through them.

  A budget is left out, and listed under `skipped` with its `reason`, where it has fewer than
  3 distinct sizes, its parabola is not convex, or its minimum is not bracketed by the sizes
  it sampled (outside them, or the lowest loss at the smallest or largest size). Raises
  ValueError where fewer than 2 budgets remain.
  """
  minima = [_isoflop_minimum(p.take(p.budget == b)) for b in np.unique(p.budget)]
  rows = [m for m in minima if "reason" not in m]
  skipped = [m for m in minima if "reason" in m]
  if len(rows) < 2:
    raise ValueError(
      "Approach 2 needs >= 2 budgets with a bracketed, convex minimum over >= 3 sizes; "
      f"the table has {_budgets(p)}"
      + "".join(f"; left out {s['budget']:.3g}: {s['reason']}" for s in skipped)
    )
  c = np.array([r["c"] for r in rows])
  a, a0 = power_law(c, np.array([r["n_opt"] for r in rows]))
  b, b0 = power_law(c, np.array([r["d_opt"] for r in rows]))
  return {"a": a, "b": b, "log_n_coef": a0, "log_d_coef": b0, "budgets": rows, "skipped": skipped}


def _lse_objective(theta: np.ndarray, log_n, log_d, log_loss):
  """Huber loss of the log-sum-exp model and its gradient; theta = (a, b, e, alpha, beta)."""
  a, b, e, alpha, beta = theta
  terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
  pred = np.logaddexp.reduce(terms, axis=0)  # scipy's logsumexp costs 40x as much here
  r = pred - log_loss
  small = np.abs(r) <= HUBER_DELTA
  value = np.sum(np.where(small, 0.5 * r**2, HUBER_DELTA * (np.abs(r) - 0.5 * HUBER_DELTA)))
  dr = np.where(small, r, HUBER_DELTA * np.sign(r))
  w = np.exp(terms - pred) * dr
  grad = np.array(
    [w[0].sum(), w[1].sum(), w[2].sum(), -(w[0] * log_n).sum(), -(w[1] * log_d).sum()]
  )
  return value, grad


def _grid_values(grid: np.ndarray, log_n, log_d, log_loss) -> np.ndarray:
  """The Huber objective at every row of `grid` at once."""
  a, b, e, alpha, beta = (grid[:, i : i + 1] for i in range(5))
  pred = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
  r = np.abs(pred - log_loss)
  return np.where(r <= HUBER_DELTA, 0.5 * r**2, HUBER_DELTA * (r - 0.5 * HUBER_DELTA)).sum(1)


GRID = {
  "a": np.arange(0.0, 30.0, 5.0),
  "b": np.arange(0.0, 30.0, 5.0),
  "e": np.arange(-1.0, 1.5, 0.5),
  "alpha": np.arange(0.0, 2.5, 0.5),
  "beta": np.arange(0.0, 2.5, 0.5),
}


MIN_POINTS3 = 6  # Approach 3's law has 5 parameters: fewer points than 6 leave nothing to fit


def _enough_for_a_law(p: Points) -> None:
  """Raises ValueError where `p` has fewer points than Approach 3's law needs."""
  if len(p.loss) < MIN_POINTS3:
    raise ValueError(
      f"Approach 3 needs >= {MIN_POINTS3} points for its 5 parameters; the table has {len(p.loss)}"
    )


def approach3(
  p: Points,
  num_starts: int = 8,
  extra_starts: tuple[np.ndarray, ...] = (),
  cost: dict[str, float] | None = None,
) -> dict[str, Any]:
  """Parametric L(N, D) by Huber/L-BFGS from the `num_starts` best points of `GRID`; its
  optimum under `cost` (default: `compute_cost(p)`). Raises ValueError with fewer than
  `MIN_POINTS3` points."""
  _enough_for_a_law(p)
  args = (np.log(p.n), np.log(p.d), np.log(p.loss))
  grid = np.array(list(itertools.product(*GRID.values())))
  starts = [*grid[np.argsort(_grid_values(grid, *args))[:num_starts]], *extra_starts]
  # The objective is tiny (Huber delta 1e-3), so the default absolute-ish tolerances stop early.
  best = min(
    (
      optimize.minimize(
        _lse_objective,
        s,
        args=args,
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000},
      )
      for s in starts
    ),
    key=lambda r: r.fun,
  )
  a, b, e, alpha, beta = best.x
  return {
    **law(_exp(e), _exp(a), _exp(b), alpha, beta, cost or compute_cost(p)),
    "theta": best.x.tolist(),
    "huber_loss": float(best.fun),
  }


def _exp(x: float) -> float:
  """exp(x), or inf where it is beyond the largest float (a degenerate fit's coefficient)."""
  return float(np.exp(x)) if x < LOG_FLOAT_MAX else np.inf


def degenerate(fit3: dict[str, Any]) -> list[str]:
  """Each parameter of an Approach 3 law (`law`) that makes it absurd, as `name = value` with
  why: not finite, an exponent outside (0, MAX_EXPONENT], A or B outside (0, MAX_COEFFICIENT].
  Empty for a sound law."""
  limits = {"A": MAX_COEFFICIENT, "B": MAX_COEFFICIENT, "alpha": MAX_EXPONENT, "beta": MAX_EXPONENT}
  out = [f"{key} = {fit3[key]}" for key in ("E", *limits) if not np.isfinite(fit3[key])]
  out += [
    f"{key} = {fit3[key]:.3g}, outside (0, {top:g}]"
    for key, top in limits.items()
    if np.isfinite(fit3[key]) and not 0 < fit3[key] <= top
  ]
  return out


SIX_ND = {"coef": 6.0, "exponent": 0.0}  # C = 6 N D


def compute_cost(p: Points) -> dict[str, float]:
  """How the table counts compute, as C = coef * N^(1 + exponent) * D: a power law of C/(N D)
  in N by least squares on its points. 6 N D gives coef 6, exponent 0; with attention counted
  (at fixed depth and context) the exponent is negative: attention's share of a token's compute
  falls as N grows (the CPU study's: 14.4 N D at 2.9k parameters, 7.5 N D at 286k)."""
  exponent, log_coef = power_law(p.n, p.c / (p.n * p.d))
  return {"coef": float(np.exp(log_coef)), "exponent": exponent}


def law(
  E: float, A: float, B: float, alpha: float, beta: float, cost: dict[str, float] = SIX_ND
) -> dict[str, Any]:
  """L(N, D) = E + A/N^alpha + B/D^beta and its compute-optimal allocation under C = coef
  N^s D (s = 1 + cost's exponent): L is least along it at N_opt = G (C/coef)^a with a = beta /
  (alpha + s beta), G = (alpha A / (s beta B))^(1 / (alpha + s beta)), and D_opt ~ C^b, b =
  1 - s a. Under C = 6 N D (s = 1) this is Hoffmann et al.'s eq. 4."""
  s = 1 + cost["exponent"]
  a = beta / (alpha + s * beta) if alpha > 0 and beta > 0 else np.nan  # else L has no optimum
  return {
    "E": float(E),
    "A": float(A),
    "B": float(B),
    "alpha": float(alpha),
    "beta": float(beta),
    "a": float(a),
    "b": float(1 - s * a),
    "G": _allocation_scale(E, A, B, alpha, beta, s),
    "cost": dict(cost),
  }


def _allocation_scale(E: float, A: float, B: float, alpha: float, beta: float, s: float) -> float:
  """`law`'s G: nan where the law has no optimum (an exponent not positive, a coefficient not
  finite), inf where B = 0 (a bound of the NNLS fit) or G is beyond the largest float."""
  if not (alpha > 0 and beta > 0 and np.isfinite([E, A, B]).all()):
    return np.nan
  with np.errstate(divide="ignore"):  # B = 0: G is infinite; A = 0: log 0 = -inf, G is 0
    base = alpha * A / np.float64(s * beta * B)
    log_g = np.log(base) / (alpha + s * beta)
  return float(base ** (1 / (alpha + s * beta))) if log_g < LOG_FLOAT_MAX else np.inf


VP_EXPONENTS = np.linspace(0.02, 1.5, 75)


def approach3_vp(p: Points, exponents: np.ndarray = VP_EXPONENTS) -> dict[str, Any]:
  """Approach 3 by variable projection: at each (alpha, beta) of a grid, E, A, B >= 0 by
  non-negative least squares of the relative residuals (L_fit - L) / L, which are linear in
  them; the best grid point refined by Nelder-Mead. A cross-check of `approach3` that needs
  no starting point and no Huber loss. Raises ValueError with fewer than `MIN_POINTS3` points."""
  _enough_for_a_law(p)

  def solve(exps: np.ndarray) -> tuple[np.ndarray, float]:
    cols = np.stack([np.ones_like(p.n), p.n ** -exps[0], p.d ** -exps[1]], 1) / p.loss[:, None]
    scale = np.linalg.norm(cols, axis=0)  # the columns differ by orders of magnitude
    coef, rnorm = optimize.nnls(cols / scale, np.ones(len(p.loss)))
    return coef / scale, rnorm

  grid = np.array(list(itertools.product(exponents, exponents)))
  start = grid[np.argmin([solve(x)[1] for x in grid])]
  best = optimize.minimize(
    lambda x: solve(x)[1],
    start,
    method="Nelder-Mead",
    bounds=[(exponents[0], exponents[-1])] * 2,
    options={"xatol": 1e-6, "fatol": 1e-14},
  )
  (e, big_a, big_b), rnorm = solve(best.x)
  alpha, beta = best.x
  return {
    **law(e, big_a, big_b, alpha, beta, compute_cost(p)),
    "rms_relative_residual": float(rnorm / np.sqrt(len(p.loss))),
  }


def predict(fit3: dict[str, Any], n: npt.ArrayLike, d: npt.ArrayLike) -> np.ndarray:
  """L(N, D) of an Approach 3 fit (inf, not an error, where a fit puts the optimum at D = 0;
  nan for a `degenerate` law)."""
  n, d = np.asarray(n, float), np.asarray(d, float)
  if degenerate(fit3):
    return np.full(np.broadcast(n, d).shape, np.nan)
  with np.errstate(divide="ignore"):
    return fit3["E"] + fit3["A"] / n ** fit3["alpha"] + fit3["B"] / d ** fit3["beta"]


def optimum3(fit3: dict[str, Any], c: float) -> tuple[float, float]:
  """(N_opt, D_opt) of an Approach 3 fit at compute c, counted as its `cost` says; nan for a
  `degenerate` law, or where N_opt is 0 or beyond the largest float."""
  cost = fit3["cost"]
  n = fit3["G"] * (c / cost["coef"]) ** fit3["a"]
  if degenerate(fit3) or not 0 < n < np.inf:
    return np.nan, np.nan
  return float(n), float(c / (cost["coef"] * n ** (1 + cost["exponent"])))


def tokens_per_param(fit: dict[str, Any], c: float) -> float:
  """D_opt / N_opt at compute c from an Approach 1 or 2 power-law fit."""
  log_n = fit["log_n_coef"] + fit["a"] * np.log(c)
  log_d = fit["log_d_coef"] + fit["b"] * np.log(c)
  return float(np.exp(log_d - log_n))


R = TypeVar("R", bound="Runs")


class Runs(Protocol):
  """Rows that belong to runs within budgets (`Points`, `forecasts.Table`)."""

  @property
  def run(self) -> np.ndarray: ...

  @property
  def budget(self) -> np.ndarray: ...

  def take(self: R, mask_or_index) -> R: ...


def bootstrap(
  p: R, fit: Callable[[R], dict[str, Any]], keys: tuple[str, ...], num_samples: int, seed: int = 0
) -> dict[str, Any]:
  """95% percentile intervals of `keys` of `fit` over runs resampled within each budget."""
  rng = np.random.default_rng(seed)
  runs_by_budget = [np.unique(p.run[p.budget == b]) for b in np.unique(p.budget)]
  samples = []
  for _ in range(num_samples):
    picked = [rng.choice(runs, size=len(runs)) for runs in runs_by_budget]
    index = np.concatenate([np.flatnonzero(p.run == r) for r in np.concatenate(picked)])
    try:
      result = fit(p.take(index))
    except (ValueError, np.linalg.LinAlgError):
      continue  # a resample that cannot be fitted (e.g. too few distinct sizes)
    values = [result[k] for k in keys]
    if np.isfinite(values).all():  # else a degenerate refit: counted as not refitted
      samples.append(values)
  refits = np.array(samples)
  if len(refits) == 0:
    return {"num_ok": 0, "num_tried": num_samples}
  lo, hi = np.percentile(refits, [2.5, 97.5], axis=0)
  return {
    "num_ok": len(refits),
    "num_tried": num_samples,
    **{k: [float(low), float(high)] for k, low, high in zip(keys, lo, hi)},
    "samples": {k: refits[:, i].tolist() for i, k in enumerate(keys)},
  }


def fit_all(
  final: Points,
  curves: Points | None = None,
  ref_flops: float | None = None,
  num_boot: int = 200,
  seed: int = 0,
) -> dict[str, Any]:
  """Approaches 1-3 with bootstrap intervals and tokens per parameter at `ref_flops`; an
  approach that cannot be fitted has its reason under `error`.

  Raises ValueError where a final point's N, D, C or loss is not positive and finite
  (`tables.usable_rows` leaves such rows out of a table).
  """
  values = np.stack([final.n, final.d, final.c, final.loss])
  unusable = ~np.all(np.isfinite(values) & (values > 0), axis=0)
  if unusable.any():
    raise ValueError(
      f"{unusable.sum()} of {len(final.loss)} points have an N, D, C or loss that is not "
      "positive and finite"
    )
  ref = float(ref_flops or final.c.max())
  report: dict[str, Any] = {"ref_flops": ref, "num_runs": len(np.unique(final.run))}
  env_points = curves if curves is not None else final

  def one(q: Points) -> dict[str, Any]:
    r = approach1(q)
    return {**r, "tokens_per_param": tokens_per_param(r, ref)}

  def two(q: Points) -> dict[str, Any]:
    r = approach2(q)
    return {**r, "tokens_per_param": tokens_per_param(r, ref)}

  full3: dict[str, Any]
  try:
    full3 = approach3(final)
  except ValueError as e:
    full3 = {"error": str(e)}

  def three(q: Points, starts: int = 0) -> dict[str, Any]:
    if "error" in full3:
      raise ValueError(full3["error"])
    r = approach3(q, starts, (np.array(full3["theta"]),), full3["cost"])
    n, d = optimum3(r, ref)
    return {**r, "tokens_per_param": d / n}

  for name, fit, keys, points in (
    ("approach1", one, ("a", "b", "tokens_per_param"), env_points),
    ("approach2", two, ("a", "b", "tokens_per_param", "log_n_coef", "log_d_coef"), final),
    ("approach3", three, ("E", "A", "B", "alpha", "beta", "a", "b", "tokens_per_param"), final),
  ):
    try:
      estimate = fit(points)
    except ValueError as e:
      report[name] = {"error": str(e)}
      continue
    report[name] = {**estimate, "ci": bootstrap(points, fit, keys, num_boot, seed)}
  return report
