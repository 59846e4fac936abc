"""flowjax's entry point: ``python run.py --config=configs/<name>.py[:variant] [--workdir=DIR]``.

Kept short on purpose: parse flags, start multi-host JAX when
``config.distributed`` is set, log the devices, dispatch to
``experiments/<config.experiment>.py``'s ``main(config, workdir)``.
"""

import datetime
import importlib
import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (ml_collections).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (must not exist yet); default runs/<experiment>-<time>.")
flags.mark_flags_as_required(["config"])


def _env_int(name: str) -> int | None:
    return int(os.environ[name]) if name in os.environ else None


def initialize_distributed() -> None:
    """Multi-host JAX; must run before any other JAX call creates a backend.

    The coordinator comes from the cluster (SLURM, Cloud TPU, ...) or from
    JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
    """
    jax.distributed.initialize(coordinator_address=os.environ.get("JAX_COORDINATOR_ADDRESS"),
                               num_processes=_env_int("JAX_NUM_PROCESSES"),
                               process_id=_env_int("JAX_PROCESS_ID"))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    if "experiment" not in config:
        raise app.UsageError(f"config {flags.FLAGS['config'].value!r} has no 'experiment' field")
    workdir = _WORKDIR.value or os.path.join(
        "runs", f"{config.experiment}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    if config.get("distributed", False):
        initialize_distributed()
    logging.info("JAX process %d of %d; devices: %s", jax.process_index(), jax.process_count(),
                 jax.devices())
    experiment = importlib.import_module(f"experiments.{config.experiment}")
    experiment.main(config, workdir)


if __name__ == "__main__":
    app.run(main)
