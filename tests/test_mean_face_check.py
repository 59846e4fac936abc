"""tools/mean_face_check: issue #29's count of decoded mean faces identified as their own."""

import numpy as np

from flowjax import models, synthetic
from flowjax.models.glow import Glow
from tools import mean_face_check


class _ColourEmbedder:
    """Each image's mean colour, centred and L2-normalised: identities differ in skin,
    hair and background colours, so a pixel-mean face keeps its identity's colour."""

    def embed(self, images):
        v = np.asarray(images, np.float64).mean(axis=(1, 2)) - 127.5
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_linear_flows_mean_face_is_the_pixel_mean_and_is_identified():
    # Zero weights but the orthogonal 1x1 convs: the flow is linear, so the decoded mean
    # latent is the pixel mean of the identity's photos (up to the 5-bit quantisation).
    model = Glow(image_size=32, n_levels=2, depth=1, width=8)
    variables = models.random_variables(model, seed=0, scale=0.0)
    result = mean_face_check.mean_face_identification(
        model, variables, _ColourEmbedder(), seed=3, n_targets=4, photos=6, setting="easy")
    study = synthetic.make_study(3, 4, 6, 1, 32)
    quantised = study.targets.images // 8 * 8 + 4  # the mid-bin values the flow sees
    for t in range(4):
        pixel_mean = quantised[study.targets.identity_ids == t].mean(axis=0)
        assert np.abs(result["mean_faces"][t].astype(float) - pixel_mean).max() <= 8.5
    assert result["distances"].shape == (4, 4)
    assert list(result["nearest"]) == [0, 1, 2, 3] and result["identified"] == 4
    assert 0 < result["bits_per_dim_mid_bin"] < 10
    # the pixel-mean baseline: each identity's photos averaged in pixels, then scored
    for t in range(4):
        own = study.targets.images[study.targets.identity_ids == t].astype(float).mean(axis=0)
        np.testing.assert_array_equal(result["pixel_mean_faces"][t], own.round())
    assert list(result["pixel_nearest"]) == [0, 1, 2, 3] and result["pixel_identified"] == 4


def test_the_contact_sheet_shows_each_mean_face_beside_its_own_photos():
    model = Glow(image_size=32, n_levels=2, depth=1, width=8)
    variables = models.random_variables(model, seed=0, scale=0.0)
    result = mean_face_check.mean_face_identification(
        model, variables, _ColourEmbedder(), seed=3, n_targets=3, photos=4, setting="easy")
    sheet = mean_face_check.contact_sheet(result, n_photos=2)
    rows = np.split(sheet, 3, axis=0)  # one row per identity, stacked in order
    for t, row in enumerate(rows):
        # the strip's cells: pad 4, then [mean face, pixel mean, photo 0, photo 1], 32 wide
        cells = [row[-36:-4, 4 + i * 36: 36 + i * 36] for i in range(4)]
        np.testing.assert_array_equal(cells[0], result["mean_faces"][t])
        np.testing.assert_array_equal(cells[1], result["pixel_mean_faces"][t])
        own = result["photos"][result["identity_ids"] == t]
        np.testing.assert_array_equal(cells[2], own[0])
        np.testing.assert_array_equal(cells[3], own[1])


def test_counts_over_several_study_seeds_add_up_each_seeds_own_study():
    model = Glow(image_size=32, n_levels=2, depth=1, width=8)
    variables = models.random_variables(model, seed=0, scale=0.0)
    counts = mean_face_check.over_seeds(model, variables, _ColourEmbedder(), seeds=[3, 5],
                                        n_targets=3, photos=4, setting="easy")
    assert counts["targets"] == 6 and len(counts["per_seed"]) == 2
    assert counts["identified"] == sum(r["identified"] for r in counts["per_seed"])
    # each seed renders its own identities, in the order given
    np.testing.assert_array_equal(counts["per_seed"][1]["photos"],
                                  synthetic.make_study(5, 3, 4, 1, 32).targets.images)
    assert np.abs(counts["per_seed"][0]["photos"].astype(int)
                  - counts["per_seed"][1]["photos"]).mean() > 5
