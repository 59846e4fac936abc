"""How every command starts: one-line errors, quiet logs, the compilation cache, multi-host JAX.

``run.py``, ``python -m tools.<name>`` and the converters in ``weights/`` all
start through :func:`run`, so they fail, log and stop the same way. The
compilation cache and the multi-host start must happen before the first JAX
computation of the process, which is why they live here and not in the
experiments.

**Quiet logs.** orbax writes dozens of INFO lines per checkpoint save or load,
and JAX one about the TPU backend it probed and did not find; :func:`run` drops
both (their warnings stay), so a command's own lines are the ones you see.

**Compilation cache.** XLA compiles every jitted function on first use; for
Glow that is seconds to tens of seconds per function on a CPU (the main job
spends most of its first run compiling). With JAX's persistent cache, a later
process that compiles the same program (same HLO, flags, JAX version and
backend) reads the executable from disk instead. It is on by default for
``run.py``, in :data:`DEFAULT_CACHE_DIR`; ``FLOWJAX_COMPILATION_CACHE`` or
``run.py --compilation_cache=DIR`` moves it, and an empty value turns it off.
The cache is keyed by JAX itself, so a stale entry is never used for another
program; deleting the folder is always safe.

**Errors a person can read.** Errors a person can act on -- bad input, bad
config, a refused workdir, missing weights or binaries, non-finite results
(:data:`EXPECTED_ERRORS`; flowjax's own ``ImageDataError``, ``CheckpointError``,
``GraphDefError`` are ``ValueError``\\ s, ``NonFiniteError`` a
``FloatingPointError``; OpenFace/FaceNet failures ``RuntimeError``\\ s) -- are
printed as one line, ``error: <message>``, with exit status 1 (:func:`fail`).
The traceback is printed too with ``--verbosity=1`` (absl's flag) or
``FLOWJAX_TRACEBACK=1``. Any other exception is a bug and prints its full
traceback. SIGTERM ends the run like Ctrl-C (:func:`exit_on_sigterm`), so a
killed run still removes its staging folder and marks its manifest failed.
"""

from __future__ import annotations

import functools
import importlib.util
import logging as std_logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from absl import app, flags

from flowjax.runs import run_dirs

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
    import jax  # here, not at the top: a command that fails on its flags never loads JAX

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
    import jax

    jax.distributed.initialize(coordinator_address=os.environ.get("JAX_COORDINATOR_ADDRESS"),
                               num_processes=_env_int("JAX_NUM_PROCESSES"),
                               process_id=_env_int("JAX_PROCESS_ID"))


# Bad input or config (flowjax's own errors are ValueErrors), missing or unwritable
# files, non-finite results, missing packages, external tools and weights that are
# missing or fail (RuntimeError: OpenFace, FaceNet, MTCNN; also XLA out of memory),
# unknown names (KeyError, e.g. an attribute not in OpenAI's list).
EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError, ImportError, RuntimeError, KeyError)
TRACEBACK_ENV = "FLOWJAX_TRACEBACK"
TRACEBACK_HINT = f"(traceback: --verbosity=1 or {TRACEBACK_ENV}=1)"
EXIT_ERROR = 1
SIGTERM_GRACE_S = 2.0


def quiet_orbax(record: std_logging.LogRecord) -> bool:
    """Drops orbax's INFO lines (dozens per checkpoint save or load); keeps its warnings."""
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def quiet_backend_probe(record: std_logging.LogRecord) -> bool:
    """Drops JAX's INFO line about each backend it probed and could not start (TPU on a CPU box)."""
    return record.levelno >= std_logging.WARNING or not record.getMessage().startswith(
        "Unable to initialize backend")


def quiet_logs() -> None:
    """Filters the INFO lines above out of absl's log (idempotent: filters are a set)."""
    std_logging.getLogger("absl").addFilter(quiet_orbax)
    std_logging.getLogger("jax._src.xla_bridge").addFilter(quiet_backend_probe)


def want_traceback(argv: list[str]) -> bool:
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        return True
    if flags.FLAGS.is_parsed():
        return flags.FLAGS["verbosity"].value >= 1
    for arg in argv:  # a flag parsing error: read --verbosity from argv
        name, _, value = arg.partition("=")
        if name in ("--verbosity", "-v") and value.lstrip("-").isdigit():
            return int(value) >= 1
    return False


def fail(message: str, argv: list[str]) -> None:
    """One line on stderr (plus the traceback when asked for), exit status 1."""
    if want_traceback(argv):
        traceback.print_exc()
    line = " ".join(message.split())  # one line, whatever the message's layout
    print(f"error: {line} {TRACEBACK_HINT}", file=sys.stderr)
    sys.exit(EXIT_ERROR)


def describe(error: BaseException) -> str:
    """``Type: message`` for an expected error; a KeyError's message without its quotes."""
    text = error.args[0] if isinstance(error, KeyError) and len(error.args) == 1 else error
    return f"{type(error).__name__}: {text}"


def run(main: Callable[[list[str]], Any]) -> None:
    """Starts a command: ``if __name__ == "__main__": runtime.run(main)``.

    absl parses the flags (:func:`parse_flags`: a bad flag is one line), the
    logs are quieted (:func:`quiet_logs`), SIGTERM unwinds like Ctrl-C, and an
    expected error or a ``UsageError`` ends the process as one line, exit 1
    (:func:`fail`). Anything else is a bug and keeps its traceback.
    """
    app.run(functools.partial(_run_guarded, main), flags_parser=parse_flags)


def _run_guarded(main: Callable[[list[str]], Any], argv: list[str]) -> Any:
    quiet_logs()
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        return main(argv)
    except app.UsageError as err:
        fail(f"{err} (see --helpshort)", sys.argv)
    except EXPECTED_ERRORS as err:
        fail(describe(err), sys.argv)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with config errors (bad file, variant or field) as one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        text = str(err)
        if "Traceback" in text:  # config_flags embeds the config's traceback in the message
            text = f"{text.splitlines()[0]} {last_line(text)}"
        fail(f"{text} (see --helpshort)", argv)
    except (AttributeError, KeyError) as err:
        cause: object = err
        while isinstance(cause, BaseException) and cause.args:  # AttributeError(KeyError(text))
            cause = cause.args[0]
        overrides = [a for a in argv if a.startswith("--config.")]
        fail(f"a --config.<field> override names a field the config does not have: {cause} "
              f"(overrides given: {' '.join(overrides)})", argv)
    except EXPECTED_ERRORS as err:
        fail(f"cannot load the config: {last_line(str(err))}", argv)
    raise AssertionError("unreachable")


def _exit_now(code: int) -> None:
    """The forced exit after the grace period: no unwinding, so the staging folders first."""
    run_dirs.remove_staging_dirs()
    os._exit(code)


def exit_on_sigterm(signum, frame):
    # Raising unwinds every `with` block: the run directory's manifest says
    # "failed" (the default SIGTERM just dies). Python ignores an exception raised
    # while it runs certain callbacks (e.g. a gc callback of jax's), so the staging
    # folders go first, and a timer ends the process if the unwinding never starts.
    code = 128 + signum
    run_dirs.stop_staging(code)
    timer = threading.Timer(SIGTERM_GRACE_S, _exit_now, (code,))
    timer.daemon = True  # a normal exit does not wait for it
    timer.start()
    raise SystemExit(code)


@functools.cache
def _load_config_module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"flowjax_config_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_module(name: str, near: str | os.PathLike) -> ModuleType:
    """The config file ``<name>.py`` in the folder of ``near`` (a config's ``__file__``),
    loaded as a module once per process.

    The way configs load each other (``configs/common.py`` and one another): by file,
    so a config works however it is started -- ``run.py``, ``python -m``, a script in
    another folder, a test -- whether or not the repository root is importable.
    """
    path = Path(near).resolve().parent / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"config module {path} does not exist")
    return _load_config_module(str(path))
