"""The cooldown-sweep and learning-rate plots, drawn from a results folder made here."""

import json
import os

from lm.scaling import plots


def _metrics(run_dir, steps, loss_at):
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
    for step in steps:
      f.write(json.dumps({"step": step, "loss": loss_at(step)}) + "\n")


def test_cooldown_curves_draw_stable_runs_and_branches(tmp_path):
  rows = []
  for width, params in ((16, 1e4), (32, 4e4)):
    stable = f"stable_L4_d{width}"
    _metrics(str(tmp_path / stable), range(10, 110, 10), lambda s: 4 - s / 100)
    for steps in (50, 100):
      name = f"C{steps}_L4_d{width}_cooldown"
      _metrics(str(tmp_path / name), range(10, steps + 10, 10), lambda s: 3.5 - s / 200)
      rows.append(
        {
          "name": name,
          "workdir": name,
          "branch_of": stable,
          "branch_step": steps - steps // 5,
          "tokens": steps * 64,
          "steps": steps,
          "eval_loss": 3.0,
          "params_non_embedding": params,
        }
      )
  lines = plots.cooldown_lines(rows, str(tmp_path))
  assert [(r["name"], kind) for r, kind, _, _ in lines] == [
    ("C50_L4_d16_cooldown", "stable"),
    ("C50_L4_d16_cooldown", "branch"),
    ("C50_L4_d32_cooldown", "stable"),
    ("C50_L4_d32_cooldown", "branch"),
    ("C100_L4_d16_cooldown", "branch"),
    ("C100_L4_d32_cooldown", "branch"),
  ]
  assert lines[1][2] == [64 * s for s in range(40, 60, 10)]  # from its branch step, in tokens
  path = plots.cooldown_curves(rows, str(tmp_path), str(tmp_path / "cooldown.png"))
  assert path and os.path.getsize(path) > 10_000
  # A published table keeps the curves beside it (curves/<name>.jsonl), not the run folders.
  published = tmp_path / "published"
  (published / "curves").mkdir(parents=True)
  for name in {r["name"] for r in rows} | {r["branch_of"] for r in rows}:
    os.replace(tmp_path / name / "metrics.jsonl", published / "curves" / f"{name}.jsonl")
  assert plots.cooldown_lines(rows, str(published)) == lines
  # A table without branches (the independent method) has nothing to draw.
  assert (
    plots.cooldown_curves(
      [{**r, "branch_of": ""} for r in rows], str(tmp_path), str(tmp_path / "none.png")
    )
    is None
  )
  assert not os.path.exists(tmp_path / "none.png")


def test_lr_sweep_draws_each_size(tmp_path):
  choices = {
    f"L4_d{w}": {
      "multipliers": [0.5, 1, 2],
      "learning_rates": [1e-3, 2e-3, 4e-3],
      "eval_losses": [3.1, 3.0, 3.2 - w / 100],
      "best_multiplier": 1,
      "learning_rate": 2e-3,
      "at_edge": w == 32,
    }
    for w in (8, 32)
  }
  path = plots.lr_sweep(choices, str(tmp_path / "lr.png"))
  assert os.path.getsize(path) > 10_000


def test_coord_check_explains_its_solid_and_dotted_lines(tmp_path, monkeypatch):
  figures = []
  monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or path)
  sizes = {w: [{"embed": 1.0, "mlp": 2.0}, {"embed": 1.5, "mlp": 2.5}] for w in (64, 128)}
  plots.coord_check({"standard": sizes, "mup": sizes}, str(tmp_path / "coord.png"))
  legend = figures[0].axes[-1].get_legend()
  assert [t.get_text() for t in legend.get_texts()] == [
    "embed",
    "mlp",
    "solid: after the last step",
    "dotted: at init",
  ]


def test_budgets_are_labelled_to_two_significant_digits():
  budgets = (8e10, 1.4e11, 2.5e11, 4.5e11, 1.4e12, 2.5e12)
  assert [plots._plain(b) for b in budgets] == [
    "8e10",
    "1.4e11",
    "2.5e11",
    "4.5e11",
    "1.4e12",
    "2.5e12",
  ]
  assert [plots._plain(x) for x in (1e11, 2e4, 100.0, 0.5, 0.25)] == [
    "1e11",
    "2e4",
    "100",
    "0.5",
    "0.25",
  ]
