"""Exit statuses of a training process that a scheduler can act on (besides 0 and 1)."""

# Stopped on purpose with a checkpoint saved (SIGTERM, SIGINT, `train.stop_after_steps`):
# running the same command again resumes. 75 is EX_TEMPFAIL, "try again later".
PREEMPTED = 75
# The watchdog saw no progress for `train.watchdog_s` seconds (a hung collective, barrier or
# filesystem); 124 as from `timeout(1)`.
STALLED = 124
