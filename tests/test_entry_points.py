"""The entry points work from any directory: the package installs them as commands, their
`--help` shows their docstring as written and their flags, and a bundled config is found from
outside the repository."""

import ast
import fnmatch
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import CORPUS, REPO
from lm import cli

ENTRY_FOLDERS = ("experiments", "launch")


def _outside(args: list[str], cwd) -> subprocess.CompletedProcess:
  """`args` run from `cwd` (outside the repository), the project on the path as an install puts
  it."""
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("XLA_FLAGS", None)
  return subprocess.run(
    args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
  )


def _entry_modules() -> list[str]:
  """The modules run as commands: those of experiments/ and launch/ with a `__main__` block."""
  names = []
  for folder in ENTRY_FOLDERS:
    for name in sorted(os.listdir(os.path.join(REPO, folder))):
      if not name.endswith(".py"):
        continue
      with open(os.path.join(REPO, folder, name)) as f:
        if 'if __name__ == "__main__":' in f.read():
          names.append(f"{folder}.{name[:-3]}")
  return names


def _defines(module: str, function: str) -> bool:
  with open(os.path.join(REPO, *module.split(".")) + ".py") as f:
    tree = ast.parse(f.read())
  return any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body)


def test_every_entry_point_is_an_installed_command():
  tomllib = pytest.importorskip("tomllib")
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)
  scripts = project["project"]["scripts"]
  packaged = project["tool"]["setuptools"]["packages"]["find"]["include"]
  targets = {target.split(":")[0]: target.split(":")[1] for target in scripts.values()}
  assert sorted(targets) == _entry_modules()
  for module, function in targets.items():
    assert any(fnmatch.fnmatch(module, pattern) for pattern in packaged), module
    assert _defines(module, function), f"{module} has no {function}()"
  assert any(fnmatch.fnmatch("experiments.configs", pattern) for pattern in packaged)


def test_a_command_shows_its_docstring_and_flags_from_another_directory(tmp_path):
  # What the console script `lm-train` runs: its own __main__, not experiments.train.
  script = "import sys; from experiments.train import run; sys.exit(run())"
  out = _outside([sys.executable, "-c", script, "--help"], tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.startswith("Train a language model.")
  assert "--print_config" in out.stdout and "--workdir" in out.stdout


def test_the_installed_command_runs_from_another_directory(tmp_path):
  """The console script itself, where this environment has the project installed (`make`
  installs it), found without the repository on the path."""
  command = os.path.join(os.path.dirname(sys.executable), "lm-train")
  if not os.path.exists(command):
    pytest.skip("the project is not installed in this environment (pip install --no-deps -e .)")
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
  out = subprocess.run(
    [command, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.startswith("Train a language model.") and "--print_config" in out.stdout


def test_docstrings_show_continued_commands_as_written():
  """A `\\` at a line's end in a docstring must be written `\\\\`: alone it joins the lines,
  and `--help` shows a run of spaces where the command continued."""
  for module in _entry_modules():
    with open(os.path.join(REPO, *module.split(".")) + ".py") as f:
      doc = ast.get_docstring(ast.parse(f.read()), clean=False) or ""
    assert not re.search(r"\S {5,}\S", doc), module


def test_a_bundled_config_prints_from_another_directory(tmp_path):
  out = _outside(
    [
      sys.executable,
      "-m",
      "experiments.train",
      "--config=experiments/configs/llama_style.py",
      f"--config.data.path={CORPUS}",
      "--config.train.steps=300",
      "--print_config",
    ],
    tmp_path,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  config = json.loads(out.stdout)
  assert config["model"]["mlp"] == "swiglu" and config["train"]["steps"] == 300
  assert os.listdir(tmp_path) == []  # no run, no data


def test_print_config_runs_the_checks_and_warns_as_a_run_would(tmp_path):
  base = [sys.executable, "-m", "experiments.train", "--config=experiments/configs/base.py"]
  bad = _outside(
    [*base, f"--config.data.path={CORPUS}", "--config.model.num_heads=5", "--print_config"],
    tmp_path,
  )
  assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr[-3000:]
  assert bad.stderr.strip().splitlines()[-1].startswith("error: config.model.d_model=")
  muon = _outside(
    [*base, f"--config.data.path={CORPUS}", "--config.optim.name=muon", "--print_config"], tmp_path
  )
  assert muon.returncode == 0, muon.stderr[-3000:]
  assert "set --config.optim.learning_rate=0.02" in muon.stderr
  assert json.loads(muon.stdout)["optim"]["name"] == "muon"


def test_a_relative_config_path_is_looked_for_here_then_in_the_project(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  bundled = "experiments/configs/shakespeare_char.py"
  assert cli.find_config(["train", f"--config={bundled}:x"]) == [
    "train",
    f"--config={os.path.join(REPO, bundled)}:x",
  ]
  (tmp_path / "experiments" / "configs").mkdir(parents=True)
  (tmp_path / bundled).write_text("")
  assert cli.find_config([f"--config={bundled}"]) == [f"--config={bundled}"]
  assert cli.find_config(["--config", "experiments/configs/base.py"]) == [
    "--config",
    os.path.join(REPO, "experiments/configs/base.py"),
  ]
  with pytest.raises(SystemExit, match=r"^error: --config=mine.py: no such file here or in "):
    cli.find_config(["--config=mine.py"])
