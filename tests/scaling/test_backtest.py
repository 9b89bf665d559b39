"""The laws (lm/scaling/forecasts.py) and their backtest (lm/scaling/backtest.py) on synthetic
IsoFLOP tables whose true law is known."""

import numpy as np
import pytest

from lm.scaling import backtest, forecasts, laws, noise, selection
from tests.scaling.test_laws import TRUE, TRUE_LAW

BUDGETS = tuple(10 ** (17 + 0.25 * i) for i in range(7))  # 1.5 decades, as the CPU study's
FAR = 4 * BUDGETS[-1]  # a forecast 0.6 decades beyond the table


def _true_loss(n, d):
  return TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]


def true_optimum(c: float) -> float:
  n, d = laws.optimum3(TRUE_LAW, c)
  return float(_true_loss(n, d))


def table(noise: float = 0.003, seed: int = 0, embed: float = 2e7) -> forecasts.Table:
  """Per budget 7 sizes around the true optimum, on the tokens of C = 6 N D, with log-normal
  loss noise; N counted with `embed` more parameters is the table's `n_total`."""
  rng = np.random.default_rng(seed)
  rows = []
  for c in BUDGETS:
    for n in laws.optimum3(TRUE_LAW, c)[0] * np.logspace(-0.6, 0.6, 7):
      d = c / (6 * n)
      rows.append((len(rows), n, d, c, _true_loss(n, d) * np.exp(rng.normal(0, noise)), c))
  run, n, d, c, loss, budget = map(np.array, zip(*rows))
  return forecasts.Table(laws.Points(run, n, d, c, loss, budget), n + embed)


def test_the_frontier_law_recovers_a_loss_frontier():
  c = np.logspace(11, 13, 6)
  loss = 1.2 + 3.0 * (c / 1e12) ** -0.2
  fit = forecasts._loss_frontier(c, loss, floor=True)
  forecast = forecasts.Forecast("frontier", {**fit, "a": 0.5, "b": 0.5, "log_n_coef": 0.0})
  assert fit["E"] == pytest.approx(1.2, rel=1e-3)
  assert fit["gamma"] == pytest.approx(0.2, rel=1e-3)
  assert forecast.loss(1e14) == pytest.approx(1.2 + 3.0 * 100**-0.2, rel=1e-4)
  power = forecasts._loss_frontier(c, 3.0 * (c / 1e12) ** -0.2, floor=False)
  assert power["E"] == 0.0 and power["gamma"] == pytest.approx(0.2)


def test_every_law_forecasts_the_true_optimum_of_exact_data():
  t = table(noise=0.0)
  for law in ("chinchilla", "frontier"):  # the frontier of a Chinchilla law is E + k C^-gamma
    assert forecasts.fit_law(law, t).loss(FAR) == pytest.approx(true_optimum(FAR), rel=2e-3)
  power = forecasts.fit_law("power", t)
  assert power.loss(FAR) < true_optimum(FAR)  # no floor: the optimistic bracket
  rebuilt = forecasts.from_fit("chinchilla", forecasts.fit_law("chinchilla", t).fit)
  assert rebuilt.n_opt(FAR) == pytest.approx(laws.optimum3(TRUE_LAW, FAR)[0], rel=0.02)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_backtest_ranks_the_true_law_first_and_the_law_without_a_floor_below(seed):
  bt = backtest.backtest(table(seed=seed))
  assert bt["ranking"][0] == "chinchilla"
  assert bt["ranking"].index("power") > bt["ranking"].index("chinchilla")
  assert len(bt["pairs"]) == 4 * (4 + 3 + 2 + 1)  # origins 3..6 of 7 budgets, every law
  power = bt["laws"]["power"]
  # L_opt bends towards E, which a pure power law cannot: it forecasts too low, more so further
  assert power["furthest"]["loss_mean_signed"] < power["one_ahead"]["loss_mean_signed"] < 0
  assert bt["laws"]["chinchilla"]["one_ahead"]["loss_mean_abs"] < 0.005


def test_a_law_whose_forecast_is_not_finite_fails_and_is_not_ranked():
  t = table()
  t = forecasts.Table(t.final, np.full_like(t.final.n, np.nan))  # no usable total counts
  bt = backtest.backtest(t)
  assert "chinchilla_total" not in bt["ranking"]
  assert {f["law"] for f in bt["failed"]} == {"chinchilla_total"}


def test_a_law_that_forecasts_nothing_on_the_whole_table_passes_the_prediction_down_the_ranking(
  monkeypatch,
):
  fit_law = forecasts.fit_law

  def degenerate_approach3(law, t, start=None):  # as the GPU rehearsal's toy table fitted
    f = fit_law(law, t, start)
    return forecasts.Forecast(law, {**f.fit, "alpha": 46.8}) if f.parametric else f

  monkeypatch.setattr(forecasts, "fit_law", degenerate_approach3)
  t = table()
  with pytest.raises(ValueError, match=r"forecasts no optimum .*\(alpha = 46.8, outside"):
    backtest.forecast(t, "chinchilla", FAR, num_boot=2)
  report = {"backtest": {"ranking": ["chinchilla", "frontier"], "laws": {}}}
  pred = selection.predict(t, report, FAR, num_boot=2)
  assert pred["law"] == "frontier" and pred["loss"] == pytest.approx(true_optimum(FAR), rel=0.01)
  assert pred["chosen"].startswith("ranked 2 by the backtest, as chinchilla: fitted on")
  with pytest.raises(ValueError, match=r"^chinchilla: fitted on this table"):
    selection.predict(t, report, FAR, law="chinchilla", num_boot=2)
  with pytest.raises(ValueError, match=r"^chinchilla: .*; frontier: "):
    selection.predict(t.take(t.budget <= BUDGETS[1]), report, FAR, num_boot=2)


def test_the_seed_noise_spread_is_the_forecasts_spread_over_tables_measured_again():
  """`noise.forecast_spread` on one table estimates how far a forecast moves between tables of
  the same noise: the truth here is the sd of the forecast over 40 independent tables."""
  level = 0.01
  truth = [forecasts.fit_law("frontier", table(noise=level, seed=s)).loss(FAR) for s in range(40)]
  true_sd = np.std(truth, ddof=1) / np.mean(truth)
  measured = {"sigma": level, "groups": []}  # no budget repeated: the pooled sigma everywhere
  estimates = [
    noise.forecast_spread(table(noise=level, seed=s), "frontier", FAR, measured, 60, s)["sd"]
    for s in range(3)
  ]
  assert 0.75 * true_sd < np.median(estimates) < 1.35 * true_sd, (estimates, true_sd)
  quiet = noise.forecast_spread(
    table(noise=level), "frontier", FAR, {"sigma": 0.0, "groups": []}, 5
  )
  assert quiet["draws_ok"] == 5 and quiet["sd"] == pytest.approx(0.0, abs=1e-12)


def test_a_budgets_sigma_pools_its_own_groups_only():
  groups = [
    {"budget": "100.0", "losses": [1.0, 1.1], "sd": 0.1},
    {"budget": "100.0", "losses": [1.0, 1.1, 1.2], "sd": 0.2},
    {"budget": "200.0", "losses": [1.0, 1.1], "sd": 0.05},
    {"budget": None, "losses": [1.0, 1.1], "sd": 0.9},
  ]
  assert noise.budget_sigmas({"groups": groups}) == pytest.approx(
    {100.0: np.sqrt((0.1**2 + 2 * 0.2**2) / 3), 200.0: 0.05}
  )


def test_too_few_budgets_is_an_error_and_the_prediction_falls_back_to_approach3():
  t = table()
  few = t.take(t.budget <= BUDGETS[2])
  report = {"backtest": backtest.backtest(few)}
  assert "3 budgets" in report["backtest"]["error"]
  law, why = selection.choose_law(report)
  assert law == "chinchilla" and "nothing was backtested" in why
  with pytest.raises(ValueError, match="unknown law 'cubic'"):
    selection.choose_law(report, "cubic")


def _covered(law: str, seeds: range, noise: float) -> tuple[int, int]:
  """How often `law`'s calibrated and its bootstrap-only 95% intervals at FAR cover a run
  there (the true optimum with the same seed noise), over tables of `seeds`."""
  covered = bootstrap_only = 0
  for seed in seeds:
    t = table(noise=noise, seed=seed)
    calibrated = backtest.backtest(t, (law,))["laws"][law]["calibration"]
    pred = backtest.forecast(t, law, FAR, calibrated, sigma=noise, num_boot=20, seed=seed)
    run = true_optimum(FAR) * np.exp(np.random.default_rng(100 + seed).normal(0, noise))
    covered += pred["loss_ci"][0] <= run <= pred["loss_ci"][1]
    lo, hi = pred["loss_ci_bootstrap"]
    bootstrap_only += lo <= run <= hi
  return covered, bootstrap_only


def test_the_calibrated_interval_covers_a_biased_laws_misses_at_its_nominal_rate():
  # The power law misses the bending frontier by more than its bootstrap spread: the interval
  # calibrated by its backtest covers the runs 0.6 decades out as often as a 95% interval should.
  calibrated, bootstrap_only = _covered("power", range(20), noise=0.003)
  assert calibrated >= 18  # 95% of 20 is 19; 17 or fewer has probability < 8% at 95%
  assert bootstrap_only <= 10


def test_the_forecast_interval_is_the_widest_of_bootstrap_backtest_and_seed_noise():
  t = table()
  narrow = backtest.forecast(t, "frontier", FAR, None, 0.0, num_boot=10)
  assert narrow["loss_ci"] == pytest.approx(narrow["loss_ci_bootstrap"])
  # A law that forecast 5% per decade too low, give or take 1%: 0.6 decades out, the upper side
  # widens by the bias and both by t x the spread.
  calibrated = {"bias_per_decade": -0.05, "slope": 0.0, "sd_per_decade": 0.01, "t": 2.0}
  wide = backtest.forecast(t, "frontier", FAR, calibrated, sigma=0.0, num_boot=10)
  decades = np.log10(4)
  lower, upper = 2 * 0.01 * decades, (2 * 0.01 + 0.05) * decades
  assert wide["loss_ci"] == pytest.approx([wide["loss"] * (1 - lower), wide["loss"] * (1 + upper)])
  noisy = backtest.forecast(t, "frontier", FAR, None, sigma=0.05, num_boot=10)
  half = backtest.Z95 * 0.05
  assert noisy["loss_ci"] == pytest.approx([noisy["loss"] * (1 - half), noisy["loss"] * (1 + half)])
  assert noisy["calibration"]["decades_beyond"] == pytest.approx(decades)
  inside = backtest.forecast(t, "frontier", BUDGETS[-2], calibrated, sigma=0.0, num_boot=10)
  assert inside["calibration"]["half_widths_backtest"] == [0.0, 0.0]


def test_the_backtest_drops_the_smallest_budget_where_it_is_off_the_law():
  t = table(noise=0.001)
  first = t.budget == BUDGETS[0]
  t.final.loss[first] *= 1.04  # the shortest runs 4% worse than the law: they mislead every fit
  picked = selection.select(t)
  assert picked["trim"] == "without the smallest budget"
  assert picked["trims"]["common_pairs"] == 3 + 2 + 1  # origins fitted up to budgets 4, 5 and 6
  assert set(picked["trims"]) == {"common_pairs", *selection.TRIMS}
  pred = selection.predict(t, {"backtest": picked}, FAR, num_boot=4)
  assert pred["trim"] == "without the smallest budget" and pred["law"] == picked["ranking"][0]
  assert pred["loss"] == pytest.approx(true_optimum(FAR), rel=0.01)
  clean = selection.select(table(noise=0.001))  # no trim predicts 10% better: none is made
  assert (clean["trim"], clean["ranking"][0]) == ("every run", "chinchilla")
