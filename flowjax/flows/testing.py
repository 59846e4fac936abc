"""The bijector contract as a reusable test: :func:`assert_bijector`.

Use it in your own tests for every bijector you write (the project's tests
run it on each of its own)::

    from flowjax.flows.testing import assert_bijector

    def test_my_bijector_satisfies_the_contract():
        assert_bijector(MyBijector(), (2, 4, 4, 6))

It checks, on random inputs and parameters moved off their initial values
(many bijectors start as the identity, which hides sign and order errors):

1. ``forward`` returns ``output_shape(x.shape)`` and one float log-det per image
   in x's dtype (``input_shape`` inverts ``output_shape`` when present);
2. ``inverse(forward(x)) == x`` (round trip);
3. the two log-dets sum to zero along the round trip;
4. ``forward``'s log-det equals ``log|det J|`` of the brute-force float64
   Jacobian (``jax.jacfwd``) on a tiny input, and ``inverse``'s is its negative;
5. jitted and eager calls agree in both directions.

A failed check raises ``AssertionError`` naming the bijector, the check and
the measured error. Needs only JAX and Flax (no pytest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _moved_off_init(variables: Mapping[str, Any], key: Array, scale: float) -> dict[str, Any]:
    """Adds ``scale * N(0, 1)`` to every float in "params" (constants stay exact)."""
    leaves, tree = jax.tree.flatten(variables.get("params", {}))
    keys = jax.random.split(key, max(len(leaves), 1))
    leaves = [leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
              if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
              for leaf, k in zip(leaves, keys)]
    return {**variables, "params": jax.tree.unflatten(tree, leaves)}


def _to_float64(tree: Any) -> Any:
    return jax.tree.map(
        lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _fail(name: str, check: str, detail: str) -> None:
    raise AssertionError(f"{name} breaks the bijector contract ({check}): {detail}")


def assert_bijector(bijector: Any, shape: tuple[int, ...], *, variables: Any = None,
                    seed: int = 0, perturb: float = 0.05, atol: float = 1e-4,
                    jacobian_shape: tuple[int, ...] | None = None) -> dict[str, float]:
    """Checks that ``bijector`` (an unbound Flax module) keeps the bijector contract.

    Args:
      bijector: a module with ``forward``, ``inverse`` and ``output_shape``
        (``flowjax.flows.bijectors.Bijector``).
      shape: the NHWC input shape ``[B, H, W, C]`` for the round-trip checks.
      variables: its variables; ``None`` initialises it through ``forward`` on
        the random input (data-dependent inits happen there).
      seed: seeds the input, the initialisation and the perturbation.
      perturb: standard deviation of the noise added to every float parameter
        first (0 keeps the parameters as given).
      atol: tolerance of the round trip, the log-det sums, the Jacobian check
        (absolute and relative) and of jit parity.
      jacobian_shape: input shape of the float64 Jacobian check (default
        ``(1, 2, 2, C)``: the Jacobian is ``4C x 4C``); the parameters must fit
        it (give a larger one for bijectors whose parameters depend on H, W).

    Returns the measured errors by check name (for reports and tighter asserts).
    """
    name = type(bijector).__name__
    if len(shape) < 4:
        raise ValueError(f"shape must be NHWC with a batch axis, got {shape}")
    k_x, k_init, k_perturb, k_tiny = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(k_x, shape, jnp.float32) * 2.0 + 0.5
    if variables is None:
        variables = bijector.init(k_init, x, method="forward")
    if perturb:
        variables = _moved_off_init(variables, k_perturb, perturb)

    def forward(v, a):
        return bijector.apply(v, a, method="forward")

    def inverse(v, a):
        return bijector.apply(v, a, method="inverse")

    errors: dict[str, float] = {}

    # 1. Shapes and dtypes.
    y, logdet = forward(variables, x)
    expected_shape = tuple(bijector.output_shape(tuple(shape)))
    if tuple(y.shape) != expected_shape:
        _fail(name, "output_shape", f"forward returned shape {tuple(y.shape)}, "
                                    f"output_shape({tuple(shape)}) says {expected_shape}")
    if callable(getattr(bijector, "input_shape", None)):
        back_shape = tuple(bijector.input_shape(expected_shape))
        if back_shape != tuple(shape):
            _fail(name, "input_shape", f"input_shape({expected_shape}) = {back_shape}, "
                                       f"expected {tuple(shape)}")
    if tuple(logdet.shape) != tuple(shape[:-3]) or logdet.dtype != x.dtype:
        _fail(name, "log-det shape", f"forward's log-det has shape {tuple(logdet.shape)} and "
                                     f"dtype {logdet.dtype}; expected one {x.dtype} per image, "
                                     f"shape {tuple(shape[:-3])}")
    if not (np.all(np.isfinite(np.asarray(y))) and np.all(np.isfinite(np.asarray(logdet)))):
        _fail(name, "finite", "forward returned non-finite values")

    # 2-3. Round trip and log-det sum.
    x_back, logdet_inv = inverse(variables, y)
    if tuple(logdet_inv.shape) != tuple(shape[:-3]):
        _fail(name, "log-det shape", f"inverse's log-det has shape {tuple(logdet_inv.shape)}, "
                                     f"expected {tuple(shape[:-3])}")
    errors["round_trip"] = float(jnp.max(jnp.abs(x_back - x)))
    if not errors["round_trip"] <= atol:
        _fail(name, "round trip", f"max |inverse(forward(x)) - x| = {errors['round_trip']:.3g} "
                                  f"> {atol}")
    errors["logdet_sum"] = float(jnp.max(jnp.abs(logdet + logdet_inv)))
    if not errors["logdet_sum"] <= atol * max(1.0, float(jnp.max(jnp.abs(logdet)))):
        _fail(name, "log-det sum", f"forward + inverse log-dets = {errors['logdet_sum']:.3g}, "
                                   "expected 0 (the inverse returns minus the forward's)")

    # 4. Brute-force float64 Jacobian on a tiny input.
    tiny = tuple(jacobian_shape or (1, 2, 2, shape[-1]))
    with jax.enable_x64(True):
        v64 = _to_float64(variables)
        x64 = jax.random.normal(k_tiny, tiny, jnp.float64) * 2.0 + 0.5

        def flat(a):
            return forward(v64, a.reshape(tiny))[0].reshape(-1)

        jac = jax.jacfwd(flat)(x64.reshape(-1))
        if jac.shape[0] != jac.shape[1]:
            _fail(name, "Jacobian", f"maps {int(np.prod(tiny))} values to {jac.shape[0]}")
        sign, expected = jnp.linalg.slogdet(jac)
        y64, got = forward(v64, x64)
        _, got_inv = inverse(v64, y64)
        if float(sign) == 0.0:
            _fail(name, "Jacobian", f"the Jacobian at shape {tiny} is singular")
        expected, got, got_inv = float(expected), float(got[0]), float(got_inv[0])
    errors["jacobian"] = abs(got - expected)
    if not errors["jacobian"] <= atol * max(1.0, abs(expected)):
        _fail(name, "Jacobian", f"forward's log-det {got:.6g} != log|det J| {expected:.6g} of the "
                                f"float64 Jacobian at shape {tiny}")
    if not abs(got_inv + expected) <= atol * max(1.0, abs(expected)):
        _fail(name, "Jacobian", f"inverse's log-det {got_inv:.6g} != -log|det J| = "
                                f"{-expected:.6g} at shape {tiny}")

    # 5. jit parity.
    y_jit, logdet_jit = jax.jit(forward)(variables, x)
    x_jit, _ = jax.jit(inverse)(variables, y)
    errors["jit"] = max(float(jnp.max(jnp.abs(y_jit - y))),
                        float(jnp.max(jnp.abs(logdet_jit - logdet))),
                        float(jnp.max(jnp.abs(x_jit - x_back))))
    scale = max(1.0, float(jnp.max(jnp.abs(y))), float(jnp.max(jnp.abs(logdet))))
    if not errors["jit"] <= atol * scale:
        _fail(name, "jit parity", f"jitted and eager results differ by {errors['jit']:.3g}")
    return errors
