"""Fingerprints of the programs XLA compiles for encode and decode, to show a change moved none.

    python -m tools.program_hashes --config=configs/celeba256.py:small --batch_sizes=1,8

Lowers and compiles ``glow.encode`` and ``glow.decode`` (each at its phase's
precision, ``flowjax.models.execution``) for random weights at each batch size and
prints the sha256 of the optimised HLO less its source locations (file names, line
numbers, op metadata), which change with every edit and move no computation. Equal
fingerprints from two trees (run this file with ``PYTHONPATH`` set to each) mean
the same compiled programs, so the same throughput: a stronger statement than any
timing on a shared machine.
"""

from __future__ import annotations

import hashlib
import re

import jax
import jax.numpy as jnp
from absl import flags
from ml_collections import config_flags

from flowjax import models
from flowjax.models import execution, glow
from flowjax.runs import runtime


# Flags are defined when run as a command, not on import: tests import several tools
# into one process, and absl refuses a flag name defined twice (--config, --precisions).
def _define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "Config with a `model` field.")
    flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to compile.")


_LOCATION_TABLES = re.compile(r"^(FileNames|FunctionNames|FileLocations|StackFrames)\n.*?\n\n",
                              re.S | re.M)


def fingerprint(compiled_text: str) -> str:
    """sha256 (first 16 hex digits) of an optimised HLO text less its source locations."""
    text = re.sub(r", metadata=\{[^}]*\}", "", compiled_text)
    text = _LOCATION_TABLES.sub("", text)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def program_fingerprints(model, batch_sizes: list[int]) -> dict[str, str]:
    """``{"encode b1": ..., "decode b1": ..., ...}`` for ``model`` with random weights."""
    variables = models.random_variables(model, 0)
    encoder, decoder = (execution.for_phase(model, p) for p in ("encode", "decode"))
    out = {}
    for batch in batch_sizes:
        images = jnp.zeros((batch, *model.image_shape), jnp.uint8)
        out[f"encode b{batch}"] = fingerprint(
            glow.encode.lower(encoder, variables, images).compile().as_text())
        latents = [jnp.zeros((batch, *s), jnp.float32) for s in model.latent_shapes]
        out[f"decode b{batch}"] = fingerprint(
            glow.decode.lower(decoder, variables, latents).compile().as_text())
    return out


def main(argv: list[str]) -> None:
    del argv
    model = models.model_from_config(flags.FLAGS.config.model)
    hashes = program_fingerprints(model, [int(b) for b in flags.FLAGS.batch_sizes])
    print(" | ".join(f"{name} {value}" for name, value in hashes.items()))


if __name__ == "__main__":
    _define_flags()
    flags.mark_flags_as_required(["config"])
    runtime.run(main)
