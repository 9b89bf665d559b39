"""Command-line plumbing shared by the launchers."""

from __future__ import annotations

import sys


def split_train_args(argv: list[str] | None) -> tuple[list[str], list[str]]:
  """(the launcher's own arguments, the training command's arguments after `--`)."""
  argv = sys.argv[1:] if argv is None else argv
  split = argv.index("--") if "--" in argv else len(argv)
  return argv[:split], argv[split + 1 :]


def first_line(doc: str | None) -> str:
  """A launcher's description: the first line of its module docstring (none under -OO)."""
  return (doc or "").split("\n")[0]
