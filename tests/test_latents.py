"""Specification of flowjax.transfer.latents' arithmetic: statistics, attributes, transfer.

Pure functions, checked against numpy on flat and per-level latents (the
decoding side is in test_sweep.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from flowjax.transfer import latents

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


# ---- source transforms: per-level weights and the expression subspace -----------------


def _actor(n: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An actor's latents [n, D], two of them as the sources, and a target mean [D]."""
    photos = _flat(n)
    return photos, photos[:2], _flat(1)[0]


def _transferred(method: str, sources, photos, target_mean, alpha: float, **options):
    moved, arithmetic = latents.prepare_sources(method, sources, photos, shapes=SHAPES, **options)
    stats = _stats(photos)
    target = latents.IdentityStats(target_mean, np.ones_like(target_mean), 1)
    return np.asarray(latents.transfer(arithmetic, moved, stats, target, alpha))


def test_fine_keeps_the_target_mean_on_the_top_level_and_moves_the_finer_ones_like_linear():
    photos, sources, target_mean = _actor()
    fine = _levels(_transferred("fine", sources, photos, target_mean, 0.8))
    linear = _levels(_transferred("linear", sources, photos, target_mean, 0.8))
    top_target = np.broadcast_to(_levels(target_mean[None])[1], fine[1].shape)
    np.testing.assert_allclose(fine[1], top_target, atol=1e-6)
    np.testing.assert_allclose(fine[0], linear[0], atol=1e-5)
    assert np.abs(linear[1] - top_target).max() > 0.1, "linear moves the top level"


def test_top_moves_only_the_top_level_and_levels_scales_each_level_by_its_weight():
    photos, sources, target_mean = _actor()
    top = _levels(_transferred("top", sources, photos, target_mean, 1.0))
    np.testing.assert_allclose(top[0], np.broadcast_to(_levels(target_mean[None])[0],
                                                       top[0].shape), atol=1e-6)
    linear = _transferred("linear", sources, photos, target_mean, 1.0)
    weighted = _transferred("levels", sources, photos, target_mean, 1.0, level_weights=(0.5, 2))
    expected = target_mean + (linear - target_mean) * latents.flat_level_weights(SHAPES, (0.5, 2))
    np.testing.assert_allclose(weighted, expected, atol=1e-5)


def test_levels_needs_one_finite_weight_per_level():
    photos, sources, _ = _actor()
    with pytest.raises(ValueError, match="needs level_weights.*2 for this model"):
        latents.prepare_sources("levels", sources, photos, shapes=SHAPES)
    with pytest.raises(ValueError, match=r"level_weights \(1.0, 0.0, 1.0\) must be 2"):
        latents.prepare_sources("levels", sources, photos, shapes=SHAPES,
                                level_weights=(1, 0, 1))
    with pytest.raises(ValueError, match="pixels have no levels"):
        latents.prepare_sources("fine", sources, photos)  # no shapes: no levels


def test_subspace_of_full_rank_is_linear_for_sources_among_the_actors_photos():
    photos, sources, target_mean = _actor(6)  # 6 photos: 5 displacement directions
    for rank in (5, 6):  # the sixth direction has no data and is dropped
        np.testing.assert_allclose(
            _transferred("subspace", sources, photos, target_mean, 0.7, subspace_rank=rank),
            _transferred("linear", sources, photos, target_mean, 0.7), atol=1e-4)


def test_subspace_of_rank_zero_gives_the_target_mean_and_a_partial_rank_moves_less():
    photos, sources, target_mean = _actor(6)
    np.testing.assert_allclose(
        _transferred("subspace", sources, photos, target_mean, 1.3, subspace_rank=0),
        np.broadcast_to(target_mean, (2, D)), atol=1e-6)
    partial = _transferred("subspace", sources, photos, target_mean, 1.0, subspace_rank=2)
    linear = _transferred("linear", sources, photos, target_mean, 1.0)
    assert (np.linalg.norm(partial - target_mean, axis=1)
            < np.linalg.norm(linear - target_mean, axis=1) - 1e-3).all()


def test_expression_basis_is_orthonormal_principal_directions():
    rng = np.random.default_rng(1)
    direction = np.zeros(D, np.float32)
    direction[3] = 1.0
    displacements = np.outer(rng.standard_normal(8) * 10, direction) + 0.01 * _flat(8)
    basis = latents.expression_basis(displacements - displacements.mean(0), 3)
    assert basis.shape == (3, D)
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-5)
    assert abs(basis[0, 3]) > 0.99, "the first direction is the dominant one"
    with pytest.raises(ValueError, match=r"subspace_rank must be an integer in \[0, 8\]"):
        latents.expression_basis(displacements, 9)


def test_prepare_sources_passes_arithmetic_methods_through_and_names_every_method():
    photos, sources, _ = _actor()
    moved, method = latents.prepare_sources("variance", sources, photos)
    assert method == "variance"
    np.testing.assert_array_equal(moved, sources)
    with pytest.raises(ValueError, match="unknown transfer method 'avg'.*subspace"):
        latents.prepare_sources("avg", sources, photos)


def test_a_photo_anchor_is_that_photos_latent_with_the_identitys_variance():
    rng = np.random.default_rng(1)
    targets = [rng.normal(size=(n, 5)).astype(np.float32) for n in (3, 4)]
    means = latents.anchor_stats(targets, latents.anchor_photo("mean", 0))
    photos = latents.anchor_stats(targets, latents.anchor_photo("photo", 2))
    np.testing.assert_allclose(means.mean, [t.mean(0) for t in targets], rtol=1e-6)
    np.testing.assert_array_equal(photos.mean, [t[2] for t in targets])
    np.testing.assert_allclose(photos.var, means.var)
    with pytest.raises(ValueError,
                       match=r"needs 4 photos of every target; these have fewer: a \(3\)"):
        latents.anchor_stats(targets, 3, names=["a", "b"])
    with pytest.raises(ValueError, match="target must be one of"):
        latents.anchor_photo("photos", 0)
