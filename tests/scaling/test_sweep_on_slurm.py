"""A sweep handed to Slurm (launch/slurm_sweep.py) on a stand-in cluster (fake_slurm.py): the
job arrays and their dependencies, resubmission, and the table against the local sweep's."""

import json
import os
import re
import sys

import fake_slurm
import pytest
from test_sweep import _sweep_config
from test_verify import _write_fit

from conftest import REPO, config_flags, run_module
from launch import slurm_jobs, slurm_status, slurm_sweep
from lm.scaling import results, sweep, verify


def _cooldown_config(c):
  c = _sweep_config(c)
  c.scaling.method = "cooldown"
  return c


def _launch(tmp_path) -> slurm_sweep.Launch:
  args = slurm_sweep.slurm_args([f"--python={sys.executable}", f"--repo={REPO}"], str(tmp_path))
  return slurm_sweep.Launch(args, ("--config=c.py", f"--workdir={tmp_path}"), ("--launcher=slurm",))


def _submitted(cluster) -> list[tuple[list[str], str]]:
  """Each job the stand-in cluster holds: the runs of its tasks and its dependency."""
  out = []
  for job in fake_slurm.load(str(cluster))["jobs"]:
    with open(job["script"]) as f:
      runs = re.search(r"^runs=\((.*)\)$", f.read(), re.M)
    names = [re.sub(r"^\[\d+\]=", "", r) for r in runs.group(1).split()] if runs else []
    out.append((names or ["planner"], job["dependency"]))
  return out


def test_dry_run_renders_the_stable_runs_then_their_branches_by_rank(tiny_config, tmp_path):
  config = _cooldown_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  scripts = slurm_sweep.submit_round(config, workdir, _launch(tmp_path), 1, dry_run=True)
  assert not os.path.exists(workdir)  # a dry run writes nothing: no sweep.json, no record
  _, pending, _ = sweep.plan_round(config, workdir, 1)
  stables = [p.name for p in pending if p.role == "stable"]
  branches = {s: [p.name for p in pending if p.branch_of == s] for s in stables}
  ranks = max(len(b) for b in branches.values())
  assert len(scripts) == 1 + ranks  # the stable runs, then each one's k-th branch
  first = scripts[0].splitlines()
  assert first[0] == "# <1>: sbatch"
  assert f"#SBATCH --array=0-{len(stables) - 1}" in first
  assert f"runs=({' '.join(stables)})" in first
  assert 'run="${runs[$SLURM_ARRAY_TASK_ID]}"' in first
  assert f"#SBATCH --output={tmp_path}/slurm_logs/%x-%A_%a.out" in first
  assert "#SBATCH --gpus-per-node=1" in first and "#SBATCH --ntasks-per-node=1" in first
  step = next(line for line in first if line.startswith("srun "))
  assert step.endswith(f' experiments.sweep --config=c.py --workdir={tmp_path} --run="$run" &')
  for k, text in enumerate(scripts[1:]):
    lines = text.splitlines()
    assert lines[0] == f"# <{k + 2}>: sbatch --dependency=aftercorr:<1>"
    ids = [i for i, s in enumerate(stables) if len(branches[s]) > k]  # task i after stable i
    spec = re.findall(r"^#SBATCH --array=(\S+)$", text, re.M)[0]
    assert fake_slurm.array_ids(spec) == ids
    runs = re.findall(r"^runs=\((.*)\)$", text, re.M)[0].split()
    if ids != list(range(len(ids))):  # sparse: bash's [id]=run
      runs = [re.sub(r"^\[(\d+)\]=", lambda m: f"{m[1]}:", r) for r in runs]
      assert runs == [f"{i}:{branches[stables[i]][k]}" for i in ids]
    else:
      assert runs == [branches[stables[i]][k] for i in ids]
  assert not os.path.exists(os.path.join(workdir, slurm_jobs.JOBS_FILE))  # nothing submitted


def test_an_independent_sweep_is_one_array(tiny_config, tmp_path):
  config = _sweep_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  (text,) = slurm_sweep.submit_round(config, workdir, _launch(tmp_path), 1, dry_run=True)
  _, pending, _ = sweep.plan_round(config, workdir, 1)
  assert f"runs=({' '.join(p.name for p in pending)})" in text.splitlines()
  assert text.startswith("# <1>: sbatch\n") and f"#SBATCH --array=0-{len(pending) - 1}\n" in text


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
  trial's and branches after it, then the verification; a task lost mid-run is submitted again
  and resumes; the rows equal the local sweep's (names, hashes, losses: bitwise)."""
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
  assert re.search(r"<next round> +blocked", status), status  # the planner waits on the trials
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

  # Verification after a fit: one job that trains what `--verify` trains here.
  (row,) = [r for r in results.read_results(str(local)) if r["name"].startswith("C1.2e08")]
  for sweep_dir in (local, workdir):
    fit = _write_fit(str(sweep_dir), row["params_non_embedding"])
    fit["prediction"]["flops"] = row["budget"]  # the size's longest grid point again
    (sweep_dir / "fit.json").write_text(json.dumps(fit))
  assert run_module("experiments.sweep", *flags, f"--workdir={local}", "--verify").returncode == 0
  assert "<verification>" in sweep_cli("--verify")
  fake_slurm.run_queue(str(cluster), task_env)
  with open(workdir / "verification.json") as f, open(local / "verification.json") as g:
    got, want = json.load(f), json.load(g)
  assert got["row"]["name"] == "C1.2e08_L1_d8_verify_cooldown"
  for key in ("name", "config_hash", "eval_loss", "train_loss", "tokens", "learning_rate"):
    assert got["row"][key] == want["row"][key], key
  assert got["trained"] == want["trained"] and got["loss_rel_error"] == want["loss_rel_error"]


def test_the_verification_is_one_job_submitted_once(tiny_config, tmp_path, monkeypatch):
  config = _cooldown_config(tiny_config)
  workdir = tmp_path / "sweep"
  workdir.mkdir()
  launch = _launch(tmp_path)
  with pytest.raises(ValueError, match=r"no .*fit\.json: run experiments\.fit_scaling"):
    slurm_sweep.submit_verification(config, str(workdir), launch, dry_run=False)
  fit = {
    "prediction": {"law": "approach3", "n_opt": 5e3, "flops": 2e8},
    "columns": {"params": "params_non_embedding", "flops": "flops_6N"},
  }
  (workdir / "fit.json").write_text(json.dumps(fit))
  cluster = tmp_path / "cluster"
  cluster.mkdir()
  for key, value in fake_slurm.install(str(cluster)).items():
    monkeypatch.setenv(key, value)
  lines = slurm_sweep.submit_verification(config, str(workdir), launch, dry_run=False)
  assert lines == ["submitted job 100: <verification>"]
  again = slurm_sweep.submit_verification(config, str(workdir), launch, dry_run=False)
  assert again == ["the verification is queued or running already: job 100"]
  (workdir / verify.FILE).write_text(json.dumps({"row": {"name": "done"}}))
  done = slurm_sweep.submit_verification(config, str(workdir), launch, dry_run=False)
  assert done == [f"the verification is done already: {workdir / verify.FILE}"]
  assert len(fake_slurm.load(str(cluster))["jobs"]) == 1  # not submitted again
  (job,) = fake_slurm.load(str(cluster))["jobs"]
  with open(job["script"]) as f:
    script = f.read()
  assert "--array" not in script
  assert f"experiments.sweep --config=c.py --workdir={tmp_path} --verify &" in script


@pytest.mark.slow
def test_a_task_that_stops_early_is_requeued_and_resumes(tiny_config, tmp_path):
  """A task that exits 75 (here every 25 steps: train.stop_after_steps) requeues itself, its
  own array task only, and trains on from its checkpoint until the run is done."""
  config = _sweep_config(tiny_config)
  config.scaling.budgets, config.scaling.sizes_per_budget = (4e7,), 1
  cluster = tmp_path / "cluster"
  cluster.mkdir()
  env = {**fake_slurm.install(str(cluster)), "PYTHONPATH": REPO}
  workdir = tmp_path / "slurm"
  done = run_module(
    "experiments.sweep",
    "--config=experiments/configs/base.py",
    *config_flags(config),
    "--config.train.stop_after_steps=25",  # outside the run's identity: the same run
    f"--workdir={workdir}",
    "--launcher=slurm",
    f"--slurm=--python={sys.executable}",
    f"--slurm=--repo={REPO}",
    env=env,
  )
  assert done.returncode == 0, done.stderr
  task_env = {k: v for k, v in {**os.environ, **env}.items() if k != "XLA_FLAGS"}
  assert fake_slurm.run_queue(str(cluster), task_env) == ["100_0"] * 3  # 25, 50, 59 steps
  (row,) = results.read_results(str(workdir))
  assert row["name"] == "C4e07_L1_d8" and row["steps"] == 59
  out = (cluster / "100_0.out").read_text()
  assert out.count("requeued, it resumes from the workdir") == 2
  assert "resumed from step 25" in out and "resumed from step 50" in out


def test_status_warns_where_its_flags_plan_another_sweep(tiny_config, tmp_path, monkeypatch):
  config = _cooldown_config(tiny_config)
  workdir = str(tmp_path / "sweep")
  sweep.plan_round(config, workdir, 1)  # writes the plan, as a submission does
  cluster = tmp_path / "cluster"
  cluster.mkdir()
  for key, value in fake_slurm.install(str(cluster)).items():
    monkeypatch.setenv(key, value)
  lines = slurm_status.status_lines(config, workdir, "sweep")
  assert re.match(r"\d+ runs planned: 0 done", lines[0]), lines
  other = _cooldown_config(tiny_config)
  other.data.batch_size *= 2  # the same names, other runs
  lines = slurm_status.status_lines(other, workdir, "sweep")
  assert re.match(
    r"warning: these flags plan \d+ grid points, .*/sweep\.json \d+; \d+ differ \(e\.g\. C",
    lines[0],
  )
  assert lines[0].endswith("is this the config and overrides the sweep was started with?")


def test_a_bad_slurm_flag_is_one_line(tmp_path):
  with pytest.raises(ValueError, match=r"^--slurm=--partitionn=gpu: not a flag of launch\.slurm"):
    slurm_sweep.slurm_args(["--partition=cpu", "--partitionn=gpu"], str(tmp_path))
  with pytest.raises(ValueError, match=r"^--slurm: argument --nodes: invalid int value: 'two'$"):
    slurm_sweep.slurm_args(["--nodes=two"], str(tmp_path))


def test_without_slurm_on_path_the_submission_says_so(tiny_config, tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
  workdir = str(tmp_path / "sweep")
  with pytest.raises(RuntimeError, match=r"^sbatch is not on PATH: --launcher=slurm and --status"):
    slurm_sweep.submit_round(_cooldown_config(tiny_config), workdir, _launch(tmp_path), 1, False)
