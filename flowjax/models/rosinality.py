"""The Glow of rosinality/glow-pytorch (and eth-sri/lassi): a second model family.

The same multi-scale layout as :mod:`flowjax.models.glow` (squeeze, ``depth`` flow
steps per level, split priors, learned top prior; the shared level loop and
public API are :class:`flowjax.models.image_flow.MultiScaleFlow`'s), with that code's own
parametrisation (``tests/fixtures/README.md``, quirks
1-13), so a converted PyTorch checkpoint (``weights/convert_rosinality.py``)
reproduces its z's, log-densities and decodes:

* ActNorm ``y = scale * (x + loc)`` (a scale, not a log-scale; logdet
  ``H W sum log|scale|``): :func:`scale_actnorm_forward`;
* 1x1 convs in PyTorch's column convention ``y = W x``: plain (stored here
  transposed, so flowjax's :class:`~flowjax.flows.permutations.InvConv` runs it
  unchanged) or LU, ``W = P (L*strict_lower + I) (U*strict_upper +
  diag(sign_S exp(log_S)))``, logdet ``H W sum log_S`` (:class:`InvConvLUColumns`).
  The last level always uses LU (quirk 1: ``conv_lu`` is not passed to it);
* coupling conditioner conv3x3 (zero padded, bias) -> ReLU -> conv1x1 (bias)
  -> ReLU -> ZeroConv, first half conditions the second; affine output
  halves are contiguous ``[log_s, t]`` with ``s = sigmoid(log_s + 2)``,
  ``(x + t) * s``: OpenAI's maths (:func:`~flowjax.flows.bijectors.affine_coupling`)
  after interleaving the halves;
* ZeroConv pads with **ones** (not zeros, no indicator channel), then
  ``(conv + bias) * exp(3 scale)``: :func:`ones_padding_kernel` turns that into
  OpenAI's edge-padded form exactly (the ring of ones contributes the kernel
  summed over input channels);
* split and top priors give ``(mean, log_sd)`` as contiguous halves (OpenAI's
  split prior interleaves them); the top prior sees zeros, so with the ones
  padding it varies at the border.

Preprocessing (rosinality's ``train.py``): ``floor(x * 255 / 2**(8 - n_bits))
/ n_bins - 0.5`` plus ``U[0, 1) / n_bins`` noise, identical in float32 to
OpenAI's ``x // 2**(8-n_bits) / n_bins - 0.5`` plus ``U[0, 1/n_bins)``;
``log_prob`` and ``bits_per_dim`` are train.py's ``log_p + logdet - D
log(n_bins)`` and its bits/dim.

Layout: images NHWC uint8 at the boundary as everywhere in flowjax. Latents
are per-level NHWC arrays: rosinality's ``z_outs[i]`` (NCHW, ``[B, C, H, W]``)
is ``z[i].transpose(0, 3, 1, 2)`` here, and the flat form is flowjax's (level 0
first, row-major H, W, C): rosinality's ``z_outs[i][b, c, y, x]`` sits at flat
index ``offset_i + (y * W + x) * C + c``. ``latent_shapes`` equal
:func:`flowjax.transfer.latents.latent_shapes` (``n_block`` levels), so the transfer and
attribute experiments use these latents unchanged.

The family is registered as ``"rosinality"`` in :mod:`flowjax.models`, so a
saved checkpoint's ``model_config.json`` names it and
``flowjax.models.checkpoints.load_model`` rebuilds a :class:`RosinalityGlow`.

Parameter tree: ``level_<i>`` (scanned steps, leading ``depth`` axis):
``actnorm`` {loc, scale}, ``invconv`` {W} or {L, U, log_S} (+ constants P,
sign_S), ``coupling`` {conv1, conv2: kernel, bias; conv_out: kernel, bias,
scale}; ``split_<i>`` and ``prior``: {kernel, bias, scale}. Kernels are HWIO.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax.flows.bijectors import (
    _num_positions, additive_coupling, affine_coupling, per_image_logdet, split_channels,
)
from flowjax.flows.composition import Chain
from flowjax.flows.layers import LOGSCALE_FACTOR, conv1x1, edge_bias, get_precision, zero_conv
from flowjax.flows.permutations import (
    InvConv, InvConvLU, channel_mix, lu_inverse_weight, lu_parameters, lu_weight, stored_inverse,
)
from flowjax.flows import steps as steps_lib
from flowjax.models import execution
from flowjax.models.glow import FlowStep, scan_steps
from flowjax.models.image_flow import MultiScaleFlow, SplitPriors, TopPriorFn

Array = jax.Array
Shape = tuple[int, ...]

FAMILY = "rosinality"  # its name in flowjax.models' registry and in model_config.json
# rosinality's coupling width (filter_size) is hard-coded, not a Glow argument.
DEFAULT_WIDTH = 512
# rosinality initialises its coupling convs' weights with N(0, 0.05^2).
CONV_INIT_STD = 0.05


# --------------------------------------------------------------------------
# Pure functions (only where rosinality's maths differs from OpenAI's)
# --------------------------------------------------------------------------


def scale_actnorm_forward(x: Array, loc: Array, scale: Array) -> tuple[Array, Array]:
    """``y = scale * (x + loc)``; logdet = H W sum_c log|scale_c|."""
    logdet = _num_positions(x) * jnp.sum(jnp.log(jnp.abs(scale)))
    return scale * (x + loc), per_image_logdet(logdet, x)


def scale_actnorm_inverse(y: Array, loc: Array, scale: Array) -> tuple[Array, Array]:
    """``x = y / scale - loc``."""
    logdet = -_num_positions(y) * jnp.sum(jnp.log(jnp.abs(scale)))
    return y / scale - loc, per_image_logdet(logdet, y)


def scale_actnorm_data_init(x: Array) -> tuple[Array, Array]:
    """rosinality's data-dependent init: ``loc = -mean``, ``scale = 1 / (std + 1e-6)``
    per channel over batch and space, with the unbiased (N - 1) std."""
    axes = tuple(range(x.ndim - 1))
    return -jnp.mean(x, axis=axes), 1.0 / (jnp.std(x, axis=axes, ddof=1) + 1e-6)


def ones_padding_kernel(kernel: Array) -> Array:
    """A 3x3 HWIO kernel for inputs padded with ones -> OpenAI's edge-padded kernel.

    Padding with the constant 1 adds, at every output position, the kernel
    taps that fall on the pad summed over the input channels: exactly an edge
    indicator channel whose weight is ``kernel.sum(input channels)``. Appending
    that channel lets :func:`~flowjax.flows.layers.zero_conv` /
    :func:`~flowjax.flows.layers.edge_padded_conv` compute the ones-padded conv.
    """
    return jnp.concatenate([kernel, jnp.sum(kernel, axis=2, keepdims=True)], axis=2)


def interleave_halves(h: Array) -> Array:
    """``[a, b]`` contiguous halves -> channels ``b0, a0, b1, a1, ...``.

    rosinality's affine conditioner output is ``[log_s, t]``; OpenAI's
    :func:`~flowjax.flows.bijectors.affine_coupling` reads the shift from the even
    and the log-scale from the odd channels.
    """
    a, b = split_channels(h)
    return jnp.stack([b, a], axis=-1).reshape(h.shape)


def conv3x3_zero_padded(x: Array, kernel: Array, bias: Array,
                        precision: jax.lax.Precision) -> Array:
    """PyTorch's ``Conv2d(padding=1)``: zero padding, HWIO kernel, plus bias."""
    *lead, h, w, c = x.shape
    y = jax.lax.conv_general_dilated(
        x.reshape(-1, h, w, c), kernel, (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)
    return y.reshape(*lead, h, w, kernel.shape[-1]) + bias


# --------------------------------------------------------------------------
# Modules: parameters only
# --------------------------------------------------------------------------


class ScaleActNorm(nn.Module):
    """rosinality's ActNorm: ``y = scale * (x + loc)``, logdet H W sum log|scale|.

    Parameters ``loc`` [C], ``scale`` [C] (PyTorch's ``(1, C, 1, 1)``
    squeezed), initialised from the first batch (:func:`scale_actnorm_data_init`).
    """

    @nn.compact
    def params(self, x: Array) -> tuple[Array, Array]:
        loc = self.param("loc", lambda _: scale_actnorm_data_init(x)[0])
        scale = self.param("scale", lambda _: scale_actnorm_data_init(x)[1])
        return loc, scale

    def forward(self, x: Array) -> tuple[Array, Array]:
        return scale_actnorm_forward(x, *self.params(x))

    def inverse(self, y: Array) -> tuple[Array, Array]:
        return scale_actnorm_inverse(y, *self.params(y))

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        return shape


class InvConvLUColumns(InvConvLU):
    """rosinality's LU 1x1 conv, column convention ``y = W x`` (``x @ W^T``).

    ``W = P (L*strict_lower + I) (U*strict_upper + diag(sign_S exp(log_S)))``
    (:func:`~flowjax.flows.permutations.lu_weight`; entries outside the masks are
    ignored, as rosinality's masks ignore them); logdet = H W sum(log_S).
    The inverse uses W^-1 computed once in float64. Its parameters are
    :class:`~flowjax.flows.permutations.InvConvLU`'s (``params``, the same
    initialisation): trainable ``L``, ``U``, ``log_S``; ``P`` and ``sign_S``
    in the ``"constants"`` collection (PyTorch buffers ``w_p``, ``s_sign``).
    Only the side ``W`` multiplies from differs.
    """

    def forward(self, x: Array) -> tuple[Array, Array]:
        p, l, u, sign_s, log_s = self.params(x)
        with jax.default_matmul_precision("highest"):
            w = lu_weight(p, l, u, sign_s, log_s)
        y = channel_mix(x, w.T, get_precision(self.precision))
        return y, per_image_logdet(_num_positions(x) * jnp.sum(log_s), x)

    def inverse(self, y: Array) -> tuple[Array, Array]:
        p, l, u, sign_s, log_s = self.params(y)
        w_inv = stored_inverse(self, lu_parameters(p, l, u, sign_s, log_s),
                               lambda: lu_inverse_weight(p, l, u, sign_s, log_s))
        x = channel_mix(y, w_inv.T, get_precision(self.precision))
        return x, per_image_logdet(-_num_positions(y) * jnp.sum(log_s), y)


class OnesPaddedZeroConv(nn.Module):
    """rosinality's ZeroConv2d: pad with ones, 3x3 conv + bias, times exp(3 scale).

    Parameters (zero at init): ``kernel`` [3, 3, Cin, Cout] (HWIO), ``bias``
    [Cout], ``scale`` [Cout].
    """

    features: int
    precision: str = "highest"

    @nn.compact
    def params(self, cin: int) -> tuple[Array, Array, Array]:
        kernel = self.param("kernel", nn.initializers.zeros, (3, 3, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        scale = self.param("scale", nn.initializers.zeros, (self.features,))
        return kernel, bias, scale

    def __call__(self, x: Array) -> Array:
        kernel, bias, scale = self.params(x.shape[-1])
        return zero_conv(x, ones_padding_kernel(kernel), bias, scale, get_precision(self.precision))

    def of_zeros(self, shape: tuple[int, int, int]) -> Array:
        """The output for an all-zero input of ``shape`` (H, W, Cin): only the
        padding ring contributes (the learned top prior)."""
        h, w, cin = shape
        kernel, bias, scale = self.params(cin)
        ring = edge_bias(h, w, jnp.sum(kernel, axis=2, keepdims=True), get_precision(self.precision))
        return (ring + bias) * jnp.exp(LOGSCALE_FACTOR * scale)


class Conv(nn.Module):
    """A PyTorch-style conv with bias: 3x3 zero padded or 1x1; N(0, 0.05^2) kernel."""

    features: int
    kernel_size: int
    precision: str = "highest"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.normal(CONV_INIT_STD),
                            (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        precision = get_precision(self.precision)
        if k == 1:
            return conv1x1(x, kernel, precision) + bias
        return conv3x3_zero_padded(x, kernel, bias, precision)


class ColumnCoupling(nn.Module):
    """rosinality's coupling: ``x_a`` (first half) conditions ``x_b``.

    ``h = ZeroConv(relu(conv1x1(relu(conv3x3(x_a)))))``; additive ``x_b + h``;
    affine ``h = [log_s, t]`` (contiguous), ``s = sigmoid(log_s + 2)``,
    ``(x_b + t) * s``, logdet ``sum log s`` (OpenAI's affine coupling after
    :func:`interleave_halves`). Parameters ``conv1``, ``conv2`` {kernel,
    bias}, ``conv_out`` {kernel, bias, scale}.
    """

    width: int = DEFAULT_WIDTH
    kind: str = "additive"
    precision: str = "highest"

    @nn.compact
    def conditioner(self, x_a: Array) -> Array:
        n_out = x_a.shape[-1] * (2 if self.kind == "affine" else 1)
        h = nn.relu(Conv(self.width, 3, self.precision, name="conv1")(x_a))
        h = nn.relu(Conv(self.width, 1, self.precision, name="conv2")(h))
        return OnesPaddedZeroConv(n_out, self.precision, name="conv_out")(h)

    def _apply(self, x: Array, reverse: bool) -> tuple[Array, Array]:
        x_a, x_b = split_channels(x)
        h = self.conditioner(x_a)
        if self.kind == "affine":
            x_b, logdet = affine_coupling(x_b, interleave_halves(h), reverse)
        else:
            x_b, logdet = additive_coupling(x_b, h, reverse)
        return jnp.concatenate([x_a, x_b], axis=-1), logdet

    def forward(self, x: Array) -> tuple[Array, Array]:
        return self._apply(x, reverse=False)

    def inverse(self, y: Array) -> tuple[Array, Array]:
        return self._apply(y, reverse=True)

    def output_shape(self, shape: Shape) -> Shape:
        if shape[-1] % 2:
            raise ValueError(f"coupling needs an even channel count, got shape {shape}")
        return shape

    input_shape = output_shape


@steps_lib.register_flow_step("rosinality")
def rosinality_step(config: steps_lib.StepConfig) -> Chain:
    """rosinality's step: ActNorm ``scale * (x + loc)`` -> 1x1 conv -> coupling.

    The 1x1 conv is LU (column convention) for ``config.permutation == "invconv_lu"``
    and plain for ``"invconv"``: rosinality decides per block (quirk 1), so the
    model passes the permutation per level. Parameters: ``actnorm``, ``invconv``,
    ``coupling``, as in OpenAI's step.
    """
    if config.permutation not in ("invconv", "invconv_lu"):
        raise ValueError(f"rosinality's step takes permutation 'invconv' or 'invconv_lu', "
                         f"got {config.permutation!r}")
    invconv = InvConvLUColumns if config.permutation == "invconv_lu" else InvConv
    return Chain((ScaleActNorm(name="actnorm"), invconv(config.precision, name="invconv"),
                  ColumnCoupling(config.width, config.coupling, config.precision, name="coupling")))


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


class RosinalityGlow(MultiScaleFlow):
    """rosinality's ``Glow(in_channel, n_flow, n_block, affine, conv_lu)`` on NHWC images.

    Attributes (rosinality's constructor argument in brackets):
      image_size: height = width of the images; divisible by 2**n_levels.
      n_levels: [n_block] number of blocks (levels).
      depth: [n_flow] flow steps per block.
      coupling: [affine] "additive" (False) or "affine" (True).
      conv_lu: [conv_lu] LU 1x1 convs in blocks 0..n_levels-2; the last block
        always uses LU (quirk 1).
      width: coupling hidden channels (rosinality: 512, hard-coded).
      n_bits: bits per colour channel (rosinality/lassi: 5).
      channels: [in_channel] colour channels (3).
      remat, scan_unroll, precision: execution settings, as :class:`~flowjax.models.glow.Glow`'s
        (not recorded in ``model_config.json``; :mod:`flowjax.models.execution`).

    The interface is :class:`flowjax.models.image_flow.MultiScaleFlow`'s, as
    :class:`flowjax.models.glow.Glow`'s: ``encode``/``decode``/``sample``/``log_prob``/
    ``bits_per_dim``, ``latent_shapes``, returning an
    :class:`~flowjax.models.image_flow.Encoding`. Not class-conditional (``y`` must be None).
    Its preprocessing is the shared one: train.py's ``floor(x/255 * 255 /
    2**(8-n_bits))`` is the integer division for every uint8 (fixture README
    quirk 12), and a PRNG key draws train.py's ``U[0, 1) / n_bins``. ``encode``'s
    ``z`` are rosinality's ``z_outs`` (NHWC); ``decode(space="z")`` is its
    ``reverse(z, reconstruct=True)``, ``"eps"`` its ``reconstruct=False``, and
    ``quantize=False`` returns its reverse output (in [-0.5, 0.5)).
    """

    image_size: int = 64
    n_levels: int = 4
    depth: int = 32
    coupling: str = "additive"
    conv_lu: bool = True
    width: int = DEFAULT_WIDTH
    n_bits: int = 5
    channels: int = 3
    remat: bool = False
    scan_unroll: int = 1
    precision: str = execution.AUTO

    n_classes = 0  # the experiments ask; rosinality's Glow has no labels

    @nn.nowrap
    def _config_checks(self) -> list[tuple[bool, str]]:
        return [*super()._config_checks(),
                (isinstance(self.conv_lu, bool), f"conv_lu must be a bool, got {self.conv_lu!r}"),
                (self.scan_unroll >= 1, f"scan_unroll must be >= 1, got {self.scan_unroll}")]

    def level_uses_lu(self, level: int) -> bool:
        """Whether block ``level`` has LU 1x1 convs (the last one always: quirk 1)."""
        return self.conv_lu or level == self.n_levels - 1

    def _check_labels(self, y: Array | None) -> None:
        if y is not None:
            raise ValueError("rosinality's Glow is not class-conditional: pass y=None")

    # ---- the flow's parts (the level loop is MultiScaleFlow's) ------------------

    def _steps(self, level: int, reverse: bool) -> nn.Module:
        scanned = scan_steps(FlowStep, self.depth, reverse, self.scan_unroll, self.remat)
        permutation = "invconv_lu" if self.level_uses_lu(level) else "invconv"
        config = steps_lib.StepConfig(self.width, self.coupling, permutation, self.precision)
        return scanned("rosinality", config, reverse=reverse, name=f"level_{level}")

    def _priors(self) -> tuple[SplitPriors, TopPriorFn]:
        """Split and top priors are ones-padded ZeroConvs whose output halves are
        ``(mean, log_sd)``; the top prior's input is zeros (quirk 9)."""
        splits = [OnesPaddedZeroConv(2 * self.latent_shapes[i][-1], self.precision,
                                     name=f"split_{i}") for i in range(self.n_levels - 1)]
        top = OnesPaddedZeroConv(2 * self.latent_shapes[-1][-1], self.precision, name="prior")
        split_priors = [lambda kept, conv=conv: split_channels(conv(kept)) for conv in splits]
        return split_priors, lambda batch, _y: self._prior_of_zeros(top, batch)

    def _prior_of_zeros(self, top: nn.Module, batch: Shape) -> tuple[Array, Array]:
        h_, w_, c = self.latent_shapes[-1]
        h = jnp.broadcast_to(top.of_zeros((h_, w_, c)), (*batch, h_, w_, 2 * c))
        return split_channels(h)
