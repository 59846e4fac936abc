"""Specification of flowjax.latents' arithmetic: statistics, attributes, transfer.

Pure functions, checked against numpy on flat and per-level latents (the
decoding side is in test_sweep.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from flowjax import latents

RNG = np.random.default_rng(0)
SHAPES = latents.latent_shapes(8, 2)  # [(4, 4, 6), (2, 2, 24)]
D = latents.flat_size(SHAPES)


def _flat(n: int) -> np.ndarray:
    return RNG.standard_normal((n, D)).astype(np.float32)


def _levels(flat: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(x) for x in latents.unflatten(flat, SHAPES)]


def _stats(flat: np.ndarray) -> latents.IdentityStats:
    return latents.identity_stats(flat)


# ---- identity statistics ----------------------------------------------------------


def test_mean_of_one_image_is_that_image():
    z = _flat(1)
    np.testing.assert_array_equal(latents.identity_mean(z), z[0])


def test_mean_of_one_image_is_that_image_per_level():
    z = _levels(_flat(1))
    for level, mean in zip(z, latents.identity_mean(z)):
        np.testing.assert_array_equal(mean, level[0])


def test_variance_of_one_image_is_zero():
    assert float(np.abs(latents.identity_stats(_flat(1)).var).max()) == 0.0


def test_mean_and_variance_do_not_depend_on_image_order():
    z = _flat(7)
    shuffled = z[RNG.permutation(7)]
    a, b = latents.identity_stats(z), latents.identity_stats(shuffled)
    np.testing.assert_allclose(a.mean, b.mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.var, b.var, rtol=0, atol=1e-6)


def test_stats_are_the_population_mean_and_variance():
    z = _flat(5)
    stats = latents.identity_stats(z)
    np.testing.assert_allclose(stats.mean, z.mean(0), atol=1e-6)
    np.testing.assert_allclose(stats.var, z.var(0), atol=1e-6)
    assert stats.count == 5


def test_stack_stats_puts_each_identity_in_a_row_and_keeps_the_smallest_count():
    a, b = latents.identity_stats(_flat(5)), latents.identity_stats(_flat(2) + 1.0)
    stacked = latents.stack_stats([a, b, a])
    np.testing.assert_array_equal(stacked.mean, np.stack([a.mean, b.mean, a.mean]))
    np.testing.assert_array_equal(stacked.var, np.stack([a.var, b.var, a.var]))
    assert stacked.count == 2
    with pytest.raises(ValueError, match="at least one"):
        latents.stack_stats([])


def test_per_level_stats_equal_flat_stats():
    z = _flat(4)
    flat, levels = latents.identity_stats(z), latents.identity_stats(_levels(z))
    np.testing.assert_allclose(latents.flatten(levels.mean), flat.mean, atol=1e-6)
    np.testing.assert_allclose(latents.flatten(levels.var), flat.var, atol=1e-6)


def test_empty_identity_is_an_error():
    with pytest.raises(ValueError, match="at least one image"):
        latents.identity_stats(np.zeros((0, D), np.float32))


# ---- attribute vectors ------------------------------------------------------------


def test_attribute_vector_is_the_difference_of_means():
    pos, neg = _flat(4), _flat(6)
    np.testing.assert_allclose(latents.attribute_vector(pos, neg),
                               pos.mean(0) - neg.mean(0), atol=1e-6)


def test_attribute_vector_scale_multiplies_it_openai_style():
    pos, neg = _flat(3), _flat(3)
    np.testing.assert_allclose(
        latents.attribute_vector(pos, neg, scale=latents.OPENAI_VECTOR_SCALE),
        1.6 * (pos.mean(0) - neg.mean(0)), atol=1e-5)


def test_manipulate_adds_alpha_times_the_vector():
    z, v = _flat(1)[0], _flat(1)[0]
    np.testing.assert_allclose(latents.manipulate(z, v, 0.66), z + 0.66 * v, atol=1e-6)
    np.testing.assert_array_equal(latents.manipulate(z, v, 0.0), z)


# ---- expression transfer -----------------------------------------------------------

METHODS_KEEPING_THE_TARGET_MEAN = ("linear", "half", "std_rescale")


@pytest.fixture
def identities():
    source, target = _flat(5), _flat(3)
    return source, _stats(source), _stats(target)


@pytest.mark.parametrize("method", METHODS_KEEPING_THE_TARGET_MEAN)
def test_alpha_zero_gives_the_target_mean(identities, method):
    source, s, t = identities
    out = latents.transfer(method, source[2], s, t, alpha=0.0)
    np.testing.assert_allclose(out, t.mean, atol=1e-6)


def test_linear_with_the_source_as_its_own_target_and_alpha_one_gives_the_source(identities):
    source, s, _ = identities
    np.testing.assert_allclose(latents.transfer("linear", source[2], s, s, alpha=1.0),
                               source[2], atol=1e-6)


def test_linear_adds_alpha_times_the_expression_vector(identities):
    source, s, t = identities
    np.testing.assert_allclose(latents.transfer("linear", source[1], s, t, alpha=0.4),
                               t.mean + 0.4 * (source[1] - s.mean), atol=1e-6)


def test_half_is_linear_with_the_expression_vector_halved(identities):
    source, s, t = identities
    np.testing.assert_allclose(latents.transfer("half", source[0], s, t, alpha=0.8),
                               latents.transfer("linear", source[0], s, t, alpha=0.4), atol=1e-6)


def test_variance_at_alpha_one_is_the_published_formula(identities):
    source, s, t = identities
    eps = 1e-3
    published = ((source[0] - s.mean) / (s.var + eps) + t.mean) / (t.var + eps)
    np.testing.assert_allclose(latents.transfer("variance", source[0], s, t, 1.0, var_eps=eps),
                               published, rtol=1e-5)


def test_variance_alpha_scales_only_the_expression_term(identities):
    source, s, t = identities
    eps = 0.1
    expected = (0.3 * (source[0] - s.mean) / (s.var + eps) + t.mean) / (t.var + eps)
    np.testing.assert_allclose(latents.transfer("variance", source[0], s, t, 0.3, var_eps=eps),
                               expected, rtol=1e-5)


def test_variance_at_alpha_zero_is_the_target_mean_divided_by_its_variance(identities):
    source, s, t = identities
    np.testing.assert_allclose(latents.transfer("variance", source[0], s, t, 0.0, var_eps=0.5),
                               t.mean / (t.var + 0.5), rtol=1e-5)


def test_std_rescale_scales_the_expression_by_the_ratio_of_spreads(identities):
    source, s, t = identities
    eps = 1e-3
    ratio = (np.sqrt(t.var) + eps) / (np.sqrt(s.var) + eps)
    np.testing.assert_allclose(
        latents.transfer("std_rescale", source[3], s, t, 0.5, var_eps=eps),
        t.mean + 0.5 * (source[3] - s.mean) * ratio, rtol=1e-4, atol=1e-5)


def test_std_rescale_with_equal_spreads_is_linear(identities):
    source, s, t = identities
    t_same_spread = latents.IdentityStats(t.mean, s.var, t.count)
    np.testing.assert_allclose(latents.transfer("std_rescale", source[0], s, t_same_spread, 0.7),
                               latents.transfer("linear", source[0], s, t_same_spread, 0.7),
                               atol=1e-5)


@pytest.mark.parametrize("method", latents.TRANSFER_METHODS)
def test_transfer_on_levels_equals_transfer_on_flat(identities, method):
    source, s, t = identities
    level_stats = lambda st: latents.IdentityStats(  # noqa: E731
        latents.unflatten(st.mean, SHAPES), latents.unflatten(st.var, SHAPES), st.count)
    per_level = latents.transfer(method, _levels(source[:1]), level_stats(s), level_stats(t), 0.4)
    flat = latents.transfer(method, source[:1], s, t, 0.4)
    np.testing.assert_allclose(latents.flatten(per_level), flat, rtol=1e-6, atol=1e-6)


def test_unknown_method_is_an_error_listing_the_methods(identities):
    source, s, t = identities
    with pytest.raises(ValueError, match="unknown transfer method 'avg'.*linear"):
        latents.transfer("avg", source[0], s, t)


def test_unknown_space_is_an_error():
    with pytest.raises(ValueError, match="space must be one of"):
        latents.check_space("x")


# ---- alpha grids ------------------------------------------------------------------


def test_alpha_grid_is_the_repository_grid_without_float_drift():
    grid = latents.alpha_grid(0.30, 0.50, 0.02)
    assert grid == (0.30, 0.32, 0.34, 0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.48, 0.50)


def test_alpha_grid_rejects_a_non_positive_step():
    with pytest.raises(ValueError, match="step > 0"):
        latents.alpha_grid(0.0, 1.0, 0.0)
