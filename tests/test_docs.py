"""The pages' commands run as written and their links resolve (README.md, docs/, results/).

Read without running anything heavy: each ```sh command's `python -m MODULE` (or script) must
exist and define the flags it is given (the `DEFINE_*` / `add_argument` names in its source,
else those its `--help` lists); `--config=FILE` must exist and each `--config.a.b=v` name a
field of that config; `make TARGET` must be a Makefile target. Relative links, their anchors,
and repository paths or `lm.` names in backticks must exist.
"""

from __future__ import annotations

import ast
import functools
import importlib
import itertools
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

# Pages whose commands and named paths are checked; benchmarks/README.md only for its links.
PAGES = (
  "README.md",
  *sorted(f"docs/{n}" for n in os.listdir(os.path.join(REPO, "docs")) if n.endswith(".md")),
  "results/scaling_cpu/README.md",
)
LINKED_PAGES = (*PAGES, "benchmarks/README.md")
# Programs that are not this project's, named in the pages' commands.
OTHER_PROGRAMS = frozenset({"git", "gcloud", "ssh", "pip", "wandb", "sbatch", "tensorboard"})
# Folders of the repository that a backticked path may start with.
TOP_FOLDERS = ("lm/", "experiments/", "launch/", "benchmarks/", "tests/", "docs/", "results/")
# Separators between the simple commands of a line; a redirection's target is not an argument.
SEPARATORS = frozenset({";", "&&", "||", "|", "&"})
REDIRECTIONS = frozenset({">", ">>", "<", "2>"})
TRAIN = "experiments.train"


def _read(page: str) -> str:
  with open(os.path.join(REPO, page), encoding="utf-8") as f:
    return f.read()


def _sh_commands(page: str) -> list[tuple[int, str]]:
  """(line number, command line) of each command in the page's ```sh blocks, continuation
  lines joined."""
  commands, text = [], _read(page)
  for block in re.finditer(r"^```sh\n(.*?)^```", text, re.S | re.M):
    first_line = text[: block.start(1)].count("\n") + 1
    pending, start = "", first_line
    for i, line in enumerate(block.group(1).splitlines()):
      if not pending:
        start = first_line + i
      if line.rstrip().endswith("\\"):
        pending += line.rstrip()[:-1] + " "
        continue
      command = (pending + line).strip()
      pending = ""
      if command and not command.startswith("#"):
        commands.append((start, command))
  return commands


def _simple_commands(line: str) -> list[list[str]]:
  """The words of each simple command on a shell line (comments and redirections left out)."""
  lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
  lexer.whitespace_split = True
  commands, words, skip_next = [], [], False
  for word in lexer:
    if skip_next:
      skip_next = False
    elif word in SEPARATORS:
      commands.append(words)
      words = []
    elif word in REDIRECTIONS:
      skip_next = True
    else:
      words.append(word)
  # Environment assignments before a command (`PYTHONPATH=. python ...`) are not its words.
  commands = [list(itertools.dropwhile(_is_assignment, c)) for c in [*commands, words]]
  return [c for c in commands if c]


def _is_assignment(word: str) -> bool:
  return re.match(r"^[A-Za-z_]\w*=", word) is not None


@functools.cache
def _make_targets() -> frozenset[str]:
  return frozenset(re.findall(r"^([\w.-]+)\s*:(?!=)", _read("Makefile"), re.M))


def _source(module: str, package_file: str = "__init__.py") -> str | None:
  """The source file of a dotted module name (a package's `package_file`), or None."""
  base = os.path.join(REPO, *module.split("."))
  for path in (base + ".py", os.path.join(base, package_file)):
    if os.path.isfile(path):
      return path
  return None


def _module_path(module: str) -> str | None:
  """The source file that `python -m module` runs, or None."""
  return _source(module, "__main__.py")


def _string(node: ast.AST) -> str | None:
  """A string literal's value, or None."""
  return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@functools.cache
def _source_flags(path: str) -> frozenset[str]:
  """Flag names a script defines in its source: absl `DEFINE_*(name, ...)` (config_flags'
  included) and argparse `add_argument('--name', ...)`."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  names = set()
  for node in ast.walk(tree):
    if not isinstance(node, ast.Call):
      continue
    func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    named = [k.value for k in node.keywords if k.arg == "name"]
    strings = [s for s in map(_string, [*node.args, *named]) if s is not None]
    if func.startswith("DEFINE_") and strings:
      names.add(strings[0])
    elif func == "add_argument":
      names.update(s.lstrip("-") for s in strings if s.startswith("-"))
  return frozenset(names)


@functools.cache
def _help_flags(path: str) -> frozenset[str]:
  """Flag names the script's own `--help` lists (absl's `--helpfull`): flags defined by what it
  imports, and the libraries' own."""
  with open(path, encoding="utf-8") as f:
    helper = "--help" if "argparse" in f.read() else "--helpfull"
  out = subprocess.run(
    [sys.executable, path, helper],
    cwd=REPO,
    env={**os.environ, "PYTHONPATH": REPO},
    check=False,  # absl's --helpfull exits 1 after printing the flags
    capture_output=True,
    text=True,
    timeout=120,
  )
  return frozenset(re.findall(r"--(?:\[no\])?([\w-]+)", out.stdout + out.stderr))


def _flag_problems(path: str, args: list[str]) -> list[str]:
  """Flags in `args` that the script at `path` does not define."""
  problems = []
  for arg in args:
    if not arg.startswith("--") or arg == "--" or arg.startswith("--config."):
      continue
    name = arg[2:].split("=")[0]
    candidates = {name, name[2:]} if name.startswith("no") else {name}
    if candidates & _source_flags(path) or candidates & _help_flags(path):
      continue
    problems.append(f"{os.path.relpath(path, REPO)} has no flag --{name}")
  return problems


@functools.cache
def _config(path: str):
  """The config that `--config=path` gives (its get_config())."""
  module = os.path.splitext(os.path.normpath(path))[0].replace(os.sep, ".")
  return importlib.import_module(module).get_config()


def _config_problems(args: list[str]) -> list[str]:
  """`--config=FILE` that does not exist, or `--config.a.b=v` that names no field of it."""
  path, overrides = "experiments/configs/base.py", []
  for i, arg in enumerate(args):
    if arg.startswith("--config="):
      path = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(args):
      path = args[i + 1]
    elif arg.startswith("--config."):
      overrides.append(arg[len("--config.") :].split("=")[0])
  if not os.path.isfile(os.path.join(REPO, path)):
    return [f"no config file {path}"]
  problems = []
  for field in overrides:
    node = _config(path)
    for part in field.split("."):
      if not hasattr(node, "keys") or part not in node:
        problems.append(f"{path} has no field {field}")
        break
      node = node[part]
  return problems


def _python_problems(args: list[str]) -> list[str]:
  """What is wrong with `python ARGS`: a missing module or script, a flag it does not define,
  a config file or field that does not exist. A launcher's arguments after `--` are
  experiments.train's."""
  if args[:1] == ["-m"] and len(args) > 1:
    module, rest = args[1], args[2:]
    path = _module_path(module)
  elif args and args[0].endswith(".py"):
    module, rest = args[0], args[1:]
    path = os.path.join(REPO, args[0]) if os.path.isfile(os.path.join(REPO, args[0])) else None
  else:
    return [f"not a module or script: python {' '.join(args)}"]
  if path is None:
    return [f"no module or script {module}"]
  split = rest.index("--") if "--" in rest else len(rest)
  own, passed = rest[:split], rest[split + 1 :]
  problems = _flag_problems(path, own)
  if passed and module.startswith("launch."):
    problems += _flag_problems(_module_path(TRAIN) or "", passed)
  return problems + _config_problems(own + passed)


def _problems(line: str) -> list[str]:
  """Everything on a shell line that would not run as written."""
  problems = []
  for words in _simple_commands(line):
    program, args = words[0], words[1:]
    if os.path.basename(program) in ("python", "python3"):
      problems += _python_problems(args)
    elif program == "make":
      problems += [f"no make target {a}" for a in args if "=" not in a and a not in _make_targets()]
    elif program in ("bash", "sh"):
      problems += [f"no script {a}" for a in args[:1] if not os.path.isfile(os.path.join(REPO, a))]
    elif program not in OTHER_PROGRAMS:
      problems.append(f"not a command of this project: {program}")
  return problems


def _slug(heading: str) -> str:
  """GitHub's anchor for a heading."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> frozenset[str]:
  """The anchors of a markdown text's headings (code blocks left out)."""
  text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
  return frozenset(_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M))


def _link_problems(page: str, text: str) -> list[str]:
  """Relative links in `text`, the page at `page`, whose file, or whose anchor in a markdown
  file, does not exist."""
  problems = []
  for target in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"^[a-z]+:", target):
      continue  # http:, https:, mailto:
    path, _, anchor = target.partition("#")
    linked = os.path.normpath(os.path.join(os.path.dirname(page), path))
    if path and not os.path.exists(os.path.join(REPO, linked)):
      problems.append(f"{page}: no file {linked}")
    elif anchor and (not path or linked.endswith(".md")):
      anchors = _anchors(_read(linked) if path else text)
      if anchor not in anchors:
        problems.append(f"{page}: no heading #{anchor} in {linked if path else page}")
  return problems


def _defines(path: str, name: str) -> bool:
  """Whether the module at `path` defines `name` at its top level."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
      return True
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    if any(isinstance(t, ast.Name) and t.id == name for t in targets):
      return True
  return False


def _name_problems(page: str, text: str) -> list[str]:
  """Backticked repository paths (`lm/model/counts.py`) and `lm.` names
  (`lm.runs.loading.load_run`) in `text`, the page at `page`, that do not exist."""
  problems = []
  for token in re.findall(r"`([^`\s]+)`", text):
    path = token.split("::")[0]
    if path.startswith(TOP_FOLDERS) and re.fullmatch(r"[\w./-]+", path):
      if not os.path.exists(os.path.join(REPO, path)):
        problems.append(f"{page}: no file {path}")
    elif re.fullmatch(r"lm(\.\w+)+", token):
      parts = token.split(".")
      modules = [i for i in range(1, len(parts) + 1) if _source(".".join(parts[:i]))]
      known = modules and (
        modules[-1] == len(parts)
        or _defines(_source(".".join(parts[: modules[-1]])) or "", parts[modules[-1]])
      )
      if not known:
        problems.append(f"{page}: no module or name {token}")
  return problems


COMMANDS = [(page, n, c) for page in PAGES for n, c in _sh_commands(page)]


@pytest.mark.parametrize("page,line,command", COMMANDS, ids=[f"{p}:{n}" for p, n, _ in COMMANDS])
def test_command_runs_as_written(page, line, command):
  problems = _problems(command)
  assert not problems, f"{page}:{line}: {command}: {problems}"


@pytest.mark.parametrize("page", PAGES)
def test_commands_are_in_sh_blocks(page):
  """A command in a ```bash or ```console block would go unchecked."""
  fences = re.findall(r"^```(\w+)", _read(page), re.M)
  assert set(fences) <= {"sh"}, fences


@pytest.mark.parametrize("page", LINKED_PAGES)
def test_links_resolve(page):
  problems = _link_problems(page, _read(page))
  assert not problems, problems


@pytest.mark.parametrize("page", PAGES)
def test_named_paths_and_modules_exist(page):
  problems = _name_problems(page, _read(page))
  assert not problems, problems


@pytest.mark.parametrize(
  "command,problem",
  [
    (".venv/bin/python -m experiments.trian --workdir=x", "no module or script"),
    ("python -m experiments.train --config=experiments/configs/base.py --work_dir=x", "no flag"),
    (
      "python -m experiments.train --config=experiments/configs/shakespeare_char.py "
      "--workdir=x --config.model.d_modle=64",
      "has no field model.d_modle",
    ),
    ("python -m experiments.sweep --config=experiments/configs/nope.py", "no config file"),
    ("python -m launch.local --num_processes=2 -- --work_dir=x", "has no flag --work_dir"),
    ("make demo tests", "no make target tests"),
    ("bash benchmarks/cpu.sh", "no script"),
    ("... --config.init_from=hf:/path/to/gpt2", "not a command of this project"),
  ],
)
def test_a_broken_command_is_caught(command, problem):
  assert any(problem in p for p in _problems(command)), _problems(command)


def test_a_broken_link_or_name_is_caught():
  text = "# Page\n[a](missing.md) [b](#nowhere) [c](#page) [d](training.md#nowhere)\n"
  assert _link_problems("docs/page.md", text) == [
    "docs/page.md: no file docs/missing.md",
    "docs/page.md: no heading #nowhere in docs/page.md",
    "docs/page.md: no heading #nowhere in docs/training.md",
  ]
  text = "`lm/nowhere.py` `lm.runs.loading.nope` `lm.runs.nope` `lm/model/counts.py` `lm.runs`"
  assert _name_problems("page.md", text + " `lm.runs.loading.load_run`") == [
    "page.md: no file lm/nowhere.py",
    "page.md: no module or name lm.runs.loading.nope",
    "page.md: no module or name lm.runs.nope",
  ]
