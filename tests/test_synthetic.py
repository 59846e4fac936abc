"""Specification of the synthetic cartoon-face renderer (flowjax.synthetic)."""

import dataclasses

import jax
import numpy as np
import pytest

from flowjax import synthetic

SIZE = 64
N_AU = len(synthetic.AU_NAMES)

# Where on the canvas each AU's movement belongs, as a band of image rows
# (fractions of the height), written down independently of the renderer's own
# region masks: brows above the eyes, the eyes, cheeks between eyes and mouth,
# the mouth and jaw in the lower third.
AU_ROW_BANDS = {
    "AU01": (0.2, 0.5), "AU02": (0.2, 0.5), "AU04": (0.2, 0.5),
    "AU45": (0.4, 0.55), "AU06": (0.4, 0.65),
    "AU12": (0.6, 1.0), "AU15": (0.6, 1.0), "AU25": (0.6, 1.0), "AU26": (0.6, 1.0),
}


def _numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def _identities(n: int = 4) -> list[synthetic.IdentityParams]:
    """Single identities: ``n`` random ones plus every range's low and high extreme."""
    sampled = _numpy(synthetic.sample_identities(jax.random.key(7), n))
    rows = [jax.tree_util.tree_map(lambda a, i=i: a[i:i + 1], sampled) for i in range(n)]
    for end in (0, 1):
        extremes = {k: np.array([v[end]], np.float32) for k, v in synthetic.IDENTITY_RANGES.items()}
        rows.append(dataclasses.replace(rows[0], **extremes))
    return rows


def _pair(identity, aus_a, aus_b, size: int = SIZE) -> np.ndarray:
    """Render one identity twice (no nuisance): int array [2, S, S, 3]."""
    both = jax.tree_util.tree_map(lambda a: np.repeat(a, 2, axis=0), identity)
    aus = np.stack([aus_a, aus_b]).astype(np.float32)
    return np.asarray(synthetic.render(both, aus, None, size)).astype(int)


def _one_au(name: str, value: float) -> np.ndarray:
    aus = np.zeros(N_AU, np.float32)
    aus[synthetic.AU_NAMES.index(name)] = value
    return aus


def test_au_names_follow_openface_order():
    assert synthetic.AU_NAMES == ("AU01", "AU02", "AU04", "AU06", "AU12", "AU15", "AU25", "AU26", "AU45")


def test_same_seed_gives_identical_bytes():
    a = synthetic.make_dataset(3, 8, size=32)
    b = synthetic.make_dataset(3, 8, size=32)
    assert a.images.tobytes() == b.images.tobytes()
    np.testing.assert_array_equal(a.identity_ids, b.identity_ids)
    np.testing.assert_array_equal(a.aus, b.aus)


def test_different_seed_gives_different_images():
    a = synthetic.make_dataset(3, 8, size=32)
    b = synthetic.make_dataset(4, 8, size=32)
    assert a.images.tobytes() != b.images.tobytes()


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_render_returns_uint8_nhwc_at_power_of_two_sizes(size):
    identities = synthetic.sample_identities(jax.random.key(0), 2)
    aus = synthetic.sample_expressions(jax.random.key(1), 2, "strong")
    images = synthetic.render(identities, aus, synthetic.sample_nuisance(jax.random.key(2), 2), size)
    assert images.shape == (2, size, size, 3)
    assert images.dtype == np.uint8


@pytest.mark.parametrize("au", synthetic.AU_NAMES)
def test_each_au_changes_only_its_own_region(au):
    mask = synthetic.au_region_mask(au, SIZE)
    lo, hi = AU_ROW_BANDS[au]
    for identity in _identities():
        neutral, moved = _pair(identity, _one_au(au, 0.0), _one_au(au, 5.0))
        diff = np.abs(moved - neutral).max(axis=-1)
        changed = diff > 0
        outside = int((changed & ~mask).sum())
        assert outside == 0, f"{au} changed {outside} pixels outside its region"
        rows = np.nonzero(changed.any(axis=1))[0] / SIZE
        assert lo <= rows.min() and rows.max() <= hi, f"{au} changed rows {rows.min():.2f}..{rows.max():.2f}"
        assert (diff > 20).sum() >= 8, f"{au} at intensity 5 is barely visible: {(diff > 20).sum()} pixels"


@pytest.mark.parametrize("au", synthetic.AU_NAMES)
def test_au_effect_grows_steadily_with_intensity(au):
    identity = _identities(1)[0]
    effects = []
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        neutral, moved = _pair(identity, _one_au(au, 0.0), _one_au(au, value))
        effects.append(np.abs(moved - neutral).sum())
    assert np.all(np.diff(effects) > 0), f"{au}: effect vs intensity {effects}"
    # Roughly linear: no single step carries most of the change.
    assert max(np.diff([0.0, *effects])) < 0.5 * effects[-1], f"{au}: effect vs intensity {effects}"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(synthetic.IdentityParams)])
def test_each_identity_parameter_changes_the_face(field):
    base = _identities(1)[0]
    if field in synthetic.IDENTITY_RANGES:
        lo, hi = synthetic.IDENTITY_RANGES[field]
        a, b = np.array([lo], np.float32), np.array([hi], np.float32)
    else:  # an RGB colour
        a, b = np.full((1, 3), 0.2, np.float32), np.full((1, 3), 0.8, np.float32)
    pair = jax.tree_util.tree_map(lambda x, y: np.concatenate([x, y]),
                                  dataclasses.replace(base, **{field: a}), dataclasses.replace(base, **{field: b}))
    images = np.asarray(synthetic.render(pair, np.zeros((2, N_AU), np.float32), None, SIZE)).astype(int)
    changed = int((np.abs(images[1] - images[0]).max(axis=-1) > 10).sum())
    assert changed >= 4, f"{field} from low to high changed only {changed} pixels"


def test_edges_are_antialiased():
    identity = _identities(1)[0]
    image = _pair(identity, np.zeros(N_AU), np.zeros(N_AU))[0]
    background = image[0, 0]
    rows = range(int(0.6 * SIZE), int(0.75 * SIZE))  # the jaw line, between background and skin
    coverages = []
    for r in rows:
        col = np.argmax(np.abs(image[r] - background).max(axis=-1) > 2)  # first pixel off the background
        edge, inside = image[r, col], image[r, col + 3]
        channel = np.argmax(np.abs(inside - background))
        coverages.append((edge[channel] - background[channel]) / (inside[channel] - background[channel]))
    # A hard edge would make every first pixel fully skin (coverage 1).
    partial = [0.05 < c < 0.95 for c in coverages]
    assert sum(partial) >= 0.6 * len(rows), f"edge coverages {np.round(coverages, 2)}"


def test_zero_strength_nuisance_renders_the_canonical_face():
    identities = synthetic.sample_identities(jax.random.key(0), 2)
    aus = synthetic.sample_expressions(jax.random.key(1), 2, "mild")
    zero = synthetic.sample_nuisance(jax.random.key(2), 2, 0.0)
    some = synthetic.sample_nuisance(jax.random.key(2), 2, 1.0)
    canonical = np.asarray(synthetic.render(identities, aus, None, SIZE))
    np.testing.assert_array_equal(np.asarray(synthetic.render(identities, aus, zero, SIZE)), canonical)
    assert (np.asarray(synthetic.render(identities, aus, some, SIZE)) != canonical).any()


def test_each_image_depends_only_on_its_own_row():
    identities = _numpy(synthetic.sample_identities(jax.random.key(0), 2))
    aus = np.asarray(synthetic.sample_expressions(jax.random.key(1), 2, "mixed"))
    nuisance = _numpy(synthetic.sample_nuisance(jax.random.key(2), 2))
    swap = np.array([1, 0])
    images = np.asarray(synthetic.render(identities, aus, nuisance, SIZE))
    swapped_inputs = jax.tree_util.tree_map(lambda a: a[swap], (identities, aus, nuisance))
    swapped = np.asarray(synthetic.render(*swapped_inputs, size=SIZE))
    np.testing.assert_array_equal(swapped, images[swap])


def test_render_inside_a_callers_jit_matches_eager_render():
    identities = synthetic.sample_identities(jax.random.key(0), 2)
    aus = synthetic.sample_expressions(jax.random.key(1), 2, "strong")
    jitted = jax.jit(lambda i, a: synthetic.render(i, a, None, SIZE))
    eager = np.asarray(synthetic.render(identities, aus))
    np.testing.assert_array_equal(np.asarray(jitted(identities, aus)), eager)


def test_expression_strengths_span_mild_to_strong():
    key = jax.random.key(0)
    mild = np.asarray(synthetic.sample_expressions(key, 500, "mild"))
    strong = np.asarray(synthetic.sample_expressions(key, 500, "strong"))
    mixed = np.asarray(synthetic.sample_expressions(key, 500, "mixed"))
    assert mild.max() <= 1.5 and mild.min() >= 0.0
    assert np.all(strong.max(axis=1) >= 0.75 * 4.0)
    assert mixed.max() > 4.5 and (mixed.max(axis=1) < 1.5).mean() > 0.2


def test_prototypes_name_their_aus():
    smile = synthetic.prototype_aus("smile")
    assert smile[synthetic.AU_NAMES.index("AU12")] >= 4 and smile[synthetic.AU_NAMES.index("AU06")] >= 3
    assert synthetic.prototype_aus("blink")[synthetic.AU_NAMES.index("AU45")] == 5


def test_study_sources_are_other_identities_with_strong_expressions():
    study = synthetic.make_study(0, n_identities=1, photos_per_identity=2, n_expressions=2, size=32)
    assert study.targets.images.shape == (2, 32, 32, 3)
    assert study.sources.images.shape == (2, 32, 32, 3)
    assert study.expression_names == ("smile", "surprise")
    assert set(study.targets.identity_ids) == {0}
    np.testing.assert_array_equal(study.sources.identity_ids, [1, 2])
    np.testing.assert_array_equal(study.source_photos.identity_ids, [1, 1, 2, 2])
    prototypes = np.stack([synthetic.prototype_aus(name) for name in ("smile", "surprise")])
    np.testing.assert_array_equal(study.sources.aus, prototypes)
    assert study.targets.aus.max() <= 1.5 and study.source_photos.aus.max() <= 1.5
    assert study.identities.face_width.shape == (3,)


def test_shared_source_study_puts_every_expression_on_one_actor():
    study = synthetic.make_study(0, n_identities=2, photos_per_identity=2, n_expressions=3, size=32,
                                      shared_source=True)
    np.testing.assert_array_equal(study.sources.identity_ids, [2, 2, 2])
    np.testing.assert_array_equal(study.source_photos.identity_ids, [2, 2])
    assert study.identities.face_width.shape == (3,)
    assert study.expression_names == ("smile", "surprise", "anger")


def test_dataset_balances_identities_and_keeps_aus_in_range():
    photos = synthetic.make_dataset(0, 8, size=32, n_identities=2)
    assert photos.images.shape == (8, 32, 32, 3) and photos.images.dtype == np.uint8
    assert np.bincount(photos.identity_ids).tolist() == [4, 4]
    assert photos.aus.shape == (8, N_AU) and 0.0 <= photos.aus.min() and photos.aus.max() <= 5.0


def test_size_that_is_not_a_power_of_two_raises():
    identities = synthetic.sample_identities(jax.random.key(0), 1)
    with pytest.raises(ValueError, match=r"power of two.*got 48"):
        synthetic.render(identities, np.zeros((1, N_AU), np.float32), size=48)


def test_wrong_au_vector_length_raises():
    identities = synthetic.sample_identities(jax.random.key(0), 1)
    with pytest.raises(ValueError, match=r"\[N, 9\].*got shape \(1, 8\)"):
        synthetic.render(identities, np.zeros((1, 8), np.float32))


@pytest.mark.parametrize("bad", [-0.5, 5.5, np.nan])
def test_au_outside_zero_to_five_raises(bad):
    identities = synthetic.sample_identities(jax.random.key(0), 1)
    aus = np.zeros((1, N_AU), np.float32)
    aus[0, 4] = bad
    with pytest.raises(ValueError, match=r"\[0, 5\]") as error:
        synthetic.render(identities, aus)
    assert f"got {bad} for AU12" in str(error.value)


def test_identity_batch_mismatch_raises():
    identities = synthetic.sample_identities(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"identity.face_width must have shape \(3,\).*got \(2,\)"):
        synthetic.render(identities, np.zeros((3, N_AU), np.float32))


def test_unknown_expression_strength_raises():
    with pytest.raises(ValueError, match=r"strength must be one of .*got 'huge'"):
        synthetic.sample_expressions(jax.random.key(0), 2, "huge")
