"""A toy sweep's table (4 budgets x 3 sizes whose losses are noise): the fit runs without
numpy warnings, names the degenerate law, and says which plots it could not draw and why."""

import warnings

import numpy as np
import pytest

from lm.scaling import diagnostics, forecasts, laws, plots, selection

SIZES = (2000, 6000, 18000)
BUDGETS = (4e7, 1.2e8, 3.6e8, 1e9)
LOSSES = (2.9652, 2.9733, 2.9728, 2.9691, 2.9299, 2.9724, 2.9331, 2.9702, 2.9714, 2.9579)
LOSSES += (2.9455, 2.9290)


def _toy() -> laws.Points:
  n = np.array([s for _ in BUDGETS for s in SIZES], float)
  budget = np.repeat(np.array(BUDGETS), len(SIZES))
  d = budget / (6 * n)
  return laws.Points(np.arange(len(n)).astype(str), n, d, 6 * n * d, np.array(LOSSES), budget)


@pytest.fixture
def no_numpy_warnings():
  """numpy's RuntimeWarnings (overflow, invalid values, division by zero) as errors."""
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)
    yield


def test_a_degenerate_law_is_named_and_computes_to_nan(no_numpy_warnings):
  fit3 = laws.law(2.0, 1e257, 400.0, 66.5, 0.3)
  assert laws.degenerate(fit3) == ["A = 1e+257, outside (0, 1e+30]", "alpha = 66.5, outside (0, 5]"]
  assert np.isnan(laws.predict(fit3, [1e5, 1e6], [1e9, 1e10])).all()
  assert np.isnan(laws.optimum3(fit3, 1e20)).all()
  negative = laws.law(2.0, 100.0, 400.0, -0.01, 0.3)  # loss rising with N: no optimum
  assert np.isnan(negative["a"]) and np.isnan(negative["G"])
  assert laws.degenerate(negative) == ["alpha = -0.01, outside (0, 5]"]
  assert laws.degenerate(laws.law(1.69, 406.4, 410.7, 0.34, 0.28)) == []  # Chinchilla's
  warned = diagnostics.warnings({"approach3": fit3})
  assert warned == [
    "approach3 is degenerate (A = 1e+257, outside (0, 1e+30]; alpha = 66.5, outside (0, 5]): "
    "its a, b, optimum and forecasts mean nothing; more budgets or sizes, or a table with less "
    "noise, are needed"
  ]


def test_a_toy_table_fits_without_numpy_warnings_and_says_what_it_did_not_draw(
  no_numpy_warnings, tmp_path
):
  final = _toy()
  report = laws.fit_all(final, num_boot=8)
  report["backtest"] = selection.select(forecasts.Table(final))
  diagnostics.diagnose(final, report)
  assert laws.degenerate(report["approach3"])
  assert any(w.startswith("approach3 is degenerate (") for w in report["warnings"])
  assert all(np.isfinite(v).all() for v in report["approach3"]["ci"].get("samples", {}).values())
  written, not_written = plots.all_plots(final, None, report, str(tmp_path))
  assert written == [str(tmp_path / "frontier.png")]
  assert not_written[str(tmp_path / "isoflop.png")] == report["approach2"]["error"]
  assert not_written[str(tmp_path / "optimal_vs_compute.png")].startswith(
    "Approach 2 needs >= 2 budgets with a bracketed, convex minimum"
  )
  assert not_written[str(tmp_path / "residuals.png")].startswith("Approach 3 is degenerate (")
  assert str(tmp_path / "backtest.png") in not_written
