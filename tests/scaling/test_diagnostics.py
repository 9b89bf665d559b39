"""Leave-one-budget-out and the warnings, on synthetic data from a known law and on reports."""

import numpy as np

from lm.scaling import diagnostics, laws
from tests.scaling.test_laws import BUDGETS, synthetic


def test_leave_one_out_is_small_on_exact_law_data():
  p = synthetic(noise=0.0)
  loo = diagnostics.leave_one_out(p, laws.approach2(p))
  assert loo["budget"] == BUDGETS[-1]
  assert loo["reference"]["source"] == "approach2 parabola"
  assert abs(loo["approach3"]["n_opt_rel_error"]) < 0.05
  assert abs(loo["approach3"]["loss_rel_error"]) < 1e-4
  assert abs(loo["approach2"]["n_opt_rel_error"]) < 0.05
  assert not diagnostics.warnings({"leave_one_out": loo})


def test_leave_one_out_is_large_where_the_largest_budget_is_off_the_law():
  p = synthetic(noise=0.0)
  last = p.budget == BUDGETS[-1]
  p.n[last] *= 3.0  # the same losses measured at 3x the sizes: the optimum moves up 3x
  p.d[last] /= 3.0
  p.loss[last] *= 1.05
  loo = diagnostics.leave_one_out(p, laws.approach2(p))
  assert loo["approach3"]["n_opt_rel_error"] < -0.5
  assert loo["approach3"]["loss_rel_error"] < -0.04
  assert loo["approach2"]["n_opt_rel_error"] < -0.5
  warned = diagnostics.warnings({"leave_one_out": loo})
  assert len(warned) == 3 and all(w.startswith("leave-one-budget-out") for w in warned)


def test_the_reference_is_the_best_run_where_approach2_left_the_budget_out():
  p = synthetic(noise=0.0)
  assert diagnostics._reference(p, laws.approach2(p), BUDGETS[-1])["source"] == (
    "approach2 parabola"
  )
  g = p.take(p.budget == BUDGETS[-1])
  assert diagnostics._reference(p, {"error": "no fit"}, BUDGETS[-1]) == {
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
