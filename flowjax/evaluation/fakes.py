"""Generic manipulations of synthetic faces: the fakes the synthetic fake detector learns.

The detector (:class:`~flowjax.evaluation.synthetic_scorers.SyntheticFakeDetector`)
judges the outputs of the transfer methods the benchmark compares (latent
arithmetic in a flow, the same arithmetic on pixels). To keep the benchmark's
answer out of its training, it never sees either: its fakes are manipulations
that share their *defects* (double outlines, seams, a flow's off-manifold
texture), made without any transfer:

* :func:`blend`: double exposures, an alpha blend of two renders (the same
  identity in another pose or expression, or another identity);
* :func:`splice`: a face band (:data:`BANDS`: the eyes or the mouth) pasted
  from another render through :func:`band_mask`, with a feathered seam;
* :func:`glow_samples` and :func:`glow_noisy_reconstructions`: decodes of a
  Glow's random latents, and of real renders' latents with noise added.

:func:`quantize` reduces bit depth the way a Glow's decoder does; training
applies it to reals and fakes alike, so bit depth is no clue.

Image functions are pure ``jax.numpy`` (traceable inside a jitted train step,
and fine on numpy input): uint8 ``[N, H, W, 3]`` in, uint8 out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.transfer import latents, sweep

__all__ = ["BANDS", "band_mask", "blend", "splice", "quantize", "glow_samples",
           "glow_noisy_reconstructions"]

# Boxes in canvas coordinates (the canvas spans [-1, 1]; y down), as
# (y_top, y_bottom, half_width): generous around flowjax.synthetic's fixed eye
# line (y = -0.05) and mouth line (y = 0.36), so nuisance shifts keep the part inside.
BANDS: dict[str, tuple[float, float, float]] = {
    "eyes": (-0.25, 0.10, 0.45),
    "mouth": (0.18, 0.56, 0.38),
}


def band_mask(band: str, size: int = 64, feather: float = 3.0) -> np.ndarray:
    """float32 ``[size, size]``: 1 inside ``BANDS[band]``, 0 beyond ``feather`` pixels
    outside it, a linear ramp (the seam) in between."""
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}; choose from {tuple(BANDS)}")
    if feather <= 0:
        raise ValueError(f"feather must be > 0 pixels, got {feather}")
    top, bottom, half_width = BANDS[band]
    centres = (np.arange(size) + 0.5) * 2.0 / size - 1.0  # canvas coordinate of each pixel
    to_px = size / 2.0

    def ramp(outside: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - np.maximum(outside, 0.0) * to_px / feather, 0.0, 1.0)

    rows = ramp(np.maximum(top - centres, centres - bottom))
    cols = ramp(np.abs(centres) - half_width)
    return (rows[:, None] * cols[None, :]).astype(np.float32)


def _mix(a: Any, b: Any, weight_of_b: Any) -> jax.Array:
    mixed = (1.0 - weight_of_b) * jnp.asarray(a, jnp.float32) + weight_of_b * jnp.asarray(b, jnp.float32)
    return jnp.round(jnp.clip(mixed, 0.0, 255.0)).astype(jnp.uint8)


def blend(a: Any, b: Any, weight: Any) -> jax.Array:
    """Double exposure ``(1 - w) a + w b`` per image (``weight`` ``[N]`` or a scalar)."""
    w = jnp.asarray(weight, jnp.float32)
    return _mix(a, b, w.reshape(w.shape + (1,) * (4 - w.ndim)) if w.ndim else w)


def splice(base: Any, donor: Any, mask: Any) -> jax.Array:
    """``base`` with ``donor`` pasted through ``mask`` (``[H, W]`` or ``[N, H, W]`` in [0, 1])."""
    return _mix(base, donor, jnp.asarray(mask, jnp.float32)[..., None])


def quantize(images: Any, bits: int) -> jax.Array:
    """uint8 images reduced to ``bits`` per channel, as a Glow's decoder outputs them
    (``floor(x * 2**bits / 256) * 256 / 2**bits``)."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    step = 2 ** (8 - bits)
    return (jnp.asarray(images, jnp.uint8) // step) * step


# ---- Glow fakes (slow: decode on the host in chunks, build a pool once) -----------------


def glow_samples(model: Any, variables: Any, key: jax.Array, n: int,
                 temperatures: Sequence[float], chunk_size: int = 32) -> np.ndarray:
    """uint8 ``[n, S, S, 3]``: decodes of N(0, t^2) eps, ``t`` uniform in ``temperatures``."""
    k_t, k_eps = jax.random.split(key)
    d = latents.flat_size(model.latent_shapes)
    t = jax.random.uniform(k_t, (n, 1), minval=temperatures[0], maxval=temperatures[1])
    eps = np.asarray(t * jax.random.normal(k_eps, (n, d)))
    return sweep.decode_latents(model, variables, eps, space="eps", chunk_size=chunk_size,
                                progress=False)


def glow_noisy_reconstructions(model: Any, variables: Any, images: np.ndarray, key: jax.Array,
                               noise_std: Sequence[float], chunk_size: int = 32) -> np.ndarray:
    """uint8: ``images`` encoded, eps + N(0, s^2) noise (``s`` uniform in ``noise_std``
    per image), decoded."""
    encoding = sweep.encode_images(model, variables, images, chunk_size=chunk_size, progress=False)
    eps = np.asarray(latents.flatten(list(latents.in_space(encoding, "eps"))))
    k_s, k_noise = jax.random.split(key)
    s = jax.random.uniform(k_s, (len(eps), 1), minval=noise_std[0], maxval=noise_std[1])
    noisy = eps + np.asarray(s * jax.random.normal(k_noise, eps.shape))
    return sweep.decode_latents(model, variables, noisy, space="eps", chunk_size=chunk_size,
                                progress=False)
