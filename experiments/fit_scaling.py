"""Fit scaling laws (Chinchilla Approaches 1, 2, 3) to a sweep's results or a published table.

    python -m experiments.fit_scaling --results=runs/scaling/results.csv \
        --out=runs/scaling/fit.json --plots_dir=runs/scaling/plots

An external CSV: name its columns, e.g. `--params_col=N --tokens_col=D --loss_col=loss`
(or `--flops_col=C`; the missing one follows from C = 6 N D).
"""

import json
import os

from absl import app, flags

from lm.scaling import laws, plots

_RESULTS = flags.DEFINE_string("results", None, "results.csv / results.jsonl, or any CSV.")
_OUT = flags.DEFINE_string("out", None, "JSON report path (default: fit.json beside results).")
_PLOTS = flags.DEFINE_string("plots_dir", None, "Write PNG plots here.")
_PARAMS = flags.DEFINE_string("params_col", "params_non_embedding", "Column of N.")
_TOKENS = flags.DEFINE_string("tokens_col", "tokens", "Column of D ('' if absent).")
_FLOPS = flags.DEFINE_string("flops_col", "flops_6N", "Column of C ('' if absent).")
_LOSS = flags.DEFINE_string("loss_col", "eval_loss", "Column of the final loss.")
_BUDGET = flags.DEFINE_string("budget_col", "budget",
                              "Column of the IsoFLOP budget ('': group by log10 C).")
_CURVES = flags.DEFINE_bool("curves", True, "Approach 1 on each run's metrics.jsonl curve "
                            "(needs the table's `workdir` column).")
_REF = flags.DEFINE_float("ref_flops", None, "Compute for tokens per parameter (default: max).")
_BOOT = flags.DEFINE_integer("bootstrap", 200, "Bootstrap resamples.")
flags.mark_flags_as_required(["results"])


def main(argv):
  del argv
  rows = laws.read_table(_RESULTS.value)
  budget_col = _BUDGET.value if _BUDGET.value and _BUDGET.value in rows[0] else None
  final = laws.table_points(rows, _PARAMS.value, _LOSS.value, _TOKENS.value or None,
                                   _FLOPS.value or None, budget_col)
  curves = None
  if _CURVES.value and "workdir" in rows[0]:
    curves = laws.curve_points(rows, os.path.dirname(_RESULTS.value), final)
  report = laws.fit_all(final, curves, _REF.value, _BOOT.value)
  print(laws.format_table(report))
  out = _OUT.value or os.path.join(os.path.dirname(_RESULTS.value), "fit.json")
  with open(out, "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {out}")
  if _PLOTS.value:
    for path in plots.all_plots(final, curves, report, _PLOTS.value):
      print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
