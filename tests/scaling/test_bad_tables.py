"""Tables a fit cannot use as they are: rows left out and named, approaches refused with a
reason, and the entry point's one line (experiments.fit_scaling as a process of its own)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lm.scaling import laws, tables
from tests.conftest import REPO
from tests.scaling.test_laws import BUDGETS, TRUE_A, synthetic

COLUMNS = {"--params_col": "N", "--tokens_col": "D", "--loss_col": "L"}


def _rows(p: laws.Points) -> list[dict[str, str]]:
  """A CSV's rows (strings) of `p`, each named."""
  return [
    {"name": f"r{i}", "N": str(n), "D": str(d), "L": str(loss)}
    for i, n, d, loss in zip(p.run, p.n, p.d, p.loss)
  ]


def _write(path, rows: list[dict[str, str]]) -> None:
  path.write_text(",".join(rows[0]) + "\n" + "".join(",".join(r.values()) + "\n" for r in rows))


def _fit_scaling(table, out) -> subprocess.CompletedProcess:
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.fit_scaling",
      f"--results={table}",
      f"--out={out}",
      "--params_col=N",
      "--tokens_col=D",
      "--flops_col=",
      "--loss_col=L",
      "--budget_col=",
      "--bootstrap=4",
      "--predict_flops=1e22",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=False,
  )


def test_rows_with_nan_or_negative_losses_are_left_out_and_named(tmp_path):
  rows = _rows(synthetic(sizes=5))
  rows[0]["L"], rows[3]["L"], rows[7]["N"] = "nan", "-1.5", ""
  _write(tmp_path / "t.csv", rows)
  run = _fit_scaling(tmp_path / "t.csv", tmp_path / "fit.json")
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stderr.splitlines() == [
    f"warning: {tmp_path / 't.csv'}: 3 of 25 rows left out of the fit (each needs N, L, D "
    "positive and finite): row 1 (r0) L nan; row 4 (r3) L -1.5; row 8 (r7) N empty"
  ]
  report = json.loads((tmp_path / "fit.json").read_text())
  assert [r["row"] for r in report["rows_left_out"]] == [1, 4, 8]
  assert report["num_runs"] == 22
  fit3 = report["approach3"]
  assert abs(fit3["a"] - TRUE_A) < 0.02  # not E = e, alpha = 2, beta = 1 from NaN logs
  assert fit3["ci"]["a"][1] > fit3["ci"]["a"][0]


def test_a_table_of_one_budget_refuses_approaches_1_and_2_and_fits_3(tmp_path):
  p = synthetic(sizes=7)
  _write(tmp_path / "t.csv", _rows(p.take(p.budget == BUDGETS[2])))
  run = _fit_scaling(tmp_path / "t.csv", tmp_path / "fit.json")
  assert run.returncode == 0, run.stderr[-3000:]
  assert "approach1  Approach 1 needs >= 2 budgets; the table has 1 (1e+19)" in run.stdout
  assert "approach2  Approach 2 needs >= 2 budgets" in run.stdout
  report = json.loads((tmp_path / "fit.json").read_text())
  assert "error" in report["approach1"] and "error" in report["approach2"]
  assert "alpha" in report["approach3"]
  assert report["warnings"][0].startswith("one budget (1e+19): Approach 3 is fitted along one")


def test_a_missing_column_is_one_error_line(tmp_path):
  rows = [{k: v for k, v in r.items() if k != "L"} for r in _rows(synthetic(sizes=3))]
  _write(tmp_path / "t.csv", rows)
  run = _fit_scaling(tmp_path / "t.csv", tmp_path / "fit.json")
  assert run.returncode == 1
  assert run.stderr.splitlines() == [
    f"error: {tmp_path / 't.csv'} has no column 'L' (--loss_col); its columns: name, N, D"
  ]
  assert not (tmp_path / "fit.json").exists()


def test_a_table_with_no_usable_row_is_one_error_line(tmp_path):
  rows = _rows(synthetic(sizes=3))[:2]
  for r in rows:
    r["L"] = "inf"
  _write(tmp_path / "t.csv", rows)
  run = _fit_scaling(tmp_path / "t.csv", tmp_path / "fit.json")
  assert run.returncode == 1
  assert run.stderr.splitlines() == [
    f"error: {tmp_path / 't.csv'}: none of its 2 rows can be fitted (each needs N, L, D "
    "positive and finite): row 1 (r0) L inf; row 2 (r1) L inf"
  ]


def test_usable_rows_names_what_it_leaves_out_and_refuses_a_missing_column():
  rows = [{"N": "10", "L": "2.0"}, {"N": "0", "L": "x"}, {"N": "5"}]
  kept, left_out = tables.usable_rows(rows, {"--params_col": "N", "--loss_col": "L"}, "t.csv")
  assert kept == rows[:1]
  assert left_out == [
    {"row": 2, "name": None, "why": "N 0, L x"},
    {"row": 3, "name": None, "why": "L empty"},
  ]
  with pytest.raises(ValueError, match=r"t.csv has no column 'D' \(--tokens_col\); its columns"):
    tables.usable_rows(rows, {"--tokens_col": "D"}, "t.csv")


def test_read_table_names_the_file_and_line_of_bad_jsonl(tmp_path):
  (tmp_path / "r.jsonl").write_text('{"N": 1}\n{"N": \n')
  with pytest.raises(ValueError, match=r"r.jsonl: line 2 is not valid JSON"):
    tables.read_table(str(tmp_path / "r.jsonl"))
  (tmp_path / "r.csv").write_text("N,D,L\n")
  with pytest.raises(ValueError, match=r"r.csv has no rows"):
    tables.read_table(str(tmp_path / "r.csv"))


def test_fit_all_refuses_unusable_points_and_what_it_cannot_fit():
  p = synthetic(sizes=3)
  bad = p.take(np.arange(len(p.loss)))
  bad.loss[0] = np.nan
  with pytest.raises(ValueError, match="1 of 15 points"):
    laws.fit_all(bad, num_boot=2)
  few = p.take(p.budget == BUDGETS[0])  # one budget of 3 points
  report = laws.fit_all(few, num_boot=2)
  assert report["approach1"]["error"].startswith("Approach 1 needs >= 2 budgets")
  assert report["approach2"]["error"].startswith("Approach 2 needs >= 2 budgets")
  assert report["approach3"]["error"] == (
    "Approach 3 needs >= 6 points for its 5 parameters; the table has 3"
  )


def test_a_table_moved_away_from_its_runs_names_the_missing_curve_and_the_way_out(tmp_path):
  p = synthetic(sizes=2)
  rows = [{**r, "workdir": r["name"], "tokens": r["D"], "steps": "10"} for r in _rows(p)]
  with pytest.raises(ValueError, match=r"r0/metrics.jsonl: no such file.*--nocurves"):
    tables.curve_points(rows, str(tmp_path), p)
  (tmp_path / "curves").mkdir()
  for r in rows:
    (tmp_path / "curves" / f"{r['name']}.jsonl").write_text('{"step": 5, "loss": 3.0}\n')
  assert len(tables.curve_points(rows, str(tmp_path), p).loss) == len(rows)
