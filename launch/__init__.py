"""Launchers: several local processes, TPU VM pod slices, Slurm."""
