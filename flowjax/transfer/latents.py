"""Latents: shapes, OpenAI's flat layout, and latent arithmetic.

A Glow latent is a list of per-level arrays ``[eps_0, ..., eps_L-1]``: one
factored-out half per split level and the whole remaining tensor at the top.
The *flat* form concatenates the levels in order (level 0 first), each
flattened row-major over (H, W, C), exactly as OpenAI's ``demo/model.py``
``flatten_eps`` does, so OpenAI's ``z_manipulate.npy`` rows apply unchanged.

Latent arithmetic (below the layout helpers) is pure and works on either form:
every function maps over the per-level arrays of a list (or a tuple) or takes
one flat array; statistics reduce over a leading image axis. Which *space* the
latents live in is the caller's choice and the arithmetic does not care:

* ``"eps"`` (default, as OpenAI's demo): the standardized latents
  ``(z - mu) / sigma`` under the priors. At levels below the top the prior's
  ``mu, sigma`` depend on the levels above, so editing a coarse level also
  moves the finer levels' prior; eps arithmetic keeps each level's *residual*.
* ``"z"``: the raw latents. Editing them leaves the finer levels untouched.

Both round-trip: ``decode(encode(x).eps, space="eps")`` and
``decode(encode(x).z, space="z")`` give back the n_bits-quantized image.

Notation: ``s`` a source image's latent, ``m_s, v_s`` the mean and variance of
its identity's latents (all its images), ``m_t, v_t`` those of the target
identity, ``alpha`` the strength, all elementwise per latent dimension.

Longer than 400 lines because the flat layout, the statistics, every transfer method and
the checks of their inputs form the one table the sweep dispatches on (``METHODS``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

# The shapes are the models' geometry, so they live beside it (image_flow);
# re-exported here because every latent computation starts from them.
from flowjax.models.image_flow import Shape, latent_shapes  # noqa: F401

# An array (flat [..., D] or one level) or a list/tuple of per-level arrays.
Latent = Any

SPACES = ("eps", "z")
ANCHORS = ("mean", "photo")  # what a transfer moves onto: a mean face, or one photo
TRANSFER_METHODS = ("linear", "half", "variance", "std_rescale")
# OpenAI's demo multiplies its attribute vectors by 1.6 (z_manipulate.npy holds
# them already scaled); an option of attribute_vector, never applied silently.
OPENAI_VECTOR_SCALE = 1.6
# Added to variances / standard deviations before dividing: an identity with one
# image (or a dimension that never varies) has variance 0.
DEFAULT_VARIANCE_EPS = 1e-3


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


# ---- latent arithmetic ----------------------------------------------------------


def _map(fn: Callable[..., jnp.ndarray], *latents: Latent) -> Latent:
    """Applies ``fn`` leafwise: to each level of per-level latents, or to arrays."""
    if isinstance(latents[0], (list, tuple)):
        n = len(latents[0])
        for other in latents[1:]:
            if isinstance(other, (list, tuple)) and len(other) != n:
                raise ValueError(f"latents have {n} and {len(other)} levels; they must match")
        return type(latents[0])(
            fn(*(x[i] if isinstance(x, (list, tuple)) else x for x in latents)) for i in range(n)
        )
    return fn(*latents)


class IdentityStats(NamedTuple):
    """Per-dimension statistics of one identity's encoded images.

    mean: the identity's mean latent (decoded: the identity's "mean face").
    var: the population variance (``ddof=0``; zero for a single image).
    count: how many images went in.
    """

    mean: Latent
    var: Latent
    count: int


def identity_stats(latents: Latent) -> IdentityStats:
    """Mean and variance over the leading (image) axis of one identity's latents.

    ``latents`` is ``[N, D]`` flat or a list of ``[N, H, W, C]`` levels; the
    result keeps the form without the image axis. The statistics are sums over
    the images, so they do not depend on the images' order (up to float
    rounding), and the mean of a single image is that image.
    """
    first = latents[0] if isinstance(latents, (list, tuple)) else latents
    count = int(first.shape[0])
    if count < 1:
        raise ValueError("identity_stats needs at least one image; got an empty batch")

    def mean(x):
        return jnp.mean(jnp.asarray(x, jnp.float32), axis=0)

    def var(x):
        x = jnp.asarray(x, jnp.float32)
        return jnp.mean(jnp.square(x - jnp.mean(x, axis=0)), axis=0)

    return IdentityStats(mean=_map(mean, latents), var=_map(var, latents), count=count)


def stack_stats(stats: Sequence[IdentityStats]) -> IdentityStats:
    """Flat statistics of several identities as one ``[K, D]`` batch (a sweep's operands).

    ``count`` is the smallest count of the stacked statistics (the weakest
    estimate among them).
    """
    if not stats:
        raise ValueError("stack_stats needs at least one IdentityStats")
    return IdentityStats(mean=np.stack([np.asarray(s.mean) for s in stats]),
                         var=np.stack([np.asarray(s.var) for s in stats]),
                         count=min(s.count for s in stats))


def anchor_photo(target: str, photo: Any, n_photos: int | None = None,
                 prefix: str = "config.") -> int | None:
    """The anchor a ``target`` mode (:data:`ANCHORS`) and ``target_photo`` index name: None
    for ``"mean"``, else the photo's index. ValueErrors naming the option: an unknown mode,
    an index that is not an integer >= 0, or (``"photo"``, ``n_photos`` known) one that is
    not below each target's ``n_photos``."""
    if target not in ANCHORS:
        raise ValueError(f"{prefix}target must be one of {ANCHORS}, got {target!r}")
    if int(photo) != photo or photo < 0 or (
            target == "photo" and n_photos is not None and photo >= n_photos):
        bound = "" if n_photos is None else f", below each target's {n_photos} photos"
        raise ValueError(f"{prefix}target_photo={photo!r} is not a photo of each target: an "
                         f"index from 0 in name order{bound}")
    return None if target == "mean" else int(photo)


def anchored_on_photo(stats: IdentityStats, photo_latent: Any) -> IdentityStats:
    """An identity's statistics anchored on one of its photos: that photo's flat latent as
    the mean (what receives the expression), the identity's own variance kept."""
    return stats._replace(mean=np.asarray(photo_latent, np.float32), count=1)


def anchor_stats(target_latents: Sequence[np.ndarray], photo: int | None = None,
                 names: Sequence[str] | None = None) -> IdentityStats:
    """``[T, D]`` the statistics an expression is moved onto, one row per target from its
    photos' flat latents ``[P_t, D]``: with ``photo`` None the target's mean latent (its
    mean face, the thesis' anchor); else the latent of its photo ``photo`` (in the order
    given, :func:`anchor_photo`), so that photo, its pose and light included, is what
    receives the expression. The variance is the identity's either way (the variance
    methods)."""
    stats = [identity_stats(np.asarray(z, np.float32)) for z in target_latents]
    if photo is None:
        return stack_stats(stats)
    if names is None:
        names = [f"target {t}" for t in range(len(target_latents))]
    short = [f"{n} ({len(z)})" for n, z in zip(names, target_latents) if len(z) <= photo]
    if short:
        raise ValueError(f"target photo {photo} needs {photo + 1} photos of every target; "
                         f"these have fewer: {', '.join(short)}")
    return stack_stats([anchored_on_photo(s, z[photo]) for s, z in zip(stats, target_latents)])


def identity_mean(latents: Latent) -> Latent:
    """The mean latent of one identity's images (see :func:`identity_stats`)."""
    return identity_stats(latents).mean


def attribute_vector(positive: Latent, negative: Latent, scale: float = 1.0) -> Latent:
    """``scale * (mean(z | attribute) - mean(z | not attribute))`` (Glow paper, §5).

    ``positive``/``negative`` are ``[N, ...]`` latents of images with and without
    the attribute. OpenAI's demo uses ``scale = OPENAI_VECTOR_SCALE`` (1.6);
    the default 1.0 gives the plain difference of means.
    """
    return _map(lambda p, n: scale * (jnp.mean(p, axis=0) - jnp.mean(n, axis=0)),
                positive, negative)


def manipulate(latent: Latent, vector: Latent, alpha: float | jnp.ndarray) -> Latent:
    """``z + alpha * v``: moves a latent along an attribute direction."""
    return _map(lambda z, v: z + alpha * v, latent, vector)


def expression_vector(source: Latent, source_mean: Latent) -> Latent:
    """``s - m_s``: what the source image has that its identity's mean lacks."""
    return _map(lambda s, m: s - m, source, source_mean)


def transfer_linear(source: Latent, source_mean: Latent, target_mean: Latent,
                    alpha: float | jnp.ndarray = 1.0) -> Latent:
    """``m_t + alpha * (s - m_s)``: add the source's expression vector to the target mean.

    The identity is carried by the mean, the expression by the displacement
    from it (Valenzuela et al. 2021, eq. 1). ``alpha = 0`` gives the target
    mean; with the source's own identity as target, ``alpha = 1`` gives the
    source latent itself.
    """
    return _map(lambda s, ms, mt: mt + alpha * (s - ms), source, source_mean, target_mean)


def transfer_half(source: Latent, source_mean: Latent, target_mean: Latent,
                  alpha: float | jnp.ndarray = 1.0) -> Latent:
    """``m_t + alpha * (s - m_s) / 2``: the linear transfer with the expression
    vector halved, the thesis' best linear result.

    The same as :func:`transfer_linear` at ``alpha / 2``; a method of its own so
    that a config names the published setting rather than a rescaled alpha grid.
    """
    return transfer_linear(source, source_mean, target_mean, 0.5 * alpha)


def transfer_variance(source: Latent, source_mean: Latent, source_var: Latent,
                      target_mean: Latent, target_var: Latent,
                      alpha: float | jnp.ndarray = 1.0,
                      var_eps: float = DEFAULT_VARIANCE_EPS) -> Latent:
    """The thesis' variance-normalised transfer, with ``alpha`` on the expression term:

    ``(alpha * (s - m_s) / (v_s + eps) + m_t) / (v_t + eps)``.

    ``alpha = 1`` is the formula as published. Dividing the expression vector
    by the source's per-dimension variance measures the displacement in units
    of that identity's own variation (large in dimensions the source rarely
    moves); dividing the sum by the target's variance is, as we read it, meant
    to put the result on the target's scale. Note what that does: the target mean is divided by
    ``v_t + eps`` too, so ``alpha = 0`` gives ``m_t / (v_t + eps)``, *not* the
    target mean, and with variances well below 1 (a few images of one person)
    the whole latent is scaled up. ``eps`` guards against zero variance (one
    image, or a dimension that never varies) and bounds that amplification;
    it is the ``var_eps`` argument.
    :func:`transfer_std_rescale` is the dimensionally consistent variant.
    """
    return _map(
        lambda s, ms, vs, mt, vt: (alpha * (s - ms) / (vs + var_eps) + mt) / (vt + var_eps),
        source, source_mean, source_var, target_mean, target_var,
    )


def transfer_std_rescale(source: Latent, source_mean: Latent, source_var: Latent,
                         target_mean: Latent, target_var: Latent,
                         alpha: float | jnp.ndarray = 1.0,
                         var_eps: float = DEFAULT_VARIANCE_EPS) -> Latent:
    """``m_t + alpha * (s - m_s) * (sd_t + eps) / (sd_s + eps)``, ``sd = sqrt(v)``.

    The expression vector is whitened by the source identity's per-dimension
    spread and re-coloured with the target's, so a dimension moves by as many
    of the target's standard deviations as it moved the source's. Unlike
    :func:`transfer_variance` the target mean is kept as is (``alpha = 0``
    gives it exactly) and scales stay those of the target. When both
    identities have equal spreads (e.g. one image each) it reduces to
    :func:`transfer_linear`. ``eps`` is the ``var_eps`` argument.
    """
    return _map(
        lambda s, ms, vs, mt, vt: mt + alpha * (s - ms) * ((jnp.sqrt(vt) + var_eps)
                                                           / (jnp.sqrt(vs) + var_eps)),
        source, source_mean, source_var, target_mean, target_var,
    )


def transfer(method: str, source: Latent, source_stats: IdentityStats,
             target_stats: IdentityStats, alpha: float | jnp.ndarray = 1.0,
             var_eps: float = DEFAULT_VARIANCE_EPS) -> Latent:
    """Expression transfer by name: ``method`` is one of :data:`TRANSFER_METHODS`.

    ``linear`` and ``half`` use only the means; ``variance`` and ``std_rescale``
    also the variances (and ``var_eps``). See the ``transfer_<method>`` functions.
    """
    ms, vs, mt, vt = source_stats.mean, source_stats.var, target_stats.mean, target_stats.var
    if method == "linear":
        return transfer_linear(source, ms, mt, alpha)
    if method == "half":
        return transfer_half(source, ms, mt, alpha)
    if method == "variance":
        return transfer_variance(source, ms, vs, mt, vt, alpha, var_eps)
    if method == "std_rescale":
        return transfer_std_rescale(source, ms, vs, mt, vt, alpha, var_eps)
    raise ValueError(f"unknown transfer method {method!r}; choose one of {TRANSFER_METHODS}")


# ---- expression transforms of the source latent ----------------------------------------
#
# Methods that change WHICH part of the expression displacement ``s - m_s`` is carried
# over, not the arithmetic: each rewrites the source latent as ``s' = m_s + W (s - m_s)``
# and then runs :func:`transfer_linear`, so ``m_t + alpha * W (s - m_s)`` comes out of the
# one compiled sweep (flowjax.transfer.sweep) with no branch of its own. :func:`prepare_sources`
# applies them by name.

LEVEL_METHODS = ("fine", "top", "levels")
SUBSPACE_METHOD = "subspace"
SOURCE_METHODS = (*LEVEL_METHODS, SUBSPACE_METHOD)
# Every method a config can name: the arithmetic ones, then the source transforms.
METHODS = (*TRANSFER_METHODS, *SOURCE_METHODS)
# The synthetic faces move along 9 Action Units (flowjax.synthetic.AU_NAMES): were each
# AU linear in the latent, 9 directions would hold every expression, and the displacements'
# remaining directions are nuisance (pose, light, noise) that a transfer should not carry.
DEFAULT_SUBSPACE_RANK = 9


def method_level_weights(method: str, n_levels: int,
                         level_weights: Sequence[float] | None = None) -> tuple[float, ...]:
    """The per-level weights of a level method: ``fine`` 1 on levels 0..L-2 and 0 on the
    top (the expression only in the finer levels), ``top`` the reverse, ``levels`` the
    given ``level_weights`` (one per level, level 0 first)."""
    if method == "fine":
        return (1.0,) * (n_levels - 1) + (0.0,)
    if method == "top":
        return (0.0,) * (n_levels - 1) + (1.0,)
    if method != "levels":
        raise ValueError(f"{method!r} is not a level method; choose one of {LEVEL_METHODS}")
    if not level_weights:
        raise ValueError(f"method 'levels' needs level_weights: one weight per latent level "
                         f"({n_levels} for this model, level 0 first), e.g. "
                         f"--config.level_weights='{(1.0,) * (n_levels - 1) + (0.0,)}'")
    weights = tuple(float(w) for w in level_weights)
    if len(weights) != n_levels or not all(np.isfinite(weights)):
        raise ValueError(f"level_weights {weights} must be {n_levels} finite numbers, one per "
                         f"latent level of this model (level 0 first)")
    return weights


def flat_level_weights(shapes: Sequence[Shape], weights: Sequence[float]) -> np.ndarray:
    """The flat ``[D]`` weight vector that gives every entry of level ``i`` ``weights[i]``."""
    if len(weights) != len(shapes):
        raise ValueError(f"level_weights has {len(weights)} weights for {len(shapes)} latent "
                         f"levels {list(shapes)}; give one per level")
    return np.concatenate([np.full(int(np.prod(s)), w, np.float32)
                           for s, w in zip(shapes, weights)])


def expression_basis(displacements: np.ndarray, rank: int) -> np.ndarray:
    """``[k, D]`` orthonormal rows: the top-``rank`` principal directions of ``[N, D]``
    displacements (one identity's latents minus their mean), by an SVD.

    Directions of zero singular value (beyond the displacements' numerical rank, at most
    ``N - 1``) carry no data and are dropped, so ``k <= rank``; ``rank = 0`` gives none.
    """
    x = np.asarray(displacements, np.float64)
    if x.ndim != 2:
        raise ValueError(f"displacements must be [N, D]; got shape {x.shape}")
    if int(rank) != rank or rank < 0 or rank > min(x.shape):
        raise ValueError(f"subspace_rank must be an integer in [0, {min(x.shape)}] (at most the "
                         f"{x.shape[0]} photos of the source identity), got {rank!r}")
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    tol = singular.max(initial=0.0) * max(x.shape) * np.finfo(np.float32).eps
    keep = min(int(rank), int(np.sum(singular > tol)))
    return vt[:keep].astype(np.float32)


def weighted_source(source: jnp.ndarray, source_mean: jnp.ndarray,
                    weights: jnp.ndarray) -> jnp.ndarray:
    """``m_s + w * (s - m_s)``, flat: the expression displacement weighted per entry."""
    return source_mean + weights * (source - source_mean)


def projected_source(source: jnp.ndarray, source_mean: jnp.ndarray,
                     basis: jnp.ndarray) -> jnp.ndarray:
    """``m_s + B^T B (s - m_s)``, flat: only the displacement inside ``basis``' span."""
    return source_mean + ((source - source_mean) @ basis.T) @ basis


def prepare_sources(method: str, sources: np.ndarray, source_latents: np.ndarray, *,
                    shapes: Sequence[Shape] | None = None,
                    level_weights: Sequence[float] | None = None,
                    subspace_rank: int = DEFAULT_SUBSPACE_RANK) -> tuple[np.ndarray, str]:
    """The sources to sweep and the arithmetic to sweep them with, for any of :data:`METHODS`.

    ``sources`` ``[E, D]`` flat source latents, ``source_latents`` ``[N, D]`` all of the
    source identity's latents (its mean ``m_s`` and, for ``subspace``, its displacements).
    An arithmetic method returns the sources unchanged with its own name; a source
    method returns ``m_s + W (s - m_s)`` and ``"linear"``: per-level weights (``fine``,
    ``top``, ``levels`` with ``level_weights``; need the model's latent ``shapes``) or
    the projection on the top-``subspace_rank`` directions (``subspace``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown transfer method {method!r}; choose one of {METHODS}")
    if method in TRANSFER_METHODS:
        return np.asarray(sources, np.float32), method
    sources = np.asarray(sources, np.float32)
    source_latents = np.asarray(source_latents, np.float32)
    if sources.ndim != 2 or source_latents.ndim != 2 or sources.shape[1] != source_latents.shape[1]:
        raise ValueError(f"need flat sources [E, D] and source identity latents [N, D]; got "
                         f"{sources.shape} and {source_latents.shape}")
    mean = source_latents.mean(axis=0)
    if method == SUBSPACE_METHOD:
        basis = expression_basis(source_latents - mean, subspace_rank)
        return np.asarray(projected_source(sources, mean, basis)), "linear"
    if shapes is None:
        raise ValueError(f"method {method!r} weights latent levels: it needs the model's latent "
                         "shapes (pixels have no levels; use it in eps or z)")
    weights = method_level_weights(method, len(shapes), level_weights)
    return np.asarray(weighted_source(sources, mean, flat_level_weights(shapes, weights))), "linear"


# Beyond this the latent leaves the prior so far that the decoded image saturates to
# flat colour (the published grids lie in [-1, 3]); larger values are refused, not clipped.
MAX_ABS_ALPHA = 100.0
VARIANCE_METHODS = ("variance", "std_rescale")


def check_alphas(alphas: Sequence[float] | np.ndarray, what: str = "alphas") -> np.ndarray:
    """Validates a sweep's alphas and returns them as float32 ``[A]``.

    Refused (ValueError naming the value): none given, non-finite values (also
    finite Python floats that overflow float32, e.g. ``1e39``), and
    ``|alpha| > MAX_ABS_ALPHA``.
    """
    try:
        values = np.asarray(alphas, np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be numbers, got {alphas!r} ({err})") from None
    if values.size == 0:
        raise ValueError(f"{what} is empty; give at least one alpha")
    with np.errstate(over="ignore"):
        as_float32 = values.astype(np.float32)
    bad = [float(v) for v, f in zip(values, as_float32)
           if not np.isfinite(f) or abs(v) > MAX_ABS_ALPHA]
    if bad:
        raise ValueError(
            f"{what} {bad} out of range: every alpha must be finite and within "
            f"+-{MAX_ABS_ALPHA:g} (beyond that the latent leaves the prior and the decoded "
            "image is one flat colour); the usual grids lie in [-1, 3]")
    return as_float32


def check_var_eps(var_eps: float, method: str, what: str = "var_eps") -> float:
    """Validates the variance methods' ``var_eps``: finite and ``>= 0``; ``> 0`` for
    :data:`VARIANCE_METHODS`, which divide by ``v + var_eps`` (``v`` is 0 for an identity
    with one image, so ``var_eps = 0`` gives inf/NaN latents)."""
    value = float(var_eps)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {var_eps!r}")
    if method in VARIANCE_METHODS and value == 0:
        raise ValueError(
            f"{what}=0 with method {method!r}: the method divides by the identities' "
            "variance + var_eps, which is 0 for an identity with one image (and for any "
            f"dimension that never varies), giving inf/NaN images; use {what} > 0 "
            f"(default {DEFAULT_VARIANCE_EPS:g})")
    return value


def check_space(space: str) -> str:
    """Validates a latent space name (``"eps"`` or ``"z"``) and returns it."""
    if space not in SPACES:
        raise ValueError(f"latent space must be one of {SPACES}, got {space!r}")
    return space


def in_space(encoding: Any, space: str) -> tuple[jnp.ndarray, ...]:
    """The per-level latents of a ``glow.Encoding`` in ``space`` (its ``eps`` or ``z``)."""
    return getattr(encoding, check_space(space))


def alpha_grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    """``start, start + step, ..., stop`` inclusive, rounded to the step's decimals.

    ``alpha_grid(0.30, 0.50, 0.02)`` is the repository's grid of 11 values,
    without the float drift of ``np.arange``.
    """
    if step <= 0 or stop < start:
        raise ValueError(f"need step > 0 and stop >= start, got {start}, {stop}, {step}")
    n = int(np.floor((stop - start) / step + 1e-9)) + 1
    decimals = max(0, -int(np.floor(np.log10(step))) + 2)
    return tuple(float(round(start + i * step, decimals)) for i in range(n))
