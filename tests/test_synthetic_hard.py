"""Specification of the synthetic settings: "easy" unchanged, "hard" (flowjax.synthetic.hard)."""

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from flowjax import synthetic
from flowjax.evaluation import ground_truth
from flowjax.synthetic import hard as synthetic_hard

SIZE = 64
N_AU = len(synthetic.AU_NAMES)


def _rows(tree, rows):
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[np.asarray(rows)], tree)


def _aus(**values) -> np.ndarray:
    aus = np.zeros(N_AU, np.float32)
    for name, value in values.items():
        aus[synthetic.AU_NAMES.index(name)] = value
    return aus


def _plain_identity(glasses: float = 0.0) -> synthetic_hard.HardIdentity:
    """One hard identity with light skin, blond hair and no texture: dark pixels are pupils and nostrils."""
    hid = _rows(synthetic.sample_identities(jax.random.key(3), 1, "hard"), [0])
    base = dataclasses.replace(hid.base, skin=np.array([[0.95, 0.82, 0.72]], np.float32),
                               hair_color=np.array([[0.85, 0.70, 0.40]], np.float32),
                               iris_color=np.array([[0.25, 0.45, 0.75]], np.float32))
    return dataclasses.replace(hid, base=base, texture_amount=np.zeros(1, np.float32),
                               glasses=np.full(1, glasses, np.float32))


def _render_hard(identity, aus, **nuisance_fields) -> np.ndarray:
    """Render ``identity`` (one row) once per row of ``aus`` under canonical nuisance plus the given fields."""
    aus = np.atleast_2d(np.asarray(aus, np.float32))
    n = len(aus)
    nz = synthetic.no_nuisance(n, "hard")
    nz = dataclasses.replace(nz, **{k: np.broadcast_to(np.asarray(v, np.float32), (n,)).copy()
                                    for k, v in nuisance_fields.items()})
    identity = _rows(identity, np.zeros(n, int))
    return np.asarray(synthetic.render(identity, aus, nz, SIZE, "hard")).astype(float)


# ---- the easy setting is today's renderer -----------------------------------------------


# Run in a fresh interpreter on the CPU with no XLA_FLAGS: conftest lowers the
# optimisation level for compile speed, which changes the sampled floats'
# last bits (the samplers' jit is not pinned), so a pin must fix the flags.
_EASY_DIGESTS = """
import hashlib, numpy as np
from flowjax import synthetic
h = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
print(h(synthetic.make_dataset(3, 16, 32).images))
st = synthetic.make_study(1, 2, 3, 2, 32, shared_source=True)
print(h(np.concatenate([st.targets.images, st.source_photos.images, st.sources.images])))
"""


def test_easy_renders_are_bit_identical_to_main_before_the_settings():
    # Regression pin: these sha256 were computed with the code of main at
    # bb2788b (before the settings existed), by this same snippet, CPU backend,
    # jax 0.10.2. The easy path must keep its sampled values and pixel arithmetic.
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "",
           "PYTHONPATH": os.pathsep.join([str(Path(synthetic.__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _EASY_DIGESTS], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    assert out == ["171d2a2367aedf02997cac201b3e3297b6c3e3b66ee6229f3d93abf5dd49323f",
                   "c528d93a868e1124e45debf4d33bddf948c231bc94f0216eccb25ef7d5d2b983"]
    assert synthetic.make_study(1, 1, 1, 1, 32).setting == "easy"


def test_easy_is_the_default_everywhere():
    a = synthetic.make_dataset(5, 8, 32)
    b = synthetic.make_dataset(5, 8, 32, setting="easy")
    assert a.images.tobytes() == b.images.tobytes()
    assert isinstance(synthetic.sample_identities(jax.random.key(0), 2), synthetic.IdentityParams)


@pytest.mark.parametrize("call", [
    lambda: synthetic.make_dataset(0, 4, 32, setting="medium"),
    lambda: synthetic.make_study(0, 1, 2, 1, 32, setting="medium"),
    lambda: synthetic.sample_nuisance(jax.random.key(0), 2, setting="medium"),
    lambda: synthetic.render(synthetic.sample_identities(jax.random.key(0), 1), np.zeros((1, N_AU)),
                             size=32, setting="medium"),
])
def test_unknown_setting_raises_naming_the_choices(call):
    with pytest.raises(ValueError, match=r"unknown synthetic setting 'medium'.*'easy', 'hard'"):
        call()


def test_identity_of_the_wrong_setting_raises():
    easy = synthetic.sample_identities(jax.random.key(0), 1)
    with pytest.raises(ValueError, match="HardIdentity"):
        synthetic.render(easy, np.zeros((1, N_AU)), size=32, setting="hard")
    hard = synthetic.sample_identities(jax.random.key(0), 1, "hard")
    with pytest.raises(ValueError, match="IdentityParams"):
        synthetic.render(hard, np.zeros((1, N_AU)), size=32)


def test_hard_nuisance_strength_outside_zero_to_one_raises():
    with pytest.raises(ValueError, match=r"hard nuisance strength must lie in \[0, 1\]"):
        synthetic.sample_nuisance(jax.random.key(0), 2, 1.5, "hard")


# ---- the hard setting: deterministic, vectorised -----------------------------------------


def test_hard_identity_shares_the_easy_identity_of_the_same_key():
    easy = synthetic.sample_identities(jax.random.key(9), 6)
    hard = synthetic.sample_identities(jax.random.key(9), 6, "hard")
    for field in dataclasses.fields(easy):
        np.testing.assert_array_equal(getattr(hard.base, field.name), getattr(easy, field.name))


@pytest.mark.slow
def test_hard_dataset_is_deterministic_and_each_image_independent_of_its_batch():
    a = synthetic.make_dataset(4, 8, 32, setting="hard")
    b = synthetic.make_dataset(4, 8, 32, setting="hard")
    assert a.images.tobytes() == b.images.tobytes()
    key = jax.random.key(1)
    identity = synthetic.sample_identities(key, 6, "hard")
    aus = synthetic.sample_expressions(key, 6, "mixed")
    nuisance = synthetic.sample_nuisance(key, 6, 1.0, "hard")
    batch = np.asarray(synthetic.render(identity, aus, nuisance, 32, "hard"))
    pair = np.asarray(synthetic.render(_rows(identity, [4, 1]), np.asarray(aus)[[4, 1]],
                                       _rows(nuisance, [4, 1]), 32, "hard"))
    np.testing.assert_array_equal(pair, batch[[4, 1]])


def test_hard_render_inside_a_callers_jit_matches_eager_render():
    key = jax.random.key(2)
    identity = synthetic.sample_identities(key, 3, "hard")
    aus = synthetic.sample_expressions(key, 3)
    nuisance = synthetic.sample_nuisance(key, 3, 1.0, "hard")
    inside = jax.jit(lambda i, a, n: synthetic.render(i, a, n, 32, "hard"))(identity, aus, nuisance)
    eager = synthetic.render(identity, aus, nuisance, 32, "hard")
    assert np.abs(np.asarray(inside, int) - np.asarray(eager, int)).max() <= 1


# ---- each hard factor does something ------------------------------------------------------


def _feature_centroid(field: str, a, b, **pose) -> np.ndarray:
    """(x, y) in pixels of the pixels that change when only ``field`` of the base identity changes, under ``pose``."""
    identity = _plain_identity()

    def render(value):
        base = dataclasses.replace(identity.base, **{field: np.array([value], np.float32)})
        return _render_hard(dataclasses.replace(identity, base=base), np.zeros((1, N_AU)), **pose)[0]

    weight = np.abs(render(a) - render(b)).sum(-1)
    ys, xs = np.mgrid[:SIZE, :SIZE]
    return np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()


def test_pose_moves_the_features_by_their_depth_nose_most():
    # The irises are the pixels a change of iris colour changes; the nose
    # those a change of nose width changes.
    def irises(**pose):
        return _feature_centroid("iris_color", [0.25, 0.45, 0.75], [0.35, 0.20, 0.10], **pose)

    def nose(**pose):
        return _feature_centroid("nose_width", 0.05, 0.08, **pose)

    yaw, pitch = math.radians(15), math.radians(15)
    iris_shift, nose_shift = irises(yaw=yaw) - irises(), nose(yaw=yaw) - nose()
    assert iris_shift[0] > 1.0, iris_shift  # positive yaw: the face turns, features move right
    assert nose_shift[0] > iris_shift[0] + 1.0, (nose_shift, iris_shift)  # the nose is in front
    assert (irises(yaw=-yaw) - irises())[0] < -1.0
    assert (irises(pitch=pitch) - irises())[1] > 1.0  # positive pitch: down
    assert (nose(pitch=pitch) - nose())[1] > 1.0


def test_roll_shift_and_scale_reach_the_stated_ranges():
    nz = synthetic.sample_nuisance(jax.random.key(0), 512, 1.0, "hard")
    assert np.abs(np.asarray(nz.base.rotation)).max() > math.radians(13)
    assert np.abs(np.asarray(nz.base.shift)).max() > 0.18
    assert np.asarray(nz.base.scale).min() < 0.9 and np.asarray(nz.base.scale).max() > 1.1
    assert np.abs(np.asarray(nz.yaw)).max() > math.radians(13)
    assert np.abs(np.asarray(nz.pitch)).max() > math.radians(13)


def test_glasses_change_only_the_eye_band_and_only_for_identities_wearing_them():
    with_glasses, without = _plain_identity(1.0), _plain_identity(0.0)
    aus = np.zeros((1, N_AU))
    diff = np.abs(_render_hard(with_glasses, aus) - _render_hard(without, aus)).sum(-1)[0]
    rows = np.nonzero(diff.max(1) > 0)[0]
    assert diff.sum() > 500  # the frames are visible
    # The eye line is at face y -0.05 (row 30.4 of 64); frames stay within +-0.2 of it.
    assert rows.min() >= 23 and rows.max() <= 38, rows
    other_frames = dataclasses.replace(without, glasses_color=np.array([[1.0, 0.0, 0.0]], np.float32),
                                       glasses_size=np.array([1.4], np.float32))
    np.testing.assert_array_equal(_render_hard(other_frames, aus), _render_hard(without, aus))
    shares = np.asarray(synthetic.sample_identities(jax.random.key(0), 1000, "hard").glasses)
    assert 0.25 < shares.mean() < 0.45 and set(np.unique(shares)) == {0.0, 1.0}


def test_background_differs_between_photos_of_one_identity():
    key = jax.random.key(5)
    identity = _rows(synthetic.sample_identities(key, 1, "hard"), [0, 0])
    nuisance = synthetic.sample_nuisance(key, 2, 1.0, "hard")
    images = np.asarray(synthetic.render(identity, np.zeros((2, N_AU)), nuisance, SIZE, "hard")).astype(float)
    corners = images[:, :6, :6].reshape(2, -1)
    assert np.abs(corners[0] - corners[1]).mean() > 10
    # Within one photo the background has structure (not one flat colour).
    assert images[:, :, :8].reshape(2, -1, 3).std(1).max() > 5


def test_skin_texture_is_an_identity_factor_on_the_head_only():
    identity = dataclasses.replace(_plain_identity(), texture_amount=np.array([0.12], np.float32))
    reseeded = dataclasses.replace(identity, texture_seed=identity.texture_seed + np.uint32(7))
    aus = np.zeros((1, N_AU))
    a, b = _render_hard(identity, aus)[0], _render_hard(reseeded, aus)[0]
    changed = np.abs(a - b).sum(-1) > 0
    assert changed[20:44, 24:40].mean() > 0.5  # the cheeks and forehead
    assert not changed[:, :4].any() and not changed[:, -4:].any()  # not the background
    # Two photos of one identity differing in everything per-image but the
    # pose and light carry the same texture: their faces are equal.
    two = _render_hard(identity, np.zeros((2, N_AU)), background_mix=[0.0, 1.0], background_kind=[1.0, 2.0],
                       background_seed=[0, 12345])
    head = np.zeros((SIZE, SIZE), bool)
    head[16:48, 22:42] = True
    np.testing.assert_array_equal(two[0][head], two[1][head])
    study = synthetic.make_study(0, 3, 2, 2, 32, setting="hard")
    assert len(np.unique(np.asarray(study.identities.texture_seed))) == 5  # one seed per identity


def test_au_locality_holds_relative_to_a_same_pose_render():
    identity = _plain_identity()
    pose = dict(yaw=math.radians(-12), pitch=math.radians(8), ambient=0.5, light_azimuth=0.6,
                background_mix=1.0, background_kind=1.0, background_frequency=4.0)
    neutral, mouth, brows = _render_hard(
        identity, [_aus(), _aus(AU12=5.0, AU25=4.0), _aus(AU01=5.0, AU02=5.0)], **pose)
    mouth_diff = np.abs(mouth - neutral).sum(-1)
    brow_diff = np.abs(brows - neutral).sum(-1)
    upper, lower = slice(0, 30), slice(38, SIZE)  # above the eye line, below the nose
    assert mouth_diff[lower].sum() > 20 * mouth_diff[upper].sum()
    assert brow_diff[upper].sum() > 20 * brow_diff[lower].sum()


# ---- oracle and pixel ghosting -------------------------------------------------------------


def test_oracle_of_a_hard_study_renders_the_targets_factors_in_canonical_nuisance():
    study = synthetic.make_study(0, 3, 2, 2, 32, setting="hard", shared_source=True)
    assert study.setting == "hard"
    oracle = ground_truth.oracle_images(study, 32)
    targets = np.unique(study.targets.identity_ids)
    identity = _rows(study.identities, np.tile(targets, 2))
    aus = np.repeat(study.sources.aus, len(targets), axis=0)
    expected = np.asarray(synthetic.render(identity, aus, None, 32, "hard")).reshape(oracle.shape)
    np.testing.assert_array_equal(oracle, expected)
    # The target's glasses (an identity factor) are in its oracle.
    flipped = dataclasses.replace(study.identities, glasses=1.0 - np.asarray(study.identities.glasses))
    assert np.abs(ground_truth.oracle_images(dataclasses.replace(study, identities=flipped), 32).astype(int)
                  - oracle).max() > 50


def _high_frequency_energy(images: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian of the grey images ``[N, S, S, 3]``, 2x2-pooled.

    Pooled so that pixel noise, which any mean removes, does not dominate the edges.
    """
    grey = images.astype(float).mean(-1)
    grey = grey.reshape(len(grey), SIZE // 2, 2, SIZE // 2, 2).mean((2, 4))
    lap = 4 * grey[:, 1:-1, 1:-1] - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1] - grey[:, 1:-1, :-2] - grey[:, 1:-1, 2:]
    return float((lap**2).mean())


@pytest.mark.slow  # a measured property of the setting (docs/synthetic_benchmark.md), 10 s
def test_the_mean_of_twenty_hard_photos_ghosts_more_than_in_the_easy_setting():
    def sharpness_kept(setting: str) -> float:
        # HF energy of each identity's 20-photo pixel mean over that of its photos.
        photos = synthetic.make_dataset(11, 60, SIZE, n_identities=3, setting=setting)
        ratios = []
        for i in range(3):
            own = photos.images[photos.identity_ids == i]
            ratios.append(_high_frequency_energy(own.mean(0, keepdims=True)) / _high_frequency_energy(own))
        return float(np.mean(ratios))

    easy, hard = sharpness_kept("easy"), sharpness_kept("hard")
    # Measured (seed 11): easy keeps about 0.24 of a photo's edge energy, hard about 0.05.
    assert hard < 0.4 * easy, (easy, hard)
