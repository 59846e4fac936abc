"""tools/mean_face_check: issue #29's count of decoded mean faces identified as their own."""

import jax
import numpy as np
import pytest

from flowjax import models, synthetic
from flowjax.models.glow import Glow
from flowjax.transfer import latents, sweep
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
    # in this flow a latent's length is the image's contrast about mid-grey: the mean of six
    # photos is flatter than they are, its norm-restored mean face is not
    def contrast(image):
        return np.linalg.norm(image.astype(float) - 127.5)
    for t in range(4):
        own = study.targets.images[study.targets.identity_ids == t]
        mean_face, restored = result["mean_faces"][t], result["restored_mean_faces"][t]
        assert contrast(restored) > contrast(mean_face) + 50
        assert abs(contrast(restored) - np.mean([contrast(p) for p in own])) < 0.2 * contrast(restored)
    assert 0 <= result["restored_identified"] <= 4
    # the canonical face: the identity with no AU and no nuisance, the ideal mean face
    for t in range(4):
        identity = jax.tree_util.tree_map(lambda a: np.asarray(a)[t:t + 1], study.identities)
        neutral = synthetic.render(identity, np.zeros((1, len(synthetic.AU_NAMES)), np.float32),
                                   None, 32)
        np.testing.assert_array_equal(result["canonical_faces"][t], neutral[0])
    assert 0 <= result["canonical_identified"] <= 4


def test_the_z_mean_face_decodes_the_mean_of_the_photos_raw_latents():
    # Random weights, so a level's prior depends on the level above and z is not eps: the
    # z mean face is the raw latents' mean decoded in z, a different image from the eps one.
    model = Glow(image_size=32, n_levels=2, depth=1, width=8)
    variables = models.random_variables(model, seed=1, scale=0.3)
    result = mean_face_check.mean_face_identification(
        model, variables, _ColourEmbedder(), seed=3, n_targets=3, photos=4, setting="easy")
    targets = synthetic.make_study(3, 3, 4, 1, 32).targets
    encoding = sweep.encode_images(model, variables, targets.images, progress=False)
    z_means = [np.stack([np.asarray(level)[targets.identity_ids == t].mean(axis=0)
                         for t in range(3)]) for level in encoding.z]
    expected = sweep.decode_latents(model, variables, np.asarray(latents.flatten(z_means)),
                                    space="z", progress=False)
    np.testing.assert_array_equal(result["z_mean_faces"], expected)
    assert np.abs(result["z_mean_faces"].astype(int) - result["mean_faces"]).max() > 8
    assert result["z_distances"].shape == (3, 3)
    assert result["z_identified"] == int((result["z_nearest"] == np.arange(3)).sum())


class _LookupEmbedder:
    """A scorer that knows the study's photos: each photo's embedding is its identity's
    one-hot, except the photos listed in ``wrong``, given the next identity; any other
    image (a mean face) is equally far from every identity."""

    def __init__(self, photos, identity_ids, n_identities, wrong=()):
        self.known = {}
        for i, (photo, t) in enumerate(zip(photos, identity_ids)):
            said = (t + 1) % n_identities if i in wrong else t
            self.known[photo.tobytes()] = np.eye(n_identities)[said]
        self.n = n_identities

    def embed(self, images):
        return np.stack([self.known.get(np.asarray(image).tobytes(),
                                        np.full(self.n, self.n ** -0.5)) for image in images])


def test_the_scorers_ceiling_counts_the_photos_it_gives_their_own_identity():
    model = Glow(image_size=32, n_levels=2, depth=1, width=8)
    variables = models.random_variables(model, seed=0, scale=0.0)
    targets = synthetic.make_study(3, 3, 4, 1, 32).targets
    for wrong, expected in (((), 12), ((0, 5), 10)):
        embedder = _LookupEmbedder(targets.images, targets.identity_ids, 3, wrong)
        result = mean_face_check.mean_face_identification(
            model, variables, embedder, seed=3, n_targets=3, photos=4, setting="easy")
        assert result["photos_identified"] == expected


def test_the_contact_sheet_shows_each_mean_face_beside_its_own_photos():
    model = Glow(image_size=32, n_levels=2, depth=1, width=8)
    variables = models.random_variables(model, seed=0, scale=0.0)
    result = mean_face_check.mean_face_identification(
        model, variables, _ColourEmbedder(), seed=3, n_targets=3, photos=4, setting="easy")
    sheet = mean_face_check.contact_sheet(result, n_photos=2)
    rows = np.split(sheet, 3, axis=0)  # one row per identity, stacked in order
    for t, row in enumerate(rows):
        # the strip's cells: pad 4, then [mean face, z mean face, norm-restored mean face,
        # pixel mean, canonical face, photo 0, photo 1], 32 wide
        cells = [row[-36:-4, 4 + i * 36: 36 + i * 36] for i in range(7)]
        np.testing.assert_array_equal(cells[0], result["mean_faces"][t])
        np.testing.assert_array_equal(cells[1], result["z_mean_faces"][t])
        np.testing.assert_array_equal(cells[2], result["restored_mean_faces"][t])
        np.testing.assert_array_equal(cells[3], result["pixel_mean_faces"][t])
        np.testing.assert_array_equal(cells[4], result["canonical_faces"][t])
        own = result["photos"][result["identity_ids"] == t]
        np.testing.assert_array_equal(cells[5], own[0])
        np.testing.assert_array_equal(cells[6], own[1])


def test_counts_over_several_study_seeds_add_up_each_seeds_own_study():
    model = Glow(image_size=32, n_levels=2, depth=1, width=8)
    variables = models.random_variables(model, seed=0, scale=0.0)
    counts = mean_face_check.over_seeds(model, variables, _ColourEmbedder(), seeds=[3, 5],
                                        n_targets=3, photos=4, setting="easy")
    assert counts["targets"] == 6 and len(counts["per_seed"]) == 2
    for key in ("identified", "z_identified", "pixel_identified", "restored_identified", "canonical_identified",
                "photos_identified", "restored_nonfinite"):
        assert counts[key] == sum(r[key] for r in counts["per_seed"])
    assert counts["photos"] == 2 * 3 * 4
    # each seed renders its own identities, in the order given
    np.testing.assert_array_equal(counts["per_seed"][1]["photos"],
                                  synthetic.make_study(5, 3, 4, 1, 32).targets.images)
    assert np.abs(counts["per_seed"][0]["photos"].astype(int)
                  - counts["per_seed"][1]["photos"]).mean() > 5


def test_a_norm_restored_mean_has_the_means_direction_at_the_photos_own_length():
    rng = np.random.default_rng(0)
    ids = np.array([0, 0, 0, 1, 1])
    levels = [rng.normal(size=(5, 4, 4, 2)), rng.normal(size=(5, 2, 2, 8))]
    means = [np.stack([level[ids == t].mean(axis=0) for t in range(2)]) for level in levels]
    restored = mean_face_check.norm_restored_means(levels, means, ids)
    for level, mean, fixed in zip(levels, means, restored):
        for t in range(2):
            photo_norm = np.linalg.norm(level[ids == t].reshape(-1, level[0].size), axis=1)
            # each level rescaled by its own factor: the length of the identity's photos
            np.testing.assert_allclose(np.linalg.norm(fixed[t]), photo_norm.mean(), rtol=1e-12)
            cosine = (fixed[t] * mean[t]).sum() / np.linalg.norm(fixed[t]) / np.linalg.norm(mean[t])
            np.testing.assert_allclose(cosine, 1.0, rtol=1e-12)
    # photos that agree: their mean is already as long as they are, and is kept as it is
    same = [np.repeat(level[:1], 5, axis=0) for level in levels]
    same_means = [np.repeat(level[:1], 2, axis=0) for level in levels]
    for fixed, mean in zip(mean_face_check.norm_restored_means(same, same_means, ids), same_means):
        np.testing.assert_allclose(fixed, mean, rtol=1e-12)
    # only the levels asked for are restored; the top (-1) keeps its plain mean
    only_finest = mean_face_check.norm_restored_means(levels, means, ids, which=[0])
    np.testing.assert_array_equal(only_finest[0], restored[0])
    np.testing.assert_array_equal(only_finest[1], means[1])
    np.testing.assert_array_equal(
        mean_face_check.norm_restored_means(levels, means, ids, which=[-1])[1], restored[1])
    with pytest.raises(ValueError, match="restored levels \\[2\\]: this model has 2 levels"):
        mean_face_check.norm_restored_means(levels, means, ids, which=[2])


def test_a_latent_the_glow_cannot_decode_is_left_black_and_the_others_are_decoded():
    model = Glow(image_size=32, n_levels=2, depth=1, width=8)
    variables = models.random_variables(model, seed=0, scale=0.0)
    flat = np.random.default_rng(0).normal(size=(3, 32 * 32 * 3)).astype(np.float32)
    whole, finite = mean_face_check.decoded_where_finite(model, variables, flat)
    assert finite.all()
    flat[1, 5] = np.inf
    images, finite = mean_face_check.decoded_where_finite(model, variables, flat)
    assert list(finite) == [True, False, True]
    np.testing.assert_array_equal(images[[0, 2]], whole[[0, 2]])
    assert not images[1].any()
