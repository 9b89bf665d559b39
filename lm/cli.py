"""Command-line plumbing for the entry points: flags parsed with one-line errors, and the one
line that an expected failure (a bad config or input, a full disk) ends a process with."""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence

from absl import app, flags

from lm.runtime import paths

CONFIG_HELP = (
  "A config file, e.g. experiments/configs/shakespeare_char.py (a relative path that is not "
  "found here is looked for in the installed project, so the bundled configs work from any "
  "directory). Override any field with --config.<section>.<field>=VALUE; every field, its "
  "default and what it does: experiments/configs/base.py."
)


# absl's flags that print the help and exit.
HELP_FLAGS = frozenset({"--help", "-?", "--helpshort", "--helpfull"})


def run(
  main: Callable[[list[str]], None],
  module: str,
  flags_parser: Callable[[list[str]], list[str]] | None = None,
) -> None:
  """absl's `app.run(main)` for the entry point `module` (its `__name__`): `--help` shows the
  module's docstring and flags also when it is started as a console script (`lm-train`), whose
  `__main__` is the script, not the module, and exits 0 after it (absl's exit status is 1)."""
  entry, script = sys.modules[module], sys.modules["__main__"]
  if entry is not script:
    script.__doc__ = entry.__doc__
    for flag in flags.FLAGS.get_key_flags_for_module(module):
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  try:
    if flags_parser is None:
      app.run(main)
    else:
      app.run(main, flags_parser=flags_parser)
  except SystemExit as e:
    if e.code == 1 and HELP_FLAGS.intersection(sys.argv[1:]):
      sys.exit(0)
    raise


def parse_flags(argv: Sequence[str]) -> list[str]:
  """`app.run`'s flags parser: a bad flag, a `--config.<field>` override of a field that does
  not exist, or overrides without `--config=FILE` end the process with one `error:` line."""
  overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
  if overrides and not any(a == "--config" or a.startswith("--config=") for a in argv[1:]):
    sys.exit(
      f"error: {overrides[0]} overrides a field of a config file, but no --config=FILE "
      "was given (e.g. --config=experiments/configs/shakespeare_char.py; every field: "
      "experiments/configs/base.py)"
    )
  try:
    return flags.FLAGS(find_config(list(argv)))
  except flags.Error as e:
    sys.exit(f"error: {e}")
  except (AttributeError, KeyError) as e:  # ml_collections: no such field
    text = str(e)
    suggestion = re.search(r'Did you mean "(\w+)" instead of "(\w+)"', text)
    field = suggestion.group(2) if suggestion else (re.findall(r"\w+", text) or ["?"])[0]
    override = next(
      (
        a.split("=")[0]
        for a in argv
        if a.startswith("--config.") and re.search(rf"\.{field}([.=]|$)", a)
      ),
      "a --config override",
    )
    hint = f'; did you mean "{suggestion.group(1)}"?' if suggestion else ""
    sys.exit(f"error: {override}: the config has no field {field!r}{hint}")


def find_config(argv: list[str]) -> list[str]:
  """`argv` with its `--config=PATH[:ARGS]` (or `--config PATH[:ARGS]`) pointed into
  paths.PROJECT_ROOT where PATH is relative and names no file here but one there (a bundled
  config run from outside the repository); a PATH found in neither place ends the process with
  one `error:` line."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith("--config="):
      out[i] = "--config=" + _found_config(arg.removeprefix("--config="))
    elif arg == "--config" and i + 1 < len(out):
      out[i + 1] = _found_config(out[i + 1])
  return out


def _found_config(value: str) -> str:
  path, colon, args = value.partition(":")
  if os.path.isfile(path):
    return value
  bundled = os.path.join(paths.PROJECT_ROOT, path)
  if os.path.isabs(path) or not os.path.isfile(bundled):
    sys.exit(f"error: --config={path}: no such file here or in {paths.PROJECT_ROOT}")
  return f"{bundled}{colon}{args}"


def no_space_left(e: BaseException, where: str | None = None) -> str | None:
  """'no space left on <path>' if `e` (or what caused it) is a full disk, else None."""
  seen = set()
  cause: BaseException | None = e
  while cause is not None and id(cause) not in seen:
    seen.add(id(cause))
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
      return f"no space left on {where or cause.filename or 'the device'}"
    if "No space left on device" in str(cause):
      path = re.search(r"(/[^\s\"':]+)", str(cause))
      return f"no space left on {where or (path.group(1) if path else 'the device')}"
    cause = cause.__cause__ or cause.__context__
  return None


def one_line_errors(
  main: Callable[[list[str]], None],
  expected: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError),
  where: Callable[[], str | None] = lambda: None,
) -> Callable[[list[str]], None]:
  """`main` ending in one `error:` line on an expected failure (a missing run, a bad argument,
  a full disk) instead of a traceback; anything else still raises. `where()` names the folder
  a full disk is reported on when the error does not say. Background failures that follow the
  main thread's (`quiet_background_failures`) print nothing."""

  @functools.wraps(main)
  def wrapped(argv: list[str]) -> None:
    quiet_background_failures()
    try:
      main(argv)
    except expected as e:
      _exit_now(f"error: {e}")
    except Exception as e:
      full = no_space_left(e, where())
      if full is None:
        raise
      _exit_now(f"error: {full}")

  return wrapped


def _exit_now(line: str) -> None:
  """Prints `line` and exits 1 at once, without exit handlers: with several processes,
  `jax.distributed`'s would wait for the others at a shutdown barrier that they may never
  reach, and after a full disk the libraries' would only add tracebacks of the same failure."""
  print(line, file=sys.stderr, flush=True)
  sys.stdout.flush()
  logging.shutdown()
  os._exit(1)


def quiet_background_failures() -> None:
  """Background threads and callbacks (checkpoint and event writers) that fail on a full disk
  print nothing, nor do the callbacks that then find Orbax's event loop closed: the main thread
  reports the failure once."""

  def benign(e: BaseException | None) -> bool:
    return e is not None and (
      no_space_left(e) is not None
      or (isinstance(e, RuntimeError) and str(e) == "Event loop is closed")
    )

  thread_hook, unraisable_hook = threading.excepthook, sys.unraisablehook
  threading.excepthook = lambda args: None if benign(args.exc_value) else thread_hook(args)
  sys.unraisablehook = lambda u: None if benign(u.exc_value) else unraisable_hook(u)
