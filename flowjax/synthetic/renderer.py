"""The renderer's public face: samplers and ``render`` for either setting.

Every function takes the ``setting`` (``SETTINGS``: ``"easy"``, the default,
or ``"hard"``), checks its inputs (so a mistake is named here, with the shape
or range it needs) and hands the work to ``flowjax.synthetic.easy`` or
``flowjax.synthetic.hard``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.synthetic import easy, hard
from flowjax.synthetic.factors import (AU_MAX, AU_NAMES, IDENTITY_COLORS, IdentityParams, Nuisance,
                                       check_setting, check_size)


@functools.partial(jax.jit, static_argnames=("n", "setting"))
def sample_identities(key: jax.Array, n: int, setting: str = "easy") -> IdentityParams:
    """``n`` random identities: scalars uniform in ``IDENTITY_RANGES``, colours from palettes.

    ``setting="hard"``: a ``HardIdentity`` whose ``base`` is the easy identity of the same key.
    """
    check_setting(setting)
    if setting == "hard":
        return hard.sample_identities(key, n)
    return easy.sample_identities(key, n)


def no_nuisance(n: int, setting: str = "easy") -> Nuisance:
    """Canonical pose, neutral lighting, no noise (face and canvas coordinates coincide).

    ``setting="hard"``: a ``HardNuisance``, also with the identity's plain background.
    """
    check_setting(setting)
    if setting == "hard":
        return hard.no_nuisance(n)
    return easy.no_nuisance(n)


@functools.partial(jax.jit, static_argnames=("n", "strength", "setting"))
def sample_nuisance(key: jax.Array, n: int, strength: float = 1.0, setting: str = "easy") -> Nuisance:
    """Small random nuisance; ``strength`` scales every range (0 gives ``no_nuisance``).

    ``setting="easy"``: :func:`flowjax.synthetic.easy.sample_nuisance` (strength in [0, 2]);
    ``setting="hard"``: :func:`flowjax.synthetic.hard.sample_nuisance` (strength in [0, 1]).
    """
    check_setting(setting)
    if setting == "hard":
        return hard.sample_nuisance(key, n, strength)
    return easy.sample_nuisance(key, n, strength)


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
    module = hard if setting == "hard" else easy
    nuisance = no_nuisance(n, setting) if nuisance is None else nuisance
    kinds = (hard.HardIdentity, hard.HardNuisance) if module is hard else (IdentityParams, Nuisance)
    for name, tree, kind in zip(("identity", "nuisance"), (identity, nuisance), kinds):
        if not isinstance(tree, kind):
            raise ValueError(f"setting={setting!r} renders a {kind.__name__} {name} (from the samplers "
                             f"with setting={setting!r}), got {type(tree).__name__}")
    extra = (hard.IDENTITY_SHAPES, hard.NUISANCE_SHAPES) if module is hard else ({}, {})
    _check_batch("identity", identity, n, {c: (3,) for c in IDENTITY_COLORS} | extra[0])
    _check_batch("nuisance", nuisance, n, {"shift": (2,)} | extra[1])
    uint_fields = ("noise_seed", *(hard.UINT_FIELDS if module is hard else ()))
    identity, nuisance = _cast(identity, uint_fields), _cast(nuisance, uint_fields)
    aus = jnp.asarray(aus, jnp.float32)
    leaves = jax.tree_util.tree_leaves((identity, aus, nuisance))
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        # Inside a caller's jit, which owns the compilation (and its options).
        return module.render_batch(identity, aus, nuisance, int(size))
    return module.render_jit(identity, aus, nuisance, size=int(size))
