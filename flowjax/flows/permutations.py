"""The channel permutations of a flow step: invertible 1x1 convs and fixed permutations.

Glow mixes channels between couplings (OpenAI's ``flow_permutation``); the
choices, registered in :data:`PERMUTATIONS`, are the learned invertible 1x1
conv ``y = x @ W`` (:class:`InvConv`; its LU-parametrised form
:class:`InvConvLU`) and the fixed :class:`Reverse` and :class:`Shuffle`. They
share this module, apart from :mod:`flowjax.flows.bijectors` (the contract, squeeze,
ActNorm, couplings), because the 1x1 convs carry their own numerics: float64
determinants and inverses, and the :data:`INVERSES` collection through which a
decoder supplies every W^-1 precomputed (:func:`with_inverse_weights`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax.flows.bijectors import CONSTANTS, _num_positions, per_image_logdet
from flowjax.flows.layers import get_precision

Array = jax.Array
Shape = tuple[int, ...]


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
#
# A stored inverse is only as good as the parameters it was computed from: after a
# training step, a fine-tune or a loaded update it would decode wrong images with no
# error. So each one is stored with those parameters (:data:`INVERSE_SOURCE`), and a
# step uses it only while its own parameters still equal them, bit for bit; otherwise
# it computes W^-1 itself, as without a cache (a ``lax.cond``: the comparison is C^2
# values per step, and the branch not taken costs nothing).
INVERSES = "inverses"
INVERSE_WEIGHT = "W_inverse"
INVERSE_SOURCE = "computed_from"


def stored_inverse(module: nn.Module, parameters: Mapping[str, Array],
                   compute: Callable[[], Array]) -> Array:
    """``module``'s W^-1: from the :data:`INVERSES` collection when a decoder put it there
    and it was computed from exactly ``parameters`` (the step's current ones), else
    ``compute()``."""
    if not module.has_variable(INVERSES, INVERSE_WEIGHT):
        return compute()
    stored = module.get_variable(INVERSES, INVERSE_WEIGHT)
    source = module.get_variable(INVERSES, INVERSE_SOURCE)
    if source is None or set(source) != set(parameters):
        raise ValueError(f"{module.name}: an inverse in the {INVERSES!r} collection without the "
                         "parameters it was computed from; build it with "
                         "flowjax.flows.permutations.with_inverse_weights")
    fresh = jnp.all(jnp.stack([jnp.array_equal(source[k], parameters[k]) for k in sorted(source)]))
    return jax.lax.cond(fresh, lambda: stored, compute)


def lu_parameters(p: Array, l: Array, u: Array, sign_s: Array, log_s: Array) -> dict[str, Array]:
    """An LU step's factors by their variable names (what its stored inverse is keyed to)."""
    return {"P": p, "L": l, "U": u, "sign_S": sign_s, "log_S": log_s}


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

    Each inverse is stored with the parameters it was computed from
    (:data:`INVERSE_SOURCE`), and inverses already in ``variables`` are computed
    anew: a step never decodes with the inverse of other parameters.
    """
    params, constants = variables.get("params", {}), variables.get(CONSTANTS, {})

    def walk(params, constants):
        found = {}
        for key, sub in params.items():
            if not isinstance(sub, Mapping):
                continue
            fixed = constants.get(key, {})
            if key == name and set(sub) == {"W"}:
                found[key] = {INVERSE_WEIGHT: _each_matrix(inverse_matrix, sub["W"]),
                              INVERSE_SOURCE: {"W": sub["W"]}}
            elif key == name and set(sub) == {"L", "U", "log_S"} and set(fixed) == {"P", "sign_S"}:
                found[key] = {INVERSE_WEIGHT: _each_matrix(
                    lu_inverse_weight, fixed["P"], sub["L"], sub["U"], fixed["sign_S"],
                    sub["log_S"]), INVERSE_SOURCE: {**sub, **fixed}}
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
        return invconv_inverse(y, stored_inverse(self, {"W": w}, lambda: inverse_matrix(w)),
                               log_abs_det(w), get_precision(self.precision))

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        return shape


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
        w_inv = stored_inverse(self, lu_parameters(p, l, u, sign_s, log_s),
                               lambda: lu_inverse_weight(p, l, u, sign_s, log_s))
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
