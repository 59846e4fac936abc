"""Large batches as a loop over cache-sized pieces, on a CPU.

Why: at level 0 a Glow's conditioner writes and reads back hidden activations
of ``(S/2)^2 x width`` floats per image (2 MiB at 64x64, width 512). While a
batch's worth of them stays in the CPU's last-level cache (32 MiB on the
project's machine), the convs feed from cache; a larger batch streams them
through memory. Measured on that machine (64x64, width 512, batch 32,
``tools/benchmark --pieces``, ``docs/benchmarks.md``): 77% of the matmul peak
for the uncut batch, 89% in pieces of 4, 79% in pieces of 8; at 256x256 one
image's activations already exceed the cache and pieces did not help. A GPU takes the
whole batch in one launch, so nothing is split there.

Every Glow computation outside data-dependent init is per image, so the pieces
give each image the result it gets in any other batch (to float rounding).
Pieces are equal-sized: a batch that does not divide is padded with copies of
its last image, and the padding is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

# The level-0 activation one piece may hold: a quarter of the measured machine's
# 32 MiB last-level cache (the conditioner keeps several such tensors live).
# Chosen by measurement: pieces of 4 (8 MiB) beat 1, 2, 8, 16 and whole batches.
PIECE_BYTES = 8 * 2**20


def widest_activation_bytes(model: Any) -> int:
    """Bytes of one image's level-0 conditioner activation, ``(S/2)^2 x width`` float32s."""
    return (model.image_size // 2) ** 2 * model.width * 4


def piece_size(model: Any, batch: int, requested: int | None = None,
               backend: str | None = None) -> int:
    """How many images each piece of a ``batch`` takes (``batch``: no split).

    ``requested`` fixes it (0: the whole batch). Otherwise, on a CPU, as many as
    fit :data:`PIECE_BYTES`, shared out evenly over the fewest pieces (a batch
    of 10 with room for 4 goes as three pieces of 4, the last padded by 2);
    elsewhere, or when one image alone overflows, the whole batch.
    """
    if requested is not None:
        if requested < 0:
            raise ValueError(f"piece size must be 0 (whole batch) or positive, got {requested}")
        return min(requested, batch) or batch
    if (backend or jax.default_backend()) != "cpu":
        return batch
    fit = PIECE_BYTES // widest_activation_bytes(model)
    if fit < 1 or batch <= fit:
        return batch
    pieces = -(-batch // fit)
    return -(-batch // pieces)


def map_pieces(fn: Callable[..., Any], args: tuple[Any, ...], size: int) -> Any:
    """``fn(*args)`` computed ``size`` images at a time in one ``lax.map`` loop.

    ``args`` are pytrees whose every leaf has the batch as its leading axis
    (``None`` leaves are allowed); so must ``fn``'s outputs. ``size`` at or
    above the batch calls ``fn`` once on everything.
    """
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError("map_pieces needs at least one batched array")
    batch = leaves[0].shape[0]
    if size >= batch:
        return fn(*args)
    if size < 1:
        raise ValueError(f"piece size must be at least 1, got {size}")
    pieces = -(-batch // size)
    padding = pieces * size - batch

    def split(x: jax.Array) -> jax.Array:
        if padding:
            x = jnp.concatenate([x, jnp.repeat(x[-1:], padding, axis=0)])
        return x.reshape(pieces, size, *x.shape[1:])

    out = jax.lax.map(lambda piece: fn(*piece), jax.tree.map(split, args))
    return jax.tree.map(lambda x: x.reshape(pieces * size, *x.shape[2:])[:batch], out)
