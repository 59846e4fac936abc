"""Specification of flowjax.flows.testing.assert_bijector: each check catches the bug it is for."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from flowjax.flows.bijectors import per_image_logdet
from flowjax.flows.testing import assert_bijector

SHAPE = (2, 2, 2, 2)
LOG2 = np.log(2.0)


class _Scale(nn.Module):
    """y = 2x with configurable (possibly wrong) log-dets and inverse."""

    forward_sign: float = 1.0
    inverse_sign: float = -1.0
    inverse_factor: float = 0.5

    def forward(self, x):
        return 2.0 * x, per_image_logdet(self.forward_sign * np.prod(x.shape[-3:]) * LOG2, x)

    def inverse(self, y):
        return self.inverse_factor * y, per_image_logdet(
            self.inverse_sign * np.prod(y.shape[-3:]) * LOG2, y)

    def output_shape(self, shape):
        return shape


class _TracedDiffers(nn.Module):
    """Adds 0.01 only when run eagerly: jitted and eager calls disagree."""

    def forward(self, x):
        return x + (0.0 if isinstance(x, jax.core.Tracer) else 0.01), per_image_logdet(0.0, x)

    def inverse(self, y):
        return y - (0.0 if isinstance(y, jax.core.Tracer) else 0.01), per_image_logdet(0.0, y)

    def output_shape(self, shape):
        return shape


class _WrongOutputShape(_Scale):
    def output_shape(self, shape):
        return (*shape[:-1], 2 * shape[-1])


def test_a_correct_bijector_passes_with_tiny_errors():
    errors = assert_bijector(_Scale(), SHAPE)
    assert max(errors.values()) < 1e-6


def test_a_wrong_inverse_fails_the_round_trip():
    with pytest.raises(AssertionError, match=r"_Scale .*round trip"):
        assert_bijector(_Scale(inverse_factor=0.4), SHAPE)


def test_an_inverse_log_det_with_the_forward_sign_fails_the_log_det_sum():
    with pytest.raises(AssertionError, match=r"log-det sum"):
        assert_bijector(_Scale(inverse_sign=1.0), SHAPE)


def test_consistently_wrong_log_dets_fail_the_float64_jacobian():
    with pytest.raises(AssertionError, match=r"Jacobian.*log-det -5.54.*log\|det J\| 5.54"):
        assert_bijector(_Scale(forward_sign=-1.0, inverse_sign=1.0), SHAPE)


def test_jit_and_eager_disagreeing_fails_jit_parity():
    with pytest.raises(AssertionError, match=r"jit parity"):
        assert_bijector(_TracedDiffers(), SHAPE)


def test_a_wrong_output_shape_is_named():
    with pytest.raises(AssertionError, match=r"output_shape.*\(2, 2, 2, 4\)"):
        assert_bijector(_WrongOutputShape(), SHAPE)
