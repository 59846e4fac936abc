"""Composing bijectors: :class:`Chain` (list order) and :class:`Inverse`.

Kept apart from the bijectors themselves (:mod:`flowjax.flows.bijectors`,
:mod:`flowjax.flows.permutations`) because composition only relies on the contract
(:class:`~flowjax.flows.bijectors.Bijector`), never on what a step computes: shape
checks between neighbours, summed log-determinants, swapped directions, and
parameter names that stay put when a step is inserted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax

from flowjax.flows.bijectors import Bijector, per_image_logdet

Array = jax.Array
Shape = tuple[int, ...]


def _default_step_names(steps: Sequence[Any]) -> tuple[Any, ...]:
    """Names unnamed, not-yet-adopted steps ``<Class>_<k>`` (k counts that class only).

    Flax would name them ``steps_<position>``, so inserting a step renamed
    every later one's parameters; per-class counters only move when a step of
    the same class is inserted before. An explicit ``name=`` is kept; steps
    built inside another module's ``@nn.compact`` method already belong to it
    and are left alone (their parameters live under that module).
    """
    counts: dict[str, int] = {}
    renamed: dict[int, Any] = {}  # the same instance twice shares parameters
    out = []
    for step in steps:
        if isinstance(step, nn.Module) and step.parent is None and step.name is None:
            if id(step) not in renamed:
                cls = type(step).__name__
                renamed[id(step)] = step.clone(name=f"{cls}_{counts.get(cls, 0)}")
                counts[cls] = counts.get(cls, 0) + 1
            step = renamed[id(step)]
        out.append(step)
    return tuple(out)


class Chain(nn.Module):
    """Composes bijectors, applied in LIST ORDER: ``f = f_n o ... o f_1`` for ``steps = (f_1, ..., f_n)``.

    ``forward`` (also ``__call__``, so ``chain.init(key, x)`` works) applies
    ``steps[0]`` first and ``steps[-1]`` last (the encode order) and returns
    the sum of the steps' log-dets; ``inverse`` undoes them from the last to
    the first. (distrax's Chain applies its last element first; this one does
    not.) Neighbours are validated by propagating the input shape through each
    step's ``output_shape``; an incompatible pair is named in the error.

    Parameter names: a step given ``name=`` keeps it (``params[<name>]``); an
    unnamed step is ``<ClassName>_<k>``, k counting steps of that class only,
    so inserting a step of another class renames nothing. Name steps
    explicitly for names that never move.
    """

    steps: Sequence[Any]
    # Keep the names steps were constructed with when the chain adopts them.
    preserve_adopted_names = True

    def __post_init__(self):
        if not self.steps:
            raise ValueError("Chain needs at least one step")
        for i, step in enumerate(self.steps):
            for method in ("forward", "inverse", "output_shape"):
                if not callable(getattr(step, method, None)):
                    raise TypeError(
                        f"Chain step {i} ({type(step).__name__}) has no {method}() method; "
                        "every step must implement the bijector contract "
                        "(flowjax.flows.bijectors.Bijector)")
        object.__setattr__(self, "steps", _default_step_names(self.steps))
        super().__post_init__()

    def output_shape(self, shape: Shape) -> Shape:
        for i, step in enumerate(self.steps):
            try:
                shape = step.output_shape(shape)
            except ValueError as err:
                after = (f"after step {i - 1} ({type(self.steps[i - 1]).__name__})"
                         if i else "as the chain's first step")
                raise ValueError(
                    f"Chain step {i} ({type(step).__name__}) cannot run {after}: {err}") from err
        return tuple(shape)

    def input_shape(self, shape: Shape) -> Shape:
        for step in reversed(self.steps):
            shape = _input_shape(step, shape)
        return tuple(shape)

    def __call__(self, x: Array) -> tuple[Array, Array]:
        return self.forward(x)

    def forward(self, x: Array) -> tuple[Array, Array]:
        self.output_shape(x.shape)
        logdet = per_image_logdet(0.0, x)
        for step in self.steps:
            x, ld = step.forward(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Array) -> tuple[Array, Array]:
        logdet = per_image_logdet(0.0, y)
        for step in reversed(self.steps):
            y, ld = step.inverse(y)
            logdet = logdet + ld
        return y, logdet


def _input_shape(bijector: Any, shape: Shape) -> Shape:
    method = getattr(bijector, "input_shape", None)
    if not callable(method):
        raise TypeError(f"{type(bijector).__name__} has no input_shape() method (the inverse of "
                        "output_shape), which inverting it needs; add one")
    return method(shape)


class Inverse(nn.Module):
    """The inverse bijector ``f^-1`` of ``bijector`` ``f``: its directions swapped.

    ``Inverse(b).forward(y) = b.inverse(y)`` (log-det ``log|det df^-1/dy|``) and
    ``Inverse(b).inverse(x) = b.forward(x)``; ``output_shape`` is ``b``'s
    ``input_shape``. Parameters are ``b``'s, under ``b``'s name. ``init``
    through ``Inverse(b).forward`` runs ``b.inverse`` first: a bijector with a
    data-dependent init (ActNorm) then initialises on the inverse direction's
    input, so initialise ``b`` itself when that matters.
    """

    bijector: Any
    preserve_adopted_names = True

    def __post_init__(self):
        if not isinstance(self.bijector, Bijector):
            raise TypeError(f"Inverse needs a bijector (forward, inverse, output_shape); got "
                            f"{type(self.bijector).__name__}")
        object.__setattr__(self, "bijector", _default_step_names((self.bijector,))[0])
        super().__post_init__()

    def __call__(self, y: Array) -> tuple[Array, Array]:
        return self.forward(y)

    def forward(self, y: Array) -> tuple[Array, Array]:
        return self.bijector.inverse(y)

    def inverse(self, x: Array) -> tuple[Array, Array]:
        return self.bijector.forward(x)

    def output_shape(self, shape: Shape) -> Shape:
        return _input_shape(self.bijector, shape)

    def input_shape(self, shape: Shape) -> Shape:
        return self.bijector.output_shape(shape)
