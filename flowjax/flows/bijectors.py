"""Glow's bijector contract and its elementwise and spatial bijectors.

The contract (every bijector in flowjax; :class:`Bijector` states it in code)::

    forward(x) -> (y, logdet)      logdet = log|det dy/dx|, shape x.shape[:-3]
    inverse(y) -> (x, logdet)      logdet = log|det dx/dy| = -forward's logdet
    output_shape(shape) -> shape   the shape forward() returns for an input shape

Arrays are NHWC (any leading batch axes); log-determinants have one entry
per image, in the input's dtype (float32 in normal use). The maths lives in module-level functions so that it can
be tested, jitted and reused without Flax; each module only creates (and
data-dependently initialises) its parameters in one ``@nn.compact`` method that
both directions call, so ``forward`` and ``inverse`` share parameters exactly.
``flowjax.flows.testing.assert_bijector`` checks the contract for any bijector.

Everything follows OpenAI's Glow (see ``GLOW_SPEC.md`` beside the project):
ActNorm and zero-convs store log-scales that are multiplied by 3, 3x3 convs
are "edge padded" (zero padding plus an indicator input channel that is 1 on
the padded ring), the invertible 1x1 conv is ``y = x @ W`` and couplings
transform the second half of the channels conditioned on the first.

This module holds the contract, the helpers every bijector uses
(:func:`per_image_logdet`, the :data:`CONSTANTS` collection) and the bijectors
that act on values or space: squeeze, ActNorm, coupling. The channel
permutations of a flow step (the invertible 1x1 convs, their precomputed
inverses, ``Reverse``, ``Shuffle``) are :mod:`flowjax.flows.permutations`; composing
bijectors (``Chain``, ``Inverse``) is :mod:`flowjax.flows.composition`. The conv
layers and numeric settings are :mod:`flowjax.flows.layers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax.flows.layers import LOGSCALE_FACTOR, EdgeConv, ZeroConv

Array = jax.Array
Shape = tuple[int, ...]

# The Flax collection of variables that must never be trained (optax only sees
# "params"): fixed permutations and LU factors' constant parts live here.
CONSTANTS = "constants"


@runtime_checkable
class Bijector(Protocol):
    """An invertible map of NHWC arrays with a tractable log-determinant.

    For ``x`` of shape ``[*batch, H, W, C]`` (any number of leading batch axes):

    ``forward(x) -> (y, logdet)``
        ``y = f(x)`` of shape ``output_shape(x.shape)``, and
        ``logdet = log|det df/dx|`` of shape ``batch`` (one entry per image:
        the Jacobian of one image's ``H*W*C`` values w.r.t. themselves), in x's
        dtype. A volume-preserving map returns zeros (use :func:`per_image_logdet`).
    ``inverse(y) -> (x, logdet)``
        ``x = f^-1(y)`` and ``logdet = log|det df^-1/dy| = -log|det df/dx|``
        at the matching point: the sign is that of the direction computed, so
        ``forward``'s and ``inverse``'s log-dets sum to zero along a round trip.
    ``output_shape(shape) -> shape``
        the shape ``forward`` returns for an input ``shape`` (with its batch
        axes); raises ``ValueError`` naming the problem for a shape it cannot
        take. :class:`~flowjax.flows.composition.Chain` uses it to check neighbours before running.

    Optional: ``input_shape(shape) -> shape``, the inverse of ``output_shape``,
    which :class:`~flowjax.flows.composition.Inverse` needs (every bijector in flowjax
    has one).

    A Flax bijector creates its parameters in a method both directions call,
    so ``init`` through ``forward`` (the encode direction, where ActNorm's
    data-dependent init happens) and ``apply`` in either direction share them.
    """

    def forward(self, x: Array) -> tuple[Array, Array]: ...

    def inverse(self, y: Array) -> tuple[Array, Array]: ...

    def output_shape(self, shape: Shape) -> Shape: ...


def per_image_logdet(value: Array | float, x: Array) -> Array:
    """An image-independent log-det broadcast to one entry per image of ``x`` (x's dtype).

    ``x`` is NHWC with any leading batch axes; the result has shape ``x.shape[:-3]``.
    """
    return jnp.broadcast_to(jnp.asarray(value, x.dtype), x.shape[:-3])



def _num_positions(x: Array) -> int:
    return x.shape[-3] * x.shape[-2]


# --------------------------------------------------------------------------
# Squeeze
# --------------------------------------------------------------------------


def squeeze2d(x: Array) -> Array:
    """[..., H, W, C] -> [..., H/2, W/2, 4C], output channel = 4c + 2dy + dx.

    The channel index is the slowest-varying part and the 2x2 sub-pixel offset
    the fastest (OpenAI's order; channels 0-3 of an RGB input are R at offsets
    (0,0), (0,1), (1,0), (1,1)).
    """
    *lead, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"squeeze2d needs even height and width, got {h}x{w}")
    x = x.reshape(*lead, h // 2, 2, w // 2, 2, c)
    n = len(lead)
    # [..., H/2, dy, W/2, dx, C] -> [..., H/2, W/2, C, dy, dx]
    x = jnp.moveaxis(x, (n + 1, n + 3), (n + 3, n + 4))
    return x.reshape(*lead, h // 2, w // 2, 4 * c)


def unsqueeze2d(x: Array) -> Array:
    """Exact inverse of :func:`squeeze2d`."""
    *lead, h, w, c = x.shape
    if c % 4:
        raise ValueError(f"unsqueeze2d needs channels divisible by 4, got {c}")
    n = len(lead)
    x = x.reshape(*lead, h, w, c // 4, 2, 2)
    # [..., H, W, C/4, dy, dx] -> [..., H, dy, W, dx, C/4]
    x = jnp.moveaxis(x, (n + 3, n + 4), (n + 1, n + 3))
    return x.reshape(*lead, 2 * h, 2 * w, c // 4)


class Squeeze(nn.Module):
    """Space-to-depth bijector (see :func:`squeeze2d`); logdet 0."""

    def forward(self, x: Array) -> tuple[Array, Array]:
        return squeeze2d(x), per_image_logdet(0.0, x)

    def inverse(self, y: Array) -> tuple[Array, Array]:
        return unsqueeze2d(y), per_image_logdet(0.0, y)

    def output_shape(self, shape: Shape) -> Shape:
        *lead, h, w, c = shape
        if h % 2 or w % 2:
            raise ValueError(f"squeeze needs even height and width, got shape {shape}")
        return (*lead, h // 2, w // 2, 4 * c)

    def input_shape(self, shape: Shape) -> Shape:
        *lead, h, w, c = shape
        if c % 4:
            raise ValueError(f"unsqueeze needs channels divisible by 4, got shape {shape}")
        return (*lead, 2 * h, 2 * w, c // 4)


# --------------------------------------------------------------------------
# ActNorm
# --------------------------------------------------------------------------


def actnorm_forward(x: Array, b: Array, logs: Array) -> tuple[Array, Array]:
    """``y = (x + b) * exp(3 logs)``; logdet = H W sum_c 3 logs_c."""
    log_scale = LOGSCALE_FACTOR * logs
    y = (x + b) * jnp.exp(log_scale)
    return y, per_image_logdet(_num_positions(x) * jnp.sum(log_scale), x)


def actnorm_inverse(y: Array, b: Array, logs: Array) -> tuple[Array, Array]:
    """``x = y * exp(-3 logs) - b`` (scale undone first, then the bias)."""
    log_scale = LOGSCALE_FACTOR * logs
    x = y * jnp.exp(-log_scale) - b
    return x, per_image_logdet(-_num_positions(y) * jnp.sum(log_scale), y)


def actnorm_data_init(x: Array) -> tuple[Array, Array]:
    """Data-dependent init (OpenAI): output has per-channel mean 0 and std 1.

    ``b = -mean(x)``; on the centred data ``logs = log(1/(rms + 1e-6)) / 3``
    (stored divided by the log-scale factor).
    """
    axes = tuple(range(x.ndim - 1))
    b = -jnp.mean(x, axis=axes)
    rms = jnp.sqrt(jnp.mean(jnp.square(x + b), axis=axes))
    logs = jnp.log(1.0 / (rms + 1e-6)) / LOGSCALE_FACTOR
    return b, logs


class ActNorm(nn.Module):
    """Per-channel affine normalisation, initialised from the first batch.

    ``y = (x + b) * exp(3 * logs)``: bias first, then scale; ``logs`` is stored
    as OpenAI stores it (divided by 3). The data-dependent initialisation runs
    inside ``init`` on the batch it is given (no mutable "initialised" flag),
    so call ``Module.init`` with real data in the forward direction.
    Parameters: ``b`` [C], ``logs`` [C].
    """

    @nn.compact
    def params(self, x: Array) -> tuple[Array, Array]:
        b = self.param("b", lambda _: actnorm_data_init(x)[0])
        logs = self.param("logs", lambda _: actnorm_data_init(x)[1])
        return b, logs

    def forward(self, x: Array) -> tuple[Array, Array]:
        return actnorm_forward(x, *self.params(x))

    def inverse(self, y: Array) -> tuple[Array, Array]:
        return actnorm_inverse(y, *self.params(y))

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        return shape


# --------------------------------------------------------------------------
# Coupling
# --------------------------------------------------------------------------


def split_channels(x: Array) -> tuple[Array, Array]:
    """Contiguous halves: (first C/2 channels, last C/2 channels)."""
    c = x.shape[-1]
    return x[..., : c // 2], x[..., c // 2:]


def additive_coupling(z2: Array, h: Array, reverse: bool) -> tuple[Array, Array]:
    """``z2' = z2 + h`` (volume preserving: logdet 0)."""
    return (z2 - h if reverse else z2 + h), per_image_logdet(0.0, z2)


def affine_coupling(z2: Array, h: Array, reverse: bool) -> tuple[Array, Array]:
    """OpenAI's affine coupling: shift = h[even], scale = sigmoid(h[odd] + 2).

    Forward ``z2' = (z2 + shift) * scale`` (shift first), logdet = sum log scale;
    the sigmoid keeps the scale in (0, 1) instead of exp's unbounded range.
    """
    shift = h[..., 0::2]
    log_scale = jax.nn.log_sigmoid(h[..., 1::2] + 2.0)
    logdet = jnp.sum(log_scale, axis=(-3, -2, -1))
    if reverse:
        return z2 * jnp.exp(-log_scale) - shift, -logdet
    return (z2 + shift) * jnp.exp(log_scale), logdet


COUPLINGS: dict[str, Callable[[Array, Array, bool], tuple[Array, Array]]] = {
    "additive": additive_coupling,
    "affine": affine_coupling,
}


class Coupling(nn.Module):
    """Coupling layer with OpenAI's conditioner; the second half is transformed.

    ``z1, z2 = split(x)``; ``h = NN(z1)``; additive: ``z2' = z2 + h``; affine:
    see :func:`affine_coupling`. NN = edge-padded 3x3 conv -> ActNorm -> ReLU
    -> 1x1 conv -> ActNorm -> ReLU -> ZeroConv (so the layer starts as the
    identity). Parameters: ``conv1`` {W}, ``conv1_actnorm`` {b, logs},
    ``conv2`` {W}, ``conv2_actnorm`` {b, logs}, ``conv_out`` {W, b, logs}.

    ``conditioner_dtype="bfloat16"`` runs NN in bfloat16 (float32 parameters cast
    on use, its ActNorms in float32); its output returns to float32 before it
    shifts and scales ``z2``.
    """

    width: int = 512
    kind: str = "additive"
    precision: str = "highest"
    conditioner_dtype: str = "float32"
    conv_algorithm: str = "auto"  # layers.CONV_ALGORITHMS

    def _check(self, x: Array) -> None:
        if self.kind not in COUPLINGS:
            raise ValueError(f"coupling must be one of {sorted(COUPLINGS)}, got {self.kind!r}")
        if x.shape[-1] % 2:
            raise ValueError(f"coupling needs an even channel count, got {x.shape[-1]}")

    @nn.compact
    def conditioner(self, z1: Array) -> Array:
        n_out = z1.shape[-1] * (2 if self.kind == "affine" else 1)
        dtype = jnp.dtype(self.conditioner_dtype)
        h = EdgeConv(self.width, 3, self.precision, self.conv_algorithm,
                     name="conv1")(z1.astype(dtype))
        h, _ = ActNorm(name="conv1_actnorm").forward(h.astype(jnp.float32))
        h = nn.relu(h).astype(dtype)
        h = EdgeConv(self.width, 1, self.precision, self.conv_algorithm, name="conv2")(h)
        h, _ = ActNorm(name="conv2_actnorm").forward(h.astype(jnp.float32))
        h = nn.relu(h).astype(dtype)
        return ZeroConv(n_out, self.precision, self.conv_algorithm,
                        name="conv_out")(h).astype(jnp.float32)

    def _apply(self, x: Array, reverse: bool) -> tuple[Array, Array]:
        self._check(x)
        z1, z2 = split_channels(x)
        z2, logdet = COUPLINGS[self.kind](z2, self.conditioner(z1), reverse)
        return jnp.concatenate([z1, z2], axis=-1), logdet

    def forward(self, x: Array) -> tuple[Array, Array]:
        return self._apply(x, reverse=False)

    def inverse(self, y: Array) -> tuple[Array, Array]:
        return self._apply(y, reverse=True)

    def output_shape(self, shape: Shape) -> Shape:
        if shape[-1] % 2:
            raise ValueError(f"coupling needs an even channel count, got shape {shape}")
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        return self.output_shape(shape)
