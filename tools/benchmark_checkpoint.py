"""How long a training checkpoint holds the training thread, and what hashing it costs.

    python -m tools.benchmark_checkpoint --config=configs/celeba256.py --gap_s=20

Builds the train state a config's model checkpoints (parameters and two Adamax
moments of the real shapes, filled with random numbers: zeros would compress
to nothing on disk, trained weights do not; no init is computed), saves a step, lets
``--gap_s`` seconds pass as the training steps between two saves would, saves
the next step and times that ``save()`` call: what training waits for. Then
times hashing one saved step (``checksum_record.write``), the work the recorder
thread of ``flowjax.models.checkpoints.TrainCheckpointer`` takes off the training
thread (issue #25). Prints one markdown table row; the table is committed in
docs/benchmarks.md.
"""

from __future__ import annotations

import tempfile
import time

import jax
import jax.numpy as jnp
from absl import flags
from ml_collections import config_flags

from flowjax import models
from flowjax.models import checkpoints, checksum_record, glow
from flowjax.runs import runtime


# Flags are defined when run as a command, not on import: tests import several tools
# into one process, and absl refuses a flag name defined twice (--config, --precisions).
def _define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "Config with a `model` field.")
    flags.DEFINE_float("gap_s", 20.0, "Seconds of training between the two saves.")
    flags.DEFINE_string("dir", None, "Where to write the two steps (default: a temporary "
                        "folder, removed afterwards).")


def time_saves(model, gap_s: float, directory: str) -> dict[str, float]:
    """Seconds the second of two saves held its caller, and seconds to hash one step."""
    keys = iter(jax.random.split(jax.random.key(0), 10_000))
    noise = lambda tree: jax.tree.map(
        lambda s: jax.random.normal(next(keys), s.shape, s.dtype)
        if jnp.issubdtype(s.dtype, jnp.floating) else jnp.zeros(s.shape, s.dtype), tree)
    variables = noise(glow.abstract_variables(model))
    params = variables["params"]
    train_state = {"step": jnp.int32(0), "mu": noise(params), "nu": noise(params)}
    with checkpoints.TrainCheckpointer(directory, keep=3) as ckpt:
        ckpt.save(1, variables, train_state)
        time.sleep(gap_s)
        start = time.perf_counter()
        ckpt.save(2, variables, train_state)
        save_s = time.perf_counter() - start
        ckpt.wait()
        step_dir = ckpt.step_path(1)
    size = sum(f.stat().st_size for f in step_dir.rglob("*") if f.is_file())
    start = time.perf_counter()
    checksum_record.write(step_dir, overwrite=True)
    return {"save_s": save_s, "hash_s": time.perf_counter() - start, "bytes": size}


def main(argv: list[str]) -> None:
    del argv
    args = flags.FLAGS
    model = models.model_from_config(args.config.model)
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        t = time_saves(model, args.gap_s, directory)
    print("| model | step on disk (MiB) | gap between saves (s) | save() held training (s) "
          "| hashing one step, now on the recorder thread (s) |")
    print("|---|---:|---:|---:|---:|")
    m = args.config.model
    print(f"| {m.image_size}x{m.image_size}, {m.n_levels} levels, depth {m.depth}, width "
          f"{m.width} | {t['bytes'] / 2**20:.0f} | {args.gap_s:g} | {t['save_s']:.2f} | "
          f"{t['hash_s']:.2f} |")


if __name__ == "__main__":
    _define_flags()
    flags.mark_flags_as_required(["config"])
    runtime.run(main)
