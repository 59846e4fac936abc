"""Train (or resume) a Glow: ``main(config, workdir)``; the loop is ``flowjax.training.train.train``.

Single host (every local device; the batch is split over them)::

    python run.py --config=configs/train.py:tiny --workdir=/tmp/glow-tiny

Multi-host: start the same command on every host with
``--config.distributed=True``; run.py calls ``jax.distributed.initialize()``
(before any other JAX call), which finds
the coordinator from the cluster environment (SLURM, Cloud TPU, ...), or
give it through the standard variables, e.g. on 2 hosts::

    JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=<0|1> \\
      python run.py --config=configs/train.py:celeba256 --config.distributed=True \\
      --config.data.folder=/data/celebahq256 --workdir=/shared/glow-celeba

The workdir must be on a filesystem every host sees (orbax writes one
checkpoint together). Each host loads only its slice of every batch.

Writes into the workdir: ``config.json``, ``model_config.json`` (with
``checksums.json``, its sha256), ``checkpoints/<step>/``, ``metrics.jsonl`` (and ``tensorboard/`` when
tensorboard is installed), ``samples/step_<step>.png`` and ``summary.json``,
whose ``compile_s``, ``first_step_s``, ``steady_step_s`` and
``steady_images_per_s`` keep compilation apart from steady-state throughput
(the numbers a training benchmark reports) and whose ``execution`` says how the
run ran the model (``remat``, ``scan_unroll``, ``precision``: a workdir resumes
under other ones, ``flowjax.models.execution``).

A config error (``flowjax.training.config_checks``) names the flag to change and
is raised before the workdir is created; held-out and init batch sizes left
unset fit a small folder, as the log says.
"""

from __future__ import annotations

import json
from typing import Any

import jax
from absl import logging

from flowjax.training import config_checks
from flowjax.training import train as train_lib


def main(config: Any, workdir: str) -> dict[str, Any]:
    # orbax's INFO lines are filtered for every experiment by run.py.
    logging.info("process %d of %d, %d devices in all", jax.process_index(), jax.process_count(),
                 jax.device_count())
    # Every config error names its flag, before any work: these options here, the data
    # options in train_lib.train (datasets.make_datasets), both before the workdir exists.
    config_checks.check_run_options(config, jax.device_count())
    summary = train_lib.train(config, workdir)
    if jax.process_index() == 0:
        print(json.dumps({k: summary.get(k) for k in (
            "start_step", "final_step", "first_train_metrics", "last_train_metrics",
            "compile_s", "first_step_s", "steady_step_s", "steady_images_per_s")}, indent=1))
    return summary
