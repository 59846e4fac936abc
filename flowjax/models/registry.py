"""Models that know what they are: model families and flow steps by name.

A *model family* is a Flax module class registered under a name; its
configuration is its dataclass fields. ``model_config.json`` (written by
``flowjax.models.checkpoints``) records the family next to the fields that say
what the model is::

    {"family": "glow", "image_size": 64, ..., "flow_step": "openai", ...}

and :func:`model_from_config` rebuilds exactly that class, refusing a family
(or flow step) nobody registered with an error naming it. A config without
``"family"`` (every file written before the registry) is a ``"glow"``, and
one without ``"flow_step"`` gets the dataclass default (``"openai"``), so old
checkpoints load unchanged.

The execution settings (``remat``, ``scan_unroll``, ``precision``: how a model
runs, not what it is, :mod:`flowjax.models.execution`) are fields too, but
:func:`model_config` leaves them out (:func:`execution_config` gives them), so a
checkpoint loads and resumes under any of them.

Registering a family::

    from flowjax.models import registry
    from flowjax.models.glow import Glow

    @registry.register_model("glow_with_extra")
    class GlowWithExtra(Glow):       # or any module with the FlowModel interface
        ...

The class must be a Flax module (a dataclass whose fields are JSON values)
providing :class:`FlowModel`. The module that registers it must be imported
before a checkpoint of it is loaded; the built-in families are registered
here. Flow-step definitions are registered with :func:`register_flow_step`
(re-exported from :mod:`flowjax.flows.steps`) and chosen by ``Glow(flow_step=...)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flowjax.models import execution, glow, rosinality
from flowjax.flows.steps import (  # noqa: F401  (the registry's public face)
    StepConfig, UnknownFlowStepError, flow_step, flow_step_names, openai_step, register_flow_step,
)

Array = jax.Array

FAMILY_KEY = "family"
DEFAULT_FAMILY = "glow"  # what a config without FAMILY_KEY is (files older than the registry)


class FlowModel(Protocol):
    """What a registered model family provides (``glow.Glow`` is the reference).

    Called through ``Module.init`` / ``Module.apply`` (``method="encode"``...):

    ``__call__(images, noise=None, y=None)`` the same as ``encode``; ``init``
        runs it on a batch (data-dependent initialisation).
    ``encode(images, noise=None, y=None) -> glow.Encoding`` uint8 NHWC images
        to per-level ``eps`` / ``z`` latents, ``log_prob``, ``bits_per_dim``.
    ``decode(latents, y=None, space="eps", quantize=True)`` the inverse.
    ``sample(key, n, temperature, y=None, quantize=True)`` and
    ``bits_per_dim(images, noise, y=None)`` (the training loss; ``noise`` a PRNG key
        for uniform dequantisation, None for mid-bin).

    Attributes: ``image_size``, ``image_shape`` (H, W, C), ``latent_shapes`` (per level, level
    0 first, OpenAI's flat order), ``num_dims``, ``n_classes`` (0: unconditional).
    """

    image_size: int
    image_shape: tuple[int, int, int]
    latent_shapes: Sequence[tuple[int, int, int]]
    num_dims: int
    n_classes: int

    def encode(self, images: Array, noise: Any = None, y: Array | None = None) -> Any: ...

    def decode(self, latents: Sequence[Array], y: Array | None = None, space: str = "eps",
               quantize: bool = True) -> Array: ...


class UnknownArchitectureError(ValueError):
    """A model family (or model class) that nothing registered."""


_FAMILIES: dict[str, type[nn.Module]] = {}


def register_model(name: str, cls: type[nn.Module] | None = None, *, overwrite: bool = False):
    """Registers the module class ``cls`` as family ``name``; usable as a decorator.

    Registering the same class again is a no-op. A name taken by another class,
    or a class already registered under another name, is an error unless
    ``overwrite=True``: a checkpoint must name exactly one architecture.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a model family needs a non-empty string name, got {name!r}")

    def register(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"model family {name!r} must be a flax.linen.Module class, got {cls!r}")
        taken = _FAMILIES.get(name)
        other_name = next((n for n, c in _FAMILIES.items() if c is cls and n != name), None)
        if not overwrite and taken is not None and taken is not cls:
            raise ValueError(f"model family {name!r} is already registered "
                             f"({taken.__module__}.{taken.__qualname__}); pick another name")
        if not overwrite and other_name is not None:
            raise ValueError(f"{cls.__qualname__} is already registered as {other_name!r}")
        _FAMILIES[name] = cls
        return cls

    return register if cls is None else register(cls)


def model_names() -> list[str]:
    """The registered family names, sorted."""
    return sorted(_FAMILIES)


def model_class(name: str) -> type[nn.Module]:
    """The class registered as ``name``; an unknown name is an error naming it."""
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise UnknownArchitectureError(
            f"unknown model family {name!r}; registered: {model_names()}. Import the module "
            "that registers it (flowjax.models.register_model) before loading") from None


def family_name(model: nn.Module | type[nn.Module]) -> str:
    """The name ``type(model)`` is registered under (exact class: a subclass of a
    registered family is its own architecture and must be registered itself)."""
    cls = model if isinstance(model, type) else type(model)
    for name, registered in _FAMILIES.items():
        if registered is cls:
            return name
    raise UnknownArchitectureError(
        f"{cls.__module__}.{cls.__qualname__} is not a registered model family "
        f"(registered: {model_names()}); register it with "
        "flowjax.models.register_model(name, cls) so a checkpoint can rebuild it")


def model_fields(cls: type[nn.Module]) -> tuple[str, ...]:
    """The configurable fields of a family's class (its dataclass fields: its identity
    and its execution settings)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name"))


def model_config(model: nn.Module) -> dict[str, Any]:
    """A JSON-ready ``{"family": name, **fields}`` describing what ``model`` is: every
    field but the execution settings (:func:`execution_config`). Two models with equal
    configs compute the same function of the same parameters; ``model_config.json``
    and the resume check of ``flowjax.training.train`` compare this."""
    name = family_name(model)
    return {FAMILY_KEY: name, **{f: getattr(model, f) for f in model_fields(type(model))
                                 if f not in execution.EXECUTION_FIELDS}}


def execution_config(model: nn.Module) -> dict[str, Any]:
    """How ``model`` runs: its execution fields (``remat``, ``scan_unroll``,
    ``precision``, ``conditioner_dtype``; those its class has), JSON-ready, for a run's
    summary or manifest."""
    return {f: getattr(model, f) for f in model_fields(type(model))
            if f in execution.EXECUTION_FIELDS}


def default_config(family: str = DEFAULT_FAMILY, **overrides: Any) -> dict[str, Any]:
    """``{"family": family, **fields}`` with every field at its class default, then
    ``overrides``: the one source of a config's model defaults (``configs/common.py``).

    A field without a default, or an override that is not a field, is an error naming it.
    """
    cls = model_class(family)
    defaults = {}
    for field in dataclasses.fields(cls):
        if field.name in ("parent", "name"):
            continue
        if field.default is dataclasses.MISSING:
            raise ValueError(f"model family {family!r} field {field.name!r} has no default; "
                             "give it in overrides")
        defaults[field.name] = field.default
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {family} config keys {unknown}; valid keys: {list(defaults)}")
    return {FAMILY_KEY: family, **defaults, **overrides}


def model_from_config(config: Mapping[str, Any]) -> nn.Module:
    """The model a :func:`model_config` dict (or a ConfigDict) describes.

    ``"family"`` defaults to ``"glow"``; the config may also give execution
    settings (a run's ``config.model``), else they take their defaults. Unknown
    family names and unknown fields are errors naming them (a typo must not fall
    back to a default).
    """
    config = dict(config)
    name = config.pop(FAMILY_KEY, DEFAULT_FAMILY)
    cls = model_class(name)
    fields = model_fields(cls)
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ValueError(f"unknown {name} config keys {unknown}; valid keys: {list(fields)}")
    return cls(**config)


def random_variables(model: nn.Module, seed: int = 0, scale: float = 0.05) -> dict[str, Any]:
    """Random (not data-initialised) variables for ``model``, without compiling ``init``.

    For timing and tests: the tree comes from ``jax.eval_shape`` of the model's
    init (tracing only; compiling Glow's data-dependent init takes tens of
    seconds on a CPU even for tiny models); 1x1 convolutions get random
    orthogonal matrices, so they stay invertible, every other leaf is
    ``N(0, scale^2)``. Supports the ``invconv`` and ``reverse`` permutations.
    """
    if getattr(model, "permutation", None) not in ("invconv", "reverse"):
        raise ValueError(f"random_variables supports permutation 'invconv' or 'reverse', got "
                         f"{getattr(model, 'permutation', None)!r}; use glow.init for the others")
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        names = [str(getattr(p, "key", p)) for p in path]
        if names[-2:] == ["invconv", "W"]:
            return np.linalg.qr(rng.standard_normal(leaf.shape))[0].astype(np.float32)
        return (scale * rng.standard_normal(leaf.shape)).astype(np.float32)

    images = jax.ShapeDtypeStruct((1, *model.image_shape), jnp.uint8)
    y = jax.ShapeDtypeStruct((1,), jnp.int32) if model.n_classes else None
    shapes = jax.eval_shape(lambda k, x, y: model.init(k, x, None, y), jax.random.key(0), images, y)
    return jax.tree_util.tree_map_with_path(fill, dict(shapes))


register_model(DEFAULT_FAMILY, glow.Glow)
register_model(rosinality.FAMILY, rosinality.RosinalityGlow)
