"""JAX's persistent compilation cache: compiled programs kept on disk and reused by the next
process that compiles the same program (a restarted run, a sweep's next run of the same shapes),
which then starts without compiling."""

from __future__ import annotations

import jax

from lm.runtime import paths


def default_dir() -> str:
  """Where runs keep compiled programs unless told otherwise: `<user cache>/jax`."""
  return str(paths.user_cache_dir() / "jax")


def use(cache_dir: str | None) -> dict[str, str]:
  """Turns the cache on in `cache_dir` (unless one is on already) for this process, for every
  program however quickly it compiled (a small model's compile quickly, and are many), and
  returns the environment variables that give it to the processes this one starts."""
  if not cache_dir or jax.config.values.get("jax_compilation_cache_dir"):
    return {}
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return {"JAX_COMPILATION_CACHE_DIR": cache_dir, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
