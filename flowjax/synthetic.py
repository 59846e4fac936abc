"""Synthetic cartoon faces with known identity and expression.

A vectorized, deterministic renderer of frontal cartoon faces. It serves two
purposes: the shipped demo dataset (a small Glow trains on it on the CPU) and
the ground truth for scoring expression transfer, since every image comes with
its identity id and its Action Unit (AU) intensities.

Geometry. Everything is drawn in *face coordinates*: x to the right, y down,
the face centre at the origin and the canvas spanning [-1, 1] when there is no
nuisance (so face and canvas coordinates then coincide and ``au_region_mask``
can name pixels). Each part is a signed distance (negative inside) or a band
between two curves; a pixel's coverage is a one-pixel linear ramp of the
distance (or the band's exact overlap with the pixel), which antialiases every
edge at any power-of-two size and keeps each part's pixels strictly local.
Parts are composited back to front over the background.

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
# Signed distances (negative inside) and drawing helpers


def _sd_ellipse(x: jax.Array, y: jax.Array, rx: jax.Array, ry: jax.Array) -> jax.Array:
    # First-order distance to an ellipse (value over gradient length): exact on
    # the boundary, which is all the antialiasing ramp needs.
    k0 = jnp.sqrt((x / rx) ** 2 + (y / ry) ** 2)
    k1 = jnp.sqrt((x / rx**2) ** 2 + (y / ry**2) ** 2)
    return k0 * (k0 - 1.0) / jnp.maximum(k1, 1e-6)


def _sd_segment(x, y, ax, ay, bx, by, radius) -> jax.Array:
    """Distance to the segment a-b minus ``radius`` (a capsule)."""
    px, py, dx, dy = x - ax, y - ay, bx - ax, by - ay
    t = jnp.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return jnp.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2) - radius


def _smoothstep(e0, e1, x) -> jax.Array:
    t = jnp.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _band(y: jax.Array, lo: jax.Array, hi: jax.Array, px: jax.Array) -> jax.Array:
    """Coverage of the band ``lo <= y <= hi`` by a pixel of height ``px``.

    Unlike a ramp of a signed distance, this goes to zero as the band thins,
    so a closing eye or mouth fades out instead of leaving a half-covered line.
    """
    return jnp.clip((jnp.minimum(y + 0.5 * px, hi) - jnp.maximum(y - 0.5 * px, lo)) / px, 0.0, 1.0)


# Fixed layout (face units). The region masks below rely on these numbers.
_EYE_Y = -0.05
_MOUTH_Y = 0.36
_JAW_TOP = 0.24  # the jaw-drop warp leaves everything above this line alone
_EYE_OPEN = 0.55  # eye half-height over eye half-width


def _canvas(size: int) -> tuple[jax.Array, jax.Array]:
    """Pixel-centre canvas coordinates ``(u, v)``, each ``[S, S]`` in [-1, 1]: u column, v row."""
    c = (jnp.arange(size, dtype=jnp.float32) + 0.5) * (2.0 / size) - 1.0
    return jnp.meshgrid(c, c)


def _undo_placement(u: jax.Array, v: jax.Array, nz: Nuisance) -> tuple[jax.Array, jax.Array]:
    """Canvas -> (flat) face coordinates: undo shift, then rotation, then scale."""
    du, dv = u - nz.shift[0], v - nz.shift[1]
    cos, sin = jnp.cos(nz.rotation), jnp.sin(nz.rotation)
    return (cos * du + sin * dv) / nz.scale, (-sin * du + cos * dv) / nz.scale


def _render_one(idp: IdentityParams, aus: jax.Array, nz: Nuisance, size: int) -> jax.Array:
    """One face, float32 ``[S, S, 3]`` in [0, 1] before noise; fields are per-image scalars."""
    u, _ = coords = _canvas(size)
    x, y = _undo_placement(*coords, nz)
    fpx = (2.0 / size) / nz.scale  # one pixel in face units
    img = _composite(_face_layers(idp, aus, x, y, fpx), idp.background, size)
    # Lighting: a global gain and a left-to-right ramp, in canvas coordinates.
    return img * (nz.gain * (1.0 + nz.light_gradient * u))[..., None]


def _face_layers(idp: IdentityParams, aus: jax.Array, x: jax.Array, y: jax.Array,
                 fpx: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
    """The face's parts at face coordinates ``x, y``, back to front: (RGB ``[3]``, coverage).

    ``fpx`` is one pixel in face units (the antialiasing ramp's width). Shared
    by both settings (``flowjax.synthetic_hard`` passes pose-warped coordinates).
    """
    cover = lambda sd: jnp.clip(0.5 - sd / fpx, 0.0, 1.0)  # noqa: E731

    def stroke(dist, half):
        # A line of half-width ``half`` around ``dist == 0``; lines thinner
        # than a pixel are drawn one pixel wide and proportionally fainter, so
        # they neither vanish nor thicken at small sizes.
        return cover(dist - jnp.maximum(half, 0.5 * fpx)) * jnp.minimum(1.0, 2.0 * half / fpx)

    a01, a02, a04, a06, a12, a15, a25, a26, a45 = [aus[i] / AU_MAX for i in range(len(AU_NAMES))]
    fw, fh = idp.face_width, idp.face_height
    skin, hair = idp.skin, idp.hair_color
    ax = jnp.abs(x)  # the face is mirror-symmetric apart from the hair parting

    # AU26: the lower face is stretched downwards, so the chin drops and the
    # mouth opens; the warp is zero above _JAW_TOP.
    chin_drop = 0.10 * a26
    yw = y - chin_drop * _smoothstep(_JAW_TOP, 0.80, y)

    layers = []  # (RGB [3], coverage [S, S]), back to front

    # Hair behind the head, cut off at the shoulders' line.
    sd_hair = jnp.maximum(_sd_ellipse(x, y + 0.06, fw * 1.12 + 0.03, fh * 1.08), y - 0.12)
    layers.append((hair, cover(sd_hair)))
    # Ears and neck, slightly shaded so the head outline stays readable.
    sd_ears = _sd_ellipse(ax - fw * 0.97, y - 0.02, 0.065, 0.11)
    layers.append((skin * 0.9, cover(sd_ears)))
    sd_neck = jnp.maximum(ax - fw * 0.42, 0.3 - y)
    layers.append((skin * 0.8, cover(sd_neck)))

    # Head: an ellipse whose lower half narrows towards the chin (jaw).
    narrow = 1.0 - idp.jaw * jnp.clip(yw / fh, 0.0, 1.0) ** 2
    sd_face = _sd_ellipse(x / narrow, yw, fw, fh) * narrow
    layers.append((skin, cover(sd_face)))
    # The sides a little darker: a hint of roundness.
    layers.append((jnp.zeros(3), 0.10 * (x / fw) ** 2 * cover(sd_face)))

    # Fringe: the top of the head above a hairline that drops at the temples
    # and has a slight side parting.
    hairline = idp.hairline + 0.16 * (x / fw) ** 2 - 0.05 * (x / fw)
    sd_fringe = jnp.maximum(sd_face - 0.01, y - hairline)
    layers.append((hair, cover(sd_fringe)))

    # Cheeks (AU06): the cheek apples rise and flush.
    cheek_y = 0.13 - 0.06 * a06
    r_cheek = jnp.sqrt(((ax - idp.eye_spacing - 0.03) / 0.10) ** 2 + ((y - cheek_y) / 0.065) ** 2)
    cheek_alpha = (0.12 + 0.55 * a06) * _smoothstep(1.0, 0.2, r_cheek)
    layers.append((0.55 * skin + 0.45 * jnp.array([0.95, 0.45, 0.45]), cheek_alpha))

    # Eyes, in eye units: ex along the eye (+-1 at the corners), ey down.
    es, ez = idp.eye_spacing, idp.eye_size
    ex = (ax - es) / ez
    ey = (y - _EYE_Y) / ez
    g = jnp.clip(1.0 - ex**2, 0.0, 1.0)
    top = -_EYE_OPEN * g**0.7
    bottom = 0.75 * _EYE_OPEN * g**0.8 * (1.0 - 0.5 * a06)  # AU06 pushes the lower lid up
    lid = top + a45 * (bottom - top)  # AU45: the upper lid comes down to the lower one
    outside = (jnp.abs(ex) - 1.0) * ez
    socket = jnp.maximum(top - 0.15 - ey, ey - 0.75 * _EYE_OPEN * g**0.8) * ez
    sd_socket = jnp.maximum(socket, outside - 0.01)
    layers.append((skin * 0.88, cover(sd_socket)))
    white = _band(ey * ez, lid * ez, bottom * ez, fpx) * cover(outside)
    layers.append((jnp.array([0.96, 0.96, 0.95]), white))
    iris_r = jnp.sqrt(ex**2 + (ey - 0.05) ** 2) * ez
    layers.append((idp.iris_color, white * cover(iris_r - 0.42 * ez)))
    layers.append((jnp.array([0.05, 0.04, 0.04]), white * cover(iris_r - 0.18 * ez)))
    glint_r = jnp.sqrt((ex - 0.16) ** 2 + (ey + 0.12) ** 2) * ez
    layers.append((jnp.array([1.0, 1.0, 1.0]), 0.9 * white * cover(glint_r - 0.09 * ez)))
    layers.append((skin * 0.65, 0.6 * stroke(jnp.abs(ey - bottom) * ez, 0.006) * cover(outside)))
    layers.append((hair * 0.4 + 0.02, stroke(jnp.abs(ey - lid) * ez, 0.013) * cover(outside - 0.01)))
    # AU06 also deepens a crease under the eye, which rises with the cheek.
    crease = 0.95 + 0.15 * ex**2 - 0.30 * a06
    crease_alpha = stroke(jnp.abs(ey - crease) * ez, 0.006) * cover((jnp.abs(ex) - 0.8) * ez)
    layers.append((skin * 0.6, a06 * crease_alpha))

    # Brows: two capsules per side, inner-middle and middle-outer, so that
    # AU01 (inner) and AU02 (outer) lift different ends; AU04 pulls them down
    # and towards the midline.
    bt = idp.brow_thickness
    in_x, in_y = es - 0.09 - 0.04 * a04, _EYE_Y - 0.19 - 0.10 * a01 + 0.08 * a04
    mid_x, mid_y = es + 0.02, _EYE_Y - 0.215 - 0.035 * a01 - 0.06 * a02 + 0.06 * a04
    out_x, out_y = es + 0.13, _EYE_Y - 0.18 - 0.10 * a02 + 0.04 * a04
    sd_brow = jnp.minimum(
        _sd_segment(ax, y, in_x, in_y, mid_x, mid_y, bt),
        _sd_segment(ax, y, mid_x, mid_y, out_x, out_y, bt * 0.8),
    )
    layers.append((hair * 0.6, cover(sd_brow)))
    furrow = _sd_segment(ax, y, 0.035, _EYE_Y - 0.15, 0.03, _EYE_Y - 0.07, 0.0)
    layers.append((skin * 0.7, 0.8 * a04 * stroke(furrow, 0.006)))

    # Nose: a shaded tip, nostrils and one side of the bridge.
    tip_y = _EYE_Y + idp.nose_length
    nw = idp.nose_width
    r_tip = jnp.sqrt((x / nw) ** 2 + ((y - tip_y + 0.01) / (0.6 * nw)) ** 2)
    layers.append((skin * 0.8, 0.6 * _smoothstep(1.0, 0.3, r_tip)))
    sd_nostril = _sd_ellipse(ax - 0.55 * nw, y - tip_y - 0.005, 0.3 * nw, 0.17 * nw)
    layers.append((skin * 0.5, cover(sd_nostril)))
    bridge = _sd_segment(x, y, 0.02, _EYE_Y + 0.04, 0.7 * nw, tip_y - 0.03, 0.0)
    layers.append((skin * 0.78, 0.6 * stroke(bridge, 0.007)))

    # Mouth, in mouth units mx (+-1 at the corners) on the jaw-warped y.
    mw = idp.mouth_width * (1.0 + 0.12 * a12 - 0.05 * a15)
    mx = x / mw
    g = jnp.clip(1.0 - mx**2, 0.0, 1.0)
    mid = _MOUTH_Y + (0.08 * a15 - 0.10 * a12) * mx**2  # AU12 corners up, AU15 down
    open_up = 0.022 * a25 + 0.012 * a26
    open_lo = 0.030 * a25 + 0.10 * a26
    m_out = (jnp.abs(mx) - 1.0) * mw
    inner_top, inner_bot = mid - open_up * g**0.6, mid + open_lo * g**0.6
    m_cover = cover(m_out)
    lips = _band(yw, inner_top - 0.032 * g**0.5, inner_bot + 0.042 * g**0.5, fpx) * m_cover
    layers.append((idp.lip_color, lips))
    layers.append((idp.lip_color * 0.5, stroke(jnp.abs(yw - mid), 0.006) * m_cover))
    layers.append((jnp.array([0.25, 0.06, 0.07]), _band(yw, inner_top, inner_bot, fpx) * m_cover))
    teeth_bot = jnp.minimum(inner_top + 0.03 * g, inner_bot)
    layers.append((jnp.array([0.95, 0.94, 0.90]), _band(yw, inner_top, teeth_bot, fpx) * m_cover))

    return layers


def _composite(layers, background: jax.Array, size: int) -> jax.Array:
    """``layers`` over ``background`` (RGB ``[3]`` or one ``[S, S]`` plane per channel): ``[S, S, 3]``."""
    # Composite per channel: three [S, S] planes fuse better on the CPU than
    # one [S, S, 3] array (about 20 % faster, measured).
    planes = [jnp.broadcast_to(background[k], (size, size)) for k in range(3)]
    for color, alpha in layers:
        planes = [p + alpha * (color[k] - p) for k, p in enumerate(planes)]
    return jnp.stack(planes, axis=-1)


def _hash32(x: jax.Array) -> jax.Array:
    """A well-mixing 32-bit integer hash (xor-shift-multiply, "lowbias32" constants)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _pixel_noise(seed: jax.Array, size: int) -> jax.Array:
    """Unit-variance, roughly Gaussian noise ``[S, S, 3]`` that depends only on ``seed``.

    One hash per value, its four bytes summed (Irwin-Hall of four uniforms):
    several times cheaper on the CPU than ``jax.random.normal``, which would
    dominate the cost of rendering.
    """
    counter = jnp.arange(size * size * 3, dtype=jnp.uint32).reshape(size, size, 3)
    h = _hash32(counter ^ _hash32(seed.astype(jnp.uint32) + jnp.uint32(0x9E3779B9)))
    total = sum(((h >> shift) & 0xFF).astype(jnp.float32) for shift in (0, 8, 16, 24))
    # Each byte is uniform on 0..255 (mean 127.5, variance (256**2 - 1) / 12).
    return (total - 4 * 127.5) / math.sqrt(4 * (256**2 - 1) / 12)


def _render_batch(identity: IdentityParams, aus: jax.Array, nuisance: Nuisance, size: int) -> jax.Array:
    img = jax.vmap(_render_one, in_axes=(0, 0, 0, None))(identity, aus, nuisance, size)
    return _noise_and_quantize(img, nuisance, size)


def _noise_and_quantize(img: jax.Array, nuisance: Nuisance, size: int) -> jax.Array:
    """Float images ``[N, S, S, 3]`` plus each image's own pixel noise, as uint8."""
    noise = jax.vmap(_pixel_noise, in_axes=(0, None))(nuisance.noise_seed, size)
    img = img + nuisance.noise_std[:, None, None, None] / 255.0 * noise
    return jnp.round(jnp.clip(img, 0.0, 1.0) * 255.0).astype(jnp.uint8)


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

    eye_half_height = _EYE_OPEN * ez_hi
    eyes = box(es_lo - ez_hi - 0.01, es_hi + ez_hi + 0.01, _EYE_Y - eye_half_height - 0.02, _EYE_Y + eye_half_height)
    regions = {
        "brows": box(0.0, es_hi + 0.18, _EYE_Y - 0.40, _EYE_Y - 0.05),
        "eyes": eyes,
        "cheeks": box(0.05, es_hi + 0.16, _EYE_Y, 0.22) | eyes,
        "mouth": box(0.0, 0.32, _JAW_TOP - 0.03, 0.52),
        "jaw": y >= _JAW_TOP - m,
    }
    which = {"AU01": "brows", "AU02": "brows", "AU04": "brows", "AU06": "cheeks", "AU12": "mouth",
             "AU15": "mouth", "AU25": "mouth", "AU26": "jaw", "AU45": "eyes"}
    return regions[which[au]]
