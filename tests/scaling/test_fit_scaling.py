"""experiments.fit_scaling on a small CSV from a known law: the diagnostics and a prediction."""

import json

from absl import flags
from absl.testing import flagsaver

from experiments import fit_scaling
from tests.scaling.test_laws import synthetic, _true_optimum


def test_fit_scaling_prints_the_diagnostics_and_a_prediction(tmp_path, capsys):
  p = synthetic(sizes=5)
  (tmp_path / "table.csv").write_text("N,D,loss\n" + "".join(
      f"{n},{d},{loss}\n" for n, d, loss in zip(p.n, p.d, p.loss)))
  out = tmp_path / "fit.json"
  with flagsaver.flagsaver():
    flags.FLAGS(["fit_scaling", f"--results={tmp_path / 'table.csv'}", f"--out={out}",
                 "--params_col=N", "--tokens_col=D", "--flops_col=", "--loss_col=loss",
                 "--budget_col=", "--bootstrap=4", "--predict_flops=1e22"])
    fit_scaling.main([])
  printed = capsys.readouterr().out
  assert "leave-one-budget-out: fitted without budget 1e+21" in printed
  assert "approach3 by variable projection" in printed
  assert "prediction at C = 1e+22 FLOPs" in printed
  report = json.loads(out.read_text())
  assert isinstance(report["warnings"], list)
  n_opt, _, loss = _true_optimum(1e22)
  assert abs(report["prediction"]["n_opt"] / n_opt - 1) < 0.1
  assert abs(report["prediction"]["loss"] / loss - 1) < 0.01
  assert report["columns"] == {"params": "N", "flops": "6ND", "loss": "loss"}
