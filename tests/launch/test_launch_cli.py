"""The launchers' `--help`: the whole module docstring as written, and `-- TRAIN_FLAGS`."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["local", "tpu_vm", "slurm"])
def test_help_shows_the_docstring_as_written_and_the_train_flags(capsys, name):
  launcher = importlib.import_module(f"launch.{name}")
  with pytest.raises(SystemExit) as exit_:
    launcher.main(["--help"])
  assert exit_.value.code == 0
  shown = capsys.readouterr().out
  usage = shown.split("\n\n")[0]
  assert usage.startswith("usage: ") and usage.endswith(" [-- TRAIN_FLAGS ...]")
  assert launcher.__doc__ in shown  # every line, the last sentence and the `\` included
  assert " -- \\\n" in shown
