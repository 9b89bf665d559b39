"""A sweep handed to Slurm (launch/slurm_sweep.py) on a stand-in cluster (fake_slurm.py): the
job arrays and their dependencies, resubmission, and the table against the local sweep's."""

import json
import os
import re
import sys

import fake_slurm
import pytest
from test_sweep import _sweep_config

from conftest import REPO, config_flags, run_module
from launch import slurm_jobs, slurm_sweep
from lm.scaling import results, sweep


def _cooldown_config(c):
  c = _sweep_config(c)
  c.scaling.method = "cooldown"
  return c


def _launch(tmp_path) -> slurm_sweep.Launch:
  args = slurm_sweep.slurm_args([f"--python={sys.executable}", f"--repo={REPO}"])
  return slurm_sweep.Launch(args, ("--config=c.py", f"--workdir={tmp_path}"), ("--launcher=slurm",))


def _submitted(cluster) -> list[tuple[list[str], str]]:
  """Each job the stand-in cluster holds: the runs of its tasks and its dependency."""
  out = []
  for job in fake_slurm.load(str(cluster))["jobs"]:
    with open(job["script"]) as f:
      runs = re.search(r"^runs=\((.*)\)$", f.read(), re.M)
    out.append((runs.group(1).split() if runs else ["planner"], job["dependency"]))
  return out


def test_dry_run_renders_an_array_per_round_and_per_stable_run(tiny_config, tmp_path):
  config = _cooldown_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  scripts = slurm_sweep.submit_round(config, workdir, _launch(tmp_path), 1, dry_run=True)
  _, pending, _ = sweep.plan_round(config, workdir, 1)
  stables = [p.name for p in pending if p.role == "stable"]
  assert len(scripts) == 1 + len(stables)  # the stable runs, then each one's branches
  first = scripts[0].splitlines()
  assert first[0] == f"# sbatch  (array of {len(stables)})"
  assert f"#SBATCH --array=0-{len(stables) - 1}" in first
  assert f"runs=({' '.join(stables)})" in first
  assert 'run="${runs[$SLURM_ARRAY_TASK_ID]}"' in first
  assert "#SBATCH --output=slurm_logs/%x-%A_%a.out" in first
  assert "#SBATCH --gpus-per-node=1" in first and "#SBATCH --ntasks-per-node=1" in first
  step = next(line for line in first if line.startswith("srun "))
  assert step.endswith(f' experiments.sweep --config=c.py --workdir={tmp_path} --run="$run" &')
  for stable, text in zip(stables, scripts[1:], strict=True):
    branches = [p.name for p in pending if p.branch_of == stable]
    assert text.splitlines()[0].startswith(f"# sbatch --dependency=afterok:<{stable}>")
    assert f"runs=({' '.join(branches)})" in text
  assert not os.path.exists(os.path.join(workdir, slurm_jobs.JOBS_FILE))  # nothing submitted


def test_an_interrupted_submission_resumes_without_duplicates(tiny_config, tmp_path, monkeypatch):
  config = _cooldown_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  cluster = tmp_path / "cluster"
  cluster.mkdir()
  for key, value in fake_slurm.install(str(cluster)).items():
    monkeypatch.setenv(key, value)
  monkeypatch.setenv("FAKE_SBATCH_FAIL", "2")  # the second array is refused
  launch = _launch(tmp_path)
  with pytest.raises(RuntimeError, match=r"sbatch .* failed .*Socket timed out"):
    slurm_sweep.submit_round(config, workdir, launch, 1, dry_run=False)
  assert len(slurm_jobs.read_jobs(workdir)) == 1  # the stable runs' array, recorded
  lines = slurm_sweep.submit_round(config, workdir, launch, 1, dry_run=False)
  _, pending, _ = sweep.plan_round(config, workdir, 1)
  jobs = _submitted(cluster)
  assert sorted(r for runs, _ in jobs for r in runs) == sorted(p.name for p in pending)
  stables, stable_deps = jobs[0]
  assert stable_deps == ""
  for runs, dependency in jobs[1:]:  # each stable run's branches after its task of the first array
    parent = {p.name: p.branch_of for p in pending}[runs[0]]
    assert dependency == f"afterok:{100}_{stables.index(parent)}"
  assert lines[-1].startswith("queued or running already, not submitted again: stable_")
  calls = fake_slurm.load(str(cluster))["calls"]
  again = slurm_sweep.submit_round(config, workdir, launch, 1, dry_run=False)
  assert again[0].startswith("queued or running already") and len(again) == 1
  assert fake_slurm.load(str(cluster))["calls"] == calls  # all queued: no sbatch


@pytest.mark.slow
def test_a_sweep_on_slurm_gives_the_local_sweeps_table(tiny_config, tmp_path):
  """Learning-rate trials (a planner job after them), a stable run that continues the best
  trial's and branches after it; a task lost mid-run is submitted again and resumes; the rows
  equal the local sweep's (names, hashes, losses: bitwise)."""
  config = _cooldown_config(tiny_config)
  config.scaling.sizes_per_budget = 1
  config.scaling.lr_grid = (0.5, 1.0)
  flags = ["--config=experiments/configs/base.py", *config_flags(config)]
  local = tmp_path / "local"
  assert run_module("experiments.sweep", *flags, f"--workdir={local}").returncode == 0
  cluster = tmp_path / "cluster"
  cluster.mkdir()
  env = {**fake_slurm.install(str(cluster)), "FAKE_SRUN_FAIL_ONCE": "stable_L1_d8_lr1"}
  env = {**env, "PYTHONPATH": REPO}
  workdir = tmp_path / "slurm"
  on_slurm = [
    *flags,
    f"--workdir={workdir}",
    "--launcher=slurm",
    f"--slurm=--python={sys.executable}",
    f"--slurm=--repo={REPO}",
    "--slurm=--gpus_per_node=0",
  ]

  def sweep_cli(*extra):
    done = run_module("experiments.sweep", *on_slurm, *extra, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout

  assert "submitted job" in sweep_cli()
  assert "not submitted again" in sweep_cli()  # queued: not twice
  task_env = {k: v for k, v in {**os.environ, **env}.items() if k != "XLA_FLAGS"}
  fake_slurm.run_queue(str(cluster), task_env)
  status = sweep_cli("--status")
  assert re.search(r"stable_L1_d8_lr1 +failed \(job \d+_1: FAILED\)", status), status
  assert re.search(r"C4e07_L1_d8_lr1_cooldown +blocked", status), status
  resubmitted = sweep_cli()
  assert "stable_L1_d8_lr1" in resubmitted and "stable_L1_d8_lr0.5" not in resubmitted
  fake_slurm.run_queue(str(cluster), task_env)  # the planner submits the second round
  outputs = "".join(p.read_text() for p in cluster.glob("*.out"))
  assert "resumed from step 2" in outputs
  assert "nothing to submit" in sweep_cli()
  assert re.search(r"3 runs planned: 3 done, 0 running, 0 queued, 0 failed", sweep_cli("--status"))
  for table in (results.RESULTS_JSONL, "lr_trials.jsonl"):
    want = {r["name"]: r for r in results.read_results(str(local), table)}
    got = {r["name"]: r for r in results.read_results(str(workdir), table)}
    assert sorted(got) == sorted(want) and want
    for name, row in got.items():
      keys = ("config_hash", "eval_loss", "train_loss", "tokens", "steps", "learning_rate")
      assert {k: row[k] for k in keys} == {k: want[name][k] for k in keys}, name
  with open(workdir / "lr_choice.json") as f, open(local / "lr_choice.json") as g:
    assert json.load(f) == json.load(g)
