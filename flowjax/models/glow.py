"""The multi-scale Glow (Kingma & Dhariwal 2018), compatible with OpenAI's.

Encoding (``GLOW_SPEC.md`` §2): n_bits preprocessing and dequantisation noise,
a squeeze, then per level ``depth`` flow steps as one ``nn.scan`` body
(the step is chosen by name, ``flow_step``, from ``flowjax.flows.steps``; OpenAI's
``"openai"``, ActNorm -> permutation -> coupling, is the default); after every level but the last, half the
channels are factored out under the split prior and the rest squeezed; the
last level's output is scored by the top prior. Decoding runs it backwards.
That layout and the public API below are :class:`flowjax.models.image_flow.MultiScaleFlow`'s,
shared with :mod:`flowjax.models.rosinality`; :class:`Glow` adds OpenAI's steps and priors.

Use through ``Module.apply``::

    model = Glow(image_size=64, n_levels=3, depth=8, width=512)
    variables = model.init(key, images)              # data-dependent init
    enc = model.apply(variables, images, method="encode")
    images_again = model.apply(variables, enc.eps, method="decode")

or through the jitted :func:`encode` / :func:`decode` helpers below, which run
large batches on a CPU in cache-sized pieces (:mod:`flowjax.models.micro_batches`).

Parameter tree: ``level_<i>`` (the scanned steps, every leaf with a leading
``depth`` axis, named by the step definition: ``actnorm``, ``invconv``,
``coupling`` for ``"openai"``), ``split_<i>`` and
``prior``; LU permutation matrices and shuffle indices live in the
``"constants"`` collection.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax.flows import steps as steps_lib
from flowjax.flows.bijectors import CONSTANTS
from flowjax.flows.layers import CONV_ALGORITHMS
from flowjax.flows.permutations import INVERSES, PERMUTATIONS
from flowjax.flows.priors import SplitPrior, TopPrior
from flowjax.models import execution, micro_batches
from flowjax.models.image_flow import Encoding, MultiScaleFlow, SplitPriors, TopPriorFn

Array = jax.Array


class FlowStep(nn.Module):
    """One flow step as an ``nn.scan`` body: the Chain the named step definition builds.

    ``step`` names a definition registered in :mod:`flowjax.flows.steps`; it is
    called here, inside the body's compact method, so its bijectors' names are
    the parameter paths under ``level_<i>``.
    """

    step: str
    config: steps_lib.StepConfig
    reverse: bool = False

    @nn.compact
    def __call__(self, carry: tuple[Array, Array], _: Any) -> tuple[tuple[Array, Array], None]:
        z, logdet = carry
        step = steps_lib.flow_step(self.step)(self.config)
        if self.reverse:
            # Decoding needs no log-determinant: leaving it out of the carry
            # lets XLA drop the per-step float64 slogdet entirely.
            z, _ = step.inverse(z)
            return (z, logdet), None
        z, step_logdet = step.forward(z)
        return (z, logdet + step_logdet), None


def scan_steps(body: type[nn.Module], depth: int, reverse: bool, unroll: int = 1,
               remat: bool = False) -> type[nn.Module]:
    """``body`` (a :class:`FlowStep`) scanned over a level's ``depth`` steps, each
    rematerialised in the backward pass when ``remat`` (the parameter paths are the
    same either way); the steps' 1x1 conv inverses, where a sweep computed them once
    (:func:`flowjax.flows.permutations.with_inverse_weights`), are scanned with the weights."""
    if remat:
        body = nn.remat(body, prevent_cse=False)  # the scan already keeps CSE out of its body
    return nn.scan(body, variable_axes={"params": 0, CONSTANTS: 0, INVERSES: 0},
                   split_rngs={"params": True}, length=depth, reverse=reverse, unroll=unroll)


class Glow(MultiScaleFlow):
    """Multi-scale Glow with OpenAI's layout (see the module docstring).

    Attributes:
      image_size: height = width of the (square) input images.
      n_levels: number of levels; ``image_size`` must be divisible by 2**n_levels.
      depth: flow steps per level (K).
      width: hidden channels of the coupling conditioner.
      coupling: "additive" or "affine".
      permutation: "invconv" (OpenAI's), "invconv_lu", "reverse" or "shuffle".
      learn_top: learned (spatially varying) top prior, else N(0, 1).
      n_classes: > 0 makes the top prior class-conditional (labels ``y``).
      n_bits: bits per colour channel the model sees (OpenAI CelebA: 5).
      channels: colour channels of the images (3).
      flow_step: the registered step definition every level repeats
        (:mod:`flowjax.flows.steps`; "openai": ActNorm -> permutation -> coupling).

    Execution settings (:mod:`flowjax.models.execution`: how the model runs, not
    what it is; ``model_config.json`` does not record them, so a checkpoint
    resumes or loads under any of them):
      remat: rematerialise each flow step in the backward pass (saves memory).
      scan_unroll: flow steps per iteration of each level's ``nn.scan`` (1:
        compile time independent of depth). XLA's CPU backend runs conv
        gradients inside a loop body much slower than unrolled, so CPU
        training configs unroll; GPUs/TPUs keep 1.
      precision: for every conv and matmul, "highest" (full float32), "high",
        "default" (TF32 on recent NVIDIA GPUs) or "auto" (the default: training
        at "default", encode and decode at "highest").
      conditioner_dtype: "float32" (the default) or "bfloat16": the dtype the
        couplings' conditioner networks compute in (their parameters stay
        float32). The invertible path (ActNorms, 1x1 convs, the coupling's shift
        and scale, the priors) stays float32, and the inverse applies the same
        conditioner to the same input, so decode still inverts encode exactly.
      conv_algorithm: how the 3x3 convs are computed: "auto" (the default: matmul
        forms for narrow shapes on a CPU, where they were measured faster, XLA's
        convolution elsewhere), "xla" or "matmul" on any backend
        (``flowjax.flows.layers.CONV_ALGORITHMS``).

    A subclass that needs more from its steps overrides :meth:`step_config`.
    """

    image_size: int = 64
    n_levels: int = 3
    depth: int = 8
    width: int = 512
    coupling: str = "additive"
    permutation: str = "invconv"
    learn_top: bool = True
    n_classes: int = 0
    n_bits: int = 5
    channels: int = 3
    remat: bool = False
    scan_unroll: int = 1
    precision: str = execution.AUTO
    flow_step: str = "openai"
    conditioner_dtype: str = "float32"
    conv_algorithm: str = "auto"

    def __post_init__(self):
        steps_lib.flow_step(self.flow_step)  # an unknown name fails here, naming it
        super().__post_init__()

    @nn.nowrap
    def _config_checks(self) -> list[tuple[bool, str]]:
        return [
            *super()._config_checks(),
            (self.permutation in PERMUTATIONS,
             f"permutation must be one of {sorted(PERMUTATIONS)}, got {self.permutation!r}"),
            (self.scan_unroll >= 1, f"scan_unroll must be >= 1, got {self.scan_unroll}"),
            (self.conditioner_dtype in execution.CONDITIONER_DTYPES,
             f"conditioner_dtype must be one of {list(execution.CONDITIONER_DTYPES)}, got "
             f"{self.conditioner_dtype!r}"),
            (self.conv_algorithm in CONV_ALGORITHMS,
             f"conv_algorithm must be one of {list(CONV_ALGORITHMS)}, got {self.conv_algorithm!r}"),
        ]

    # ---- the flow's parts (the level loop is MultiScaleFlow's) ----------------

    def step_config(self) -> steps_lib.StepConfig:
        """What every flow step's definition is called with."""
        return steps_lib.StepConfig(self.width, self.coupling, self.permutation, self.precision,
                                    self.conditioner_dtype, self.conv_algorithm)

    def _steps(self, level: int, reverse: bool) -> nn.Module:
        scanned = scan_steps(FlowStep, self.depth, reverse, self.scan_unroll, self.remat)
        return scanned(self.flow_step, self.step_config(), reverse=reverse,
                       name=f"level_{level}")

    def _priors(self) -> tuple[SplitPriors, TopPriorFn]:
        splits = [SplitPrior(self.precision, self.conv_algorithm, name=f"split_{i}")
                  for i in range(self.n_levels - 1)]
        top = TopPrior(self.latent_shapes[-1], self.learn_top, self.n_classes, self.precision,
                       name="prior")
        return splits, top


# ---- batched entry points -----------------------------------------------------


def apply_encode(model: MultiScaleFlow, variables: Any, images: Array, noise: Any = None,
                 y: Array | None = None, piece: int | None = None) -> Encoding:
    """``model.encode`` (by name: any registered family, ``flowjax.models``) in
    cache-sized pieces of the batch (:mod:`flowjax.models.micro_batches`): ``piece``
    images at a time, 0 for the whole batch at once, ``None`` for the backend's
    size. Traceable.

    ``noise`` is cut with the images when it is an array of their shape; a
    PRNG key takes the whole batch at once, so the noise drawn does not depend
    on the pieces. Input of the wrong shape goes whole too, so that the model's
    own check names the problem.
    """
    def encode_piece(x, u, c):
        return model.apply(variables, x, u, c, method="encode")

    whole = (jnp.shape(images)[1:] != tuple(model.image_shape)
             or (noise is not None and jnp.shape(noise) != jnp.shape(images)))
    if whole:
        return encode_piece(images, noise, y)
    size = micro_batches.piece_size(model, images.shape[0], piece)
    return micro_batches.map_pieces(encode_piece, (images, noise, y), size)


def apply_decode(model: MultiScaleFlow, variables: Any, latents: Sequence[Array],
                 y: Array | None = None, space: str = "eps", quantize: bool = True,
                 piece: int | None = None) -> Array:
    """``model.decode`` in cache-sized pieces, as :func:`apply_encode`. Latents with
    more than one batch axis, or of the wrong shapes, go whole."""
    def decode_piece(z, c):
        return model.apply(variables, z, c, space, quantize, method="decode")

    latents = tuple(latents)
    if [jnp.shape(z)[1:] for z in latents] != [tuple(s) for s in model.latent_shapes]:
        return decode_piece(latents, y)
    size = micro_batches.piece_size(model, latents[0].shape[0], piece)
    return micro_batches.map_pieces(decode_piece, (latents, y), size)


@functools.partial(jax.jit, static_argnames=("model", "piece"))
def encode(model: MultiScaleFlow, variables: Any, images: Array, noise: Any = None,
           y: Array | None = None, piece: int | None = None) -> Encoding:
    """Jitted :func:`apply_encode`; compiles once per (model, shapes)."""
    return apply_encode(model, variables, images, noise, y, piece)


@functools.partial(jax.jit, static_argnames=("model", "space", "quantize", "piece"))
def decode(model: MultiScaleFlow, variables: Any, latents: Sequence[Array], y: Array | None = None,
           space: str = "eps", quantize: bool = True, piece: int | None = None) -> Array:
    """Jitted :func:`apply_decode`; compiles once per (model, shapes, space, quantize).

    Every call inverts each 1x1 conv unless ``variables`` carry the inverses: for
    repeated decodes of one model pass ``permutations.with_inverse_weights(variables)``,
    computed once (the sweeps do; at batch 1 on a CPU the inverses cost about a
    third of a decode). A stored inverse is used only while the step's parameters
    equal those it was computed from: after an update the step inverts W itself."""
    return apply_decode(model, variables, latents, y, space, quantize, piece)


def abstract_variables(model: MultiScaleFlow) -> dict[str, Any]:
    """The model's variables (any registered family) as ``ShapeDtypeStruct``s,
    via ``jax.eval_shape`` of its init: nothing is computed or allocated."""
    images = jax.ShapeDtypeStruct((1, *model.image_shape), jnp.uint8)
    y = jax.ShapeDtypeStruct((1,), jnp.int32) if model.n_classes else None
    return dict(jax.eval_shape(lambda k, x, y: model.init(k, x, None, y),
                               jax.random.key(0), images, y))


def init(model: MultiScaleFlow, key: Array, images: Array, y: Array | None = None) -> Any:
    """``model.init`` with data-dependent initialisation on ``images`` (jitted;
    any registered family).

    ActNorms are initialised in forward order from this batch (mid-bin
    dequantisation noise); in a :class:`Glow` couplings start as identities,
    priors as N(0, 1). Compiled once per (model, shapes), like :func:`encode`.
    """
    return _jitted_init(model, key, images, y)


@functools.partial(jax.jit, static_argnames="model")
def _jitted_init(model: MultiScaleFlow, key: Array, images: Array, y: Array | None) -> Any:
    return model.init(key, images, None, y)


# ---- configuration ------------------------------------------------------------


def model_fields() -> tuple[str, ...]:
    """The configurable fields of :class:`Glow`: its hyperparameters and its
    execution settings (:mod:`flowjax.models.execution`)."""
    return tuple(f.name for f in dataclasses.fields(Glow) if f.name not in ("parent", "name"))


def model_from_config(config: Mapping[str, Any]) -> Glow:
    """Build a :class:`Glow` from a mapping (a ConfigDict or a JSON dict).

    Unknown keys are an error (a typo must not silently fall back to a default).
    """
    config = dict(config)
    unknown = sorted(set(config) - set(model_fields()))
    if unknown:
        raise ValueError(f"unknown Glow config keys {unknown}; valid keys: {list(model_fields())}")
    return Glow(**config)


def model_config(model: Glow) -> dict[str, Any]:
    """What ``model`` is, as a JSON-ready dict of its fields less the execution
    settings; :func:`model_from_config` of it is ``model`` at the default settings."""
    return {name: getattr(model, name) for name in model_fields()
            if name not in execution.EXECUTION_FIELDS}
