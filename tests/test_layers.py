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


def _uses_xla_convolution_with(algorithm, cin=64, cout=3):
    x, w = _operands(cin, cout)
    jaxpr = jax.make_jaxpr(lambda x, w: layers._conv_same(x, w, HIGHEST, algorithm))(x, w)
    return "conv_general_dilated" in str(jaxpr)


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_a_configured_conv_algorithm_holds_on_every_backend(backend, monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    assert _uses_xla_convolution_with("xla")
    assert not _uses_xla_convolution_with("matmul")
    assert _uses_xla_convolution_with("auto") == (backend not in layers.MATMUL_CONV_BACKENDS)
    with pytest.raises(ValueError, match="conv_algorithm must be one of"):
        _uses_xla_convolution_with("cudnn")


def test_a_glow_passes_its_conv_algorithm_to_every_narrow_conv():
    """Every level's coupling: "xla" leaves no matmul form in the model."""
    from flowjax.models import glow
    from flowjax.models.glow import Glow

    model = Glow(image_size=8, n_levels=2, depth=1, width=256)
    x = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    variables = glow.init(model, jax.random.key(0), x)
    n_convs = {}
    for algorithm in ("xla", "matmul"):
        jaxpr = jax.make_jaxpr(lambda v, x: glow.apply_encode(
            model.clone(conv_algorithm=algorithm), v, x))(variables, x)
        n_convs[algorithm] = str(jaxpr).count("conv_general_dilated")
    # Each level's coupling (one scan body per level) has two narrow 3x3 convs: 6 -> 256
    # and 256 -> 6 at level 0, 12 -> 256 and 256 -> 12 at level 1. The split prior's
    # (6 -> 12) and the edge-indicator maps are XLA convolutions either way.
    assert n_convs["xla"] - n_convs["matmul"] == 4, n_convs
