"""Synthetic cartoon faces with known identity and expression.

A vectorized, deterministic renderer of frontal cartoon faces. It serves two
purposes: the shipped demo dataset (a small Glow trains on it on the CPU) and
the ground truth for scoring expression transfer, since every image comes with
its identity id and its Action Unit (AU) intensities.

Geometry. Everything is drawn in *face coordinates*: x to the right, y down,
the face centre at the origin and the canvas spanning [-1, 1] when there is no
nuisance (so face and canvas coordinates then coincide and ``au_region_mask``
can name pixels). The parts are drawn as antialiased signed distances,
composited back to front over the background, by ``flowjax.synthetic_drawing``;
this module samples the factors, validates them and renders.

Expressions use the FACS intensity scale 0..5 with OpenFace's AU names, in the
order of ``AU_NAMES``. Each AU moves only its own parts, linearly in intensity:

======  ======================  =============================================
AU      name                    drawn as
======  ======================  =============================================
AU01    inner brow raiser       inner brow ends up
AU02    outer brow raiser       outer brow ends up
AU04    brow lowerer            brows down and together, furrows between them
AU06    cheek raiser            cheeks up and flushed, lower lids up, crease
AU12    lip corner puller       mouth corners up, mouth slightly wider
AU15    lip corner depressor    mouth corners down
AU25    lips part               lips apart, upper teeth show
AU26    jaw drop                mouth opens vertically, chin lower
AU45    blink                   upper lids close
======  ======================  =============================================

Locality (with nuisance off): AU01/02/04 change only ``au_region_mask``'s brow
band, AU06 only the cheeks and lower lids, AU45 only the eyes, AU12/15/25 only
the mouth box and AU26 only the lower face (mouth, chin, jaw line).

Arrays. ``render`` is pure ``jax.numpy``, one jitted, vmapped call per batch
(it also works inside a caller's ``jit``), and returns a ``jax.Array``; the
dataset and study builders (``make_dataset``, ``make_study``) are
``flowjax.synthetic_data`` and return host ``numpy`` arrays. Images are NHWC
``uint8`` RGB.
Randomness comes only from explicit seeds and keys; pixel noise is a hash of
each image's own seed, so an image does not depend on the batch around it.

Settings (``SETTINGS``, the ``setting`` argument of the samplers, ``render``
and the builders of ``flowjax.synthetic_data``): ``"easy"`` (the default) is the renderer
described above; ``"hard"`` adds 3-D head pose, Lambertian lighting, skin
texture, patterned backgrounds, hair styles and glasses, so that pixel-space
averages ghost (``flowjax.synthetic_hard``; its identities and nuisance are
``HardIdentity`` and ``HardNuisance``, which wrap the easy ones).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from flowjax import synthetic_drawing as drawing

SETTINGS: tuple[str, ...] = ("easy", "hard")
AU_NAMES: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU06", "AU12", "AU15", "AU25", "AU26", "AU45")
AU_MAX = 5.0

# Strong prototype expressions (AU intensities, 0..5). Their order is the order
# in which ``flowjax.synthetic_data.make_study`` uses them.
PROTOTYPES: Mapping[str, Mapping[str, float]] = {
    "smile": {"AU06": 3.5, "AU12": 4.5, "AU25": 2.5},
    "surprise": {"AU01": 4.5, "AU02": 4.5, "AU25": 3.0, "AU26": 4.0},
    "anger": {"AU04": 4.5, "AU15": 2.0},
    "sadness": {"AU01": 4.0, "AU04": 2.5, "AU15": 4.0},
    "blink": {"AU45": 5.0},
    "fear": {"AU01": 4.0, "AU02": 3.0, "AU04": 3.0, "AU25": 3.0, "AU26": 2.0},
}

EXPRESSION_STRENGTHS = ("mild", "strong", "uniform", "mixed")

# Scalar identity parameters: (low, high) of the sampling range, in face units
# (the canvas spans [-1, 1]) unless stated.
IDENTITY_RANGES: Mapping[str, tuple[float, float]] = {
    "face_width": (0.52, 0.64),  # half-width of the head ellipse
    "face_height": (0.68, 0.76),  # half-height of the head ellipse
    "jaw": (0.0, 0.35),  # narrowing towards the chin: 0 round, 0.35 pointed
    "hairline": (-0.60, -0.44),  # height of the fringe at the centre
    "eye_spacing": (0.19, 0.25),  # distance of each eye centre from the midline
    "eye_size": (0.09, 0.13),  # half-width of an eye
    "brow_thickness": (0.018, 0.036),  # half-thickness of a brow stroke
    "nose_length": (0.15, 0.22),  # eye line to nose tip
    "nose_width": (0.05, 0.08),  # half-width of the nose tip
    "mouth_width": (0.16, 0.23),  # half-width of the neutral mouth
}
# RGB identity parameters, floats in [0, 1].
IDENTITY_COLORS = ("skin", "hair_color", "iris_color", "lip_color", "background")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class IdentityParams:
    """A batch of identities: one row per face.

    Scalar fields have shape ``[N]`` (ranges and meaning in
    ``IDENTITY_RANGES``); colour fields have shape ``[N, 3]``, RGB in [0, 1].
    """

    face_width: jax.Array
    face_height: jax.Array
    jaw: jax.Array
    hairline: jax.Array
    eye_spacing: jax.Array
    eye_size: jax.Array
    brow_thickness: jax.Array
    nose_length: jax.Array
    nose_width: jax.Array
    mouth_width: jax.Array
    skin: jax.Array
    hair_color: jax.Array
    iris_color: jax.Array
    lip_color: jax.Array
    background: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Nuisance:
    """Per-image nuisance (pose, lighting, noise); all ``[N]`` except ``shift``.

    ``shift`` ``[N, 2]`` moves the face (canvas units, x then y); ``scale``
    multiplies its size; ``rotation`` is in radians; ``gain`` multiplies the
    brightness and ``light_gradient`` adds a left-to-right ramp (relative
    brightness change per canvas unit); ``noise_std`` is Gaussian pixel noise
    in uint8 levels drawn from ``noise_seed`` (uint32), so each image's noise
    depends only on its own seed, not on the batch it is rendered in.
    """

    shift: jax.Array
    scale: jax.Array
    rotation: jax.Array
    gain: jax.Array
    light_gradient: jax.Array
    noise_std: jax.Array
    noise_seed: jax.Array


# --------------------------------------------------------------------------
# Sampling


def check_setting(setting: str) -> None:
    """A ``ValueError`` naming ``SETTINGS`` unless ``setting`` is one of them."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown synthetic setting {setting!r}; expected one of {SETTINGS}")


def _hard():
    # Imported on use: flowjax.synthetic_hard builds on this module.
    from flowjax import synthetic_hard

    return synthetic_hard


_HAIR = np.array(
    [[0.08, 0.06, 0.05], [0.25, 0.15, 0.09], [0.45, 0.28, 0.14], [0.62, 0.30, 0.14],
     [0.85, 0.70, 0.40], [0.62, 0.60, 0.58]], np.float32)  # black, brown, chestnut, auburn, blond, grey
_IRIS = np.array(
    [[0.35, 0.20, 0.10], [0.18, 0.10, 0.06], [0.25, 0.45, 0.75], [0.30, 0.55, 0.35],
     [0.50, 0.42, 0.20], [0.50, 0.55, 0.60]], np.float32)  # brown, dark, blue, green, hazel, grey
_SKIN_LIGHT = np.array([0.98, 0.84, 0.74], np.float32)
_SKIN_DARK = np.array([0.42, 0.28, 0.20], np.float32)
_LIP_RED = np.array([0.78, 0.30, 0.32], np.float32)


class _Columns:
    """Hands out consecutive columns of one uniform draw ``[n, k]``.

    Each sampler makes a single ``jax.random`` call: every call inlines its own
    threefry hash, and a few dozen of them make compilation take seconds.
    """

    def __init__(self, key: jax.Array, n: int, k: int):
        self.u, self.next = jax.random.uniform(key, (n, k)), 0

    def take(self, k: int = 1, low: float = 0.0, high: float = 1.0) -> jax.Array:
        cols = self.u[:, self.next:self.next + k]
        self.next += k
        return low + (high - low) * (cols[:, 0] if k == 1 else cols)


def _palette(cols: _Columns, palette: np.ndarray, jitter: float) -> jax.Array:
    index = jnp.minimum((cols.take() * len(palette)).astype(jnp.int32), len(palette) - 1)
    return jnp.clip(jnp.asarray(palette)[index] + cols.take(3, -jitter, jitter), 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("n", "setting"))
def sample_identities(key: jax.Array, n: int, setting: str = "easy") -> IdentityParams:
    """``n`` random identities: scalars uniform in ``IDENTITY_RANGES``, colours from palettes.

    ``setting="hard"``: a ``HardIdentity`` whose ``base`` is the easy identity of the same key.
    """
    check_setting(setting)
    if setting == "hard":
        return _hard().sample_identities(key, n)
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


def prototype_aus(name: str, scale: float = 1.0) -> np.ndarray:
    """The AU vector ``[len(AU_NAMES)]`` of a named prototype, times ``scale`` (clipped to 5)."""
    if name not in PROTOTYPES:
        raise ValueError(f"unknown expression prototype {name!r}; expected one of {tuple(PROTOTYPES)}")
    aus = np.zeros(len(AU_NAMES), np.float32)
    for au, value in PROTOTYPES[name].items():
        aus[AU_NAMES.index(au)] = value
    return np.clip(aus * np.float32(scale), 0.0, AU_MAX)


@functools.partial(jax.jit, static_argnames=("n", "strength"))
def sample_expressions(key: jax.Array, n: int, strength: str = "mild") -> jax.Array:
    """``n`` AU vectors ``[n, len(AU_NAMES)]`` on the 0..5 scale.

    ``strength``: ``"mild"`` (each AU active with probability 0.35, intensity
    up to 1.5), ``"strong"`` (a random prototype at 75-110 % plus mild noise),
    ``"uniform"`` (each AU active with probability 0.5, intensity uniform in
    0..5, so AUs are decorrelated) or ``"mixed"`` (a third of each of the
    previous three, per sample; use it for training data).
    """
    if strength not in EXPRESSION_STRENGTHS:
        raise ValueError(f"strength must be one of {EXPRESSION_STRENGTHS}, got {strength!r}")
    n_au = len(AU_NAMES)
    cols = _Columns(key, n, 4 * n_au + 3)
    mild = (cols.take(n_au) < 0.35) * cols.take(n_au, 0.0, 1.5)
    uniform = (cols.take(n_au) < 0.5) * cols.take(n_au, 0.0, AU_MAX)
    which = jnp.minimum((cols.take() * len(PROTOTYPES)).astype(jnp.int32), len(PROTOTYPES) - 1)
    table = jnp.asarray(np.stack([prototype_aus(p) for p in PROTOTYPES]))
    strong = table[which] * cols.take(1, 0.75, 1.1)[:, None]
    strong = jnp.clip(jnp.maximum(strong, mild / 3.0), 0.0, AU_MAX)
    pick = cols.take()[:, None] * 3.0
    mixed = jnp.where(pick < 1.0, mild, jnp.where(pick < 2.0, strong, uniform))
    return {"mild": mild, "strong": strong, "uniform": uniform, "mixed": mixed}[strength]


def no_nuisance(n: int, setting: str = "easy") -> Nuisance:
    """Canonical pose, neutral lighting, no noise (face and canvas coordinates coincide).

    ``setting="hard"``: a ``HardNuisance``, also with the identity's plain background.
    """
    check_setting(setting)
    if setting == "hard":
        return _hard().no_nuisance(n)
    zeros = np.zeros((n,), np.float32)
    return Nuisance(
        shift=np.zeros((n, 2), np.float32), scale=zeros + 1.0, rotation=zeros, gain=zeros + 1.0,
        light_gradient=zeros, noise_std=zeros, noise_seed=np.zeros((n,), np.uint32),
    )


@functools.partial(jax.jit, static_argnames=("n", "strength", "setting"))
def sample_nuisance(key: jax.Array, n: int, strength: float = 1.0, setting: str = "easy") -> Nuisance:
    """Small random nuisance; ``strength`` scales every range (0 gives ``no_nuisance``).

    At strength 1: shift up to 0.04 canvas units (about 1.3 px at 64x64) per
    axis, scale 0.94-1.06, rotation up to 6 degrees, gain 0.88-1.12, lighting
    gradient up to 0.1, noise standard deviation up to 3 uint8 levels.
    ``setting="hard"``: ``synthetic_hard.sample_nuisance`` (strength in [0, 1]).
    """
    check_setting(setting)
    if setting == "hard":
        return _hard().sample_nuisance(key, n, strength)
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
# The easy setting's pixels (drawn by flowjax.synthetic_drawing)


def _render_one(idp: IdentityParams, aus: jax.Array, nz: Nuisance, size: int) -> jax.Array:
    """One face, float32 ``[S, S, 3]`` in [0, 1] before noise; fields are per-image scalars."""
    u, _ = coords = drawing.canvas(size)
    x, y = drawing.undo_placement(*coords, nz)
    fpx = (2.0 / size) / nz.scale  # one pixel in face units
    img = drawing.composite(drawing.face_layers(idp, aus / AU_MAX, x, y, fpx), idp.background, size)
    # Lighting: a global gain and a left-to-right ramp, in canvas coordinates.
    return img * (nz.gain * (1.0 + nz.light_gradient * u))[..., None]


def _render_batch(identity: IdentityParams, aus: jax.Array, nuisance: Nuisance, size: int) -> jax.Array:
    img = jax.vmap(_render_one, in_axes=(0, 0, 0, None))(identity, aus, nuisance, size)
    return drawing.noise_and_quantize(img, nuisance, size)


# The renderer is pure per-pixel arithmetic, so its speed rests on LLVM's
# vectorization: pin the backend optimisation level so that an XLA_FLAGS
# lowering it (tests do that to compile faster) cannot make it ~500x slower.
_render_jit = jax.jit(
    _render_batch, static_argnames="size", compiler_options={"xla_backend_optimization_level": 3}
)


# --------------------------------------------------------------------------
# Public rendering and validation


def check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 8 or size & (size - 1):
        raise ValueError(f"size must be a power of two >= 8 (e.g. 32, 64, 128, 256), got {size!r}")


def _check_batch(name: str, tree, n: int, shapes: Mapping[str, tuple[int, ...]]) -> None:
    for field in dataclasses.fields(tree):
        value = getattr(tree, field.name)
        if dataclasses.is_dataclass(value):
            _check_batch(f"{name}.{field.name}", value, n, shapes)
            continue
        expected = (n, *shapes.get(field.name, ()))
        if tuple(jnp.shape(value)) != expected:
            raise ValueError(
                f"{name}.{field.name} must have shape {expected} (one row per AU vector), "
                f"got {tuple(jnp.shape(value))}"
            )


def _check_aus(aus) -> None:
    shape = tuple(jnp.shape(aus))
    if len(shape) != 2 or shape[1] != len(AU_NAMES):
        raise ValueError(
            f"aus must have shape [N, {len(AU_NAMES)}] (columns {', '.join(AU_NAMES)}), got shape {shape}"
        )
    if isinstance(aus, jax.core.Tracer):
        return  # values are unknown under tracing; the caller's jit owns them
    values = np.asarray(aus, np.float32)
    bad = ~((values >= 0.0) & (values <= AU_MAX))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"AU intensities must lie in [0, {AU_MAX:g}]; got {values[row, col]} for {AU_NAMES[col]} "
            f"in row {row} ({int(bad.sum())} bad values in all); clip them, e.g. np.clip(aus, 0, 5)"
        )


def _cast(tree, uint_fields: tuple[str, ...]):
    """Every leaf float32, seeds uint32: float64 or integer inputs must not compile a second program."""
    values = {}
    for field in dataclasses.fields(tree):
        value = getattr(tree, field.name)
        values[field.name] = (_cast(value, uint_fields) if dataclasses.is_dataclass(value) else
                              jnp.asarray(value, jnp.uint32 if field.name in uint_fields else jnp.float32))
    return dataclasses.replace(tree, **values)


def render(
    identity: IdentityParams, aus: jax.Array, nuisance: Nuisance | None = None, size: int = 64,
    setting: str = "easy",
) -> jax.Array:
    """Render faces: uint8 ``[N, size, size, 3]``, one per row of ``aus``.

    ``identity`` and ``nuisance`` (``None``: ``no_nuisance``) hold one row per
    image; ``aus`` is ``[N, len(AU_NAMES)]`` on the 0..5 scale. One jitted,
    vmapped call per (N, size): same-shaped calls do not recompile.
    ``setting="hard"`` takes ``HardIdentity`` and ``HardNuisance`` (from the
    samplers with ``setting="hard"``).
    """
    check_setting(setting)
    check_size(size)
    _check_aus(aus)
    n = jnp.shape(aus)[0]
    hard = _hard() if setting == "hard" else None
    nuisance = no_nuisance(n, setting) if nuisance is None else nuisance
    kinds = (hard.HardIdentity, hard.HardNuisance) if hard else (IdentityParams, Nuisance)
    for name, tree, kind in zip(("identity", "nuisance"), (identity, nuisance), kinds):
        if not isinstance(tree, kind):
            raise ValueError(f"setting={setting!r} renders a {kind.__name__} {name} (from the samplers "
                             f"with setting={setting!r}), got {type(tree).__name__}")
    extra = (hard.IDENTITY_SHAPES, hard.NUISANCE_SHAPES) if hard else ({}, {})
    _check_batch("identity", identity, n, {c: (3,) for c in IDENTITY_COLORS} | extra[0])
    _check_batch("nuisance", nuisance, n, {"shift": (2,)} | extra[1])
    uint_fields = ("noise_seed", *(hard.UINT_FIELDS if hard else ()))
    identity, nuisance = _cast(identity, uint_fields), _cast(nuisance, uint_fields)
    aus = jnp.asarray(aus, jnp.float32)
    leaves = jax.tree_util.tree_leaves((identity, aus, nuisance))
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        # Inside a caller's jit, which owns the compilation (and its options).
        return (hard.render_batch if hard else _render_batch)(identity, aus, nuisance, int(size))
    return (hard.render_jit if hard else _render_jit)(identity, aus, nuisance, size=int(size))


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

    # The fixed layout the face parts are drawn at (flowjax.synthetic_drawing).
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
