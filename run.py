"""flowjax's entry point: ``python run.py --config=configs/<name>.py[:variant] [--workdir=DIR]``.

Kept short on purpose: parse flags, start multi-host JAX when
``config.distributed`` is set, turn on the persistent compilation cache
(``flowjax.runs.runtime``), log the devices, dispatch to
``experiments/<config.experiment>.py``'s ``main(config, workdir)``.

Expected errors (bad input, bad config, missing weights...) are printed as one
line with exit status 1; ``--verbosity=1`` or ``FLOWJAX_TRACEBACK=1`` adds the
traceback (``flowjax.runs.runtime``).
"""

import datetime
import importlib
import logging as std_logging
import os
import signal
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from flowjax.runs import runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (ml_collections).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (must not exist yet); default runs/<experiment>-<time>.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", runtime.default_cache_dir(),
    f"Persistent XLA compilation cache folder (default ${runtime.CACHE_ENV} or "
    f"{runtime.DEFAULT_CACHE_DIR}); empty turns it off.")
flags.mark_flags_as_required(["config"])



def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    signal.signal(signal.SIGTERM, runtime.exit_on_sigterm)
    std_logging.getLogger("absl").addFilter(runtime.quiet_orbax)
    try:
        config = _CONFIG.value
        has_experiment = "experiment" in config  # a config file that failed to load raises here
    except runtime.EXPECTED_ERRORS as err:
        runtime.fail(f"cannot load the config: {runtime.last_line(str(err))}", sys.argv)
    if not has_experiment:
        raise app.UsageError(f"config {flags.FLAGS['config'].value!r} has no 'experiment' field")
    workdir = _WORKDIR.value or os.path.join(
        "runs", f"{config.experiment}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    try:
        if config.get("distributed", False):
            runtime.initialize_distributed()
        cache = runtime.enable_compilation_cache(_COMPILATION_CACHE.value)
        logging.info("compilation cache: %s", cache or "off")
        logging.info("JAX process %d of %d; devices: %s", jax.process_index(),
                     jax.process_count(), jax.devices())
        experiment = importlib.import_module(f"experiments.{config.experiment}")
        experiment.main(config, workdir)
    except runtime.EXPECTED_ERRORS as err:
        # str(KeyError) is the repr of its message; show the message itself.
        text = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 else err
        runtime.fail(f"{type(err).__name__}: {text}", sys.argv)


if __name__ == "__main__":
    app.run(main, flags_parser=runtime.parse_flags)
