"""The warnings: of the backtest, on synthetic data from a known law, and of reports."""

import numpy as np

from lm.scaling import backtest, diagnostics, laws
from tests.scaling.test_backtest import BUDGETS, table


def test_no_backtest_warning_where_the_best_law_is_the_true_one():
  bt = backtest.backtest(table(noise=0.001))
  warned = diagnostics.warnings({"backtest": bt})
  assert not [w for w in warned if "best law" in w or "chinchilla " in w]


def test_backtest_warnings_where_the_largest_budgets_are_off_every_law():
  t = table(noise=0.001)
  late = t.final.budget >= BUDGETS[-3]
  t.final.loss[late] *= 0.95  # the last three budgets 5% better than any law says
  warned = diagnostics.warnings({"backtest": backtest.backtest(t)})
  assert any(
    w.startswith("backtest: the best law, ") and "next budget's optimal loss" in w for w in warned
  )
  assert diagnostics.warnings({"backtest": {"error": "3 budgets: too few"}}) == [
    "backtest: 3 budgets: too few"
  ]


def test_the_reference_is_the_best_run_where_approach2_left_the_budget_out():
  p = table(noise=0.0).final
  assert backtest.reference(p, laws.approach2(p), BUDGETS[-1])["source"] == "approach2 parabola"
  g = p.take(p.budget == BUDGETS[-1])
  assert backtest.reference(p, {"error": "no fit"}, BUDGETS[-1]) == {
    "n_opt": g.n[np.argmin(g.loss)],
    "loss": g.loss.min(),
    "source": "best run",
  }


def _report(**intervals):
  """A report with the given 95% intervals of a per approach (b: a's mirror, 1 - a)."""
  return {
    name: {"a": sum(ci) / 2, "ci": {"a": ci, "b": [1 - ci[1], 1 - ci[0]]}}
    for name, ci in intervals.items()
  }


def test_warns_where_intervals_do_not_overlap():
  agree = _report(approach1=[0.40, 0.55], approach2=[0.45, 0.6], approach3=[0.5, 0.58])
  assert diagnostics.warnings(agree) == []
  apart = _report(approach1=[0.1, 0.2], approach2=[0.3, 0.45], approach3=[0.15, 0.34])
  assert diagnostics.warnings(apart) == [
    "a: the 95% intervals of approach1 [0.1, 0.2] and approach2 [0.3, 0.45] do not overlap",
    "b: the 95% intervals of approach1 [0.8, 0.9] and approach2 [0.55, 0.7] do not overlap",
  ]


def test_warns_of_wide_intervals_skipped_budgets_few_refits_and_a_second_fit_apart():
  report = _report(approach2=[0.3, 0.6], approach3=[0.4, 0.5])
  report["approach2"].update(skipped=[{"budget": 1e17, "reason": "the parabola is not convex"}])
  report["approach3"]["ci"].update(num_ok=50, num_tried=100)
  report["approach3_vp"] = {"a": report["approach3"]["a"] + 2 * diagnostics.VP_TOL}
  assert diagnostics.warnings(report) == [
    "approach2: the 95% interval of a [0.3, 0.6] is wider than 0.2",
    "approach2: the 95% interval of b [0.4, 0.7] is wider than 0.2",
    "approach3: 50 of 100 bootstrap resamples could be refitted; the intervals describe those",
    "approach2 left out budget 1e+17: the parabola is not convex",
    "approach3: variable projection gives a = 0.55, L-BFGS 0.45 (apart by more than 0.05)",
  ]
