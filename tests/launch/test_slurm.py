import os
import signal
import subprocess
import time

import pytest

from launch import slurm


def test_renders_one_process_per_gpu(capsys):
  argv = [
    "--nodes=2",
    "--gpus_per_node=4",
    "--partition=a100",
    "--repo=/shared/lm",
    "--dry-run",
    "--",
    "--config=experiments/configs/gpt2_124m.py",
    "--workdir=/shared/r",
  ]
  assert slurm.main(argv) == 0
  script = capsys.readouterr().out
  for line in (
    "#SBATCH --nodes=2",
    "#SBATCH --ntasks-per-node=4",
    "#SBATCH --gpus-per-node=4",
    "#SBATCH --partition=a100",
    "cd /shared/lm",
    "export LM_DISTRIBUTED=auto",
    "#SBATCH --requeue",
    "#SBATCH --signal=B:USR1@300",
    "#SBATCH --open-mode=append",
    "srun --kill-on-bad-exit=1 .venv/bin/python -m experiments.train "
    "--config=experiments/configs/gpt2_124m.py --workdir=/shared/r &",
  ):
    assert line in script.splitlines(), line


# Stand-ins for srun (runs the task itself) and scontrol (records its arguments); the task
# behaves as training does: SIGTERM saves and exits 75; FAKE_EXIT ends it at once instead.
_SRUN = '#!/bin/bash\nshift\nexec "$@"\n'
_SCONTROL = '#!/bin/bash\necho "$@" >> "$SCONTROL_LOG"\n'
_TASK = """#!/bin/bash
trap 'echo "saved"; exit 75' TERM
echo "task $*" > "$TASK_STARTED"
if [ -n "${FAKE_EXIT:-}" ]; then exit "$FAKE_EXIT"; fi
while true; do sleep 0.05; done
"""


@pytest.mark.parametrize(
  "case,status,requeued",
  [
    ("time limit", 75, True),
    ("finished", 0, False),
    ("failed", 1, False),
    ("stop_after_steps", 75, True),
  ],
)
def test_the_script_saves_and_requeues_at_the_time_limit(tmp_path, case, status, requeued):
  for name, text in (("srun", _SRUN), ("scontrol", _SCONTROL), ("task", _TASK)):
    (tmp_path / name).write_text(text)
    (tmp_path / name).chmod(0o755)
  script = tmp_path / "train.sbatch"
  args = slurm.parser().parse_args([f"--repo={tmp_path}", f"--python={tmp_path / 'task'}"])
  args.train_args = ["--workdir=/shared/r"]
  script.write_text(slurm.render(args))
  env = dict(
    os.environ,
    PATH=f"{tmp_path}:{os.environ['PATH']}",
    SLURM_JOB_ID="42",
    SCONTROL_LOG=str(tmp_path / "scontrol.log"),
    TASK_STARTED=str(tmp_path / "started"),
  )
  if case != "time limit":
    env["FAKE_EXIT"] = str(status)
  job = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, text=True)
  if case == "time limit":
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
      assert time.monotonic() < deadline
      time.sleep(0.05)
    job.send_signal(signal.SIGUSR1)  # what Slurm sends --save_s seconds before the limit
  out, _ = job.communicate(timeout=30)
  assert job.returncode == status
  assert (tmp_path / "started").read_text().split() == [
    "task",
    "-m",
    "experiments.train",
    "--workdir=/shared/r",
  ]
  log = tmp_path / "scontrol.log"
  assert (log.read_text() if log.exists() else "") == ("requeue 42\n" if requeued else "")
  assert ("requeued, it resumes from the workdir" in out) == requeued
  assert ("[slurm] time limit near: SIGTERM to every task" in out) == (case == "time limit")
