"""Flow-step definitions by name: functions that build one step of a flow as a ``Chain``.

A *flow step* is what a multi-scale model repeats ``depth`` times per level
(Glow scans it with ``nn.scan``). A step definition is a function::

    def my_step(config: StepConfig) -> composition.Chain: ...

called inside the scanned body's ``@nn.compact`` method, so the bijectors it
constructs become that body's children: give each an explicit ``name=`` (it
becomes the parameter path ``level_<i>/<name>``) and keep the names stable,
because checkpoints store parameters under them. The function is called once
per trace, not per step: every step of a level shares the structure and gets
its own parameters (the scan's leading ``depth`` axis).

Register a definition with :func:`register_flow_step` and choose it by name
(``Glow(flow_step="...")``); the name is saved in ``model_config.json``, so a
checkpoint rebuilds exactly the steps it was trained with. ``"openai"`` is
OpenAI's ActNorm -> permutation -> coupling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax.flows.bijectors import ActNorm, Coupling
from flowjax.flows.composition import Chain
from flowjax.flows.permutations import PERMUTATIONS


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What a Glow tells its step definition (hashable: it is a module attribute).

    width: hidden channels of the coupling conditioner.
    coupling: a key of ``bijectors.COUPLINGS`` ("additive", "affine").
    permutation: a key of ``permutations.PERMUTATIONS`` ("invconv", ...).
    precision: "highest", "high" or "default" for convs and matmuls ("auto", a
      model's unset precision, runs at "highest").
    conditioner_dtype: "float32" or "bfloat16", the coupling conditioner's dtype.
    conv_algorithm: how 3x3 convs are computed (``layers.CONV_ALGORITHMS``).
    """

    width: int
    coupling: str
    permutation: str
    precision: str
    conditioner_dtype: str = "float32"
    conv_algorithm: str = "auto"


Array = jax.Array
StepDefinition = Callable[[StepConfig], Chain]

_FLOW_STEPS: dict[str, StepDefinition] = {}


class UnknownFlowStepError(ValueError):
    """A flow-step name that nothing registered."""


def register_flow_step(name: str, definition: StepDefinition | None = None, *,
                       overwrite: bool = False):
    """Registers ``definition`` under ``name``; usable as a decorator.

    Registering the same function again is a no-op; a different function under
    a taken name is an error unless ``overwrite=True`` (a silently replaced
    step would load old checkpoints into a different architecture).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a flow step needs a non-empty string name, got {name!r}")

    def register(fn: StepDefinition) -> StepDefinition:
        if not callable(fn):
            raise TypeError(f"flow step {name!r} must be a function StepConfig -> Chain, got {fn!r}")
        existing = _FLOW_STEPS.get(name)
        if existing is not None and existing is not fn and not overwrite:
            raise ValueError(f"flow step {name!r} is already registered ({existing.__qualname__}); "
                             "pick another name or pass overwrite=True")
        _FLOW_STEPS[name] = fn
        return fn

    return register if definition is None else register(definition)


def flow_step_names() -> list[str]:
    """The registered flow-step names, sorted."""
    return sorted(_FLOW_STEPS)


def flow_step(name: str) -> StepDefinition:
    """The definition registered as ``name``; an unknown name is an error naming it."""
    try:
        return _FLOW_STEPS[name]
    except (KeyError, TypeError):
        raise UnknownFlowStepError(
            f"unknown flow step {name!r}; registered: {flow_step_names()}. Register it with "
            "flowjax.models.register_flow_step (import the module that does so first)") from None


@register_flow_step("openai")
def openai_step(config: StepConfig) -> Chain:
    """OpenAI's step: ActNorm -> permutation -> coupling (``actnorm``, ``invconv``, ``coupling``).

    The permutation's parameters are named ``invconv`` whatever the permutation
    (OpenAI's checkpoints and every existing flowjax checkpoint use that path).
    """
    permutation = PERMUTATIONS[config.permutation]
    kwargs = {"precision": config.precision} if "invconv" in config.permutation else {}
    return Chain((
        ActNorm(name="actnorm"),
        permutation(name="invconv", **kwargs),
        Coupling(config.width, config.coupling, config.precision, config.conditioner_dtype,
                 config.conv_algorithm, name="coupling"),
    ))


class StepBijector(nn.Module):
    """A registered flow step as a standalone bijector (e.g. for ``assert_bijector``).

    ``StepBijector("openai", StepConfig(8, "affine", "invconv", "highest"))``
    builds the step's Chain in its compact method, so its parameters are
    ``params[<the step's names>]``, as one ``level_<i>`` slice of a Glow.
    """

    step: str
    config: StepConfig

    @nn.compact
    def _run(self, x: Array, reverse: bool) -> tuple[Array, Array]:
        chain = flow_step(self.step)(self.config)
        return chain.inverse(x) if reverse else chain.forward(x)

    def __call__(self, x: Array) -> tuple[Array, Array]:
        return self._run(x, False)

    def forward(self, x: Array) -> tuple[Array, Array]:
        return self._run(x, False)

    def inverse(self, y: Array) -> tuple[Array, Array]:
        return self._run(y, True)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        # The chain only exists inside _run, so trace an init of an unbound copy
        # (shapes only: jax.eval_shape computes nothing).
        unbound = self.clone(parent=None)
        out = jax.eval_shape(
            lambda x: unbound.init_with_output(jax.random.key(0), x, method="forward")[0][0],
            jax.ShapeDtypeStruct(tuple(shape), jnp.float32))
        return tuple(out.shape)
