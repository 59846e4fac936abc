"""Evaluation metrics, checked against values worked out by hand."""

import numpy as np
import pytest

from flowjax.evaluation import metrics
from flowjax.evaluation.action_units import OPENFACE_INTENSITY_AUS as AUS


def intensities(**values):
    """An OpenFace intensity vector (17 AUs) with the given AUs set, others 0."""
    out = np.zeros(len(AUS))
    for name, v in values.items():
        out[AUS.index(name)] = v
    return out


# --- identity ----------------------------------------------------------------


def test_identity_distance_is_euclidean():
    assert metrics.identity_distance([3.0, 4.0], [0.0, 0.0]) == pytest.approx(5.0)


def test_identity_distances_to_target_and_source_means_broadcast():
    generated = np.array([[1.0, 0.0], [0.0, 2.0]])
    d = metrics.identity_distances(generated, target_mean=[0.0, 0.0], source_mean=[1.0, 0.0])
    np.testing.assert_allclose(d.to_target, [1.0, 2.0])
    np.testing.assert_allclose(d.to_source, [0.0, np.sqrt(5.0)])


def test_identity_distance_rejects_embeddings_of_different_sizes():
    with pytest.raises(ValueError, match="embedding sizes differ"):
        metrics.identity_distance(np.zeros((2, 512)), np.zeros(128))


# --- AU mean error -----------------------------------------------------------


def test_au_mean_error_over_thesis_aus_by_hand():
    source = intensities(
        AU06=2.0, AU07=1.0, AU10=0.5, AU12=3.0, AU14=0.0, AU20=0.0, AU25=1.5, AU45=0.2
    )
    generated = intensities(
        AU06=1.5, AU07=1.0, AU10=1.0, AU12=1.0, AU14=0.4, AU20=0.0, AU25=2.5, AU45=0.0
    )
    # |diffs| on AU06..AU45: 0.5 + 0 + 0.5 + 2.0 + 0.4 + 0 + 1.0 + 0.2 = 4.6; / 8
    assert metrics.au_mean_error(generated, source, AUS) == pytest.approx(0.575)


def test_au_mean_error_ignores_aus_outside_the_set():
    source = intensities(AU12=3.0)
    generated = intensities(AU12=2.0, AU01=5.0, AU04=np.nan)
    assert metrics.au_mean_error(generated, source, AUS) == pytest.approx(1.0 / 8)


def test_au_mean_error_over_active_aus_by_hand():
    # Active above 1.0: AU12 (2.5) and AU25 (1.8); AU06 at exactly 1.0 is not.
    source = intensities(AU06=1.0, AU12=2.5, AU25=1.8)
    generated = intensities(AU06=0.0, AU12=2.0, AU25=0.8)
    assert metrics.active_aus(source, AUS) == ("AU12", "AU25")
    # (|2.0 - 2.5| + |0.8 - 1.8|) / 2 = 0.75
    assert metrics.au_mean_error(generated, source, AUS, aus="active") == pytest.approx(0.75)


def test_active_set_is_chosen_per_source_expression():
    sources = np.stack([intensities(AU12=2.0), intensities(AU04=2.0)])
    generated = np.stack([intensities(AU12=1.0), intensities(AU04=0.0, AU12=5.0)])
    errors = metrics.au_mean_error(generated, sources, AUS, aus="active")
    np.testing.assert_allclose(errors, [1.0, 2.0])


def test_source_activating_no_au_raises():
    with pytest.raises(ValueError, match="activates no AU above 1.0"):
        metrics.au_mean_error(intensities(), intensities(AU12=0.4), AUS, aus="active")


def test_source_without_face_gives_nan_error_under_active_set():
    source = np.full(len(AUS), np.nan)
    assert np.isnan(metrics.au_mean_error(intensities(AU12=1.0), source, AUS, aus="active"))


def test_au_error_broadcasts_over_alpha_grid():
    source = intensities(AU12=2.0)
    generated = np.stack([intensities(AU12=a) for a in (0.0, 1.0, 2.0)])
    np.testing.assert_allclose(metrics.au_mean_error(generated, source, AUS), [0.25, 0.125, 0.0])


def test_au_missing_from_scorer_is_named():
    names = tuple(n for n in AUS if n != "AU45")
    with pytest.raises(ValueError, match="AU45 not among the scorer's AUs"):
        metrics.au_mean_error(np.zeros(16), np.zeros(16), names)


def test_unknown_au_set_name_is_rejected():
    with pytest.raises(ValueError, match="'active'"):
        metrics.au_mean_error(intensities(), intensities(), AUS, aus="activated")


def test_image_without_face_gives_nan_error():
    generated = np.full(len(AUS), np.nan)
    assert np.isnan(metrics.au_mean_error(generated, intensities(AU12=2.0), AUS))


# --- best alpha and trend ----------------------------------------------------


def test_best_alpha_has_lowest_error():
    best = metrics.best_alpha([0.5, 1.0, 1.5], [0.4, 0.1, 0.3])
    assert best.alpha == 1.0 and best.index == 1 and best.error == pytest.approx(0.1)


def test_best_alpha_ties_go_to_smallest_alpha_even_on_unsorted_grid():
    best = metrics.best_alpha([1.5, 0.5, 1.0], [0.1, 0.1, 0.3])
    assert best.alpha == 0.5 and best.index == 1


def test_best_alpha_skips_nan_and_marks_pairs_without_any_error():
    best = metrics.best_alpha([0.5, 1.0], [[np.nan, 0.2], [np.nan, np.nan]])
    np.testing.assert_allclose(best.alpha, [1.0, np.nan])
    np.testing.assert_array_equal(best.index, [1, -1])


def test_best_alpha_rejects_errors_not_matching_grid():
    with pytest.raises(ValueError, match="match the alpha grid"):
        metrics.best_alpha([0.5, 1.0], np.zeros((2, 3)))


def test_general_trend_averages_best_alpha_error_and_identity_by_hand():
    alphas = [0.5, 1.0, 1.5]
    au_errors = np.array([[[0.4, 0.1, 0.3]], [[0.2, 0.6, 0.6]], [[np.nan] * 3]])  # [E=3, T=1, A]
    identity = np.array([[[0.5, 0.7, 0.9]], [[0.6, 0.8, 1.0]], [[0.6, 0.8, 1.0]]])
    trend = metrics.general_trend(alphas, au_errors, identity)
    # Pair 1: alpha 1.0, error 0.1, distance 0.7. Pair 2: alpha 0.5, 0.2, 0.6. Pair 3 skipped.
    assert trend.mean_best_alpha == pytest.approx(0.75)
    assert trend.mean_au_error == pytest.approx(0.15)
    assert trend.mean_identity_distance == pytest.approx(0.65)
    assert (trend.n_pairs, trend.n_skipped) == (2, 1)


# --- fake detection ------------------------------------------------------------


def test_detection_rate_counts_probabilities_at_or_above_threshold():
    assert metrics.detection_rate([0.2, 0.5, 0.9, 0.4]) == pytest.approx(0.5)


def test_detection_rate_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match="logits"):
        metrics.detection_rate([0.2, 3.1])


def test_fake_detection_rate_is_none_without_detector():
    assert metrics.fake_detection_rate(None, np.zeros((2, 4, 4, 3), np.uint8)) is None


def test_fake_detection_rate_uses_the_configured_detector():
    images = np.zeros((4, 4, 4, 3), np.uint8)
    images[:3] = 255

    def detector(x):
        return x.mean(axis=(1, 2, 3)) / 255.0

    assert metrics.fake_detection_rate(detector, images) == pytest.approx(0.75)


def test_fake_detector_with_wrong_output_shape_is_rejected():
    with pytest.raises(ValueError, match="one probability per image"):
        metrics.fake_detection_rate(lambda x: np.zeros(1), np.zeros((2, 4, 4, 3), np.uint8))
