"""flowjax's entry point: ``python run.py --config=configs/<name>.py[:variant] [--workdir=DIR]``.

Kept short on purpose: parse flags, start multi-host JAX when
``config.distributed`` is set, turn on the persistent compilation cache
(``flowjax.runs.runtime``), log the devices, dispatch to
``experiments/<config.experiment>.py``'s ``main(config, workdir)``.

Expected errors (bad input, bad config, missing weights...) are printed as one
line with exit status 1; ``--verbosity=1`` or ``FLOWJAX_TRACEBACK=1`` adds the
traceback (``flowjax.runs.runtime``).

It runs from any folder (``python <clone>/run.py --config=<clone>/configs/...``)
with the clone it sits in: its ``experiments/``, ``configs/`` and ``weights/``
are not part of the installed package, and Python puts this file's folder first
on ``sys.path``, so the clone's ``flowjax`` is the one that runs even beside a
non-editable ``pip install`` (the log names it). A missing dependency, or a
run.py without its ``experiments/``, is one ``error:`` line saying what to do.
"""

import datetime
import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # the clone: experiments/, configs/, weights/, flowjax/

try:
    import jax
    from absl import app, flags, logging
    from ml_collections import config_flags

    import flowjax
    from flowjax.runs import runtime
except ModuleNotFoundError as missing:  # before flowjax.runs.runtime.fail can be imported
    sys.exit(f"error: {missing.name!r} does not import in {sys.executable} ({missing}): run.py "
             "needs flowjax's dependencies in the Python that runs it; install them with "
             f"`pip install torch==2.13.0 {ROOT if (ROOT / 'setup.cfg').is_file() else '<clone>'}`"
             " (README, Set-up)")

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
    try:
        config = _CONFIG.value
        has_experiment = "experiment" in config  # a config file that failed to load raises here
    except runtime.EXPECTED_ERRORS as err:
        runtime.fail(f"cannot load the config: {runtime.last_line(str(err))}", sys.argv)
    if not has_experiment:
        raise app.UsageError(f"config {flags.FLAGS['config'].value!r} has no 'experiment' field")
    workdir = _WORKDIR.value or os.path.join(
        "runs", f"{config.experiment}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    if config.get("distributed", False):
        runtime.initialize_distributed()
    cache = runtime.enable_compilation_cache(_COMPILATION_CACHE.value)
    logging.info("compilation cache: %s", cache or "off")
    logging.info("JAX process %d of %d; devices: %s", jax.process_index(),
                 jax.process_count(), jax.devices())
    logging.info("flowjax %s from %s", flowjax.__version__, Path(flowjax.__file__).parent)
    import_experiment(config.experiment).main(config, workdir)


def import_experiment(name: str):
    """``experiments/<name>.py`` next to this file; one that is not there is an error
    saying which layout works (README, "Set-up")."""
    try:
        return importlib.import_module(f"experiments.{name}")
    except ModuleNotFoundError as err:
        folder = ROOT / "experiments"
        if err.name == f"experiments.{name}":
            known = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
            raise FileNotFoundError(f"config.experiment {name!r} names no experiment: there is "
                                    f"no {folder / name}.py; choose one of {known}") from err
        if err.name != "experiments":
            raise  # a module the experiment imports: its own one-line ImportError
        if folder.is_dir():  # python -P, or PYTHONSAFEPATH: run.py's folder is not on sys.path
            raise ImportError(f"{folder} is not importable: run.py needs its own folder on "
                              "sys.path; run it without -P and PYTHONSAFEPATH") from err
        raise FileNotFoundError(
            f"{ROOT} has no experiments/ folder, and the experiment {name!r} is "
            f"experiments/{name}.py of a flowjax clone: pip install installs the flowjax "
            "package only, not run.py's experiments/, configs/ and weights/. Run the run.py of "
            "a clone, from any folder: python <clone>/run.py --config=<clone>/configs/"
            f"{name}.py (README, Set-up)") from err


if __name__ == "__main__":
    runtime.run(main)
