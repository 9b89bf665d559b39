import shlex

import pytest

from launch import tpu_vm

TRAIN = ["--config=experiments/configs/gpt2_124m.py", "--workdir=/tmp/runs/gpt2"]


def _lines(capsys, *argv) -> list[str]:
  assert tpu_vm.main(["--name=lm", "--dry-run", *argv]) == 0
  return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("acc,zone,gcloud_acc,runtime", [
    ("v5e-16", "us-west4-a", "v5litepod-16", "v2-alpha-tpuv5-lite"),
    ("v4-8", "us-central2-b", "v4-8", "tpu-ubuntu2204-base")])
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


def test_queued_resource(capsys):
  [create] = _lines(capsys, "--zone=us-west4-a", "--accelerator_type=v5e-16", "--queued",
                    "--spot", "create")
  assert create.startswith("gcloud compute tpus queued-resources create lm --node-id=lm ")
  assert "--accelerator-type=v5litepod-16" in create and "--spot" in create
