"""Latents: shapes, OpenAI's flat layout, and (later) latent arithmetic.

A Glow latent is a list of per-level arrays ``[eps_0, ..., eps_L-1]``: one
factored-out half per split level and the whole remaining tensor at the top.
The *flat* form concatenates the levels in order (level 0 first), each
flattened row-major over (H, W, C), exactly as OpenAI's ``demo/model.py``
``flatten_eps`` does, so OpenAI's ``z_manipulate.npy`` rows apply unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

Shape = tuple[int, int, int]


def latent_shapes(image_size: int, n_levels: int, channels: int = 3) -> list[Shape]:
    """Per-level latent shapes (H, W, C) of a Glow, without the batch axis.

    The first squeeze gives ``(S/2, S/2, 4*channels)``; every split level emits
    half its channels and squeezes the rest, so level ``i < L-1`` emits
    ``(S/2^(i+1), S/2^(i+1), 2*channels*2^i)`` and the top emits the whole
    remaining ``(S/2^L, S/2^L, 4*channels*2^(L-1))``.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    if image_size % (2**n_levels):
        raise ValueError(
            f"image_size must be divisible by 2**n_levels = {2**n_levels} "
            f"(n_levels={n_levels}), got {image_size}"
        )
    shapes: list[Shape] = []
    for level in range(n_levels):
        side = image_size // 2 ** (level + 1)
        level_channels = 4 * channels * 2**level
        if level < n_levels - 1:
            shapes.append((side, side, level_channels // 2))
        else:
            shapes.append((side, side, level_channels))
    return shapes


def flat_offsets(shapes: Sequence[Shape]) -> list[int]:
    """Start of each level inside the flat vector (OpenAI's order)."""
    sizes = [int(np.prod(s)) for s in shapes]
    return [int(o) for o in np.concatenate([[0], np.cumsum(sizes)[:-1]])]


def flat_size(shapes: Sequence[Shape]) -> int:
    return int(sum(np.prod(s) for s in shapes))


def flatten(latents: Sequence[jnp.ndarray]) -> jnp.ndarray:
    """Per-level ``[..., H, W, C]`` arrays -> one ``[..., D]`` array.

    Leading (batch) axes are kept; each level is flattened row-major over its
    last three axes and the levels are concatenated level 0 first.
    """
    lead = latents[0].shape[:-3]
    for i, z in enumerate(latents):
        if z.shape[:-3] != lead:
            raise ValueError(
                f"latent level {i} has leading axes {z.shape[:-3]}, expected {lead} "
                "(every level must share the batch axes)"
            )
    return jnp.concatenate([z.reshape(*lead, -1) for z in latents], axis=-1)


def unflatten(flat: jnp.ndarray, shapes: Sequence[Shape]) -> list[jnp.ndarray]:
    """Inverse of :func:`flatten`: ``[..., D]`` -> per-level ``[..., H, W, C]``."""
    expected = flat_size(shapes)
    if flat.shape[-1] != expected:
        raise ValueError(
            f"flat latent has {flat.shape[-1]} entries in its last axis, expected "
            f"{expected} for level shapes {list(shapes)}"
        )
    lead = flat.shape[:-1]
    out = []
    for offset, shape in zip(flat_offsets(shapes), shapes):
        size = int(np.prod(shape))
        out.append(flat[..., offset : offset + size].reshape(*lead, *shape))
    return out
