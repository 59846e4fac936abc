"""The ``"hard"`` setting of the synthetic faces (``flowjax.synthetic``).

The easy faces differ only by small 2-D nuisance, so averaging photos in pixel
space already gives a sharp face and pixel arithmetic (mean of the target's
photos + source - source mean) looks almost right. The hard setting keeps the
same face parts, identities and Action Units (``drawing.face_layers``
draws them) but adds factors that make pixel averages ghost while leaving a good
latent space something to factor out:

* **Head pose** (per image): yaw and pitch up to 15 degrees as a pseudo-3D
  warp. The face lies on a head "ellipsoid" (a paraboloid cap, see
  ``_depth``) with the nose as a bump in front of it; rotating it moves every
  feature by sin(angle) times its depth (the nose most) and foreshortens the
  far side. Roll up to 15 degrees, shift up to 0.2 canvas units (10 % of the
  canvas) and scale 0.88-1.12.
* **Lighting** (per image): Lambertian shading of the head's normal map under
  a light direction, an ambient share and a gain, instead of the easy ramp.
* **Skin texture** (identity): two octaves of smooth value noise in face
  coordinates, seeded by the identity's ``texture_seed``: the same blotches on
  every photo of an identity, moving with its face. Per-image pixel noise is
  as in the easy setting.
* **Background** (per image): a gradient, stripes or smooth blobs between two
  random colours, drawn in canvas coordinates (it does not move with the face).
* **Hair and glasses** (identity): hair length and volume; glasses on about a
  third of identities, with their own frame colour and size.

Identity factors of the hard setting live in ``HardIdentity`` next to the
easy ``IdentityParams`` (its ``base``), and per-image factors in
``HardNuisance`` next to the easy ``Nuisance`` (its ``base``): the easy
samplers, parameters and images stay exactly as they were, and a hard identity
has the same face shape and colours as the easy identity of the same key.

Use it through ``flowjax.synthetic`` with ``setting="hard"``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.synthetic import drawing, easy
from flowjax.synthetic.factors import AU_MAX, IdentityParams, Nuisance, _Columns, _palette

_MAX_ANGLE = math.radians(15.0)  # yaw, pitch and roll at nuisance strength 1
_HEAD_DEPTH = 0.40  # depth of the head cap's centre in front of its rim (face units)
_NOSE_DEPTH = 0.12  # the nose bump on top of it
_GLASSES_SHARE = 0.35  # fraction of identities wearing glasses
_FRAMES = np.array([[0.08, 0.07, 0.07], [0.35, 0.20, 0.10], [0.62, 0.62, 0.66], [0.55, 0.12, 0.15]],
                   np.float32)  # black, tortoise, metal, red


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HardIdentity:
    """A batch of hard-setting identities: the easy parameters plus hard-only ones.

    ``base``: ``IdentityParams``. ``[N]`` fields: ``texture_seed`` (uint32,
    seeds the skin texture), ``texture_amount`` (relative brightness change of
    the texture, 0.05-0.12), ``hair_length`` (0 cropped .. 1 shoulder length),
    ``hair_volume`` (0 flat .. 1 full), ``glasses`` (1.0 wears glasses, else
    0.0), ``glasses_size`` (lens size relative to the eye, 1.15-1.45);
    ``glasses_color`` ``[N, 3]`` RGB frame colour.
    """

    base: IdentityParams
    texture_seed: jax.Array
    texture_amount: jax.Array
    hair_length: jax.Array
    hair_volume: jax.Array
    glasses: jax.Array
    glasses_size: jax.Array
    glasses_color: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HardNuisance:
    """Per-image nuisance of the hard setting: the easy ``Nuisance`` plus 3-D pose, light, background.

    ``base``: ``Nuisance`` (shift, roll as ``rotation``, scale, gain, pixel
    noise; its ``light_gradient`` is unused: shading replaces it). ``[N]``:
    ``yaw`` and ``pitch`` (radians; positive yaw turns the face to its left,
    i.e. the nose moves right on the canvas, positive pitch tilts it down);
    ``light_azimuth`` and ``light_elevation`` (radians, 0 = from the camera);
    ``ambient`` (share of unshaded light, 1 = no shading); ``background_mix``
    (0 = the identity's plain background colour, 1 = the pattern);
    ``background_kind`` (0 gradient, 1 stripes, 2 blobs); ``background_angle``,
    ``background_frequency`` and ``background_seed`` (uint32) shape the
    pattern; ``background_colors`` ``[N, 2, 3]`` its two RGB colours.
    """

    base: Nuisance
    yaw: jax.Array
    pitch: jax.Array
    light_azimuth: jax.Array
    light_elevation: jax.Array
    ambient: jax.Array
    background_mix: jax.Array
    background_kind: jax.Array
    background_angle: jax.Array
    background_frequency: jax.Array
    background_seed: jax.Array
    background_colors: jax.Array


# Trailing shapes of the non-[N] fields, for synthetic.render's checks.
IDENTITY_SHAPES = {"glasses_color": (3,)}
NUISANCE_SHAPES = {"background_colors": (2, 3)}
UINT_FIELDS = ("texture_seed", "background_seed")


# --------------------------------------------------------------------------
# Sampling


def sample_identities(key: jax.Array, n: int) -> HardIdentity:
    """``n`` hard identities; ``base`` is exactly ``synthetic.sample_identities(key, n)``."""
    cols = _Columns(jax.random.fold_in(key, 1), n, 10)
    return HardIdentity(
        base=easy.sample_identities(key, n),
        texture_seed=(cols.take() * 2.0**24).astype(jnp.uint32),  # float32 holds 24 random bits
        texture_amount=cols.take(1, 0.05, 0.12),
        hair_length=cols.take(),
        hair_volume=cols.take(),
        glasses=(cols.take() < _GLASSES_SHARE).astype(jnp.float32),
        glasses_size=cols.take(1, 1.15, 1.45),
        glasses_color=_palette(cols, _FRAMES, 0.04),
    )


def no_nuisance(n: int) -> HardNuisance:
    """Canonical pose, frontal neutral light, the identity's plain background, no noise."""
    zeros = np.zeros((n,), np.float32)
    return HardNuisance(
        base=easy.no_nuisance(n), yaw=zeros, pitch=zeros, light_azimuth=zeros, light_elevation=zeros,
        ambient=zeros + 1.0, background_mix=zeros, background_kind=zeros, background_angle=zeros,
        background_frequency=zeros + 1.0, background_seed=np.zeros((n,), np.uint32),
        background_colors=np.zeros((n, 2, 3), np.float32),
    )


def sample_nuisance(key: jax.Array, n: int, strength: float = 1.0) -> HardNuisance:
    """Random hard nuisance; ``strength`` in [0, 1] scales pose, placement and light (0: canonical).

    At strength 1: yaw, pitch and roll up to 15 degrees, shift up to 0.2
    canvas units per axis, scale 0.88-1.12, gain 0.9-1.15, light from up to
    60 degrees off the camera axis with 35-75 % ambient, noise as the easy
    setting, and a patterned background mixed in at 0.6-1.0 of ``strength``.
    """
    if not 0.0 <= strength <= 1.0:
        # Beyond 1 the pose warp's fixed-point inverse stops converging and
        # the head leaves the canvas.
        raise ValueError(f"hard nuisance strength must lie in [0, 1] (1 is the default amount), got {strength}")
    cols = _Columns(key, n, 23)
    u = lambda k=1: cols.take(k, -strength, strength)  # noqa: E731
    base = Nuisance(
        shift=0.2 * u(2), scale=1.0 + 0.12 * u(), rotation=_MAX_ANGLE * u(),
        gain=1.0 + 0.025 * strength + 0.125 * u(), light_gradient=jnp.zeros((n,)),
        noise_std=1.5 * (u() + strength), noise_seed=(cols.take() * 2.0**24).astype(jnp.uint32),
    )
    return HardNuisance(
        base=base, yaw=_MAX_ANGLE * u(), pitch=_MAX_ANGLE * u(),
        light_azimuth=math.radians(60.0) * u(), light_elevation=math.radians(45.0) * u(),
        ambient=1.0 - strength * cols.take(1, 0.25, 0.65),
        background_mix=strength * cols.take(1, 0.6, 1.0),
        background_kind=jnp.floor(cols.take() * 3.0),
        background_angle=cols.take(1, 0.0, math.pi),
        background_frequency=cols.take(1, 2.0, 6.0),
        background_seed=(cols.take() * 2.0**24).astype(jnp.uint32),
        background_colors=cols.take(6, 0.08, 0.92).reshape(n, 2, 3),
    )


# --------------------------------------------------------------------------
# Drawing


def _value_noise(x: jax.Array, y: jax.Array, seed: jax.Array, frequency: float | jax.Array) -> jax.Array:
    """Smooth noise in [-1, 1]: hashed lattice values, smoothstep-interpolated; a function of ``seed``."""
    gx, gy = x * frequency, y * frequency
    ix, iy = jnp.floor(gx), jnp.floor(gy)
    fx, fy = gx - ix, gy - iy
    fx, fy = fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy)
    salt = drawing.hash32(seed.astype(jnp.uint32) + jnp.uint32(0x68E31DA4))

    def lattice(dx, dy):
        # Lattice indices offset to stay positive for any canvas coordinate.
        cx = (ix + dx + 4096.0).astype(jnp.uint32)
        cy = (iy + dy + 4096.0).astype(jnp.uint32)
        h = drawing.hash32(cx * jnp.uint32(0x9E3779B1) ^ drawing.hash32(cy ^ salt))
        return (h >> 8).astype(jnp.float32) * (2.0 / 2.0**24) - 1.0

    top = lattice(0, 0) + fx * (lattice(1, 0) - lattice(0, 0))
    bottom = lattice(0, 1) + fx * (lattice(1, 1) - lattice(0, 1))
    return top + fy * (bottom - top)


def _depth(idp: IdentityParams, x: jax.Array, y: jax.Array):
    """Depth towards the camera of the face point ``(x, y)`` and its gradient ``(d, dd/dx, dd/dy)``.

    A paraboloid cap over the head ellipse (zero outside it, so hair, ears and
    background stay flat) plus a Gaussian nose bump. A paraboloid rather than
    a true ellipsoid because its slope stays finite at the rim, which keeps
    the pose warp's fixed-point inverse contracting at every pixel.
    """
    a, b = idp.face_width * 1.05, idp.face_height * 1.05
    cap = 1.0 - (x / a) ** 2 - (y / b) ** 2
    inside = cap > 0.0
    d = _HEAD_DEPTH * jnp.where(inside, cap, 0.0)
    ddx = jnp.where(inside, -2.0 * _HEAD_DEPTH * x / a**2, 0.0)
    ddy = jnp.where(inside, -2.0 * _HEAD_DEPTH * y / b**2, 0.0)
    ny = y - (drawing.EYE_Y + 0.6 * idp.nose_length)
    sx, sy = 0.06, 0.6 * idp.nose_length
    bump = _NOSE_DEPTH * jnp.exp(-0.5 * ((x / sx) ** 2 + (ny / sy) ** 2))
    return d + bump, ddx - bump * x / sx**2, ddy - bump * ny / sy**2


def _unpose(idp, xr, yr, yaw, pitch):
    """Image-plane face coordinates -> face coordinates, and the camera-frame unit normal there.

    The forward map rotates the face point ``(x, y, depth)`` by yaw (about
    the vertical axis) then pitch; its inverse has no closed form, so three
    fixed-point steps solve it (each step's error shrinks by at most
    tan(15 deg) times the depth slope, about 0.6).
    """
    cy, sy, cp, sp = jnp.cos(yaw), jnp.sin(yaw), jnp.cos(pitch), jnp.sin(pitch)
    x, y = xr, yr
    for _ in range(3):
        d, _, _ = _depth(idp, x, y)
        x = (xr - d * sy) / cy
        y = (yr - (d * cy - x * sy) * sp) / cp
    _, ddx, ddy = _depth(idp, x, y)
    norm = jnp.sqrt(ddx**2 + ddy**2 + 1.0)
    nx, ny, nz = -ddx / norm, -ddy / norm, 1.0 / norm
    nx, nz = nx * cy + nz * sy, nz * cy - nx * sy  # yaw
    ny, nz = ny * cp + nz * sp, nz * cp - ny * sp  # pitch
    return x, y, (nx, ny, nz)


def _hair_layers(hid: HardIdentity, x, y, cover):
    """Long or full hair behind the head (drawn under the easy hair, which it extends)."""
    idp = hid.base
    length, volume = hid.hair_length, hid.hair_volume
    rx = idp.face_width * 1.12 + 0.03 + 0.10 * volume
    ry = idp.face_height * 1.08 + 0.04 * volume + 0.25 * length
    sd = jnp.maximum(drawing.sd_ellipse(x, y + 0.06 - 0.25 * length, rx, ry), y - (0.12 + 0.55 * length))
    return [(idp.hair_color * 0.92, cover(sd))]


def _glasses_layers(hid: HardIdentity, x, y, cover, fpx):
    """Two lens rings, a bridge and the temples towards the ears; nothing when ``glasses`` is 0."""
    idp = hid.base
    ax = jnp.abs(x)
    es, ez = idp.eye_spacing, idp.eye_size
    rx = jnp.minimum(ez * hid.glasses_size, es - 0.03)  # the lenses never overlap at the midline
    ry = 0.75 * ez * hid.glasses_size
    lens = drawing.sd_ellipse(ax - es, y - drawing.EYE_Y - 0.01, rx, ry)
    ring = cover(jnp.abs(lens) - jnp.maximum(0.012, 0.5 * fpx))
    bridge = cover(drawing.sd_segment(ax, y, 0.0, drawing.EYE_Y - 0.02, es - rx, drawing.EYE_Y - 0.02, 0.010))
    temple = cover(drawing.sd_segment(ax, y, es + rx, drawing.EYE_Y - 0.02, idp.face_width * 0.98,
                                      drawing.EYE_Y - 0.05, 0.009))
    frame = jnp.maximum(ring, jnp.maximum(bridge, temple))
    return [(jnp.array([0.75, 0.85, 0.95]), hid.glasses * 0.15 * cover(lens)),  # lens tint
            (hid.glasses_color, hid.glasses * frame)]


def _background(idp: IdentityParams, nz: HardNuisance, u, v) -> list[jax.Array]:
    """The background's three ``[S, S]`` planes: the identity's colour mixed with a pattern."""
    t = u * jnp.cos(nz.background_angle) + v * jnp.sin(nz.background_angle)
    gradient = 0.5 + 0.35 * t
    stripes = 0.5 + 0.5 * jnp.sin(nz.background_frequency * math.pi * t)
    blobs = 0.5 + 0.5 * _value_noise(u, v, nz.background_seed, 0.5 * nz.background_frequency)
    kind = nz.background_kind
    pattern = jnp.where(kind < 0.5, gradient, jnp.where(kind < 1.5, stripes, blobs))
    color_a, color_b = nz.background_colors[0], nz.background_colors[1]
    return [idp.background[k] + nz.background_mix * (color_a[k] + pattern * (color_b[k] - color_a[k])
                                                     - idp.background[k]) for k in range(3)]


def _geometry(hid: HardIdentity, nz: HardNuisance, size: int):
    """Face coordinates ``x, y`` and camera-frame normals ``(nx, ny, nz)`` of every pixel, each ``[S, S]``."""
    u, v = drawing.canvas(size)
    xr, yr = drawing.undo_placement(u, v, nz.base)
    x, y, normal = _unpose(hid.base, xr, yr, nz.yaw, nz.pitch)
    return x, y, *normal


def _draw_one(hid: HardIdentity, aus: jax.Array, nz: HardNuisance, geometry, size: int) -> jax.Array:
    """One hard face, float32 ``[S, S, 3]`` in [0, 1] before noise, given its ``_geometry``."""
    idp = hid.base
    x, y, nx, ny, nz_ = geometry
    u, v = drawing.canvas(size)
    fpx = (2.0 / size) / nz.base.scale  # one pixel in face units (the warp changes it by < 30 %)
    cover = lambda sd: jnp.clip(0.5 - sd / fpx, 0.0, 1.0)  # noqa: E731

    layers = _hair_layers(hid, x, y, cover) + drawing.face_layers(idp, aus / AU_MAX, x, y, fpx)
    layers += _glasses_layers(hid, x, y, cover, fpx)
    img = drawing.composite(layers, _background(idp, nz, u, v), size)

    # Skin texture: fixed per identity, in face coordinates, on the head only.
    seed = hid.texture_seed
    texture = _value_noise(x, y, seed, 6.0) + 0.5 * _value_noise(x, y, seed + jnp.uint32(1), 14.0)
    head = cover(drawing.sd_ellipse(x, y, idp.face_width, idp.face_height))
    img = img * (1.0 + hid.texture_amount * head * texture / 1.5)[..., None]

    # Lambertian shading of the head's normals (flat, facing the camera, off the head).
    ce = jnp.cos(nz.light_elevation)
    lx, ly, lz = jnp.sin(nz.light_azimuth) * ce, -jnp.sin(nz.light_elevation), jnp.cos(nz.light_azimuth) * ce
    lambert = jnp.maximum(nx * lx + ny * ly + nz_ * lz, 0.0)
    return img * (nz.base.gain * (nz.ambient + (1.0 - nz.ambient) * lambert))[..., None]


def _geometry_batch(identity: HardIdentity, nuisance: HardNuisance, size: int):
    return jax.vmap(_geometry, in_axes=(0, 0, None))(identity, nuisance, size)


def _draw_batch(identity: HardIdentity, aus: jax.Array, nuisance: HardNuisance, geometry, size: int):
    img = jax.vmap(_draw_one, in_axes=(0, 0, 0, 0, None))(identity, aus, nuisance, geometry, size)
    return drawing.noise_and_quantize(img, nuisance.base, size)


def render_batch(identity: HardIdentity, aus: jax.Array, nuisance: HardNuisance, size: int) -> jax.Array:
    """uint8 ``[N, S, S, 3]``; inputs already checked and cast by ``synthetic.render`` (traceable)."""
    return _draw_batch(identity, aus, nuisance, _geometry_batch(identity, nuisance, size), size)


# As synthetic._render_jit: pin the backend optimisation level (see there).
_OPTIONS = {"xla_backend_optimization_level": 3}
_geometry_jit = jax.jit(_geometry_batch, static_argnames="size", compiler_options=_OPTIONS)
_draw_jit = jax.jit(_draw_batch, static_argnames="size", compiler_options=_OPTIONS)


def render_jit(identity: HardIdentity, aus: jax.Array, nuisance: HardNuisance, size: int) -> jax.Array:
    """``render_batch`` as two compiled calls: the pose warp, then the drawing.

    Compiled as one program (even with an optimization barrier between the
    two), XLA's CPU backend drew about 25 faces/s instead of about 1,000
    (measured): the drawing only vectorises when the warped coordinates
    arrive as an input buffer.
    """
    return _draw_jit(identity, aus, nuisance, _geometry_jit(identity, nuisance, size=size), size=size)

