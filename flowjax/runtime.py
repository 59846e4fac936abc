"""Process-level JAX set-up for ``run.py``: the persistent compilation cache and multi-host start.

Both must happen before the first JAX computation of the process, which is why
they live here and not in the experiments.

**Compilation cache.** XLA compiles every jitted function on first use; for
Glow that is seconds to tens of seconds per function on a CPU (the main job
spends most of its first run compiling). With JAX's persistent cache, a later
process that compiles the same program (same HLO, flags, JAX version and
backend) reads the executable from disk instead. It is on by default for
``run.py``, in :data:`DEFAULT_CACHE_DIR`; ``FLOWJAX_COMPILATION_CACHE`` or
``run.py --compilation_cache=DIR`` moves it, and an empty value turns it off.
The cache is keyed by JAX itself, so a stale entry is never used for another
program; deleting the folder is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

CACHE_ENV = "FLOWJAX_COMPILATION_CACHE"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "flowjax" / "jax-compilation"
# Compiles shorter than this are cheaper to redo than to read back (and would
# fill the folder with thousands of tiny entries: every eager op is a jit).
MIN_COMPILE_SECONDS = 0.2


def default_cache_dir() -> str:
    """The cache folder: ``$FLOWJAX_COMPILATION_CACHE`` if set (empty: off), else the default."""
    return os.environ.get(CACHE_ENV, str(DEFAULT_CACHE_DIR))


def enable_compilation_cache(directory: str | os.PathLike | None) -> Path | None:
    """Points JAX's persistent compilation cache at ``directory``; ``None``/``""`` turns it off.

    Returns the folder in use (created if needed), or None when off.
    Raises ValueError naming the folder when it exists as a file or cannot be created.
    """
    if directory is None or str(directory) == "":
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"compilation cache folder {path} cannot be created ({error.strerror}); pass "
            f"--compilation_cache=DIR with a writable folder, or --compilation_cache= to turn it off"
        ) from error
    if not os.access(path, os.W_OK):
        raise ValueError(
            f"compilation cache folder {path} is not writable; pass --compilation_cache=DIR with a "
            f"writable folder, or --compilation_cache= to turn it off")
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path


def _env_int(name: str) -> int | None:
    return int(os.environ[name]) if name in os.environ else None


def initialize_distributed() -> None:
    """Multi-host JAX; must run before any other JAX call creates a backend.

    The coordinator comes from the cluster (SLURM, Cloud TPU, ...) or from
    ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.
    On CPUs, cross-process collectives use gloo (JAX's default).
    """
    jax.distributed.initialize(coordinator_address=os.environ.get("JAX_COORDINATOR_ADDRESS"),
                               num_processes=_env_int("JAX_NUM_PROCESSES"),
                               process_id=_env_int("JAX_PROCESS_ID"))
