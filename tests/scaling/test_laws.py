"""Fitters on synthetic data from a known L(N, D) = E + A/N^alpha + B/D^beta with noise."""

import numpy as np
import pytest

from lm.scaling import backtest, diagnostics, forecasts, laws, tables

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al.
TRUE_LAW = laws.law(TRUE["E"], TRUE["A"], TRUE["B"], TRUE["alpha"], TRUE["beta"])
TRUE_A = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])  # N_opt ~ C^a
BUDGETS = (1e17, 1e18, 1e19, 1e20, 1e21)


def synthetic(
  noise: float = 0.005, sizes: int = 7, seed: int = 0, cost: dict[str, float] = laws.SIX_ND
) -> laws.Points:
  """IsoFLOP grids: per budget, sizes log-spaced around the optimum, each trained on the tokens
  that spend the budget as `cost` counts compute; log-normal loss noise."""
  rng = np.random.default_rng(seed)
  rows = []
  for c in BUDGETS:
    for n in np.sqrt(c / 120) * np.logspace(-0.8, 0.8, sizes):
      d = c / (cost["coef"] * n ** (1 + cost["exponent"]))
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
  p.loss[first] = (
    TRUE["E"] + TRUE["A"] / p.n[first] ** TRUE["alpha"] + TRUE["B"] / p.d[first] ** TRUE["beta"]
  )
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

  def refit(q):
    return laws.approach3(q, 0, (np.array(full["theta"]),))

  ci = laws.bootstrap(p, refit, ("alpha", "beta", "a"), num_samples=40)
  assert ci["num_ok"] == 40
  for key, truth in (("alpha", TRUE["alpha"]), ("beta", TRUE["beta"]), ("a", TRUE_A)):
    lo, hi = ci[key]
    assert lo <= truth <= hi, (key, lo, hi)
  ci2 = laws.bootstrap(p, laws.approach2, ("a",), num_samples=40)
  assert ci2["a"][0] <= TRUE_A <= ci2["a"][1]


def test_external_table_with_named_columns():
  p = synthetic()
  rows = [{"N": n, "C": c, "L": loss} for n, c, loss in zip(p.n, p.c, p.loss)]
  q = tables.table_points(rows, "N", "L", flops_col="C")
  np.testing.assert_allclose(q.d, p.d)
  np.testing.assert_allclose(q.budget, p.budget)  # grouped by log10 C
  assert abs(laws.approach2(q)["a"] - TRUE_A) < 0.02


def _with_budget(p: laws.Points, budget: float, loss) -> laws.Points:
  """`p` with the losses of one budget replaced by `loss(n)`."""
  p.loss[p.budget == budget] = loss(p.n[p.budget == budget])
  return p


def test_approach2_names_a_non_convex_budget_and_fits_the_others():
  p = synthetic(noise=0.0)
  mid = np.sqrt(BUDGETS[2] / 120)
  p = _with_budget(p, BUDGETS[2], lambda n: 3.0 - 0.1 * np.log(n / mid) ** 2)
  fit = laws.approach2(p)
  assert [(s["budget"], s["reason"]) for s in fit["skipped"]] == [
    (BUDGETS[2], "the parabola is not convex")
  ]
  assert len(fit["budgets"]) == len(BUDGETS) - 1
  assert abs(fit["a"] - TRUE_A) < 0.02
  ci = laws.bootstrap(p, laws.approach2, ("a",), num_samples=10)  # still refits
  assert ci["num_ok"] >= 8 and ci["a"][0] <= TRUE_A + 0.02 and ci["a"][1] >= TRUE_A - 0.02


def test_approach2_names_a_budget_with_two_sizes():
  p = synthetic(noise=0.0)
  n = np.unique(p.n[p.budget == BUDGETS[1]])
  p = p.take((p.budget != BUDGETS[1]) | (p.n <= n[1]))
  fit = laws.approach2(p)
  assert [(s["budget"], s["reason"]) for s in fit["skipped"]] == [
    (BUDGETS[1], "2 distinct sizes (needs >= 3)")
  ]
  assert len(fit["budgets"]) == len(BUDGETS) - 1


def test_approach2_names_a_budget_whose_lowest_loss_is_at_the_edge():
  p = synthetic(noise=0.0)
  last = p.budget == BUDGETS[-1]
  p.n[last] *= 10**0.6  # the optimum now lies between the two smallest sizes
  p.d[last] /= 10**0.6
  p = _with_budget(
    p,
    BUDGETS[-1],
    lambda n: (
      TRUE["E"]
      + TRUE["A"] / n ** TRUE["alpha"]
      + TRUE["B"] / (BUDGETS[-1] / (6 * n)) ** TRUE["beta"]
    ),
  )
  (skipped,) = laws.approach2(p)["skipped"]
  assert skipped["budget"] == BUDGETS[-1]
  assert skipped["reason"].startswith("the lowest loss is at the smallest size sampled")
  assert skipped["sampled_n"][0] <= skipped["n_opt_extrapolated"]  # the parabola hid it


def test_approach2_fails_with_fewer_than_two_budgets_left():
  with pytest.raises(ValueError, match=r"1e\+17: 2 distinct sizes"):
    laws.approach2(synthetic(sizes=2))


def test_approach3_by_variable_projection():
  exact = laws.approach3_vp(synthetic(noise=0.0))
  for key in ("E", "alpha", "beta"):
    assert exact[key] == pytest.approx(TRUE[key], rel=1e-3)
  p = synthetic()
  assert abs(laws.approach3_vp(p)["a"] - laws.approach3(p)["a"]) < diagnostics.VP_TOL


def test_approach3_optimum_follows_the_tables_compute_count():
  """Where the table's C counts attention too (C = coef N^s D, s < 1), Approach 3's optimum
  minimises its law along that C: a and b agree with Approach 2's, which are fitted on the same
  C, and N_opt is the law's own minimum there; Chinchilla's 6 N D formula would be off."""
  cost = {"coef": 3000.0, "exponent": -0.3}  # 6 N D at N = 1e9
  p = synthetic(noise=0.0, cost=cost)
  assert laws.compute_cost(p) == pytest.approx(cost, rel=1e-9)
  fit3, fit2 = laws.approach3(p), laws.approach2(p)
  six_nd_a = fit3["beta"] / (fit3["alpha"] + fit3["beta"])
  assert abs(fit3["a"] - fit2["a"]) < 0.01 and abs(fit3["b"] - fit2["b"]) < 0.01
  assert abs(six_nd_a - fit2["a"]) > 0.05
  c = 1e22
  n = np.geomspace(1e8, 1e13, 200001)
  loss = laws.predict(TRUE_LAW, n, c / (cost["coef"] * n ** (1 + cost["exponent"])))
  n_opt, d_opt = laws.optimum3(fit3, c)
  assert n_opt == pytest.approx(n[np.argmin(loss)], rel=0.01)
  assert cost["coef"] * n_opt ** (1 + cost["exponent"]) * d_opt == pytest.approx(c)


def _true_optimum(c: float) -> tuple[float, float, float]:
  n, d = laws.optimum3(TRUE_LAW, c)
  return n, d, float(laws.predict(TRUE_LAW, n, d))


def test_the_chinchilla_forecast_finds_the_true_optimum():
  pred = backtest.forecast(forecasts.Table(synthetic(noise=0.0)), "chinchilla", 1e22, num_boot=4)
  for key, truth in zip(("n_opt", "d_opt", "loss"), _true_optimum(1e22)):
    assert pred[key] == pytest.approx(truth, rel=0.02), key
    lo, hi = pred[f"{key}_ci"]
    assert lo * 0.999 <= pred[key] <= hi * 1.001
