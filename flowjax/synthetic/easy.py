"""The ``"easy"`` setting: frontal cartoon faces with small 2-D nuisance.

Its identity and nuisance samplers, its pixels (drawn by
``flowjax.synthetic.drawing``: the face parts as signed distances, composited
over a plain background, with a global gain and a left-to-right lighting ramp)
and ``au_region_mask``, the pixels each Action Unit may change. Use it through
``flowjax.synthetic`` (``setting="easy"``, the default).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.synthetic import drawing
from flowjax.synthetic.factors import (AU_MAX, AU_NAMES, IDENTITY_RANGES, IdentityParams, Nuisance,
                                       _Columns, _palette, check_size)


_HAIR = np.array(
    [[0.08, 0.06, 0.05], [0.25, 0.15, 0.09], [0.45, 0.28, 0.14], [0.62, 0.30, 0.14],
     [0.85, 0.70, 0.40], [0.62, 0.60, 0.58]], np.float32)  # black, brown, chestnut, auburn, blond, grey
_IRIS = np.array(
    [[0.35, 0.20, 0.10], [0.18, 0.10, 0.06], [0.25, 0.45, 0.75], [0.30, 0.55, 0.35],
     [0.50, 0.42, 0.20], [0.50, 0.55, 0.60]], np.float32)  # brown, dark, blue, green, hazel, grey
_SKIN_LIGHT = np.array([0.98, 0.84, 0.74], np.float32)
_SKIN_DARK = np.array([0.42, 0.28, 0.20], np.float32)
_LIP_RED = np.array([0.78, 0.30, 0.32], np.float32)


@functools.partial(jax.jit, static_argnames=("n",))
def sample_identities(key: jax.Array, n: int) -> IdentityParams:
    """``n`` random identities: scalars uniform in ``IDENTITY_RANGES``, colours from palettes."""
    cols = _Columns(key, n, len(IDENTITY_RANGES) + 19)
    scalars = {name: cols.take(1, lo, hi) for name, (lo, hi) in IDENTITY_RANGES.items()}
    tone = cols.take()[:, None]
    skin = _SKIN_LIGHT + tone * (_SKIN_DARK - _SKIN_LIGHT)
    skin = jnp.clip(skin + cols.take(3, -0.03, 0.03), 0.0, 1.0)
    # Lips are a darker, redder version of the skin, so they read as lips on
    # every skin tone.
    lip = (skin + cols.take(1, 0.55, 0.85)[:, None] * (_LIP_RED - skin)) * 0.8
    # Muted backgrounds, far enough from skin that the outline stays visible.
    background = 0.5 * cols.take(3, 0.15, 0.85) + 0.5 * jnp.array([0.55, 0.62, 0.70])
    return IdentityParams(
        **scalars,
        skin=skin,
        hair_color=_palette(cols, _HAIR, 0.05),
        iris_color=_palette(cols, _IRIS, 0.05),
        lip_color=lip,
        background=background,
    )


def no_nuisance(n: int) -> Nuisance:
    """Canonical pose, neutral lighting, no noise (face and canvas coordinates coincide)."""
    zeros = np.zeros((n,), np.float32)
    return Nuisance(
        shift=np.zeros((n, 2), np.float32), scale=zeros + 1.0, rotation=zeros, gain=zeros + 1.0,
        light_gradient=zeros, noise_std=zeros, noise_seed=np.zeros((n,), np.uint32),
    )


@functools.partial(jax.jit, static_argnames=("n", "strength"))
def sample_nuisance(key: jax.Array, n: int, strength: float = 1.0) -> Nuisance:
    """Small random nuisance; ``strength`` scales every range (0 gives ``no_nuisance``).

    At strength 1: shift up to 0.04 canvas units (about 1.3 px at 64x64) per
    axis, scale 0.94-1.06, rotation up to 6 degrees, gain 0.88-1.12, lighting
    gradient up to 0.1, noise standard deviation up to 3 uint8 levels.
    """
    if not 0.0 <= strength <= 2.0:
        # Beyond 2 the head can leave the canvas.
        raise ValueError(f"nuisance strength must lie in [0, 2] (1 is the default amount), got {strength}")
    cols = _Columns(key, n, 8)
    u = lambda k=1: cols.take(k, -strength, strength)  # noqa: E731
    return Nuisance(
        shift=0.04 * u(2),
        scale=1.0 + 0.06 * u(),
        rotation=math.radians(6.0) * u(),
        gain=1.0 + 0.12 * u(),
        light_gradient=0.1 * u(),
        noise_std=1.5 * (u() + strength),
        noise_seed=(cols.take() * 2.0**24).astype(jnp.uint32),  # float32 holds 24 random bits
    )


# --------------------------------------------------------------------------
# Pixels (drawn by flowjax.synthetic.drawing)


def _render_one(idp: IdentityParams, aus: jax.Array, nz: Nuisance, size: int) -> jax.Array:
    """One face, float32 ``[S, S, 3]`` in [0, 1] before noise; fields are per-image scalars."""
    u, _ = coords = drawing.canvas(size)
    x, y = drawing.undo_placement(*coords, nz)
    fpx = (2.0 / size) / nz.scale  # one pixel in face units
    img = drawing.composite(drawing.face_layers(idp, aus / AU_MAX, x, y, fpx), idp.background, size)
    # Lighting: a global gain and a left-to-right ramp, in canvas coordinates.
    return img * (nz.gain * (1.0 + nz.light_gradient * u))[..., None]


def render_batch(identity: IdentityParams, aus: jax.Array, nuisance: Nuisance, size: int) -> jax.Array:
    img = jax.vmap(_render_one, in_axes=(0, 0, 0, None))(identity, aus, nuisance, size)
    return drawing.noise_and_quantize(img, nuisance, size)


# The renderer is pure per-pixel arithmetic, so its speed rests on LLVM's
# vectorization: pin the backend optimisation level so that an XLA_FLAGS
# lowering it (tests do that to compile faster) cannot make it ~500x slower.
render_jit = jax.jit(
    render_batch, static_argnames="size", compiler_options={"xla_backend_optimization_level": 3}
)


def au_region_mask(au: str, size: int = 64) -> np.ndarray:
    """Boolean ``[size, size]``: the pixels ``au`` may change, for any identity, without nuisance.

    Derived from the fixed layout and the extremes of ``IDENTITY_RANGES``, plus
    one pixel of antialiasing margin.
    """
    check_size(size)
    if au not in AU_NAMES:
        raise ValueError(f"unknown AU {au!r}; expected one of {AU_NAMES}")
    px = 2.0 / size
    c = (np.arange(size) + 0.5) * px - 1.0
    x, y = np.meshgrid(c, c)
    ax = np.abs(x)
    es_lo, es_hi = IDENTITY_RANGES["eye_spacing"]
    ez_hi = IDENTITY_RANGES["eye_size"][1]
    m = 1.5 * px

    def box(x0, x1, y0, y1):
        return (ax >= x0 - m) & (ax <= x1 + m) & (y >= y0 - m) & (y <= y1 + m)

    # The fixed layout the face parts are drawn at (flowjax.synthetic.drawing).
    eye_y, jaw_top = drawing.EYE_Y, drawing.JAW_TOP
    eye_half_height = drawing.EYE_OPEN * ez_hi
    eyes = box(es_lo - ez_hi - 0.01, es_hi + ez_hi + 0.01, eye_y - eye_half_height - 0.02, eye_y + eye_half_height)
    regions = {
        "brows": box(0.0, es_hi + 0.18, eye_y - 0.40, eye_y - 0.05),
        "eyes": eyes,
        "cheeks": box(0.05, es_hi + 0.16, eye_y, 0.22) | eyes,
        "mouth": box(0.0, 0.32, jaw_top - 0.03, 0.52),
        "jaw": y >= jaw_top - m,
    }
    which = {"AU01": "brows", "AU02": "brows", "AU04": "brows", "AU06": "cheeks", "AU12": "mouth",
             "AU15": "mouth", "AU25": "mouth", "AU26": "jaw", "AU45": "eyes"}
    return regions[which[au]]
