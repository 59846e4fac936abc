"""Time of a model's data-dependent initialisation (``glow.init``): tracing, compiling, running.

    python -m tools.benchmark_init --config=configs/celeba256.py:small --batch_size=16

Each phase is timed apart in one fresh process (no compilation cache): tracing
and lowering the jitted ``model.init``, XLA's compile, then the run on a batch of
random uint8 images (ActNorm's data-dependent init happens in this run). Prints
one markdown table row per config; the table is committed in docs/benchmarks.md.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

from flowjax import models
from flowjax.runs import runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config with a `model` field.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Images in the init batch.")


def time_init(model, batch_size: int) -> dict[str, float]:
    """Seconds to trace+lower, compile and run ``model.init`` on a random batch."""
    images = np.random.default_rng(0).integers(0, 256, (batch_size, *model.image_shape),
                                               dtype=np.uint8)
    key = jax.random.key(0)
    start = time.perf_counter()
    lowered = jax.jit(lambda k, x: model.init(k, x)).lower(key, images)
    lower_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(compiled(key, images))
    run_s = time.perf_counter() - start
    return {"lower_s": lower_s, "compile_s": compile_s, "run_s": run_s,
            "total_s": lower_s + compile_s + run_s}


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    model = models.model_from_config(config.model)
    t = time_init(model, _BATCH.value)
    m = config.model
    print("| model | init batch | trace+lower (s) | compile (s) | run (s) | total (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| {m.image_size}x{m.image_size}, {m.n_levels} levels, depth {m.depth}, width "
          f"{m.width} | {_BATCH.value} | {t['lower_s']:.1f} | {t['compile_s']:.1f} | "
          f"{t['run_s']:.1f} | {t['total_s']:.1f} |")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    runtime.run(main)
