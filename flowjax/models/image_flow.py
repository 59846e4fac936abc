"""What every multi-scale image flow shares: the public API and the level loop.

Both built-in families, :class:`flowjax.models.glow.Glow` (OpenAI's) and
:class:`flowjax.models.rosinality.RosinalityGlow`, have the same multi-scale layout
(``GLOW_SPEC.md`` §2): n_bits preprocessing and dequantisation noise, a
squeeze, then per level ``depth`` flow steps; after every level but the last,
half the channels are factored out under a split prior and the rest squeezed;
the last level's output is scored by the top prior. Decoding runs it
backwards. They differ only in their flow steps and in how their priors
compute ``(mean, log_std)``, so :class:`MultiScaleFlow` holds everything else
once and a family provides two hooks:

* ``_steps(level, reverse)``: the level's ``depth`` steps as one scanned
  module (named ``level_<i>``), called as ``((z, logdet), None)``;
* ``_priors()``: called inside the one compact method, it creates the prior
  modules and returns ``(split_priors, top_prior)``: per split level a
  callable ``kept half -> (mean, log_std)``, and ``top_prior(batch_shape, y)
  -> (mean, log_std)``.

A family with labels reads ``y`` in its top prior; one without overrides
``_check_labels`` to refuse them.

The base declares no dataclass fields: each family keeps its own fields,
their order and defaults (``model_config.json`` records them, less the
execution settings ``remat``, ``scan_unroll`` and ``precision``:
:mod:`flowjax.models.execution`), and must have those listed under
``TYPE_CHECKING`` below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from flowjax.flows.bijectors import COUPLINGS, split_channels, squeeze2d, unsqueeze2d
from flowjax.flows.layers import PRECISIONS
from flowjax.flows.priors import gaussian_log_prob, standardize, unstandardize

Array = jax.Array
Shape = tuple[int, int, int]
SPACES = ("eps", "z")

SplitPriors = Sequence[Callable[[Array], tuple[Array, Array]]]
TopPriorFn = Callable[[tuple[int, ...], Any], tuple[Array, Array]]


def latent_shapes(image_size: int, n_levels: int, channels: int = 3) -> list[Shape]:
    """Per-level latent shapes (H, W, C) of a multi-scale flow, without the batch axis.

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
    """What ``encode`` returns (a pytree: jit/vmap friendly).

    eps: per-level standardized latents ``(z - mean) / std`` under the priors.
    z: the same latents before standardization (raw z space).
    log_prob: log-probability (nats) of the n_bits-quantized image, per image:
        ``-D ln(n_bins) + sum(logdets) + sum(prior log-densities)``.
    bits_per_dim: ``-log_prob / (D ln 2)``, per image.

    Both are evaluated at the encode's dequantisation noise. Published bits/dim
    (OpenAI's, this project's training and held-out evaluation) are at uniform
    noise ``u ~ U[0, 1/n_bins)``, a bound on the discrete likelihood; the mid-bin
    default of an inference encode gives another number, comparable only with
    other mid-bin values. :meth:`MultiScaleFlow.log_prob` and
    :meth:`MultiScaleFlow.bits_per_dim` therefore take the noise explicitly.
    """

    eps: tuple[Array, ...]
    z: tuple[Array, ...]
    log_prob: Array
    bits_per_dim: Array


class MultiScaleFlow(nn.Module):
    """The shared public API (see the module docstring); subclass it, do not use it."""

    if TYPE_CHECKING:  # fields every family declares itself (its order, its defaults)
        image_size: int
        n_levels: int
        depth: int
        width: int
        coupling: str
        n_bits: int
        channels: int
        precision: str
        n_classes: int

    def __post_init__(self):
        for ok, message in self._config_checks():
            if not ok:
                raise ValueError(message)
        latent_shapes(self.image_size, self.n_levels, self.channels)  # validates
        super().__post_init__()

    @nn.nowrap  # a plain method: it runs before Module.__post_init__ binds the module
    def _config_checks(self) -> list[tuple[bool, str]]:
        """``(ok, message)`` per field check; a family appends its own."""
        return [
            (self.coupling in COUPLINGS,
             f"coupling must be one of {sorted(COUPLINGS)}, got {self.coupling!r}"),
            (self.precision in PRECISIONS,
             f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}"),
            (1 <= self.n_bits <= 8, f"n_bits must be in 1..8, got {self.n_bits}"),
            (self.depth >= 1 and self.width >= 1,
             f"depth and width must be >= 1, got depth={self.depth}, width={self.width}"),
        ]

    # ---- geometry -----------------------------------------------------------

    @property
    def latent_shapes(self) -> list[Shape]:
        """Per-level latent shapes (H, W, C), level 0 first."""
        return latent_shapes(self.image_size, self.n_levels, self.channels)

    @property
    def image_shape(self) -> Shape:
        return (self.image_size, self.image_size, self.channels)

    @property
    def num_dims(self) -> int:
        return self.image_size * self.image_size * self.channels

    @property
    def n_bins(self) -> int:
        return 2**self.n_bits

    # ---- public API ---------------------------------------------------------

    def __call__(self, images: Array, noise: Any = None, y: Array | None = None) -> Encoding:
        """Same as :meth:`encode` (so ``model.init(key, images)`` does the data-dependent init)."""
        return self.encode(images, noise, y)

    def encode(self, images: Array, noise: Any = None, y: Array | None = None) -> Encoding:
        """uint8 images [B, S, S, C] -> :class:`Encoding`.

        ``noise`` is the dequantisation noise ``u`` added to the scaled image:
        ``None`` for deterministic mid-bin noise ``0.5 / n_bins`` (the default
        for inference: encode -> decode is then exact), a PRNG key for
        ``u ~ U[0, 1/n_bins)`` (training), or a float array of the images'
        shape holding ``u`` itself (values in [0, 1/n_bins), e.g. the noise a
        reference run used).
        """
        self._check_labels(y)
        return self._flow(x=self._preprocess(images, noise), y=y)

    def decode(self, latents: Sequence[Array], y: Array | None = None, space: str = "eps",
               quantize: bool = True) -> Array:
        """Per-level latents -> images.

        ``space="eps"`` takes standardized latents (as :meth:`encode`'s ``eps``),
        ``"z"`` raw ones. ``quantize=True`` returns uint8 images
        (:meth:`postprocess`); ``False`` the continuous float image in [-0.5, 0.5).
        """
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        self._check_labels(y)
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

    def log_prob(self, images: Array, noise: Any, y: Array | None = None) -> Array:
        """Log-probability (nats) per image at dequantisation ``noise`` (as
        :meth:`encode`'s; no default: a PRNG key gives the published measure, None
        the mid-bin value; see :class:`Encoding`)."""
        return self.encode(images, noise, y).log_prob

    def bits_per_dim(self, images: Array, noise: Any, y: Array | None = None) -> Array:
        """Bits per dimension per image at dequantisation ``noise`` (see :meth:`log_prob`)."""
        return self.encode(images, noise, y).bits_per_dim

    # ---- pre/post-processing ------------------------------------------------

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
            # n_bins is a power of two, so this is bit for bit U[0, 1) / n_bins
            # (rosinality's train.py) as well as OpenAI's U[0, 1/n_bins).
            return jax.random.uniform(noise, shape, jnp.float32, 0.0, 1.0 / self.n_bins)
        if noise.shape != tuple(shape) or not jnp.issubdtype(noise.dtype, jnp.floating):
            raise ValueError(
                f"noise must be None, a PRNG key or a float array of the images' shape "
                f"{tuple(shape)}; got {noise.dtype} array of shape {noise.shape}")
        return noise.astype(jnp.float32)

    def postprocess(self, x: Array) -> Array:
        """Continuous image in [-0.5, 0.5) -> uint8 on the n_bits grid,
        ``floor((x + 0.5) n_bins) * 2**(8 - n_bits)`` clipped (no half-bin offset)."""
        q = jnp.floor((x + 0.5) * self.n_bins) * (256 // self.n_bins)
        return jnp.clip(q, 0, 255).astype(jnp.uint8)

    def _check_images(self, images: Array) -> None:
        expected = self.image_shape
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must have shape [batch, {', '.join(map(str, expected))}] "
                             f"for this {type(self).__name__}; got shape {tuple(images.shape)}")
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
                                 f"got {tuple(z.shape)} (latents are NHWC, level 0 first)")

    def _check_labels(self, y: Array | None) -> None:
        """Labels go to the top prior, which checks them; a family without
        labels refuses them here."""

    # ---- the flow (a family provides _steps and _priors) --------------------

    def _steps(self, level: int, reverse: bool) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must define _steps(level, reverse)")

    def _priors(self) -> tuple[SplitPriors, TopPriorFn]:
        raise NotImplementedError(f"{type(self).__name__} must define _priors()")

    @nn.compact
    def _flow(self, x: Array | None = None, latents: tuple[Array, ...] | None = None,
              y: Array | None = None, space: str = "eps") -> Any:
        """Encode (``x`` given) or decode (``latents`` given); one compact method
        so both directions create and share the same parameter names."""
        split_priors, top_prior = self._priors()
        if x is not None:
            return self._encode_flow(x, y, split_priors, top_prior)
        return self._decode_flow(latents, y, space, split_priors, top_prior)

    def _encode_flow(self, x: Array, y: Array | None, split_priors: SplitPriors,
                     top_prior: TopPriorFn) -> Encoding:
        batch = x.shape[:-3]
        z = squeeze2d(x)
        logdet = jnp.zeros(batch, x.dtype)
        log_prior = jnp.zeros(batch, x.dtype)
        eps, zs = [], []
        for level in range(self.n_levels):
            (z, logdet), _ = self._steps(level, reverse=False)((z, logdet), None)
            if level < self.n_levels - 1:
                z, factored = split_channels(z)
                mean, logs = split_priors[level](z)
                z = squeeze2d(z)
            else:
                factored = z
                mean, logs = top_prior(batch, y)
            log_prior = log_prior + gaussian_log_prob(factored, mean, logs)
            eps.append(standardize(factored, mean, logs))
            zs.append(factored)
        log_prob = -self.num_dims * math.log(self.n_bins) + logdet + log_prior
        return Encoding(eps=tuple(eps), z=tuple(zs), log_prob=log_prob,
                        bits_per_dim=-log_prob / (self.num_dims * math.log(2.0)))

    def _decode_flow(self, latents: tuple[Array, ...], y: Array | None, space: str,
                     split_priors: SplitPriors, top_prior: TopPriorFn) -> Array:
        batch = latents[0].shape[:-3]
        no_logdet = jnp.zeros(batch, latents[0].dtype)
        z = None
        for level in reversed(range(self.n_levels)):
            if level == self.n_levels - 1:
                mean, logs = top_prior(batch, y)
                z = latents[level] if space == "z" else unstandardize(latents[level], mean, logs)
            else:
                kept = unsqueeze2d(z)
                mean, logs = split_priors[level](kept)
                factored = (latents[level] if space == "z"
                            else unstandardize(latents[level], mean, logs))
                z = jnp.concatenate([kept, factored], axis=-1)
            (z, _), _ = self._steps(level, reverse=True)((z, no_logdet), None)
        return unsqueeze2d(z)
