"""Specification of the bijectors: round trips, log-determinants, init, orders."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.flows import bijectors as bj, composition as comp, layers, permutations as perm, steps
from flowjax.flows.testing import assert_bijector

# Every bijector of the project: (id, factory, input shape [B, H, W, C]).
BIJECTORS = [
    ("actnorm", lambda: bj.ActNorm(), (2, 4, 4, 4)),
    ("invconv", lambda: perm.InvConv(), (2, 4, 4, 4)),
    ("invconv_lu", lambda: perm.InvConvLU(), (2, 4, 4, 4)),
    ("reverse", lambda: perm.Reverse(), (2, 4, 4, 4)),
    ("shuffle", lambda: perm.Shuffle(), (2, 4, 4, 4)),
    ("coupling_additive", lambda: bj.Coupling(width=8, kind="additive"), (2, 4, 4, 4)),
    ("coupling_affine", lambda: bj.Coupling(width=8, kind="affine"), (2, 4, 4, 4)),
    ("squeeze", lambda: bj.Squeeze(), (2, 4, 4, 3)),
    ("chain", lambda: comp.Chain((bj.ActNorm(), perm.InvConv(), bj.Coupling(width=8))),
     (2, 4, 4, 4)),
    ("inverse_of_affine_coupling", lambda: comp.Inverse(bj.Coupling(width=8, kind="affine")),
     (2, 4, 4, 4)),
    ("chain_through_inverse_squeeze",
     lambda: comp.Chain((bj.Squeeze(), bj.ActNorm(), comp.Inverse(bj.Squeeze()))), (2, 4, 4, 3)),
    ("openai_flow_step", lambda: steps.StepBijector(
        "openai", steps.StepConfig(width=8, coupling="affine", permutation="invconv_lu",
                                   precision="highest")), (2, 4, 4, 4)),
]
IDS = [b[0] for b in BIJECTORS]


def _init(bijector, shape, seed=0):
    x = jax.random.normal(jax.random.key(seed), shape) * 2.0 + 0.5
    variables = bijector.init(jax.random.key(seed + 1), x, method=bijector.forward)
    return x, variables


def _perturb(variables, seed=7, scale=0.1):
    """Move every float parameter off its (often trivial) init value."""
    leaves, tree = jax.tree.flatten(variables.get("params", {}))
    keys = jax.random.split(jax.random.key(seed), max(len(leaves), 1))
    leaves = [leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
    return {**variables, "params": jax.tree.unflatten(tree, leaves)}


@pytest.mark.parametrize("name,factory,shape", BIJECTORS, ids=IDS)
def test_satisfies_the_bijector_contract(name, factory, shape):
    """Round trip, log-det sum, float64 Jacobian and jit parity (flowjax.flows.testing)."""
    errors = assert_bijector(factory(), shape, perturb=0.1)
    assert set(errors) == {"round_trip", "logdet_sum", "jacobian", "jit"}


@pytest.mark.parametrize("name,factory,shape", BIJECTORS, ids=IDS)
def test_is_a_bijector_by_the_protocol(name, factory, shape):
    assert isinstance(factory(), bj.Bijector)


def test_actnorm_init_normalises_the_init_batch_per_channel():
    x = jax.random.normal(jax.random.key(0), (8, 6, 6, 5)) * jnp.arange(1.0, 6.0) + 3.0
    b = bj.ActNorm()
    variables = b.init(jax.random.key(1), x, method=b.forward)
    y, _ = b.apply(variables, x, method=b.forward)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(jnp.std(y, axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_actnorm_stores_log_scale_divided_by_three():
    x = jnp.ones((1, 1, 1, 1))
    y, logdet = bj.actnorm_forward(x, jnp.array([1.0]), jnp.array([0.5]))
    np.testing.assert_allclose(y, 2.0 * np.exp(1.5), rtol=1e-6)
    np.testing.assert_allclose(logdet, [1.5], rtol=1e-6)


def test_additive_coupling_is_the_identity_at_init():
    b = bj.Coupling(width=8, kind="additive")
    x, variables = _init(b, (2, 4, 4, 6))
    y, logdet = b.apply(variables, x, method=b.forward)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(logdet, 0.0)


def test_affine_coupling_starts_as_a_sigmoid_two_scale_of_the_second_half():
    """The zero-conv outputs 0 at init: shift 0, scale sigmoid(0 + 2) (not the identity)."""
    b = bj.Coupling(width=8, kind="affine")
    x, variables = _init(b, (2, 4, 4, 6))
    y, logdet = b.apply(variables, x, method=b.forward)
    scale = 1.0 / (1.0 + np.exp(-2.0))
    np.testing.assert_array_equal(y[..., :3], x[..., :3])
    np.testing.assert_allclose(y[..., 3:], x[..., 3:] * scale, rtol=1e-6)
    np.testing.assert_allclose(logdet, 4 * 4 * 3 * np.log(scale), rtol=1e-6)


def test_coupling_transforms_only_the_second_half():
    b = bj.Coupling(width=8, kind="affine")
    x, variables = _init(b, (2, 4, 4, 6))
    y, _ = b.apply(_perturb(variables), x, method=b.forward)
    np.testing.assert_array_equal(y[..., :3], x[..., :3])
    assert float(jnp.max(jnp.abs(y[..., 3:] - x[..., 3:]))) > 1e-3


def test_affine_coupling_uses_even_shift_and_sigmoid_odd_plus_two():
    z2 = jnp.full((1, 1, 1, 1), 3.0)
    h = jnp.array([[[[0.5, -1.0]]]])  # shift = 0.5, raw scale = -1
    y, logdet = bj.affine_coupling(z2, h, reverse=False)
    scale = 1.0 / (1.0 + np.exp(-(-1.0 + 2.0)))
    np.testing.assert_allclose(y, (3.0 + 0.5) * scale, rtol=1e-6)
    np.testing.assert_allclose(logdet, [np.log(scale)], rtol=1e-6)


def test_squeeze_channel_order_is_4c_plus_2dy_plus_dx():
    h = w = 4
    c = 3
    # Encode (row, col, channel) of every input element in its value.
    rows, cols, chans = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    x = jnp.asarray((rows * 100 + cols * 10 + chans)[None], jnp.float32)
    y = np.asarray(bj.squeeze2d(x))[0]
    assert y.shape == (2, 2, 12)
    for i in range(2):
        for j in range(2):
            for ch in range(c):
                for dy in range(2):
                    for dx in range(2):
                        expected = (2 * i + dy) * 100 + (2 * j + dx) * 10 + ch
                        assert y[i, j, 4 * ch + 2 * dy + dx] == expected


def test_unsqueeze_is_the_inverse_of_squeeze():
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 5))
    np.testing.assert_array_equal(bj.unsqueeze2d(bj.squeeze2d(x)), x)


def test_edge_padded_conv_matches_explicit_indicator_channel():
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 4, 7))
    ring = jnp.pad(jnp.zeros((2, 5, 5, 1)), ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=1.0)
    padded = jnp.concatenate([jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), ring], axis=-1)
    expected = jax.lax.conv_general_dilated(
        padded, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST)
    got = layers.edge_padded_conv(x, w, jax.lax.Precision.HIGHEST)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_invconv_is_x_times_w_row_vector_convention():
    w = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    x = jnp.array([1.0, 10.0]).reshape(1, 1, 1, 2)
    y, logdet = perm.invconv_forward(x, w, perm.log_abs_det(w), jax.lax.Precision.HIGHEST)
    np.testing.assert_allclose(y.reshape(-1), [31.0, 42.0])
    np.testing.assert_allclose(logdet, [np.log(2.0)], rtol=1e-6)


def test_lu_constants_live_outside_params():
    b = perm.InvConvLU()
    _, variables = _init(b, (1, 2, 2, 4))
    assert set(variables["params"]) == {"L", "U", "log_S"}
    assert set(variables[bj.CONSTANTS]) == {"P", "sign_S"}


class _AddOne(nn.Module):
    def forward(self, x):
        return x + 1.0, bj.per_image_logdet(0.0, x)

    def inverse(self, y):
        return y - 1.0, bj.per_image_logdet(0.0, y)

    def output_shape(self, shape):
        return shape


class _Double(nn.Module):
    def forward(self, x):
        return 2.0 * x, bj.per_image_logdet(np.prod(x.shape[-3:]) * np.log(2.0), x)

    def inverse(self, y):
        return 0.5 * y, bj.per_image_logdet(-np.prod(y.shape[-3:]) * np.log(2.0), y)

    def output_shape(self, shape):
        return shape


def test_chain_applies_steps_in_list_order():
    """forward = double(add_one(x)) = 2x + 2; the reversed order would give 2x + 1."""
    chain = comp.Chain((_AddOne(), _Double()))
    x = jnp.arange(8.0).reshape(2, 2, 2, 1)
    y, _ = chain.apply({}, x, method=chain.forward)
    np.testing.assert_array_equal(y, 2.0 * x + 2.0)


def test_chain_inverse_undoes_the_steps_from_last_to_first():
    """inverse = add_one^-1(double^-1(y)) = y/2 - 1; the reversed order would give (y - 1)/2."""
    chain = comp.Chain((_AddOne(), _Double()))
    y = jnp.arange(8.0).reshape(2, 2, 2, 1)
    x, _ = chain.apply({}, y, method=chain.inverse)
    np.testing.assert_array_equal(x, y / 2.0 - 1.0)


def test_chain_is_callable_so_init_runs_forward():
    chain = comp.Chain((bj.ActNorm(), bj.Squeeze()))
    x = jax.random.normal(jax.random.key(0), (3, 4, 4, 2)) * 3.0 + 1.0
    variables = chain.init(jax.random.key(1), x)
    y, logdet = chain.apply(variables, x)
    assert y.shape == (3, 2, 2, 8) and logdet.shape == (3,)


def test_chain_keeps_an_explicit_step_name():
    chain = comp.Chain((bj.ActNorm(name="normalise"), perm.InvConv(name="mix")))
    variables = chain.init(jax.random.key(0), jnp.ones((1, 2, 2, 4)))
    assert set(variables["params"]) == {"normalise", "mix"}


def test_chain_default_names_count_per_class_and_survive_inserting_another_class():
    before = comp.Chain((bj.ActNorm(), perm.InvConv(), bj.ActNorm()))
    after = comp.Chain((bj.ActNorm(), perm.Reverse(), perm.InvConv(), bj.Squeeze(), bj.ActNorm()))
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 4))
    names_before = set(before.init(jax.random.key(1), x)["params"])
    names_after = set(after.init(jax.random.key(1), x)["params"])
    assert names_before == {"ActNorm_0", "InvConv_0", "ActNorm_1"}
    assert names_after == names_before


def test_inverse_swaps_the_directions_and_shapes():
    squeeze, unsqueeze = bj.Squeeze(), comp.Inverse(bj.Squeeze())
    x = jax.random.normal(jax.random.key(0), (1, 2, 2, 8))
    y, _ = unsqueeze.apply({}, x)
    np.testing.assert_array_equal(y, bj.unsqueeze2d(x))
    assert unsqueeze.output_shape((1, 2, 2, 8)) == (1, 4, 4, 2)
    assert squeeze.input_shape((1, 2, 2, 8)) == (1, 4, 4, 2)


def test_inverse_refuses_a_non_bijector():
    with pytest.raises(TypeError, match=r"Inverse needs a bijector.*got Dense"):
        comp.Inverse(nn.Dense(3))


def test_chain_names_the_incompatible_neighbours():
    chain = comp.Chain((bj.Squeeze(), bj.Squeeze(), bj.Squeeze()))
    x = jnp.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match=r"step 2 \(Squeeze\) cannot run after step 1 \(Squeeze\)"):
        chain.init(jax.random.key(0), x, method=chain.forward)


def test_chain_rejects_a_step_without_the_bijector_contract():
    with pytest.raises(TypeError, match=r"step 1 \(Dense\) has no forward\(\)"):
        comp.Chain((bj.Squeeze(), nn.Dense(3)))


def test_coupling_rejects_an_odd_channel_count():
    b = bj.Coupling(width=4)
    with pytest.raises(ValueError, match="even channel count, got 3"):
        b.init(jax.random.key(0), jnp.zeros((1, 2, 2, 3)), method=b.forward)


def test_log_abs_det_gradient_is_the_inverse_transpose():
    w = jax.random.normal(jax.random.key(0), (6, 6))
    np.testing.assert_allclose(jax.grad(perm.log_abs_det)(w), jnp.linalg.inv(w).T, atol=1e-4)


@pytest.mark.parametrize("factory", [perm.InvConv, perm.InvConvLU], ids=["plain", "lu"])
def test_invconv_log_det_gradient_matches_finite_differences(factory):
    """Training differentiates the float64 determinant path: check it end to end."""
    b = factory()
    x, variables = _init(b, (1, 2, 2, 4))
    variables = _perturb(variables)

    def total_logdet(params):
        return b.apply({**variables, "params": params}, x, method=b.forward)[1].sum()

    grads = jax.grad(total_logdet)(variables["params"])
    direction = jax.tree.map(lambda a: jax.random.normal(jax.random.key(3), a.shape), grads)
    step = 1e-3
    shifted = lambda s: total_logdet(jax.tree.map(lambda p, d: p + s * d, variables["params"],
                                                  direction))
    finite_difference = (shifted(step) - shifted(-step)) / (2 * step)
    analytic = sum(jnp.sum(g * d) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
    np.testing.assert_allclose(float(analytic), float(finite_difference), rtol=2e-2, atol=2e-3)
