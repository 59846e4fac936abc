"""Datasets and studies of :mod:`flowjax.synthetic` faces, with their ground truth.

:func:`make_dataset` renders training data (random identities, mild to strong
expressions, nuisance on) as :class:`Photos`; :func:`make_study` renders the
paper's expression-transfer setting (targets, strong source expressions, the
sources' own photos) as a :class:`Study`. Both sample with one jitted call and
render in fixed-size chunks, return host ``numpy`` arrays, are deterministic
in ``seed`` and take the renderer's ``setting`` (``flowjax.synthetic.SETTINGS``).
The renderer itself (sampling identities, expressions and nuisance, ``render``,
``au_region_mask``) is :mod:`flowjax.synthetic`; writing a study to disk is
:mod:`flowjax.synthetic.files`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.synthetic.factors import (PROTOTYPES, IdentityParams, Nuisance, check_setting,
                                       check_size, prototype_aus, sample_expressions)
from flowjax.synthetic.hard import HardNuisance
from flowjax.synthetic.renderer import render, sample_identities, sample_nuisance


@dataclasses.dataclass(frozen=True)
class Photos:
    """Rendered photos with their ground truth (host numpy arrays).

    ``images`` uint8 ``[N, S, S, 3]``; ``identity_ids`` int32 ``[N]``;
    ``aus`` float32 ``[N, len(synthetic.AU_NAMES)]`` on the 0..5 scale;
    ``nuisance`` the renderer's nuisance with one row per photo (pose, light,
    background, noise) where it was kept (:func:`make_study`), so a photo can be
    rendered again with other AUs (:func:`render_photo_with`); else None.
    """

    images: np.ndarray
    identity_ids: np.ndarray
    aus: np.ndarray
    nuisance: Nuisance | HardNuisance | None = None

    def photo_of(self, identity: int, j: int) -> int:
        """The row of ``identity``'s photo ``j`` (its photos counted in row order)."""
        rows = np.flatnonzero(self.identity_ids == identity)
        if not 0 <= j < len(rows):
            raise ValueError(f"photo {j} of identity {identity} does not exist: it has "
                             f"{len(rows)} photos (0..{len(rows) - 1})")
        return int(rows[j])


@dataclasses.dataclass(frozen=True)
class Study:
    """The paper's setting: target identities and strong source expressions.

    ``targets``: ``photos_per_identity`` mild, nuisance-on photos of each of
    identities ``0 .. n_identities-1``. ``sources``: one strong photo per
    expression; expression ``k`` (``expression_names[k]``) is on its own source
    identity ``n_identities + k`` (or, with ``shared_source``, all on identity
    ``n_identities``), never a target. ``source_photos``: mild
    photos of every source identity, for the source's mean. ``identities``
    holds every identity's parameters; row ``i`` is identity id ``i``
    (``hard.HardIdentity`` in the hard setting). ``setting``: the
    rendering setting (``synthetic.SETTINGS``), so that oracles are rendered
    the same way.
    """

    targets: Photos
    sources: Photos
    source_photos: Photos
    expression_names: tuple[str, ...]
    identities: IdentityParams
    setting: str = "easy"


# --------------------------------------------------------------------------
# Rendering many photos


def _take(tree, index):
    return jax.tree_util.tree_map(lambda a: a[index], tree)


def render_photo_with(identities, photos: Photos, index: int, aus: np.ndarray, size: int,
                      setting: str) -> np.ndarray:
    """uint8 ``[F, size, size, 3]``: photo ``index`` of ``photos`` (its identity, a row of
    ``identities``, and its own nuisance) rendered again with each row of ``aus``: the
    exact answer of an expression moved onto that photo."""
    if photos.nuisance is None:
        raise ValueError("these photos did not keep their nuisance (make_study keeps it); "
                         "they cannot be rendered again with other AUs")
    if not 0 <= index < len(photos.images):
        raise ValueError(f"photo {index} is not one of the {len(photos.images)} photos")
    aus = np.asarray(aus, np.float32)
    rows = np.full(len(aus), index, np.int32)
    ids = np.full(len(aus), photos.identity_ids[index], np.int32)
    return _render_chunked(jax.tree_util.tree_map(np.asarray, identities), ids, aus,
                           _take(photos.nuisance, rows), size, setting)


def _render_chunked(identities, ids, aus, nuisance, size: int, setting: str, chunk: int = 1024) -> np.ndarray:
    """Render row ``i`` as identity ``ids[i]``, in fixed-size chunks, as numpy.

    Every chunk has the same shape (the last is padded by repeating rows), so
    the renderer compiles once and memory stays bounded. Inputs are numpy.
    """
    n = aus.shape[0]
    out = np.empty((n, size, size, 3), np.uint8)
    # Chunk sizes are powers of two, so differently sized requests share compilations.
    step = min(chunk, 1 << (n - 1).bit_length())
    for start in range(0, n, step):
        rows = np.minimum(np.arange(start, start + step), n - 1)
        images = render(_take(identities, ids[rows]), aus[rows], _take(nuisance, rows), size, setting)
        stop = min(start + step, n)
        out[start:stop] = np.asarray(images)[: stop - start]
    return out


# --------------------------------------------------------------------------
# Dataset builders


@functools.partial(jax.jit, static_argnames=("n", "n_identities", "nuisance_strength", "setting"))
def _sample_dataset(seed, n, n_identities, nuisance_strength, setting):
    k_id, k_perm, k_expr, k_nz = jax.random.split(jax.random.key(seed), 4)
    identities = sample_identities(k_id, n_identities, setting)
    ids = jax.random.permutation(k_perm, jnp.arange(n, dtype=jnp.int32) % n_identities)
    nuisance = sample_nuisance(k_nz, n, nuisance_strength, setting)
    return identities, ids, sample_expressions(k_expr, n, "mixed"), nuisance


def make_dataset(
    seed: int, n: int, size: int = 64, n_identities: int | None = None, nuisance_strength: float = 1.0,
    setting: str = "easy",
) -> Photos:
    """Training data: ``n`` photos of ``n_identities`` random identities (default ``n // 10``).

    Expressions are ``sample_expressions(..., "mixed")`` (mild to strong),
    nuisance is on at ``nuisance_strength``. Identities are balanced and the
    photo order is shuffled. Deterministic in ``seed``. ``setting``: one of
    ``synthetic.SETTINGS`` (identities and expressions are the same in both).
    """
    check_setting(setting)
    check_size(size)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n_identities = max(1, n // 10) if n_identities is None else n_identities
    if not 1 <= n_identities <= n:
        raise ValueError(f"n_identities must lie in [1, n={n}], got {n_identities}")
    sampled = _sample_dataset(seed, n, n_identities, float(nuisance_strength), setting)
    identities, ids, aus, nuisance = jax.tree_util.tree_map(np.asarray, sampled)
    images = _render_chunked(identities, ids, aus, nuisance, size, setting)
    return Photos(images=images, identity_ids=ids, aus=aus)


@functools.partial(
    jax.jit, static_argnames=("n_identities", "n_sources", "photos_per_identity", "n_expressions",
                              "nuisance_strength", "setting")
)
def _sample_study(seed, n_identities, n_sources, photos_per_identity, n_expressions, nuisance_strength, setting):
    k_id, k_expr, k_nz = jax.random.split(jax.random.key(seed), 3)
    identities = sample_identities(k_id, n_identities + n_sources, setting)
    # Rows: the targets' photos, the source identities' mild photos, then the
    # strong source photos.
    n_mild = (n_identities + n_sources) * photos_per_identity
    strong = jnp.asarray(np.stack([prototype_aus(name) for name in tuple(PROTOTYPES)[:n_expressions]]))
    aus = jnp.concatenate([sample_expressions(k_expr, n_mild, "mild"), strong])
    return identities, aus, sample_nuisance(k_nz, n_mild + n_expressions, nuisance_strength, setting)


def make_study(
    seed: int,
    n_identities: int = 5,
    photos_per_identity: int = 20,
    n_expressions: int = 5,
    size: int = 64,
    nuisance_strength: float = 1.0,
    shared_source: bool = False,
    setting: str = "easy",
) -> Study:
    """The paper's expression-transfer setting; see ``Study`` for the fields.

    Targets and the source identities' own photos have mild random expressions;
    the source photos show ``PROTOTYPES``' first ``n_expressions`` expressions
    at their listed intensities. All photos carry nuisance at
    ``nuisance_strength``. Deterministic in ``seed``. With ``shared_source``
    every expression is on ONE source identity ``n_identities`` (one actor
    showing several expressions, as in the seed study) instead of one source
    identity per expression. ``setting``: one of ``synthetic.SETTINGS``.
    """
    check_setting(setting)
    check_size(size)
    if not 1 <= n_expressions <= len(PROTOTYPES):
        raise ValueError(f"n_expressions must lie in [1, {len(PROTOTYPES)}] (PROTOTYPES), got {n_expressions}")
    if n_identities < 1 or photos_per_identity < 1:
        raise ValueError(
            f"n_identities and photos_per_identity must be >= 1, got {n_identities} and {photos_per_identity}"
        )
    n_sources = 1 if shared_source else n_expressions
    sampled = _sample_study(seed, n_identities, n_sources, photos_per_identity, n_expressions,
                            float(nuisance_strength), setting)
    identities, aus, nuisance = jax.tree_util.tree_map(np.asarray, sampled)
    source_ids = (np.full(n_expressions, n_identities, np.int32) if shared_source
                  else np.arange(n_identities, n_identities + n_expressions, dtype=np.int32))
    every_identity = np.arange(n_identities + n_sources, dtype=np.int32)
    ids = np.concatenate([np.repeat(every_identity, photos_per_identity), source_ids])
    images = _render_chunked(identities, ids, aus, nuisance, size, setting)

    def photos(rows: slice) -> Photos:
        return Photos(images=images[rows], identity_ids=ids[rows], aus=aus[rows],
                      nuisance=_take(nuisance, rows))

    n_targets = n_identities * photos_per_identity
    n_mild = (n_identities + n_sources) * photos_per_identity
    return Study(
        targets=photos(slice(0, n_targets)),
        sources=photos(slice(n_mild, None)),
        source_photos=photos(slice(n_targets, n_mild)),
        expression_names=tuple(PROTOTYPES)[:n_expressions],
        identities=identities,
        setting=setting,
    )
