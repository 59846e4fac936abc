"""Glow's priors: diagonal Gaussians whose parameters come from zero-convs.

* The split prior (OpenAI's ``split2d``) predicts the factored-out half of a
  level from the kept half: ``h = ZeroConv(z1)``, mean = even channels,
  log-std = odd channels (interleaved).
* The learned top prior is a ZeroConv applied to an all-zero input. Because
  the conv is edge padded, its output still varies over space (corners, edges
  and centre see different numbers of padded taps): it is a learned constant
  [H, W, 2C] map whose first half is the mean and second half the log-std
  (contiguous, unlike the split prior). Optionally class-conditional.

All log-densities are summed over (H, W, C): one number per image.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax.flows.layers import LOGSCALE_FACTOR, ZeroConv, edge_bias, get_precision

Array = jax.Array

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(x: Array, mean: Array, logs: Array) -> Array:
    """sum_{h,w,c} -1/2 (log 2pi + 2 logs + (x - mean)^2 exp(-2 logs))."""
    terms = -0.5 * (_LOG_2PI + 2.0 * logs + jnp.square(x - mean) * jnp.exp(-2.0 * logs))
    return jnp.sum(terms, axis=(-3, -2, -1))


def standardize(x: Array, mean: Array, logs: Array) -> Array:
    """eps = (x - mean) / exp(logs) (the ``truediv`` OpenAI's demo fetches)."""
    return (x - mean) / jnp.exp(logs)


def unstandardize(eps: Array, mean: Array, logs: Array) -> Array:
    """x = mean + exp(logs) * eps."""
    return mean + jnp.exp(logs) * eps


class SplitPrior(nn.Module):
    """Conditional prior of the factored-out half given the kept half.

    ``__call__(z1) -> (mean, logs)`` for ``z2``, each with z1's channel count.
    Parameters: ``conv`` {W [3,3,C/2+1,C], b [C], logs [C]} (OpenAI's
    ``pool<i>/conv``), zero at init so the prior starts as N(0, 1).
    """

    precision: str = "highest"
    conv_algorithm: str = "auto"  # layers.CONV_ALGORITHMS

    @nn.compact
    def __call__(self, z1: Array) -> tuple[Array, Array]:
        h = ZeroConv(2 * z1.shape[-1], self.precision, self.conv_algorithm, name="conv")(z1)
        return h[..., 0::2], h[..., 1::2]


class TopPrior(nn.Module):
    """The prior of the top latent: learned (spatially varying) or N(0, 1).

    ``__call__(batch_shape, y=None) -> (mean, logs)`` of shape
    ``batch_shape + shape``. With ``learn_top`` the parameters are OpenAI's
    ``prior/p`` zero-conv {W [3,3,2C+1,2C], b [2C], logs [2C]}; since its input
    is all zeros only the edge-indicator taps, ``b`` and ``logs`` matter, and
    the map is computed from those directly. With ``n_classes > 0`` a
    class embedding ``y_emb`` {W [n, 2C], b [2C], logs [2C]} is added
    (OpenAI's ``ycond``), zero at init.
    """

    shape: tuple[int, int, int]
    learn_top: bool = True
    n_classes: int = 0
    precision: str = "highest"

    @nn.compact
    def __call__(self, batch_shape: tuple[int, ...], y: Array | None = None) -> tuple[Array, Array]:
        h_, w_, c = self.shape
        h = jnp.zeros((h_, w_, 2 * c), jnp.float32)
        if self.learn_top:
            w = self.param("W", nn.initializers.zeros, (3, 3, 2 * c + 1, 2 * c))
            b = self.param("b", nn.initializers.zeros, (2 * c,))
            logs = self.param("logs", nn.initializers.zeros, (2 * c,))
            # conv(zeros, W[:, :, :2C]) is zero: only the indicator taps remain.
            h = (edge_bias(h_, w_, w[:, :, 2 * c:, :], get_precision(self.precision)) + b) \
                * jnp.exp(LOGSCALE_FACTOR * logs)
        h = jnp.broadcast_to(h, (*batch_shape, h_, w_, 2 * c))
        if self.n_classes:
            if y is None:
                raise ValueError(f"this Glow is class-conditional (n_classes={self.n_classes}): "
                                 "pass labels y of shape batch_shape")
            emb = ClassEmbedding(self.n_classes, 2 * c, name="y_emb")(y)
            h = h + emb[..., None, None, :]
        elif y is not None:  # ignoring them would be a silent wrong result
            raise ValueError("this Glow is not class-conditional (n_classes=0), so labels y "
                             "would be ignored: pass y=None, or use a model with n_classes > 0")
        return h[..., :c], h[..., c:]


class ClassEmbedding(nn.Module):
    """``(onehot(y) @ W + b) * exp(3 logs)``, zero at init (OpenAI's ``y_emb``)."""

    n_classes: int
    features: int

    @nn.compact
    def __call__(self, y: Array) -> Array:
        w = self.param("W", nn.initializers.zeros, (self.n_classes, self.features))
        b = self.param("b", nn.initializers.zeros, (self.features,))
        logs = self.param("logs", nn.initializers.zeros, (self.features,))
        onehot = jax.nn.one_hot(y, self.n_classes, dtype=jnp.float32)
        return (onehot @ w + b) * jnp.exp(LOGSCALE_FACTOR * logs)
