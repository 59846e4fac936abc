"""Drawing of the synthetic faces: layout, signed distances, face layers, compositing, pixel noise.

The pixels of ``flowjax.synthetic`` (both settings; ``flowjax.synthetic.hard``
adds its own layers and passes pose-warped coordinates). It knows nothing of
sampling or validation: callers hand it checked per-image parameters.

Each part is a signed distance (negative inside) or a band between two curves,
in face coordinates (x to the right, y down, face centre at the origin); a
pixel's coverage is a one-pixel linear ramp of the distance (or the band's
exact overlap with the pixel), which antialiases every edge at any
power-of-two size and keeps each part's pixels strictly local. Parts are
composited back to front over the background.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from flowjax.synthetic.factors import IdentityParams, Nuisance


# --------------------------------------------------------------------------
# Signed distances (negative inside) and coverage helpers


def sd_ellipse(x: jax.Array, y: jax.Array, rx: jax.Array, ry: jax.Array) -> jax.Array:
    # First-order distance to an ellipse (value over gradient length): exact on
    # the boundary, which is all the antialiasing ramp needs.
    k0 = jnp.sqrt((x / rx) ** 2 + (y / ry) ** 2)
    k1 = jnp.sqrt((x / rx**2) ** 2 + (y / ry**2) ** 2)
    return k0 * (k0 - 1.0) / jnp.maximum(k1, 1e-6)


def sd_segment(x, y, ax, ay, bx, by, radius) -> jax.Array:
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



# Fixed layout (face units). ``synthetic.au_region_mask`` relies on these numbers.
EYE_Y = -0.05
MOUTH_Y = 0.36
JAW_TOP = 0.24  # the jaw-drop warp leaves everything above this line alone
EYE_OPEN = 0.55  # eye half-height over eye half-width


def canvas(size: int) -> tuple[jax.Array, jax.Array]:
    """Pixel-centre canvas coordinates ``(u, v)``, each ``[S, S]`` in [-1, 1]: u column, v row."""
    c = (jnp.arange(size, dtype=jnp.float32) + 0.5) * (2.0 / size) - 1.0
    return jnp.meshgrid(c, c)


def undo_placement(u: jax.Array, v: jax.Array, nz: Nuisance) -> tuple[jax.Array, jax.Array]:
    """Canvas -> (flat) face coordinates: undo shift, then rotation, then scale."""
    du, dv = u - nz.shift[0], v - nz.shift[1]
    cos, sin = jnp.cos(nz.rotation), jnp.sin(nz.rotation)
    return (cos * du + sin * dv) / nz.scale, (-sin * du + cos * dv) / nz.scale


def face_layers(idp: IdentityParams, au_fractions: jax.Array, x: jax.Array, y: jax.Array,
                fpx: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
    """The face's parts at face coordinates ``x, y``, back to front: (RGB ``[3]``, coverage).

    ``au_fractions`` ``[9]``: each AU's intensity over ``AU_MAX`` (0..1), in
    the order of ``synthetic.AU_NAMES``. ``fpx`` is one pixel in face units
    (the antialiasing ramp's width). Shared by both settings
    (``flowjax.synthetic.hard`` passes pose-warped coordinates).
    """
    cover = lambda sd: jnp.clip(0.5 - sd / fpx, 0.0, 1.0)  # noqa: E731

    def stroke(dist, half):
        # A line of half-width ``half`` around ``dist == 0``; lines thinner
        # than a pixel are drawn one pixel wide and proportionally fainter, so
        # they neither vanish nor thicken at small sizes.
        return cover(dist - jnp.maximum(half, 0.5 * fpx)) * jnp.minimum(1.0, 2.0 * half / fpx)

    a01, a02, a04, a06, a12, a15, a25, a26, a45 = [au_fractions[i] for i in range(au_fractions.shape[0])]
    fw, fh = idp.face_width, idp.face_height
    skin, hair = idp.skin, idp.hair_color
    ax = jnp.abs(x)  # the face is mirror-symmetric apart from the hair parting

    # AU26: the lower face is stretched downwards, so the chin drops and the
    # mouth opens; the warp is zero above JAW_TOP.
    chin_drop = 0.10 * a26
    yw = y - chin_drop * _smoothstep(JAW_TOP, 0.80, y)

    layers = []  # (RGB [3], coverage [S, S]), back to front

    # Hair behind the head, cut off at the shoulders' line.
    sd_hair = jnp.maximum(sd_ellipse(x, y + 0.06, fw * 1.12 + 0.03, fh * 1.08), y - 0.12)
    layers.append((hair, cover(sd_hair)))
    # Ears and neck, slightly shaded so the head outline stays readable.
    sd_ears = sd_ellipse(ax - fw * 0.97, y - 0.02, 0.065, 0.11)
    layers.append((skin * 0.9, cover(sd_ears)))
    sd_neck = jnp.maximum(ax - fw * 0.42, 0.3 - y)
    layers.append((skin * 0.8, cover(sd_neck)))

    # Head: an ellipse whose lower half narrows towards the chin (jaw).
    narrow = 1.0 - idp.jaw * jnp.clip(yw / fh, 0.0, 1.0) ** 2
    sd_face = sd_ellipse(x / narrow, yw, fw, fh) * narrow
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
    ey = (y - EYE_Y) / ez
    g = jnp.clip(1.0 - ex**2, 0.0, 1.0)
    top = -EYE_OPEN * g**0.7
    bottom = 0.75 * EYE_OPEN * g**0.8 * (1.0 - 0.5 * a06)  # AU06 pushes the lower lid up
    lid = top + a45 * (bottom - top)  # AU45: the upper lid comes down to the lower one
    outside = (jnp.abs(ex) - 1.0) * ez
    socket = jnp.maximum(top - 0.15 - ey, ey - 0.75 * EYE_OPEN * g**0.8) * ez
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
    in_x, in_y = es - 0.09 - 0.04 * a04, EYE_Y - 0.19 - 0.10 * a01 + 0.08 * a04
    mid_x, mid_y = es + 0.02, EYE_Y - 0.215 - 0.035 * a01 - 0.06 * a02 + 0.06 * a04
    out_x, out_y = es + 0.13, EYE_Y - 0.18 - 0.10 * a02 + 0.04 * a04
    sd_brow = jnp.minimum(
        sd_segment(ax, y, in_x, in_y, mid_x, mid_y, bt),
        sd_segment(ax, y, mid_x, mid_y, out_x, out_y, bt * 0.8),
    )
    layers.append((hair * 0.6, cover(sd_brow)))
    furrow = sd_segment(ax, y, 0.035, EYE_Y - 0.15, 0.03, EYE_Y - 0.07, 0.0)
    layers.append((skin * 0.7, 0.8 * a04 * stroke(furrow, 0.006)))

    # Nose: a shaded tip, nostrils and one side of the bridge.
    tip_y = EYE_Y + idp.nose_length
    nw = idp.nose_width
    r_tip = jnp.sqrt((x / nw) ** 2 + ((y - tip_y + 0.01) / (0.6 * nw)) ** 2)
    layers.append((skin * 0.8, 0.6 * _smoothstep(1.0, 0.3, r_tip)))
    sd_nostril = sd_ellipse(ax - 0.55 * nw, y - tip_y - 0.005, 0.3 * nw, 0.17 * nw)
    layers.append((skin * 0.5, cover(sd_nostril)))
    bridge = sd_segment(x, y, 0.02, EYE_Y + 0.04, 0.7 * nw, tip_y - 0.03, 0.0)
    layers.append((skin * 0.78, 0.6 * stroke(bridge, 0.007)))

    # Mouth, in mouth units mx (+-1 at the corners) on the jaw-warped y.
    mw = idp.mouth_width * (1.0 + 0.12 * a12 - 0.05 * a15)
    mx = x / mw
    g = jnp.clip(1.0 - mx**2, 0.0, 1.0)
    mid = MOUTH_Y + (0.08 * a15 - 0.10 * a12) * mx**2  # AU12 corners up, AU15 down
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


def composite(layers, background: jax.Array, size: int) -> jax.Array:
    """``layers`` over ``background`` (RGB ``[3]`` or one ``[S, S]`` plane per channel): ``[S, S, 3]``."""
    # Composite per channel: three [S, S] planes fuse better on the CPU than
    # one [S, S, 3] array (about 20 % faster, measured).
    planes = [jnp.broadcast_to(background[k], (size, size)) for k in range(3)]
    for color, alpha in layers:
        planes = [p + alpha * (color[k] - p) for k, p in enumerate(planes)]
    return jnp.stack(planes, axis=-1)


def hash32(x: jax.Array) -> jax.Array:
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
    h = hash32(counter ^ hash32(seed.astype(jnp.uint32) + jnp.uint32(0x9E3779B9)))
    total = sum(((h >> shift) & 0xFF).astype(jnp.float32) for shift in (0, 8, 16, 24))
    # Each byte is uniform on 0..255 (mean 127.5, variance (256**2 - 1) / 12).
    return (total - 4 * 127.5) / math.sqrt(4 * (256**2 - 1) / 12)


def noise_and_quantize(img: jax.Array, nuisance: Nuisance, size: int) -> jax.Array:
    """Float images ``[N, S, S, 3]`` plus each image's own pixel noise, as uint8."""
    noise = jax.vmap(_pixel_noise, in_axes=(0, None))(nuisance.noise_seed, size)
    img = img + nuisance.noise_std[:, None, None, None] / 255.0 * noise
    return jnp.round(jnp.clip(img, 0.0, 1.0) * 255.0).astype(jnp.uint8)
