"""flowjax's entry point: ``python run.py --config=configs/<name>.py[:variant] [--workdir=DIR]``.

Kept short on purpose: parse flags, start multi-host JAX when
``config.distributed`` is set, turn on the persistent compilation cache
(``flowjax.runtime``), log the devices, dispatch to
``experiments/<config.experiment>.py``'s ``main(config, workdir)``.
"""

import datetime
import importlib
import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from flowjax import runtime

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
    config = _CONFIG.value
    if "experiment" not in config:
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
    experiment.main(config, workdir)


if __name__ == "__main__":
    app.run(main)
