"""Glow's bijectors: pure math functions plus thin Flax modules that own parameters.

The contract (every bijector here; :class:`Bijector` states it in code)::

    forward(x) -> (y, logdet)      logdet = log|det dy/dx|, shape x.shape[:-3]
    inverse(y) -> (x, logdet)      logdet = log|det dx/dy| = -forward's logdet
    output_shape(shape) -> shape   the shape forward() returns for an input shape

Arrays are NHWC (any leading batch axes); log-determinants have one entry
per image, in the input's dtype (float32 in normal use). The maths lives in module-level functions so that it can
be tested, jitted and reused without Flax; each module only creates (and
data-dependently initialises) its parameters in one ``@nn.compact`` method that
both directions call, so ``forward`` and ``inverse`` share parameters exactly.
``flowjax.testing.assert_bijector`` checks the contract for any bijector.

Everything follows OpenAI's Glow (see ``GLOW_SPEC.md`` beside the project):
ActNorm and zero-convs store log-scales that are multiplied by 3, 3x3 convs
are "edge padded" (zero padding plus an indicator input channel that is 1 on
the padded ring), the invertible 1x1 conv is ``y = x @ W`` and couplings
transform the second half of the channels conditioned on the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import flax.linen as nn
import jax
import jax.numpy as jnp

# The conv layers and numeric settings live in flowjax.layers (shared with the
# priors); re-exported because callers know them as bijectors.<name>.
from flowjax.layers import (  # noqa: F401
    CONV_INIT_STD, LOGSCALE_FACTOR, PRECISIONS, EdgeConv, ZeroConv, conv1x1, edge_bias,
    edge_padded_conv, get_precision, zero_conv,
)

Array = jax.Array
Shape = tuple[int, ...]

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
        take. :class:`Chain` uses it to check neighbours before running.

    Optional: ``input_shape(shape) -> shape``, the inverse of ``output_shape``,
    which :class:`Inverse` needs (every bijector in this module has one).

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
# Invertible 1x1 convolution (plain and LU) and fixed permutations
# --------------------------------------------------------------------------


@jax.custom_jvp
def log_abs_det(w: Array) -> Array:
    """log|det W| computed in float64 (as TF does), returned as float32.

    The derivative ``d log|det W| = tr(W^-1 dW)`` is supplied explicitly in
    W's dtype: differentiating through the float64 region would mix dtypes in
    the backward pass.
    """
    with jax.enable_x64(True):
        _, logdet = jnp.linalg.slogdet(w.astype(jnp.float64))
    return logdet.astype(w.dtype)


@log_abs_det.defjvp
def _log_abs_det_jvp(primals, tangents):
    (w,), (dw,) = primals, tangents
    return log_abs_det(w), jnp.sum(inverse_matrix(w).T * dw)


def inverse_matrix(w: Array) -> Array:
    """W^-1 computed once in float64 and cast to W's dtype."""
    with jax.enable_x64(True):
        inv = jnp.linalg.inv(w.astype(jnp.float64))
    return inv.astype(w.dtype)


# Decoding runs every step's inverse 1x1 conv inside its level's scan; a matrix
# inverse there is one LAPACK call per step and call, and on CPU those calls cost
# far more than their arithmetic (scipy's OpenBLAS threads keep spinning after
# each call and take cores from XLA's: batch-1 decode of the 64x64 width-512
# model ran ~40% slower). So whoever decodes many batches with one model (the
# sweeps) computes every W^-1 once, outside any jit (:func:`with_inverse_weights`),
# into this collection; the modules use it when it is there and compute W^-1
# themselves otherwise. Not inside the decode's own trace: a batched float64
# inverse there (one per level) deadlocked XLA's CPU runtime in about half the
# runs of a 6-level decode.
INVERSES = "inverses"
INVERSE_WEIGHT = "W_inverse"


def stored_inverse(module: nn.Module, compute: Callable[[], Array]) -> Array:
    """``module``'s W^-1 from the :data:`INVERSES` collection if a decoder put it
    there, else ``compute()``."""
    if module.has_variable(INVERSES, INVERSE_WEIGHT):
        return module.get_variable(INVERSES, INVERSE_WEIGHT)
    return compute()


def lu_inverse_weight(p: Array, l: Array, u: Array, sign_s: Array, log_s: Array) -> Array:
    """``(P L U)^-1`` of one step's factors, computed in float64 and cast to ``l``'s dtype."""
    with jax.enable_x64(True):
        f64 = [a.astype(jnp.float64) for a in (p, l, u, sign_s, log_s)]
        return jnp.linalg.inv(lu_weight(*f64)).astype(l.dtype)


def _each_matrix(inverse: Callable[..., Array], *arrays: Array) -> Array:
    """``inverse`` of every matrix of a level's scanned ``[depth, ...]`` arrays, one
    call per matrix (exactly the per-step computation of the scan), stacked."""
    if arrays[0].ndim == 2:  # W, or LU's P: one matrix
        return inverse(*arrays)
    return jnp.stack([_each_matrix(inverse, *(a[i] for a in arrays))
                      for i in range(arrays[0].shape[0])])


def with_inverse_weights(variables: dict, name: str = "invconv") -> dict:
    """``variables`` plus, in :data:`INVERSES`, W^-1 of every 1x1 conv named ``name``.

    Call it eagerly (outside jit), once per model: each matrix is inverted on its
    own, exactly as the step would (so decoded images are bit-identical). Plain
    ``{W}`` convs and LU ``{L, U, log_S}`` (+ constants ``P``, ``sign_S``) are
    recognised; any other module named ``name`` is left to compute its own inverse.

    Variables that already carry inverses (a sweep computes them once, outside
    its jitted decodes, for every chunk it decodes) are returned unchanged.
    """
    if variables.get(INVERSES):
        return variables
    params, constants = variables.get("params", {}), variables.get(CONSTANTS, {})

    def walk(params, constants):
        found = {}
        for key, sub in params.items():
            if not isinstance(sub, Mapping):
                continue
            fixed = constants.get(key, {})
            if key == name and set(sub) == {"W"}:
                found[key] = {INVERSE_WEIGHT: _each_matrix(inverse_matrix, sub["W"])}
            elif key == name and set(sub) == {"L", "U", "log_S"} and set(fixed) == {"P", "sign_S"}:
                found[key] = {INVERSE_WEIGHT: _each_matrix(
                    lu_inverse_weight, fixed["P"], sub["L"], sub["U"], fixed["sign_S"],
                    sub["log_S"])}
            elif inner := walk(sub, fixed):
                found[key] = inner
        return found

    return {**variables, INVERSES: walk(params, constants)}


def channel_mix(x: Array, w: Array, precision: jax.lax.Precision) -> Array:
    """``y[..., j] = sum_i x[..., i] W[i, j]`` (TF's 1x1-conv kernel layout)."""
    return jnp.einsum("...i,ij->...j", x, w, precision=precision)


def invconv_forward(x: Array, w: Array, logdet_w: Array,
                    precision: jax.lax.Precision) -> tuple[Array, Array]:
    """``y = x @ W``; logdet = H W log|det W| (``logdet_w`` precomputed)."""
    return channel_mix(x, w, precision), per_image_logdet(_num_positions(x) * logdet_w, x)


def invconv_inverse(y: Array, w_inv: Array, logdet_w: Array,
                    precision: jax.lax.Precision) -> tuple[Array, Array]:
    """``x = y @ W^-1`` with W^-1 computed once per call, not per pixel."""
    return channel_mix(y, w_inv, precision), per_image_logdet(-_num_positions(y) * logdet_w, y)


def random_orthogonal(key: Array, n: int) -> Array:
    """Q of a QR decomposition of a Gaussian matrix (det = +-1), as OpenAI."""
    q, _ = jnp.linalg.qr(jax.random.normal(key, (n, n), jnp.float32))
    return q


def lu_weight(p: Array, l: Array, u: Array, sign_s: Array, log_s: Array) -> Array:
    """``W = P (L*strict_lower + I) (U*strict_upper + diag(sign_s exp(log_s)))``."""
    n = p.shape[0]
    lower = jnp.tril(l, -1) + jnp.eye(n, dtype=l.dtype)
    upper = jnp.triu(u, 1) + jnp.diag(sign_s * jnp.exp(log_s))
    return p @ lower @ upper


class InvConv(nn.Module):
    """Invertible 1x1 convolution ``y = x @ W`` with W initialised orthogonal.

    ``forward``: ``y = x W``, logdet = H W log|det W| (float64 determinant).
    ``inverse``: ``x = y W^-1`` (W^-1 computed once per call in float64).
    Parameters: ``W`` [C, C] (row-vector convention, TF kernel layout).
    """

    precision: str = "highest"

    @nn.compact
    def params(self, x: Array) -> Array:
        c = x.shape[-1]
        return self.param("W", lambda key: random_orthogonal(key, c))

    def forward(self, x: Array) -> tuple[Array, Array]:
        w = self.params(x)
        return invconv_forward(x, w, log_abs_det(w), get_precision(self.precision))

    def inverse(self, y: Array) -> tuple[Array, Array]:
        w = self.params(y)
        return invconv_inverse(y, stored_inverse(self, lambda: inverse_matrix(w)),
                               log_abs_det(w), get_precision(self.precision))

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        return shape


# Variables that must never be trained (optax only sees "params").
CONSTANTS = "constants"


class InvConvLU(nn.Module):
    """LU-decomposed invertible 1x1 conv (Glow paper §3.2; off in OpenAI's runs).

    ``W = P L U`` with L unit lower triangular and U upper triangular with
    diagonal ``sign_S * exp(log_S)``, so log|det W| = sum(log_S) exactly.
    Trainable: ``L``, ``U``, ``log_S``; fixed (collection ``"constants"``, which
    optax never sees): ``P`` and ``sign_S``. Initialised from the LU
    decomposition of a random orthogonal matrix.
    """

    precision: str = "highest"

    @nn.compact
    def params(self, x: Array) -> tuple[Array, Array, Array, Array, Array]:
        c = x.shape[-1]

        def decomposition(key):
            p, l, u = jax.scipy.linalg.lu(random_orthogonal(key, c))
            s = jnp.diag(u)
            return {"P": p, "L": l, "U": jnp.triu(u, 1),
                    "sign_S": jnp.sign(s), "log_S": jnp.log(jnp.abs(s))}

        # All five come from ONE decomposition, drawn from the key of the
        # first trainable parameter's initialiser ("L", created first; none
        # runs when the variables already exist).
        drawn: dict[str, Array] = {}

        def init(name):
            def initializer(key=None, *_):
                if not drawn:
                    drawn.update(decomposition(key))
                return drawn[name]
            return initializer

        l = self.param("L", init("L"))
        u = self.param("U", init("U"))
        log_s = self.param("log_S", init("log_S"))
        p = self.variable(CONSTANTS, "P", init("P")).value
        sign_s = self.variable(CONSTANTS, "sign_S", init("sign_S")).value
        return p, l, u, sign_s, log_s

    def forward(self, x: Array) -> tuple[Array, Array]:
        p, l, u, sign_s, log_s = self.params(x)
        # log|det W| = sum(log_S) exactly: no determinant is ever computed.
        with jax.default_matmul_precision("highest"):
            w = lu_weight(p, l, u, sign_s, log_s)
        return invconv_forward(x, w, jnp.sum(log_s), get_precision(self.precision))

    def inverse(self, y: Array) -> tuple[Array, Array]:
        p, l, u, sign_s, log_s = self.params(y)
        w_inv = stored_inverse(self, lambda: lu_inverse_weight(p, l, u, sign_s, log_s))
        return invconv_inverse(y, w_inv, jnp.sum(log_s), get_precision(self.precision))

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        return shape


class Reverse(nn.Module):
    """Reverses the channel order (OpenAI's ``flow_permutation=0``); logdet 0."""

    def forward(self, x: Array) -> tuple[Array, Array]:
        return x[..., ::-1], per_image_logdet(0.0, x)

    def inverse(self, y: Array) -> tuple[Array, Array]:
        return y[..., ::-1], per_image_logdet(0.0, y)

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        return shape


class Shuffle(nn.Module):
    """A fixed random channel permutation ``y[..., j] = x[..., indices[j]]``.

    The indices live in the ``"constants"`` collection (never trained) and are
    drawn from the ``params`` RNG at init. OpenAI's were seeded by Python's
    randomised ``hash()``, so converted models must load them, not redraw them.
    """

    @nn.compact
    def params(self, x: Array) -> tuple[Array, Array]:
        c = x.shape[-1]
        idx = self.variable(CONSTANTS, "indices", lambda: jax.random.permutation(
            self.make_rng("params"), c).astype(jnp.int32))
        inv = self.variable(CONSTANTS, "indices_inverse",
                            lambda: jnp.argsort(idx.value).astype(jnp.int32))
        return idx.value, inv.value

    def forward(self, x: Array) -> tuple[Array, Array]:
        idx, _ = self.params(x)
        return jnp.take(x, idx, axis=-1), per_image_logdet(0.0, x)

    def inverse(self, y: Array) -> tuple[Array, Array]:
        _, inv = self.params(y)
        return jnp.take(y, inv, axis=-1), per_image_logdet(0.0, y)

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        return shape


PERMUTATIONS: dict[str, type[nn.Module]] = {
    "invconv": InvConv,
    "invconv_lu": InvConvLU,
    "reverse": Reverse,
    "shuffle": Shuffle,
}


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
    """

    width: int = 512
    kind: str = "additive"
    precision: str = "highest"

    def _check(self, x: Array) -> None:
        if self.kind not in COUPLINGS:
            raise ValueError(f"coupling must be one of {sorted(COUPLINGS)}, got {self.kind!r}")
        if x.shape[-1] % 2:
            raise ValueError(f"coupling needs an even channel count, got {x.shape[-1]}")

    @nn.compact
    def conditioner(self, z1: Array) -> Array:
        n_out = z1.shape[-1] * (2 if self.kind == "affine" else 1)
        h = EdgeConv(self.width, 3, self.precision, name="conv1")(z1)
        h, _ = ActNorm(name="conv1_actnorm").forward(h)
        h = nn.relu(h)
        h = EdgeConv(self.width, 1, self.precision, name="conv2")(h)
        h, _ = ActNorm(name="conv2_actnorm").forward(h)
        h = nn.relu(h)
        return ZeroConv(n_out, self.precision, name="conv_out")(h)

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
# Composition: Chain and Inverse
# --------------------------------------------------------------------------


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
                        "(flowjax.bijectors.Bijector)")
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
