from launch import slurm


def test_renders_one_process_per_gpu(capsys):
  argv = ["--nodes=2", "--gpus_per_node=4", "--partition=a100", "--repo=/shared/lm",
          "--dry-run", "--", "--config=experiments/configs/gpt2_124m.py", "--workdir=/shared/r"]
  assert slurm.main(argv) == 0
  script = capsys.readouterr().out
  for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
               "#SBATCH --partition=a100", "cd /shared/lm", "export LM_DISTRIBUTED=auto",
               "srun --kill-on-bad-exit=1 .venv/bin/python -m experiments.train "
               "--config=experiments/configs/gpt2_124m.py --workdir=/shared/r"):
    assert line in script.splitlines(), line
