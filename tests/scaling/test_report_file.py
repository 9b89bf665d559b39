"""fit.json is written where asked, and beside the results only over a report that holds
nothing the new one lacks."""

import json

from lm.scaling import report_file


def test_a_fit_never_silently_replaces_a_richer_report(tmp_path):
  beside, asked = tmp_path / "fit.json", tmp_path / "elsewhere.json"
  committed = {
    "approach2": {"a": 0.5, "ci": {"a": [0.4, 0.6]}},
    "prediction": {"flops": 1e13, "loss": 1.35},
    "seed_noise": None,
  }
  beside.write_text(json.dumps(committed))
  refit = {"approach2": {"a": 0.51, "ci": {}}, "seed_noise": {"sigma": 0.01}}
  assert report_file.write(refit, None, str(beside)) == (
    f"{beside} not written: it holds approach2.ci.a, prediction, which this fit lacks; "
    f"--out=PATH writes this fit elsewhere, --out={beside} replaces it"
  )
  assert json.loads(beside.read_text()) == committed
  assert report_file.write(refit, str(asked), str(beside)) == f"wrote {asked}"
  assert json.loads(asked.read_text()) == refit and json.loads(beside.read_text()) == committed
  richer = {**committed, "approach2": {"a": 0.52, "ci": {"a": [0.3, 0.7]}}, "verification": {}}
  assert report_file.write(richer, None, str(beside)) == f"wrote {beside}"  # holds all, and more
  assert json.loads(beside.read_text()) == richer
  assert report_file.write(refit, str(beside), str(beside)) == f"wrote {beside}"  # asked for
  assert json.loads(beside.read_text()) == refit
  (tmp_path / "new").mkdir()
  first = tmp_path / "new" / "fit.json"
  assert report_file.write(refit, None, str(first)) == f"wrote {first}"  # nothing there yet


def test_lacks_names_nested_entries():
  old = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": None}
  assert report_file.lacks(old, {"a": 1, "b": {"c": 2, "d": {}}}) == ["b.d.e"]
  assert report_file.lacks(old, {"b": {"c": None, "d": 4}, "f": 5}) == ["a", "b.c"]
  assert report_file.lacks(old, {**old, "g": 6}) == []
  failed = {"approach3": {"error": "too few points"}, "rows_left_out": [{"row": 1}]}
  assert report_file.lacks(failed, {"approach3": {"a": 0.5}}) == []  # fitted now: more, not less
