"""Glow's convolution layers and numeric settings, shared by the bijectors and the priors.

OpenAI's conventions: 3x3 convs are "edge padded" (zero padding plus an
indicator input channel that is 1 on the padded ring), zero-convs and ActNorm
store log-scales divided by 3, conv weights start as N(0, 0.05^2). None of
these is a bijector; the coupling's conditioner and the priors are built from them.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# OpenAI stores log-scales divided by 3 (ActNorm and zero-convs): effective = 3x.
LOGSCALE_FACTOR = 3.0
# Standard deviation of the Gaussian initialiser of OpenAI's conv weights.
CONV_INIT_STD = 0.05
# Matmuls and convs whose inverse must hold run at full float32 by default
# (XLA on Ampere/Hopper GPUs otherwise uses TF32, which visibly breaks the
# round trip across a few hundred sequential steps). "auto" is a model's unset
# precision, which its phase may choose (flowjax.models.execution: training at
# "default"); a layer given it as it is runs at "highest".
PRECISIONS = {
    "highest": jax.lax.Precision.HIGHEST,
    "high": jax.lax.Precision.HIGH,
    "default": jax.lax.Precision.DEFAULT,
    "auto": jax.lax.Precision.HIGHEST,
}


def get_precision(name: str) -> jax.lax.Precision:
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {name!r}")
    return PRECISIONS[name]


# --------------------------------------------------------------------------
# Convolutions (the conditioner's and the priors' building blocks)
# --------------------------------------------------------------------------


# A 3x3 conv with far fewer output than input channels (the couplings' and
# priors' zero convs, e.g. 512 -> 6) or far fewer input than output channels (the
# couplings' first conv, 6 -> 512) runs at a fraction of matmul peak as XLA's
# CPU convolution; the same sums as one wide matmul run several times faster
# (tools/benchmark_convs.py, docs/benchmarks.md). NARROW_RATIO picks those shapes.
# Measured on XLA:CPU only: GPUs and TPUs have their own convolution kernels (cuDNN,
# the MXU), so elsewhere every conv stays XLA's (MATMUL_CONV_BACKENDS).
NARROW_RATIO = 16
MATMUL_CONV_BACKENDS = frozenset({"cpu"})
# How a layer computes its 3x3 convs (an execution setting, flowjax.models.execution):
# "auto" the matmul forms for narrow shapes on MATMUL_CONV_BACKENDS and XLA's
# convolution elsewhere; "xla" always XLA's convolution; "matmul" the matmul forms
# for narrow shapes on every backend. The same sums, to float32 rounding.
CONV_ALGORITHMS = ("auto", "xla", "matmul")


# XLA's CPU matmul runs far below peak when its output width is not a multiple of
# 16: [8192, 512] x [512, 54] (the level-0 zero conv's 9 taps x 6 channels) at
# ~55% of the FLOP/s of [512, 64], so the taps' matmul gets zero columns up to
# the next multiple (54 -> 64: 19% more FLOPs, ~2.5x faster; measured under load).
MATMUL_WIDTH_MULTIPLE = 16


def _conv_taps(x: Array, w: Array, precision: jax.lax.Precision) -> Array:
    """Narrow output: one matmul to every tap's output channels, then 9 shifted adds."""
    kh, kw, cin, cout = w.shape
    h, wd = x.shape[-3:-1]
    taps = kh * kw * cout
    per_tap_w = jnp.pad(w.transpose(2, 0, 1, 3).reshape(cin, taps),
                        ((0, 0), (0, -taps % MATMUL_WIDTH_MULTIPLE)))
    per_tap = jnp.einsum("...c,cd->...d", x, per_tap_w, precision=precision)
    per_tap = per_tap[..., :taps].reshape(*x.shape[:-1], kh, kw, cout)
    ph, pw = kh // 2, kw // 2
    per_tap = jnp.pad(per_tap, ((0, 0), (ph, ph), (pw, pw), (0, 0), (0, 0), (0, 0)))
    # Output (y, x) takes tap (dy, dx) of input (y + dy - ph, x + dx - pw).
    return sum(per_tap[:, dy:dy + h, dx:dx + wd, dy, dx, :]
               for dy in range(kh) for dx in range(kw))


def _conv_im2col(x: Array, w: Array, precision: jax.lax.Precision) -> Array:
    """Narrow input: the 9 shifted copies of the input side by side, then one matmul."""
    kh, kw, cin, cout = w.shape
    h, wd = x.shape[-3:-1]
    ph, pw = kh // 2, kw // 2
    padded = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    columns = jnp.concatenate([padded[:, dy:dy + h, dx:dx + wd, :]
                               for dy in range(kh) for dx in range(kw)], axis=-1)
    return jnp.einsum("...k,kd->...d", columns, w.reshape(kh * kw * cin, cout),
                      precision=precision)


def _conv_same(x: Array, w: Array, precision: jax.lax.Precision,
               algorithm: str = "auto") -> Array:
    """Zero-padded "SAME" conv of NHWC ``x`` with an HWIO kernel; the same sums
    (to float32 rounding) computed the way ``algorithm`` (:data:`CONV_ALGORITHMS`)
    says: by default the fastest way for the kernel's shape on a CPU, XLA's
    convolution on other backends."""
    if algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"conv_algorithm must be one of {list(CONV_ALGORITHMS)}, got "
                         f"{algorithm!r}")
    cin, cout = w.shape[2], w.shape[3]
    # The backend is read when traced, like micro_batches'.
    if algorithm == "matmul" or (algorithm == "auto"
                                 and jax.default_backend() in MATMUL_CONV_BACKENDS):
        if NARROW_RATIO * cout <= cin:
            return _conv_taps(x, w, precision)
        if NARROW_RATIO * cin <= cout:
            return _conv_im2col(x, w, precision)
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=precision,
    )


def edge_bias(height: int, width: int, w_indicator: Array,
              precision: jax.lax.Precision) -> Array:
    """The contribution of the edge-indicator channel: a constant [H, W, Cout] map.

    ``w_indicator`` is the kernel's last input channel ``[kh, kw, 1, Cout]``;
    at each output position it sums the taps that fall on the padding ring.
    """
    kh, kw = w_indicator.shape[:2]
    ph, pw = kh // 2, kw // 2
    indicator = jnp.pad(jnp.zeros((1, height, width, 1), w_indicator.dtype),
                        ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=1.0)
    out = jax.lax.conv_general_dilated(
        indicator, w_indicator, (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)
    return out[0]


def edge_padded_conv(x: Array, w: Array, precision: jax.lax.Precision,
                     algorithm: str = "auto") -> Array:
    """OpenAI's 3x3 "SAME" conv with an edge indicator as the last input channel.

    Mathematically ``conv_valid(concat([zero_pad(x), ring]), w)`` where ``ring``
    is 1 on the padded border; computed as a zero-padded conv with the first
    ``Cin`` input channels plus the indicator's constant :func:`edge_bias`
    map, which avoids materialising the extra channel.
    """
    cin = x.shape[-1]
    if w.shape[2] != cin + 1:
        raise ValueError(
            f"edge-padded conv kernel needs {cin + 1} input channels "
            f"(x has {cin} plus the edge indicator), got kernel shape {w.shape}")
    *lead, h, wd, _ = x.shape
    flat = x.reshape(-1, h, wd, cin)
    y = _conv_same(flat, w[:, :, :cin, :], precision, algorithm)
    y = y + edge_bias(h, wd, w[:, :, cin:, :], precision)
    return y.reshape(*lead, h, wd, w.shape[-1])


def conv1x1(x: Array, w: Array, precision: jax.lax.Precision) -> Array:
    """1x1 convolution with an HWIO ``[1, 1, Cin, Cout]`` kernel (no padding)."""
    return jnp.einsum("...c,cd->...d", x, w[0, 0], precision=precision)


def zero_conv(x: Array, w: Array, b: Array, logs: Array,
              precision: jax.lax.Precision, algorithm: str = "auto") -> Array:
    """OpenAI's ``conv2d_zeros``: ``(edge_padded_conv(x, w) + b) * exp(3 logs)``."""
    return (edge_padded_conv(x, w, precision, algorithm) + b) * jnp.exp(LOGSCALE_FACTOR * logs)


class EdgeConv(nn.Module):
    """A bias-free conv (3x3 edge-padded, or 1x1) with N(0, 0.05^2) weights.

    Parameter ``W`` in HWIO; a 3x3 kernel has one extra input channel for the
    edge indicator (OpenAI's layout). Its bias is the ActNorm that follows it.
    """

    features: int
    kernel_size: int = 3
    precision: str = "highest"
    conv_algorithm: str = "auto"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        cin = x.shape[-1] + (1 if k > 1 else 0)
        w = self.param("W", nn.initializers.normal(CONV_INIT_STD), (k, k, cin, self.features))
        w = w.astype(x.dtype)  # a bfloat16 conditioner computes in bfloat16
        if k == 1:
            return conv1x1(x, w, get_precision(self.precision))
        return edge_padded_conv(x, w, get_precision(self.precision), self.conv_algorithm)


class ZeroConv(nn.Module):
    """OpenAI's ``conv2d_zeros``: edge-padded 3x3 conv, bias, scale exp(3 logs).

    All of ``W`` [3,3,Cin+1,Cout], ``b`` [Cout] and ``logs`` [Cout] start at
    zero, so the output is exactly 0 at init (couplings start as identities,
    priors as N(0, 1)).
    """

    features: int
    precision: str = "highest"
    conv_algorithm: str = "auto"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        w = self.param("W", nn.initializers.zeros, (3, 3, x.shape[-1] + 1, self.features))
        b = self.param("b", nn.initializers.zeros, (self.features,))
        logs = self.param("logs", nn.initializers.zeros, (self.features,))
        return zero_conv(x, w.astype(x.dtype), b, logs, get_precision(self.precision),
                         self.conv_algorithm)
