"""Command-line plumbing shared by the launchers."""

from __future__ import annotations

import argparse
import sys


def split_train_args(argv: list[str] | None) -> tuple[list[str], list[str]]:
  """(the launcher's own arguments, the training command's arguments after `--`)."""
  argv = sys.argv[1:] if argv is None else argv
  split = argv.index("--") if "--" in argv else len(argv)
  return argv[:split], argv[split + 1 :]


def parser(doc: str | None) -> argparse.ArgumentParser:
  """A launcher's parser, whose `--help` shows its module docstring as written: the commands
  and what goes to `experiments.train` after `--` (none under -OO)."""
  return argparse.ArgumentParser(
    description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
  )


def with_train_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
  """`p`, its arguments added, with a usage line that ends in `[-- TRAIN_FLAGS ...]`: the
  training command's flags follow `--`."""
  p.usage = p.format_usage().removeprefix("usage: ").rstrip() + " [-- TRAIN_FLAGS ...]"
  return p
