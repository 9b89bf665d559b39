"""See what runs did: list the runs under folders, or plot their loss curves on one PNG.

    python -m experiments.runs list runs/
    python -m experiments.runs plot runs/a runs/sweep --x=tokens --out=curves.png [--log]

`list` prints one line per run found at or below each folder (a folder with config.json and
model.json): step / schedule steps, last train and eval loss, last tokens/s, status (running,
finished, preempted, failed, stalled; `killed` when a run on this host is gone without saying
how it ended, `running?` when it runs or ran on another host, `unreadable` when its files hold
what no run writes, the detail saying which) and when its metrics were last written. `plot`
draws each run's train loss (line) and eval loss (dashed) against `--x`: step, tokens, or
training FLOPs; a run it cannot read is left out with a warning line.
"""

import sys

from absl import flags

from lm import cli
from lm.runs import curves, listing, run_files

_X = flags.DEFINE_enum("x", "step", list(curves.X_AXES), "plot: the x axis.")
_OUT = flags.DEFINE_string("out", "curves.png", "plot: the PNG written.")
_LOG = flags.DEFINE_bool("log", False, "plot: log-log axes.")


def main(argv):
  if len(argv) < 3 or argv[1] not in ("list", "plot"):
    raise ValueError(
      "usage: python -m experiments.runs list|plot FOLDER_OR_RUN... [--x=step|"
      "tokens|flops --out=curves.png --log]"
    )
  command, roots = argv[1], argv[2:]
  runs = [r for root in roots for r in listing.named_runs(root)]
  if not runs:
    raise FileNotFoundError(f"no runs (config.json and model.json) under {', '.join(roots)}")
  if command == "list":
    print(listing.format_table([listing.summarise(w, name) for w, name in runs]))
    return
  loaded = []
  for workdir, name in runs:
    try:
      loaded.append(curves.read_curve(workdir, name, _X.value))
    except run_files.UnreadableRun as e:
      print(f"warning: {name} is left out, unreadable: {e}", file=sys.stderr)
  if not loaded:
    raise ValueError(f"no readable runs under {', '.join(roots)}")
  print(f"wrote {curves.plot(loaded, _X.value, _OUT.value, _LOG.value)}")


def run() -> None:
  """The `lm-runs` command."""
  cli.run(cli.one_line_errors(main), __name__)


if __name__ == "__main__":
  run()
