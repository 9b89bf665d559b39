"""experiments.fit_scaling on a small CSV from a known law: the diagnostics, a prediction and a
verification run."""

import json
import os
import subprocess
import sys

from lm.scaling import noise, verify
from tests.conftest import REPO
from tests.scaling.test_laws import _true_optimum, synthetic


def _fit_scaling(*args: str) -> str:
  """What `python -m experiments.fit_scaling ARGS` prints (a process of its own: its flags
  would clash with other entry points' in this one)."""
  out = subprocess.run(
    [sys.executable, "-m", "experiments.fit_scaling", *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


def test_fit_scaling_prints_the_diagnostics_and_a_prediction(tmp_path):
  p = synthetic(sizes=5)
  (tmp_path / "table.csv").write_text(
    "N,D,loss\n" + "".join(f"{n},{d},{loss}\n" for n, d, loss in zip(p.n, p.d, p.loss))
  )
  out = tmp_path / "fit.json"
  printed = _fit_scaling(
    f"--results={tmp_path / 'table.csv'}",
    f"--out={out}",
    "--params_col=N",
    "--tokens_col=D",
    "--flops_col=",
    "--loss_col=loss",
    "--budget_col=",
    "--bootstrap=4",
    "--predict_flops=1e22",
  )
  assert "): each law fitted on the 3 to " in printed
  assert "approach3 by variable projection" in printed
  assert "prediction at C = 1e+22 FLOPs by " in printed
  report = json.loads(out.read_text())
  assert isinstance(report["warnings"], list)
  bt = report["backtest"]
  assert report["prediction"]["law"] == bt["ranking"][0]
  assert report["prediction"]["chosen"] == "ranked first by the backtest"
  budgets = 4 if bt["trim"] == "without the smallest budget" else 5
  for law in bt["ranking"]:  # a ranked law predicted every pair: origins 3 .. budgets - 1
    own = [p for p in bt["pairs"] if p["law"] == law]
    assert len(own) == (budgets - 3) * (budgets - 2) // 2, law
  assert report["seed_noise"] is None
  n_opt, _, loss = _true_optimum(1e22)
  assert abs(report["prediction"]["n_opt"] / n_opt - 1) < 0.15, report["prediction"]["law"]
  assert abs(report["prediction"]["loss"] / loss - 1) < 0.01
  assert report["columns"] == {"params": "N", "flops": "6ND", "loss": "loss"}


def _write_results(tmp_path, p) -> None:
  """`p`'s points as a sweep's results.csv (runs r0, r1, ...) in `tmp_path`."""
  (tmp_path / "results.csv").write_text(
    "name,params_non_embedding,tokens,flops_6N,eval_loss,budget\n"
    + "".join(
      f"r{i},{n},{d},{c},{loss},{b}\n"
      for i, n, d, c, loss, b in zip(p.run, p.n, p.d, p.c, p.loss, p.budget)
    )
  )


def test_fit_scaling_compares_the_verification_run_and_marks_it(tmp_path):
  p = synthetic(sizes=5)
  _write_results(tmp_path, p)
  n_opt, d_opt, loss = _true_optimum(1e22)
  row = {
    "name": "C1e22_L40_d5120_verify",
    "params_non_embedding": n_opt,
    "tokens": d_opt,
    "flops_6N": 6 * n_opt * d_opt,
    "eval_loss": loss * 1.01,
  }
  columns = {"params": "params_non_embedding", "flops": "flops_6N", "loss": "eval_loss"}
  verify.save(
    str(tmp_path),
    {"predicted": {"flops": 1e22}, "columns": columns},
    row,
    {"rule": 1e-3, "learning_rate": 1e-3},
  )
  printed = _fit_scaling(
    f"--results={tmp_path / 'results.csv'}", "--bootstrap=4", f"--plots_dir={tmp_path / 'plots'}"
  )
  report = json.loads((tmp_path / "fit.json").read_text())
  law = report["backtest"]["ranking"][0]
  assert f"verification at C = 1e+22 FLOPs of {law}'s forecast: C1e22_L40_d5120_verify" in printed
  v = report["verification"]
  assert v["row"] == row and v["trained"]["eval_loss"] == loss * 1.01
  assert abs(v["loss_rel_error"] - 0.01) < 0.01  # the fit predicts the true loss within 1%
  assert abs(v["loss_at_trained_rel_error"] - 0.01) < 0.01
  assert v["predicted"]["loss_ci"] is not None
  assert {"isoflop.png", "optimal_vs_compute.png", "backtest.png"} <= set(
    os.listdir(tmp_path / "plots")
  )


def test_a_refit_without_a_prediction_leaves_the_fit_json_that_has_one(tmp_path):
  p = synthetic(sizes=5)
  table = tmp_path / "results.csv"
  table.write_text(
    "name,params_non_embedding,tokens,flops_6N,eval_loss,budget\n"
    + "".join(
      f"r{i},{n},{d},{c},{loss},{b}\n"
      for i, n, d, c, loss, b in zip(p.run, p.n, p.d, p.c, p.loss, p.budget)
    )
  )
  fit = tmp_path / "fit.json"
  printed = _fit_scaling(f"--results={table}", "--bootstrap=2", "--predict_flops=1e22")
  assert f"wrote {fit}" in printed.splitlines()
  kept = fit.read_text()
  printed = _fit_scaling(f"--results={table}", "--bootstrap=2")
  assert printed.splitlines()[-1] == (
    f"{fit} not written: it holds prediction, which this fit lacks; --out=PATH writes this fit "
    f"elsewhere, --out={fit} replaces it"
  )
  assert fit.read_text() == kept


def test_the_fit_does_not_depend_on_the_order_of_the_rows(tmp_path):
  """Runs finish in any order on workers or a cluster: the same rows give the same fit.json."""
  p = synthetic(sizes=5)
  lines = [f"C{c:.0e}_N{n:.0f},{n},{d},{loss}\n" for n, d, loss, c in zip(p.n, p.d, p.loss, p.c)]
  fits = []
  for order, rows in (("first", lines), ("reversed", lines[::-1])):
    (tmp_path / f"{order}.csv").write_text("name,N,D,loss\n" + "".join(rows))
    out = tmp_path / f"{order}.json"
    _fit_scaling(
      f"--results={tmp_path / f'{order}.csv'}",
      f"--out={out}",
      "--params_col=N",
      "--tokens_col=D",
      "--flops_col=",
      "--loss_col=loss",
      "--budget_col=",
      "--bootstrap=8",
      "--predict_flops=1e22",
    )
    fits.append(json.loads(out.read_text()))
  assert fits[0]["approach3"]["ci"] == fits[1]["approach3"]["ci"]
  assert fits[0]["prediction"] == fits[1]["prediction"]


def test_with_seed_repeats_the_prediction_says_how_far_their_noise_moves_it(tmp_path):
  p = synthetic(sizes=5)
  _write_results(tmp_path, p)
  repeats = [
    {"name": f"r{i}_seed{s}", "repeat_of": f"r{i}", "seed": s, "eval_loss": p.loss[i] * f}
    for i in range(0, len(p.run), 3)
    for s, f in ((1, 1.02), (2, 0.98))
  ]
  (tmp_path / noise.REPEATS_JSONL).write_text("".join(json.dumps(r) + "\n" for r in repeats))
  printed = _fit_scaling(
    f"--results={tmp_path / 'results.csv'}", "--bootstrap=20", "--predict_flops=1e22"
  )
  report = json.loads((tmp_path / "fit.json").read_text())
  spread = report["prediction"]["seed_noise_spread"]
  assert spread["draws"] == 20 and spread["draws_ok"] >= 15
  assert set(spread["sigmas"]) == {str(float(b)) for b in set(p.budget)}  # as JSON keys
  assert 0 < spread["sd"] < 0.2
  low, high = spread["loss_range"]
  assert low < report["prediction"]["loss"] < high
  assert f"seed noise alone moves this forecast by sd {spread['sd']:.2%}" in printed
