import os
import shlex
import signal
import subprocess
import time

import pytest

from launch import tpu_vm

TRAIN = ["--config=experiments/configs/gpt2_124m.py", "--workdir=/tmp/runs/gpt2"]


def _lines(capsys, *argv) -> list[str]:
  assert tpu_vm.main(["--name=lm", "--dry-run", *argv]) == 0
  return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
  "acc,zone,gcloud_acc,runtime",
  [
    ("v5e-16", "us-west4-a", "v5litepod-16", "v2-alpha-tpuv5-lite"),
    ("v4-8", "us-central2-b", "v4-8", "tpu-ubuntu2204-base"),
  ],
)
def test_dry_run_prints_the_gcloud_commands(capsys, acc, zone, gcloud_acc, runtime):
  [create] = _lines(capsys, f"--zone={zone}", f"--accelerator_type={acc}", "create")
  assert create.startswith("gcloud compute tpus tpu-vm create lm ")
  assert f"--accelerator-type={gcloud_acc}" in create and f"--version={runtime}" in create
  assert f"--zone={zone}" in create
  install = _lines(capsys, f"--zone={zone}", "install")
  assert all("--worker=all" in c and f"--zone={zone}" in c for c in install)
  [train] = _lines(capsys, f"--zone={zone}", "train", "--", *TRAIN)
  argv = shlex.split(train)
  assert argv[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"] and "--worker=all" in argv
  remote = next(a for a in argv if a.startswith("--command="))
  assert f"LM_DISTRIBUTED=auto python3 -m experiments.train {' '.join(TRAIN)}" in remote
  [delete] = _lines(capsys, f"--zone={zone}", "delete")
  assert delete == f"gcloud compute tpus tpu-vm delete lm --quiet --zone={zone}"


def test_install_puts_the_locked_versions_on_the_workers(capsys):
  [_, copy, install] = _lines(capsys, "--zone=z", "install")
  assert "/requirements.lock " in copy
  remote = next(a for a in shlex.split(install) if a.startswith("--command="))
  steps = remote.removeprefix("--command=cd ~/lm && ").split(" && ")
  pip = "python3 -m pip install -q"
  assert steps[0] == f"{pip} -r requirements.lock"
  # JAX's TPU runtime at the lock's JAX, everything the lock pins held to it.
  with open(os.path.join(tpu_vm.REPO, "requirements.lock")) as f:
    [jax] = [line.strip() for line in f if line.startswith("jax==")]
  assert steps[1].startswith(f"{pip} -c requirements.lock 'jax[tpu]=={jax.split('==')[1]}' ")
  assert steps[2] == f"{pip} --no-deps -e ."
  assert len(steps) == 3


def test_queued_resource(capsys):
  [create] = _lines(
    capsys, "--zone=us-west4-a", "--accelerator_type=v5e-16", "--queued", "--spot", "create"
  )
  assert create.startswith("gcloud compute tpus queued-resources create lm --node-id=lm ")
  assert "--accelerator-type=v5litepod-16" in create and "--spot" in create


def test_train_runs_detached_and_stop_and_logs_reach_it(capsys):
  [train] = _lines(capsys, "--zone=z", "train", "--", *TRAIN)
  remote = next(a for a in shlex.split(train) if a.startswith("--command="))
  assert "setsid nohup bash -c" in remote and ">> ~/lm/train.log 2>&1 < /dev/null &" in remote
  assert "echo $! > ~/lm/train.pid" in remote and "tee" not in remote
  [stop] = _lines(capsys, "--zone=z", "stop")
  assert "--worker=all" in stop and 'kill -TERM "$(cat ~/lm/train.pid)"' in stop
  [logs] = _lines(capsys, "--zone=z", "--worker=1", "logs", "--follow")
  assert "--worker=1" in logs and "tail -n 100 -F ~/lm/train.log" in logs


_FAKE_TRAINER = """#!/bin/bash
# Stands in for python3 -m experiments.train: saves and exits 75 on SIGTERM, as the real one does.
trap 'echo "saved, exiting"; exit 75' TERM
echo "training $* LM_DISTRIBUTED=$LM_DISTRIBUTED"
while true; do sleep 0.05; done
"""


def _wait_for(predicate, timeout_s=30.0):
  deadline = time.monotonic() + timeout_s
  while not predicate():
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.05)


def test_the_worker_commands_detach_refuse_a_second_run_and_stop_it(tmp_path):
  """Runs what `train` and `stop` send to a worker, here, with a fake trainer: the run outlives
  the shell (and the session) that started it, and `stop` makes it save and exit 75."""
  home, bin_dir = tmp_path / "home", tmp_path / "bin"
  (home / "lm").mkdir(parents=True)
  bin_dir.mkdir()
  (bin_dir / "python3").write_text(_FAKE_TRAINER)
  (bin_dir / "python3").chmod(0o755)
  env = dict(os.environ, HOME=str(home), PATH=f"{bin_dir}:{os.environ['PATH']}")
  [stop] = tpu_vm.commands(tpu_vm.parser().parse_args(["--name=lm", "--zone=z", "stop"]))
  stop = next(a for a in stop if a.startswith("--command="))[len("--command=") :]

  def worker(command):
    """As over ssh: a shell in a session of its own, which ends when the command returns."""
    shell = subprocess.Popen(
      ["bash", "-c", command],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      start_new_session=True,
    )
    out, err = shell.communicate(timeout=30)
    return shell.pid, shell.returncode, out, err

  session, code, out, _ = worker(tpu_vm.detached_train(TRAIN))
  assert code == 0 and "training in the background" in out
  pid_file, log = home / "lm" / "train.pid", home / "lm" / "train.log"
  _wait_for(lambda: pid_file.exists() and "training" in log.read_text())
  pid = int(pid_file.read_text())
  assert os.getsid(pid) != session  # a hangup of the ssh session does not reach it
  with pytest.raises(ProcessLookupError):
    os.killpg(session, signal.SIGHUP)  # nothing is left in the starting shell's group
  os.kill(pid, 0)  # still running
  _, code, _, err = worker(tpu_vm.detached_train(TRAIN))
  assert code == 1 and f"already training (pid {pid}); stop it first" in err

  assert "SIGTERM sent" in worker(stop)[2]
  _wait_for(lambda: "exit status" in log.read_text())
  lines = log.read_text().splitlines()
  assert f"training -m experiments.train {' '.join(TRAIN)} LM_DISTRIBUTED=auto" in lines
  assert lines[-2] == "saved, exiting" and lines[-1].endswith(" exit status 75")
  assert "not training" in worker(stop)[2]
