"""The fake makers (flowjax.evaluation.fakes) and the detector's batches and metrics."""

import jax
import ml_collections
import numpy as np
import pytest

from flowjax import synthetic
from flowjax.evaluation import fakes


@pytest.fixture(scope="module")
def two_faces():
    identities = synthetic.sample_identities(jax.random.key(3), 2)
    return np.asarray(synthetic.render(identities, np.zeros((2, len(synthetic.AU_NAMES)), np.float32)))


def test_blend_is_the_weighted_mean_of_the_two_images_per_image():
    a = np.full((2, 4, 4, 3), 200, np.uint8)
    b = np.full((2, 4, 4, 3), 100, np.uint8)
    out = np.asarray(fakes.blend(a, b, np.array([0.25, 0.75])))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], 175)  # 0.75 * 200 + 0.25 * 100
    np.testing.assert_array_equal(out[1], 125)


def test_a_blend_of_two_faces_lies_between_them(two_faces):
    a, b = two_faces[:1], two_faces[1:]
    out = np.asarray(fakes.blend(a, b, 0.5)).astype(int)
    expected = (a.astype(int) + b.astype(int)) / 2
    assert np.abs(out - expected).max() <= 0.5


@pytest.mark.parametrize("band", sorted(fakes.BANDS))
def test_band_mask_is_one_inside_the_band_zero_outside_and_ramps_across_the_seam(band):
    size, feather = 64, 3.0
    mask = fakes.band_mask(band, size, feather)
    top, bottom, half_width = fakes.BANDS[band]
    y = (np.arange(size) + 0.5) * 2 / size - 1
    inside_rows = (y >= top) & (y <= bottom)
    inside_cols = np.abs(y) <= half_width
    np.testing.assert_array_equal(mask[np.ix_(inside_rows, inside_cols)], 1.0)
    far = np.maximum(np.maximum(top - y, y - bottom)[:, None], (np.abs(y) - half_width)[None]) * size / 2
    assert np.all(mask[far >= feather] == 0.0)
    seam = (far > 0) & (far < feather)
    assert seam.any() and np.all((mask[seam] > 0) & (mask[seam] < 1))
    # The ramp falls monotonically leaving the band downwards through the centre column.
    centre = size // 2
    below = mask[inside_rows.nonzero()[0][-1]:, centre]
    assert np.all(np.diff(below) <= 0) and below[0] == 1 and below[-1] == 0


def test_splice_changes_only_the_band_and_its_seam(two_faces):
    base, donor = two_faces[:1], two_faces[1:]
    mask = fakes.band_mask("mouth", 64, 3.0)
    out = np.asarray(fakes.splice(base, donor, mask))
    np.testing.assert_array_equal(out[0][mask == 0], base[0][mask == 0])
    np.testing.assert_array_equal(out[0][mask == 1], donor[0][mask == 1])
    seam = (mask > 0) & (mask < 1)
    differ = seam & np.any(base[0] != donor[0], axis=-1)
    between = (np.minimum(base[0], donor[0]) <= out[0]) & (out[0] <= np.maximum(base[0], donor[0]))
    assert differ.any() and np.all(between[seam])


def test_quantize_keeps_the_top_bits_as_a_glow_decoder_does():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    out = np.asarray(fakes.quantize(images, 5))
    assert set(np.unique(out)) == set(range(0, 256, 8))
    assert np.all(out <= images) and np.all(images - out < 8)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="band"):
        fakes.band_mask("nose")
    with pytest.raises(ValueError, match="feather"):
        fakes.band_mask("eyes", feather=0)
    with pytest.raises(ValueError, match="bits"):
        fakes.quantize(np.zeros((1, 2, 2, 3), np.uint8), 9)


# ---- the detector's batches and metrics (experiments/train_scorers_detector.py) ---------


@pytest.mark.slow
def test_detector_batch_labels_each_row_with_its_kind_and_blends_what_it_says():
    from experiments import train_scorers, train_scorers_detector as td

    c = ml_collections.ConfigDict(dict(reals=3, fakes_per_kind=2, blend_weight=(0.5, 0.5),
                                       feather=3.0, quantize_bits=5, quantize_fraction=0.0))
    images, kinds = td.detector_batch(jax.random.key(0), c, 1.0, train_scorers.render_batch)
    kinds = np.asarray(kinds)
    assert images.shape == (3 + 3 * 2, 64, 64, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(kinds[:3], 0)
    np.testing.assert_array_equal(kinds[3:7], [1, 1, 2, 2])
    assert set(kinds[7:]) <= {3, 4}
    # The same key renders the same pairs: the first blend is their mean.
    pairs = np.asarray(train_scorers.render_batch(jax.random.split(jax.random.key(0), 5)[1], 6, 2, 1.0)[0])
    expected = (pairs[0].astype(int) + pairs[1].astype(int)) / 2
    assert np.abs(np.asarray(images[3]).astype(int) - expected).max() <= 0.5


def test_roc_auc_counts_ordered_pairs_and_half_ties():
    from experiments.train_scorers_detector import roc_auc

    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool)) == 1.0
    assert roc_auc(np.array([0.9, 0.1]), np.array([False, True])) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.7, 0.1]), np.array([1, 0, 1, 0], bool)) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="positives and negatives"):
        roc_auc(np.array([0.5]), np.array([True]))


def test_evaluate_detector_reports_false_positives_and_each_kinds_detection_rate():
    from experiments.train_scorers_detector import KIND_NAMES, evaluate_detector

    kinds = np.array([0, 0, 0, 0, 1, 1, KIND_NAMES.index("glow_sample")])
    logits = np.array([-3.0, -2.0, -1.0, 0.5, 2.0, -0.5, 4.0])  # one real above 0 (p > 0.5)
    out = evaluate_detector(lambda images: logits[:, None], np.zeros((7, 1)), kinds, 0.5)
    assert out["false_positive_rate"] == 0.25 and out["n_reals"] == 4
    assert set(out["per_kind"]) == {"blend_same_identity", "glow_sample"}
    assert out["per_kind"]["blend_same_identity"]["detection_rate"] == 0.5
    assert out["per_kind"]["glow_sample"]["detection_rate"] == 1.0
    # Fakes 2.0, -0.5, 4.0 against reals -3, -2, -1, 0.5: 4 + 3 + 4 of 12 pairs ordered.
    assert out["auc"] == pytest.approx(11 / 12)
    assert out["per_kind"]["glow_sample"]["mean_realism"] == -4.0
