"""The multi-scale Glow (Kingma & Dhariwal 2018), compatible with OpenAI's.

Encoding (``GLOW_SPEC.md`` §2): n_bits preprocessing and dequantisation noise,
a squeeze, then per level ``depth`` flow steps as one ``nn.scan`` body
(the step is chosen by name, ``flow_step``, from ``flowjax.steps``; OpenAI's
``"openai"``, ActNorm -> permutation -> coupling, is the default); after every level but the last, half the
channels are factored out under the split prior and the rest squeezed; the
last level's output is scored by the top prior. Decoding runs it backwards.

Use through ``Module.apply``::

    model = Glow(image_size=64, n_levels=3, depth=8, width=512)
    variables = model.init(key, images)              # data-dependent init
    enc = model.apply(variables, images, method="encode")
    images_again = model.apply(variables, enc.eps, method="decode")

or through the jitted :func:`encode` / :func:`decode` helpers below, which run
large batches on a CPU in cache-sized pieces (:mod:`flowjax.micro_batches`).

Parameter tree: ``level_<i>`` (the scanned steps, every leaf with a leading
``depth`` axis, named by the step definition: ``actnorm``, ``invconv``,
``coupling`` for ``"openai"``), ``split_<i>`` and
``prior``; LU permutation matrices and shuffle indices live in the
``"constants"`` collection.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from flowjax import micro_batches
from flowjax import steps as steps_lib
from flowjax.bijectors import (
    CONSTANTS, COUPLINGS, INVERSES, PERMUTATIONS, PRECISIONS, split_channels, squeeze2d,
    unsqueeze2d,
)
from flowjax.priors import SplitPrior, TopPrior, gaussian_log_prob, standardize, unstandardize

Array = jax.Array
Shape = tuple[int, int, int]
SPACES = ("eps", "z")


def latent_shapes(image_size: int, n_levels: int, channels: int = 3) -> list[Shape]:
    """Per-level latent shapes (H, W, C) of a Glow, without the batch axis.

    The first squeeze gives ``(S/2, S/2, 4*channels)``; every split level emits
    half its channels and squeezes the rest, so level ``i < L-1`` emits
    ``(S/2^(i+1), S/2^(i+1), 2*channels*2^i)`` and the top emits the whole
    remaining ``(S/2^L, S/2^L, 4*channels*2^(L-1))``.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    if image_size % (2**n_levels):
        raise ValueError(
            f"image_size must be divisible by 2**n_levels = {2**n_levels} "
            f"(n_levels={n_levels}), got {image_size}"
        )
    shapes: list[Shape] = []
    for level in range(n_levels):
        side = image_size // 2 ** (level + 1)
        level_channels = 4 * channels * 2**level
        if level < n_levels - 1:
            shapes.append((side, side, level_channels // 2))
        else:
            shapes.append((side, side, level_channels))
    return shapes


@flax.struct.dataclass
class Encoding:
    """What :meth:`Glow.encode` returns (a pytree: jit/vmap friendly).

    eps: per-level standardized latents ``(z - mean) / std`` under the priors.
    z: the same latents before standardization (raw z space).
    log_prob: log-probability (nats) of the n_bits-quantized image, per image:
        ``-D ln(n_bins) + sum(logdets) + sum(prior log-densities)``.
    bits_per_dim: ``-log_prob / (D ln 2)``, per image.
    """

    eps: tuple[Array, ...]
    z: tuple[Array, ...]
    log_prob: Array
    bits_per_dim: Array


class FlowStep(nn.Module):
    """One flow step as an ``nn.scan`` body: the Chain the named step definition builds.

    ``step`` names a definition registered in :mod:`flowjax.steps`; it is
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


def scan_steps(body: type[nn.Module], depth: int, reverse: bool, unroll: int = 1
               ) -> type[nn.Module]:
    """``body`` (a :class:`FlowStep`) scanned over a level's ``depth`` steps; the
    steps' 1x1 conv inverses, where a sweep computed them once
    (:func:`flowjax.bijectors.with_inverse_weights`), are scanned with the weights."""
    return nn.scan(body, variable_axes={"params": 0, CONSTANTS: 0, INVERSES: 0},
                   split_rngs={"params": True}, length=depth, reverse=reverse, unroll=unroll)


class Glow(nn.Module):
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
      remat: rematerialise each flow step in the backward pass (saves memory).
      scan_unroll: flow steps per iteration of each level's ``nn.scan`` (1:
        compile time independent of depth). XLA's CPU backend runs conv
        gradients inside a loop body much slower than unrolled, so CPU
        training configs unroll; GPUs/TPUs keep 1.
      precision: "highest" (full float32, the default), "high" or "default"
        (TF32 on recent NVIDIA GPUs) for every conv and matmul.
      flow_step: the registered step definition every level repeats
        (:mod:`flowjax.steps`; "openai": ActNorm -> permutation -> coupling).

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
    precision: str = "highest"
    flow_step: str = "openai"

    def __post_init__(self):
        checks = [
            (self.coupling in COUPLINGS, f"coupling must be one of {sorted(COUPLINGS)}, got {self.coupling!r}"),
            (self.permutation in PERMUTATIONS,
             f"permutation must be one of {sorted(PERMUTATIONS)}, got {self.permutation!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}"),
            (1 <= self.n_bits <= 8, f"n_bits must be in 1..8, got {self.n_bits}"),
            (self.depth >= 1 and self.width >= 1,
             f"depth and width must be >= 1, got depth={self.depth}, width={self.width}"),
            (self.scan_unroll >= 1, f"scan_unroll must be >= 1, got {self.scan_unroll}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        steps_lib.flow_step(self.flow_step)  # an unknown name fails here, naming it
        latent_shapes(self.image_size, self.n_levels, self.channels)  # validates
        super().__post_init__()

    # ---- geometry -----------------------------------------------------------

    @property
    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """Per-level latent shapes (H, W, C), level 0 first."""
        return latent_shapes(self.image_size, self.n_levels, self.channels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    @property
    def num_dims(self) -> int:
        return self.image_size * self.image_size * self.channels

    # ---- public API ---------------------------------------------------------

    def __call__(self, images: Array, noise: Any = None, y: Array | None = None) -> Encoding:
        """Same as :meth:`encode` (so ``Glow.init(key, images)`` does the DDI)."""
        return self.encode(images, noise, y)

    def encode(self, images: Array, noise: Any = None, y: Array | None = None) -> Encoding:
        """uint8 images [B, S, S, C] -> :class:`Encoding`.

        ``noise`` is the dequantisation noise ``u`` added to the scaled image:
        ``None`` for deterministic mid-bin noise ``0.5 / n_bins`` (the default
        for inference: encode -> decode is then exact), a PRNG key for
        ``u ~ U[0, 1/n_bins)`` (training; OpenAI's encoder), or a float array
        of the images' shape holding ``u`` itself (values in [0, 1/n_bins),
        e.g. the noise a TensorFlow reference run used).
        """
        x = self._preprocess(images, noise)
        return self._flow(x=x, y=y)

    def decode(self, latents: Sequence[Array], y: Array | None = None, space: str = "eps",
               quantize: bool = True) -> Array:
        """Per-level latents -> images.

        ``space="eps"`` takes standardized latents (as :meth:`encode`'s ``eps``),
        ``"z"`` raw ones. ``quantize=True`` returns uint8 images (OpenAI's
        postprocess: ``floor((x + 0.5) n_bins) * 256 / n_bins``, clipped);
        ``False`` the continuous float image in [-0.5, 0.5).
        """
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        self._check_latents(latents)
        x = self._flow(latents=tuple(latents), y=y, space=space)
        return self.postprocess(x) if quantize else x

    def sample(self, key: Array, n: int, temperature: float = 0.7, y: Array | None = None,
               quantize: bool = True) -> Array:
        """Draw ``n`` images; ``temperature`` scales the standardized noise at
        every level (split priors and top), not the means (OpenAI's eps_std)."""
        keys = jax.random.split(key, self.n_levels)
        eps = [temperature * jax.random.normal(k, (n, *s), jnp.float32)
               for k, s in zip(keys, self.latent_shapes)]
        return self.decode(eps, y=y, quantize=quantize)

    def log_prob(self, images: Array, noise: Any = None, y: Array | None = None) -> Array:
        """Log-probability (nats) per image; see :class:`Encoding`."""
        return self.encode(images, noise, y).log_prob

    def bits_per_dim(self, images: Array, noise: Any = None, y: Array | None = None) -> Array:
        return self.encode(images, noise, y).bits_per_dim

    # ---- pre/post-processing ------------------------------------------------

    @property
    def n_bins(self) -> int:
        return 2**self.n_bits

    def _preprocess(self, images: Array, noise: Any) -> Array:
        self._check_images(images)
        quantized = images // (2 ** (8 - self.n_bits))
        x = quantized.astype(jnp.float32) / self.n_bins - 0.5
        return x + self._dequantization_noise(noise, images.shape)

    def _dequantization_noise(self, noise: Any, shape: tuple[int, ...]) -> Array:
        if noise is None:
            return jnp.float32(0.5 / self.n_bins)
        noise = jnp.asarray(noise)
        is_typed_key = jnp.issubdtype(noise.dtype, jax.dtypes.prng_key)
        is_raw_key = noise.dtype == jnp.uint32 and noise.shape == (2,)
        if is_typed_key or is_raw_key:
            return jax.random.uniform(noise, shape, jnp.float32, 0.0, 1.0 / self.n_bins)
        if noise.shape != tuple(shape) or not jnp.issubdtype(noise.dtype, jnp.floating):
            raise ValueError(
                f"noise must be None, a PRNG key or a float array of the images' shape "
                f"{tuple(shape)}; got {noise.dtype} array of shape {noise.shape}")
        return noise.astype(jnp.float32)

    def postprocess(self, x: Array) -> Array:
        """Continuous image in [-0.5, 0.5) -> uint8 (no half-bin offset)."""
        q = jnp.floor((x + 0.5) * self.n_bins) * (256 // self.n_bins)
        return jnp.clip(q, 0, 255).astype(jnp.uint8)

    def _check_images(self, images: Array) -> None:
        expected = self.image_shape
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must have shape [batch, {', '.join(map(str, expected))}] "
                             f"for this Glow; got shape {tuple(images.shape)}")
        if images.dtype != jnp.uint8:
            raise ValueError(f"images must be uint8 (0..255 RGB); got dtype {images.dtype}")

    def _check_latents(self, latents: Sequence[Array]) -> None:
        shapes = self.latent_shapes
        if len(latents) != len(shapes):
            raise ValueError(f"expected {len(shapes)} latent levels, got {len(latents)}")
        batch = latents[0].shape[:-3]
        for i, (z, s) in enumerate(zip(latents, shapes)):
            if tuple(z.shape) != (*batch, *s):
                raise ValueError(f"latent level {i} must have shape {(*batch, *s)}, "
                                 f"got {tuple(z.shape)}")

    # ---- the flow -------------------------------------------------------------

    def step_config(self) -> steps_lib.StepConfig:
        """What every flow step's definition is called with."""
        return steps_lib.StepConfig(self.width, self.coupling, self.permutation, self.precision)

    def _steps(self, level: int, reverse: bool) -> nn.Module:
        body = nn.remat(FlowStep, prevent_cse=False) if self.remat else FlowStep
        scanned = scan_steps(body, self.depth, reverse, self.scan_unroll)
        return scanned(self.flow_step, self.step_config(), reverse=reverse,
                       name=f"level_{level}")

    @nn.compact
    def _flow(self, x: Array | None = None, latents: tuple[Array, ...] | None = None,
              y: Array | None = None, space: str = "eps") -> Any:
        """Encode (``x`` given) or decode (``latents`` given); one compact method
        so both directions create and share the same parameter names."""
        splits = [SplitPrior(self.precision, name=f"split_{i}") for i in range(self.n_levels - 1)]
        top = TopPrior(self.latent_shapes[-1], self.learn_top, self.n_classes, self.precision,
                       name="prior")
        if x is not None:
            return self._encode_flow(x, y, splits, top)
        return self._decode_flow(latents, y, space, splits, top)

    def _encode_flow(self, x, y, splits, top) -> Encoding:
        batch = x.shape[:-3]
        z = squeeze2d(x)
        logdet = jnp.zeros(batch, x.dtype)
        log_prior = jnp.zeros(batch, x.dtype)
        eps, zs = [], []
        for level in range(self.n_levels):
            (z, logdet), _ = self._steps(level, reverse=False)((z, logdet), None)
            if level < self.n_levels - 1:
                z, factored = split_channels(z)
                mean, logs = splits[level](z)
                z = squeeze2d(z)
            else:
                factored = z
                mean, logs = top(batch, y)
            log_prior = log_prior + gaussian_log_prob(factored, mean, logs)
            eps.append(standardize(factored, mean, logs))
            zs.append(factored)
        log_prob = -self.num_dims * math.log(self.n_bins) + logdet + log_prior
        return Encoding(eps=tuple(eps), z=tuple(zs), log_prob=log_prob,
                        bits_per_dim=-log_prob / (self.num_dims * math.log(2.0)))

    def _decode_flow(self, latents, y, space, splits, top) -> Array:
        batch = latents[0].shape[:-3]
        no_logdet = jnp.zeros(batch, latents[0].dtype)
        z = None
        for level in reversed(range(self.n_levels)):
            if level == self.n_levels - 1:
                mean, logs = top(batch, y)
                z = latents[level] if space == "z" else unstandardize(latents[level], mean, logs)
            else:
                kept = unsqueeze2d(z)
                mean, logs = splits[level](kept)
                factored = latents[level] if space == "z" else unstandardize(latents[level], mean, logs)
                z = jnp.concatenate([kept, factored], axis=-1)
            (z, _), _ = self._steps(level, reverse=True)((z, no_logdet), None)
        return unsqueeze2d(z)


# ---- batched entry points -----------------------------------------------------


def apply_encode(model: Glow, variables: Any, images: Array, noise: Any = None,
                 y: Array | None = None, piece: int | None = None) -> Encoding:
    """``model.encode`` (by name: any registered family, ``flowjax.models``) in
    cache-sized pieces of the batch (:mod:`flowjax.micro_batches`): ``piece``
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


def apply_decode(model: Glow, variables: Any, latents: Sequence[Array], y: Array | None = None,
                 space: str = "eps", quantize: bool = True, piece: int | None = None) -> Array:
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
def encode(model: Glow, variables: Any, images: Array, noise: Any = None,
           y: Array | None = None, piece: int | None = None) -> Encoding:
    """Jitted :func:`apply_encode`; compiles once per (model, shapes)."""
    return apply_encode(model, variables, images, noise, y, piece)


@functools.partial(jax.jit, static_argnames=("model", "space", "quantize", "piece"))
def decode(model: Glow, variables: Any, latents: Sequence[Array], y: Array | None = None,
           space: str = "eps", quantize: bool = True, piece: int | None = None) -> Array:
    """Jitted :func:`apply_decode`; compiles once per (model, shapes, space, quantize).

    Every call inverts each 1x1 conv unless ``variables`` carry the inverses: for
    repeated decodes of one model pass ``bijectors.with_inverse_weights(variables)``,
    computed once (the sweeps do; at batch 1 on a CPU the inverses cost about a
    third of a decode)."""
    return apply_decode(model, variables, latents, y, space, quantize, piece)


def abstract_variables(model: Glow) -> dict[str, Any]:
    """The model's variables as ``ShapeDtypeStruct``s, via ``jax.eval_shape``
    of its init: nothing is computed or allocated."""
    images = jax.ShapeDtypeStruct((1, *model.image_shape), jnp.uint8)
    y = jax.ShapeDtypeStruct((1,), jnp.int32) if model.n_classes else None
    return dict(jax.eval_shape(lambda k, x, y: model.init(k, x, None, y),
                               jax.random.key(0), images, y))


def init(model: Glow, key: Array, images: Array, y: Array | None = None) -> Any:
    """``model.init`` with data-dependent initialisation on ``images`` (jitted).

    ActNorms are initialised in forward order from this batch (mid-bin
    dequantisation noise), couplings start as identities, priors as N(0, 1).
    """
    return jax.jit(lambda k, x, y: model.init(k, x, None, y))(key, images, y)


# ---- configuration ------------------------------------------------------------


def model_fields() -> tuple[str, ...]:
    """The configurable fields of :class:`Glow` (its hyperparameters)."""
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
    """The inverse of :func:`model_from_config`: a JSON-ready dict of the fields."""
    return {name: getattr(model, name) for name in model_fields()}
