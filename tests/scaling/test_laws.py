"""Fitters on synthetic data from a known L(N, D) = E + A/N^alpha + B/D^beta with noise."""

import numpy as np
import pytest

from lm.scaling import laws

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al.
TRUE_A = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])  # N_opt ~ C^a
BUDGETS = (1e17, 1e18, 1e19, 1e20, 1e21)


def synthetic(noise: float = 0.005, sizes: int = 7, seed: int = 0) -> laws.Points:
  """IsoFLOP grids: per budget, sizes log-spaced around the optimum; log-normal loss noise."""
  rng = np.random.default_rng(seed)
  rows = []
  for c in BUDGETS:
    for n in np.sqrt(c / 120) * np.logspace(-0.8, 0.8, sizes):
      d = c / (6 * n)
      loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
      rows.append((len(rows), n, d, c, loss * np.exp(rng.normal(0, noise)), c))
  return laws.Points(*map(np.array, zip(*rows)))


def test_approach3_recovers_the_law():
  fit = laws.approach3(synthetic())
  # 0.5% noise: exponents within 0.02, E within 3%, a within 0.01.
  assert abs(fit["alpha"] - TRUE["alpha"]) < 0.02
  assert abs(fit["beta"] - TRUE["beta"]) < 0.02
  assert abs(fit["E"] - TRUE["E"]) / TRUE["E"] < 0.03
  assert abs(fit["a"] - TRUE_A) < 0.01


def test_approach3_noise_free_is_exact():
  fit = laws.approach3(synthetic(noise=0.0))
  for key in ("E", "alpha", "beta"):
    assert fit[key] == pytest.approx(TRUE[key], rel=1e-2)


def test_approach2_leaves_out_a_budget_whose_grid_misses_the_optimum():
  p = synthetic(noise=0.0)
  first = p.budget == BUDGETS[0]
  p.n[first] *= 30.0  # every size of the first budget far above its optimum: loss rises with N
  p.d[first] /= 30.0
  p.loss[first] = (TRUE["E"] + TRUE["A"] / p.n[first] ** TRUE["alpha"]
                   + TRUE["B"] / p.d[first] ** TRUE["beta"])
  fit = laws.approach2(p)
  assert [s["budget"] for s in fit["skipped"]] == [BUDGETS[0]]
  assert len(fit["budgets"]) == len(BUDGETS) - 1
  assert abs(fit["a"] - TRUE_A) < 0.02


def test_approach2_recovers_a_and_b():
  fit = laws.approach2(synthetic())
  assert abs(fit["a"] - TRUE_A) < 0.02
  assert abs(fit["b"] - (1 - TRUE_A)) < 0.02
  assert len(fit["budgets"]) == len(BUDGETS)


def test_approach1_envelope_tracks_the_optimum():
  fit = laws.approach1(synthetic(sizes=15), num_bins=5)
  assert abs(fit["a"] - TRUE_A) < 0.06  # limited by the grid's spacing of sizes


def test_bootstrap_intervals_cover_the_truth():
  p = synthetic(noise=0.01)
  full = laws.approach3(p)
  refit = lambda q: laws.approach3(q, 0, (np.array(full["theta"]),))  # noqa: E731
  ci = laws.bootstrap(p, refit, ("alpha", "beta", "a"), num_samples=40)
  assert ci["num_ok"] == 40
  for key, truth in (("alpha", TRUE["alpha"]), ("beta", TRUE["beta"]), ("a", TRUE_A)):
    lo, hi = ci[key]
    assert lo <= truth <= hi, (key, lo, hi)
  ci2 = laws.bootstrap(p, laws.approach2, ("a",), num_samples=40)
  assert ci2["a"][0] <= TRUE_A <= ci2["a"][1]


def test_external_table_with_named_columns():
  p = synthetic()
  rows = [{"N": n, "C": c, "L": l} for n, c, l in zip(p.n, p.c, p.loss)]
  q = laws.table_points(rows, "N", "L", flops_col="C")
  np.testing.assert_allclose(q.d, p.d)
  np.testing.assert_allclose(q.budget, p.budget)  # grouped by log10 C
  assert abs(laws.approach2(q)["a"] - TRUE_A) < 0.02
