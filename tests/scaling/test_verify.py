"""The verification run (lm/scaling/verify.py): the size nearest the predicted N_opt on the
tokens that spend C, by the sweep's method and learning rate, skipped once done, and
verification.json."""

import json
import math
import os

import pytest
from test_lr_search import _runner
from test_sweep import _fake_runner, _sweep_config

from lm.model import counts
from lm.model.config import architecture
from lm.scaling import forecasts, grid, laws, results, sweep, verify

C = 1e9
COLUMNS = {"params": "params_non_embedding", "flops": "flops_6N", "loss": "eval_loss"}


def _write_fit(
  workdir: str, n_opt: float, columns: dict[str, str] = COLUMNS, law: str = "chinchilla"
) -> dict:
  """A fit.json as fit_scaling writes it, with `law`'s prediction at C whose N_opt is `n_opt`
  (counted as the law counts N)."""
  forecast = forecasts.from_fit(law, laws.law(1.5, 10.0, 30.0, 0.3, 0.3))
  d_opt = forecast.d_opt(C)
  prediction = {
    "law": law,
    "params": forecast.params,
    "flops": C,
    "n_opt": n_opt,
    "n_opt_ci": None,
    "d_opt": d_opt,
    "d_opt_ci": None,
    "loss": forecast.loss(C),
    "loss_ci": [forecast.loss(C) * 0.98, forecast.loss(C) * 1.02],
    "fit": forecast.fit,
  }
  report = {"columns": columns, "prediction": prediction}
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, laws.REPORT_FILE), "w") as f:
    json.dump(report, f)
  return report


def test_the_nearest_size_trains_on_the_tokens_of_c_once(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  vocab = sweep.vocab_size(config)
  models = grid.ladder(config, vocab)
  sizes = [counts.param_counts(m)["non_embedding"] for m in models]
  fit = _write_fit(workdir, sizes[2] * 1.2)  # nearer the third member than the fourth
  trained = []

  def runner(cfg, run_dir):
    trained.append(cfg)
    return _fake_runner(cfg, run_dir)

  v = sweep.run_verification(config, workdir, runner)
  assert v is not None
  assert [c.model.d_model for c in trained] == [models[2].d_model]
  cfg = trained[0]
  tokens = cfg.train.steps * cfg.data.batch_size * cfg.data.seq_len
  per_token = counts.training_flops_per_token(
    architecture(cfg.model, vocab), cfg.data.seq_len, "6N"
  )
  assert abs(tokens * per_token / C - 1) < 1 / cfg.train.steps  # C, to a step
  assert v["trained"] == {
    "name": f"C1e09_L1_d{models[2].d_model}_verify",
    "params": sizes[2],
    "params_as_law_counts": sizes[2],
    "tokens": tokens,
    "flops": pytest.approx(tokens * per_token),
    "eval_loss": 3.1,
    "eval_losses": [3.1],
    "seeds": [None],
  }
  assert v["predicted"]["loss"] == fit["prediction"]["loss"]
  assert v["loss_rel_error"] == pytest.approx(3.1 / fit["prediction"]["loss"] - 1)
  assert v["params_ratio"] == pytest.approx(1 / 1.2)
  assert v["learning_rate_source"] == {"rule": 1e-3, "learning_rate": 1e-3}
  with open(os.path.join(workdir, verify.FILE)) as f:
    assert json.load(f) == v

  def must_not_train(cfg, run_dir):
    raise AssertionError(f"finished run trained again: {run_dir}")

  assert sweep.run_verification(config, workdir, must_not_train) == v
  assert not os.path.exists(os.path.join(workdir, results.RESULTS_JSONL))  # not a sweep's row


def test_cooldown_with_lr_grid_takes_the_nearest_sizes_choice(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  config.scaling.method = "cooldown"
  config.scaling.lr_grid = (0.5, 1.0, 2.0)
  workdir = str(tmp_path / "sweep")
  vocab = sweep.vocab_size(config)
  trained: list[str] = []
  sweep.run_sweep(config, workdir, _runner(2.0, trained, True))
  largest = grid.ladder(config, vocab)[-1]  # wider than any of the sweep's sizes
  _write_fit(workdir, counts.param_counts(largest)["non_embedding"])
  trained.clear()
  v = sweep.run_verification(config, workdir, _runner(2.0, trained, True))
  assert v is not None
  name = f"C1e09_L1_d{largest.d_model}_verify"
  assert trained == [f"stable_L1_d{largest.d_model}_verify", f"{name}_cooldown"]
  widest = max(p.d_model for p in grid.plan_runs(config, vocab))
  assert v["learning_rate_source"] == {
    "rule": 1e-3,
    "lr_grid_size": f"L1_d{widest}",
    "same_size": False,
    "multiplier": 2.0,
    "horizon_factor": 1.0,
    "learning_rate": 2e-3,
  }
  assert (v["row"]["method"], v["row"]["branch_of"]) == ("cooldown", trained[0])
  assert v["row"]["learning_rate"] == 2e-3
  # lowered for a horizon longer than the trials' (the verification's own folder, planned only)
  config.scaling.lr_horizon_power = 0.5
  points = grid.plan_runs(config, vocab)
  fit = verify.read_fit(workdir, config)
  choices = {f"L1_d{widest}": {"best_multiplier": 2.0}}
  runs, source = verify.plan_runs(config, vocab, fit["prediction"], points, choices)
  trial_steps = min(p.steps for p in points if p.d_model == widest)
  assert source["horizon_factor"] == pytest.approx((runs[-1].steps / trial_steps) ** -0.5)
  assert source["horizon_factor"] < 1 and runs[-1].learning_rate == pytest.approx(
    2e-3 * source["horizon_factor"]
  )


def test_without_a_prediction_in_the_plans_conventions_it_says_what_to_do(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  with pytest.raises(ValueError, match=r"fit.json: run experiments.fit_scaling"):
    sweep.run_verification(config, workdir, _fake_runner)
  _write_fit(workdir, 1e4, {**COLUMNS, "params": "params_total"})
  with pytest.raises(ValueError, match=r"counts N as params_total and C as flops_6N; the plan"):
    sweep.run_verification(config, workdir, _fake_runner)
  _write_fit(workdir, math.inf)  # a degenerate fit's
  with pytest.raises(ValueError, match=r"predicts N_opt = inf, no model size"):
    sweep.run_verification(config, workdir, _fake_runner)


def test_a_law_of_every_parameter_picks_the_size_nearest_by_that_count(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  models = grid.ladder(config, sweep.vocab_size(config))
  totals = [counts.param_counts(m)["total"] for m in models]
  _write_fit(workdir, totals[3] * 1.05, law="chinchilla_total")
  trained = []

  def runner(cfg, run_dir):
    trained.append(cfg.model.d_model)
    return _fake_runner(cfg, run_dir)

  v = sweep.run_verification(config, workdir, runner)
  assert v is not None and trained == [models[3].d_model]
  assert v["trained"]["params_as_law_counts"] == totals[3]
  assert v["trained"]["params"] == counts.param_counts(models[3])["non_embedding"]
  assert v["params_ratio"] == pytest.approx(1 / 1.05)
  n, d = v["trained"]["params_as_law_counts"], v["trained"]["tokens"]
  law = laws.law(1.5, 10.0, 30.0, 0.3, 0.3)
  assert v["predicted_at_trained"]["loss"] == pytest.approx(float(laws.predict(law, n, d)))


def test_verify_seeds_train_the_point_again_and_it_is_compared_by_its_mean(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  config.scaling.verify_seeds = (1, 2)
  workdir = str(tmp_path / "sweep")
  models = grid.ladder(config, sweep.vocab_size(config))
  fit = _write_fit(workdir, counts.param_counts(models[2])["non_embedding"])
  losses = {0: 3.0, 1: 3.3, 2: 3.6}
  trained = []

  def runner(cfg, run_dir):
    trained.append((os.path.basename(run_dir), cfg.seed))
    summary = _fake_runner(cfg, run_dir)
    return {**summary, "eval_loss": losses[cfg.seed]}

  v = sweep.run_verification(config, workdir, runner)
  assert v is not None
  name = f"C1e09_L1_d{models[2].d_model}_verify"
  assert trained == [(name, 0), (f"{name}_seed1", 1), (f"{name}_seed2", 2)]
  assert v["trained"]["eval_losses"] == [3.0, 3.3, 3.6]
  assert v["trained"]["seeds"] == [None, 1, 2]
  assert v["loss_rel_error"] == pytest.approx(3.3 / fit["prediction"]["loss"] - 1)
  assert [r["seed"] for r in v["repeats"]] == [1, 2]
  assert "the mean of 3 seeds': 3, 3.3, 3.6" in verify.format_verification(v)
  assert sweep.run_verification(config, workdir, _must_not_train) == v
  config.scaling.verify_seeds = (1, 1)
  with pytest.raises(ValueError, match=r"verify_seeds=\(1, 1\): the seeds must be distinct"):
    sweep.run_verification(config, workdir, _must_not_train)


def _must_not_train(cfg, run_dir):
  raise AssertionError(f"finished run trained again: {run_dir}")


def test_the_error_is_also_given_in_sds_of_the_forecasts_seed_noise_spread(tmp_path):
  prediction = _write_fit(str(tmp_path), 5e3)["prediction"]
  row = {"name": "r", "params_non_embedding": 5e3, "tokens": 1e5, "flops_6N": 3e9}
  row["eval_loss"] = prediction["loss"] * 1.03
  v = verify.compare(prediction, row, COLUMNS)
  assert v["loss_error_in_noise_sd"] is None  # no seed noise measured
  prediction["seed_noise_spread"] = {"sd": 0.02}
  v = verify.compare(prediction, row, COLUMNS)
  assert v["loss_error_in_noise_sd"] == pytest.approx(1.5)
  lines = verify.format_verification(
    {**v, "learning_rate_source": {"rule": 1e-3, "learning_rate": 1e-3}}
  )
  assert "(observed / predicted - 1: +3.00%, outside, +1.5 sd of its seed-noise spread)" in lines
