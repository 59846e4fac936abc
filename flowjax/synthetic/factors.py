"""The factors of a synthetic face, shared by both settings.

The Action Units (``AU_NAMES``, FACS intensities 0..``AU_MAX``), the prototype
expressions and their sampler, the identity parameter ranges, the parameter
types (``IdentityParams``, ``Nuisance``) and the checks of a setting and a
size. The easy setting (``flowjax.synthetic.easy``) and the hard one
(``flowjax.synthetic.hard``) build on these; ``flowjax.synthetic.renderer``
picks between them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

SETTINGS: tuple[str, ...] = ("easy", "hard")
AU_NAMES: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU06", "AU12", "AU15", "AU25", "AU26", "AU45")
AU_MAX = 5.0

# Strong prototype expressions (AU intensities, 0..5). Their order is the order
# in which ``flowjax.synthetic.datasets.make_study`` uses them.
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


def check_setting(setting: str) -> None:
    """A ``ValueError`` naming ``SETTINGS`` unless ``setting`` is one of them."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown synthetic setting {setting!r}; expected one of {SETTINGS}")


def check_size(size: int) -> None:
    """A ``ValueError`` unless ``size`` is a power of two of at least 8."""
    if not isinstance(size, (int, np.integer)) or size < 8 or size & (size - 1):
        raise ValueError(f"size must be a power of two >= 8 (e.g. 32, 64, 128, 256), got {size!r}")


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
