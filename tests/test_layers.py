"""flowjax.flows.layers: the 3x3 convs computed per shape equal XLA's convolution."""

import jax
import numpy as np
import pytest

from flowjax.flows import layers

HIGHEST = jax.lax.Precision.HIGHEST


def _xla_conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=HIGHEST)


def _operands(cin, cout, seed=0):
    rng = np.random.default_rng(seed)
    # Different height and width, so a transposed shift cannot pass.
    x = rng.normal(size=(2, 5, 7, cin)).astype(np.float32)
    w = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
    return x, w


@pytest.mark.parametrize("conv, cin, cout", [
    (layers._conv_taps, 64, 3),      # narrow output: the zero convs' shape
    (layers._conv_im2col, 3, 64),    # narrow input: the couplings' first conv
], ids=["taps_narrow_output", "im2col_narrow_input"])
def test_matmul_form_of_a_conv_equals_xla_convolution(conv, cin, cout):
    x, w = _operands(cin, cout)
    expected = np.asarray(_xla_conv(x, w))
    got = np.asarray(conv(x, w, HIGHEST))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("cin, cout", [(64, 3), (3, 64), (8, 8)],
                         ids=["narrow_output", "narrow_input", "square"])
def test_same_conv_equals_xla_convolution_for_every_shape(cin, cout):
    x, w = _operands(cin, cout, seed=1)
    expected = np.asarray(_xla_conv(x, w))
    got = np.asarray(jax.jit(lambda x, w: layers._conv_same(x, w, HIGHEST))(x, w))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def _uses_xla_convolution(cin, cout):
    x, w = _operands(cin, cout)
    jaxpr = jax.make_jaxpr(lambda x, w: layers._conv_same(x, w, HIGHEST))(x, w)
    return "conv_general_dilated" in str(jaxpr)


@pytest.mark.parametrize("cin, cout", [(64, 3), (3, 64)], ids=["narrow_output", "narrow_input"])
def test_matmul_forms_are_a_cpu_choice_and_other_backends_keep_xla_convolution(cin, cout,
                                                                              monkeypatch):
    # The matmul forms were measured faster on XLA:CPU only; cuDNN and TPUs have
    # their own convolutions, which these shapes must keep.
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert not _uses_xla_convolution(cin, cout)
    for backend in ("gpu", "tpu"):
        monkeypatch.setattr(jax, "default_backend", lambda: backend)
        assert _uses_xla_convolution(cin, cout), backend
