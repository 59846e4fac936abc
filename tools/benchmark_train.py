"""Training steps per second at each precision and conditioner dtype, in one run.

    python -m tools.benchmark_train --config=configs/celeba256.py:small --batch_size=8 \
        --precisions=default,highest --conditioner_dtypes=float32,bfloat16

For each (precision, conditioner dtype) it compiles flowjax's jitted, donated
train step (``flowjax.training.train.make_train_step``: bits/dim loss, gradient,
the optimizer's update) for the config's model, times the compile apart, then
runs ``--steps`` steps on random uint8 images from the same initial state (one
data-dependent init, shared) and reports the steady state: the median of the
timed steps after a warm-up step, as steps/s and images/s, and the loss of the
last step (it must be finite: a setting that breaks training is not a speed-up).
Ratios are against the first row, timed in the same run. The GPU rows of issue
#25 (TF32 and a bfloat16 conditioner against full float32) come from this script
in ``tools/gpu_check.sh``; on a CPU every precision computes the same.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

from flowjax import models
from flowjax.models.errors import NonFiniteError
from flowjax.runs import runtime
from flowjax.training import optimizers, train

# Flags are defined when run as a command, not on import: tests import several tools
# into one process, and absl refuses a flag name defined twice (--config, --precisions).
def _define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "Config with a `model` field.")
    flags.DEFINE_integer("batch_size", 8, "Images per training step.")
    flags.DEFINE_integer("steps", 5, "Timed steps per setting (after one warm-up step).")
    flags.DEFINE_list("precisions", ["default", "highest"], "Precisions to time.")
    flags.DEFINE_list("conditioner_dtypes", ["float32", "bfloat16"], "Conditioner dtypes to time.")


def time_training(model, batch_size: int, steps: int, precisions: list[str],
                  dtypes: list[str]) -> list[dict]:
    """One row per (precision, conditioner dtype): compile seconds, steady step seconds,
    images/s and the last loss."""
    spec = optimizers.OptimizerSpec(name="openai_adamax")
    mesh = train.make_mesh()
    images = np.random.default_rng(0).integers(0, 256, (batch_size, *model.image_shape),
                                               dtype=np.uint8)
    initial = jax.device_get(train.make_init(model, spec, mesh)(jax.random.key(0), images))
    rows = []
    for precision, dtype in itertools.product(precisions, dtypes):
        variant = model.clone(precision=precision, conditioner_dtype=dtype)
        state = jax.device_put(initial, train.replicated(mesh))
        batch = jax.device_put(images, train.batch_sharding(mesh))
        start = time.perf_counter()
        step = train.make_train_step(variant, spec, mesh).lower(state, batch).compile()
        compile_s = time.perf_counter() - start
        state, metrics = step(state, batch)  # warm-up
        jax.block_until_ready(state)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            state, metrics = step(state, batch)
            jax.block_until_ready(state)
            times.append(time.perf_counter() - start)
        step_s = statistics.median(times)
        rows.append({"precision": precision, "conditioner_dtype": dtype, "compile_s": compile_s,
                     "step_s": step_s, "images_per_s": batch_size / step_s,
                     "loss": float(metrics["bits_per_dim"])})
    return rows


def main(argv: list[str]) -> None:
    del argv
    args = flags.FLAGS
    model = models.model_from_config(args.config.model)
    rows = time_training(model, args.batch_size, args.steps, args.precisions,
                         args.conditioner_dtypes)
    m = args.config.model
    print(f"{m.image_size}x{m.image_size}, {m.n_levels} levels, depth {m.depth}, width "
          f"{m.width}, batch {args.batch_size}, on {jax.devices()[0].device_kind}")
    print("| precision | conditioner | compile (s) | step (s) | images/s | vs first row | "
          "last loss (bits/dim) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['precision']} | {row['conditioner_dtype']} | {row['compile_s']:.1f} | "
              f"{row['step_s']:.3f} | {row['images_per_s']:.1f} | "
              f"{rows[0]['step_s'] / row['step_s']:.2f}x | {row['loss']:.3f} |")
    bad = [(r["precision"], r["conditioner_dtype"]) for r in rows if not math.isfinite(r["loss"])]
    if bad:
        raise NonFiniteError(f"non-finite loss at (precision, conditioner) {bad}: those rows "
                             "time a broken training step, not a faster one")


if __name__ == "__main__":
    _define_flags()
    flags.mark_flags_as_required(["config"])
    runtime.run(main)
