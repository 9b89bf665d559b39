"""Where a benchmark row comes from: the tree's commit."""

from __future__ import annotations

import os
import subprocess


def git_commit() -> str:
  """The tree's commit: $GIT_COMMIT where the tree was copied without .git, else git's."""
  if os.environ.get("GIT_COMMIT"):
    return os.environ["GIT_COMMIT"]
  try:
    return subprocess.run(
      ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
