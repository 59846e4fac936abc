"""flowjax's entry point: ``python run.py --config=configs/<name>.py[:variant] [--workdir=DIR]``.

Kept short on purpose: parse flags, start multi-host JAX when
``config.distributed`` is set, turn on the persistent compilation cache
(``flowjax.runtime``), log the devices, dispatch to
``experiments/<config.experiment>.py``'s ``main(config, workdir)``.

Errors a person can act on -- bad input, bad config, a refused workdir, missing
weights or binaries, non-finite results (:data:`EXPECTED_ERRORS`; flowjax's own
``ImageDataError``, ``CheckpointError``, ``GraphDefError`` are ``ValueError``\\ s,
``NonFiniteError`` a ``FloatingPointError``; OpenFace/FaceNet failures
``RuntimeError``\\ s) -- are printed as one line,
``error: <message>``, and exit with status 1. The traceback is printed too with
``--verbosity=1`` (absl's flag) or ``FLOWJAX_TRACEBACK=1``. Any other exception
is a bug and prints its full traceback. SIGTERM ends the run like Ctrl-C, so a
killed run still removes its staging folder and marks its manifest failed.
"""

import datetime
import importlib
import logging as std_logging
import os
import signal
import sys
import threading
import traceback

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from flowjax import io as fio
from flowjax import runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (ml_collections).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (must not exist yet); default runs/<experiment>-<time>.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", runtime.default_cache_dir(),
    f"Persistent XLA compilation cache folder (default ${runtime.CACHE_ENV} or "
    f"{runtime.DEFAULT_CACHE_DIR}); empty turns it off.")
flags.mark_flags_as_required(["config"])

# Bad input or config (flowjax's own errors are ValueErrors), missing or unwritable
# files, non-finite results, missing packages, external tools and weights that are
# missing or fail (RuntimeError: OpenFace, FaceNet, MTCNN; also XLA out of memory),
# unknown names (KeyError, e.g. an attribute not in OpenAI's list).
EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError, ImportError, RuntimeError, KeyError)
TRACEBACK_ENV = "FLOWJAX_TRACEBACK"
TRACEBACK_HINT = f"(traceback: --verbosity=1 or {TRACEBACK_ENV}=1)"
EXIT_ERROR = 1
SIGTERM_GRACE_S = 2.0


def _quiet_orbax(record: std_logging.LogRecord) -> bool:
    """Drops orbax's INFO lines (dozens per checkpoint save or load); keeps its warnings."""
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def _want_traceback(argv: list[str]) -> bool:
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        return True
    if flags.FLAGS.is_parsed():
        return flags.FLAGS["verbosity"].value >= 1
    for arg in argv:  # a flag parsing error: read --verbosity from argv
        name, _, value = arg.partition("=")
        if name in ("--verbosity", "-v") and value.lstrip("-").isdigit():
            return int(value) >= 1
    return False


def _fail(message: str, argv: list[str]) -> None:
    """One line on stderr (plus the traceback when asked for), exit status 1."""
    if _want_traceback(argv):
        traceback.print_exc()
    line = " ".join(message.split())  # one line, whatever the message's layout
    print(f"error: {line} {TRACEBACK_HINT}", file=sys.stderr)
    sys.exit(EXIT_ERROR)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with config errors (bad file, variant or field) as one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        text = str(err)
        if "Traceback" in text:  # config_flags embeds the config's traceback in the message
            text = f"{text.splitlines()[0]} {_last_line(text)}"
        _fail(f"{text} (see --helpshort)", argv)
    except (AttributeError, KeyError) as err:
        cause: object = err
        while isinstance(cause, BaseException) and cause.args:  # AttributeError(KeyError(text))
            cause = cause.args[0]
        overrides = [a for a in argv if a.startswith("--config.")]
        _fail(f"a --config.<field> override names a field the config does not have: {cause} "
              f"(overrides given: {' '.join(overrides)})", argv)
    except EXPECTED_ERRORS as err:
        _fail(f"cannot load the config: {_last_line(str(err))}", argv)
    raise AssertionError("unreachable")


def _exit_on_sigterm(signum, frame):
    # Raising unwinds every `with` block: the run directory's manifest says
    # "failed" (the default SIGTERM just dies). Python ignores an exception raised
    # while it runs certain callbacks (e.g. a gc callback of jax's), so the staging
    # folders go first, and a timer ends the process if the unwinding never starts.
    code = 128 + signum
    fio.remove_staging_dirs()
    timer = threading.Timer(SIGTERM_GRACE_S, os._exit, (code,))
    timer.daemon = True  # a normal exit does not wait for it
    timer.start()
    raise SystemExit(code)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    std_logging.getLogger("absl").addFilter(_quiet_orbax)
    try:
        config = _CONFIG.value
        has_experiment = "experiment" in config  # a config file that failed to load raises here
    except EXPECTED_ERRORS as err:
        _fail(f"cannot load the config: {_last_line(str(err))}", sys.argv)
    if not has_experiment:
        raise app.UsageError(f"config {flags.FLAGS['config'].value!r} has no 'experiment' field")
    workdir = _WORKDIR.value or os.path.join(
        "runs", f"{config.experiment}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    if config.get("distributed", False):
        runtime.initialize_distributed()
    cache = runtime.enable_compilation_cache(_COMPILATION_CACHE.value)
    logging.info("compilation cache: %s", cache or "off")
    logging.info("JAX process %d of %d; devices: %s", jax.process_index(), jax.process_count(),
                 jax.devices())
    experiment = importlib.import_module(f"experiments.{config.experiment}")
    try:
        experiment.main(config, workdir)
    except EXPECTED_ERRORS as err:
        # str(KeyError) is the repr of its message; show the message itself.
        text = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 else err
        _fail(f"{type(err).__name__}: {text}", sys.argv)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
