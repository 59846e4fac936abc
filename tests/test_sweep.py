"""Specification of flowjax.transfer.sweep: the one-call grid decode equals the naive loop.

A tiny random Glow (8x8, 2 levels) keeps compilation short; decoding does not
depend on the weights being trained.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from flowjax.models import glow, random_variables
from flowjax.transfer import latents, sweep
from hlo_text import unconditional_calls  # tests/ is on sys.path

MODEL = glow.Glow(image_size=8, n_levels=2, depth=2, width=8)
SHAPES = MODEL.latent_shapes
ALPHAS = (0.0, 0.5, 1.0)
# The variance methods divide by variance + var_eps; with the default 1e-3 and a
# one-image identity this random model's latents grow ~1000x and decode to inf/NaN
# (which the sweep now refuses), so the equality tests use a var_eps that keeps them finite.
VAR_EPS = 0.5
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def variables():
    return random_variables(MODEL, seed=1)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def encoding(variables, images):
    return glow.encode(MODEL, variables, images)


def _problem(encoding, space):
    """Source identity = images 0-2 (expressions 0, 2); targets = images 3-4 and 5."""
    flat = np.asarray(latents.flatten(list(latents.in_space(encoding, space))))
    src = latents.identity_stats(flat[0:3])
    targets = [latents.identity_stats(flat[3:5]), latents.identity_stats(flat[5:6])]
    sources = flat[[0, 2]]
    source_stats = latents.IdentityStats(np.stack([src.mean] * 2), np.stack([src.var] * 2), 3)
    target_stats = latents.IdentityStats(np.stack([np.asarray(t.mean) for t in targets]),
                                         np.stack([np.asarray(t.var) for t in targets]), 0)
    return sources, source_stats, target_stats


def _naive(variables, sources, source_stats, target_stats, method, space):
    """Alpha by alpha: build each latent on the host, decode the alpha's batch."""
    out = []
    for alpha in ALPHAS:
        batch = []
        for e in range(len(sources)):
            s = latents.IdentityStats(source_stats.mean[e], source_stats.var[e], 0)
            for t in range(len(target_stats.mean)):
                tt = latents.IdentityStats(target_stats.mean[t], target_stats.var[t], 0)
                batch.append(np.asarray(latents.transfer(method, sources[e], s, tt, alpha,
                                                          VAR_EPS)))
        levels = latents.unflatten(np.stack(batch), SHAPES)
        out.append(np.asarray(glow.decode(MODEL, variables, levels, space=space, quantize=False)))
    e, t = len(sources), len(target_stats.mean)
    return np.stack(out, axis=0).reshape(len(ALPHAS), e, t, 8, 8, 3).transpose(1, 2, 0, 3, 4, 5)


@pytest.mark.parametrize("space", latents.SPACES)
@pytest.mark.parametrize("method", latents.TRANSFER_METHODS)
def test_sweep_equals_decoding_alpha_by_alpha(variables, encoding, method, space):
    sources, source_stats, target_stats = _problem(encoding, space)
    grid = sweep.transfer_sweep(MODEL, variables, sources, source_stats, target_stats, ALPHAS,
                                method=method, space=space, quantize=False, chunk_size=5,
                                var_eps=VAR_EPS)
    expected = _naive(variables, sources, source_stats, target_stats, method, space)
    assert grid.shape == (2, 2, 3, 8, 8, 3)
    np.testing.assert_allclose(grid, expected, rtol=0, atol=1e-5)


def test_chunks_compile_once_and_other_methods_reuse_the_compilation(variables, encoding):
    sources, source_stats, target_stats = _problem(encoding, "eps")
    before = sweep._transfer_chunk._cache_size()
    # 12 grid points in chunks of 7: the second chunk is padded to 7.
    sweep.transfer_sweep(MODEL, variables, sources, source_stats, target_stats, ALPHAS,
                         method="linear", chunk_size=7)
    assert sweep._transfer_chunk._cache_size() == before + 1
    sweep.transfer_sweep(MODEL, variables, sources, source_stats, target_stats, ALPHAS,
                         method="variance", chunk_size=7, var_eps=VAR_EPS)
    assert sweep._transfer_chunk._cache_size() == before + 1


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """The model's 5-bit postprocessing of a float image."""
    return np.clip(np.floor((x + 0.5) * 32) * 8, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("space", latents.SPACES)
def test_alpha_zero_decodes_the_target_mean(variables, encoding, space):
    sources, source_stats, target_stats = _problem(encoding, space)
    grid = sweep.transfer_sweep(MODEL, variables, sources, source_stats, target_stats, ALPHAS,
                                method="linear", space=space, quantize=False, chunk_size=5)
    assert ALPHAS[0] == 0.0
    means = latents.unflatten(np.concatenate([target_stats.mean] * 2), SHAPES)
    decoded = np.asarray(glow.decode(MODEL, variables, means, space=space, quantize=False))
    np.testing.assert_allclose(grid[:, :, 0].reshape(4, 8, 8, 3), decoded, rtol=0, atol=1e-5)


@pytest.mark.parametrize("space", latents.SPACES)
def test_linear_self_transfer_at_alpha_one_decodes_the_source_image(variables, encoding, images,
                                                                    space):
    sources, source_stats, _ = _problem(encoding, space)
    grid = sweep.transfer_sweep(MODEL, variables, sources, source_stats, source_stats, ALPHAS,
                                method="linear", space=space, quantize=False, chunk_size=5)
    assert ALPHAS[2] == 1.0
    quantized = (images >> 3) << 3  # the model sees 5 bits
    np.testing.assert_array_equal(_to_uint8(grid[0, 0, 2]), quantized[0])
    np.testing.assert_array_equal(_to_uint8(grid[1, 1, 2]), quantized[2])


def test_encode_in_padded_chunks_equals_one_batch(variables, images, encoding):
    chunked = sweep.encode_images(MODEL, variables, images, chunk_size=4)
    for got, want in zip(chunked.eps + chunked.z, encoding.eps + encoding.z):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(chunked.bits_per_dim, encoding.bits_per_dim, rtol=1e-5)


def test_attribute_sweep_equals_manipulating_then_decoding(variables, encoding):
    flat = np.asarray(latents.flatten(list(encoding.eps)))
    vector = flat[1] - flat[4]
    grid = sweep.attribute_sweep(MODEL, variables, flat[:4], vector[None], ALPHAS,
                                 quantize=False, chunk_size=5)
    for a, alpha in enumerate(ALPHAS):
        edited = latents.unflatten(np.asarray(latents.manipulate(flat[:4], vector, alpha)), SHAPES)
        want = np.asarray(glow.decode(MODEL, variables, edited, quantize=False))
        np.testing.assert_allclose(grid[:, 0, a], want, rtol=0, atol=1e-5)


def test_latents_of_the_wrong_size_are_a_clear_error(variables):
    stats = latents.IdentityStats(np.zeros((1, 10)), np.zeros((1, 10)), 1)
    with pytest.raises(ValueError, match=r"D = 192 for this model .*got shape \(1, 10\)"):
        sweep.transfer_sweep(MODEL, variables, np.zeros((1, 10)), stats, stats, [0.5])


# ---- non-finite values: an error naming the points, never a black image ------------


def test_variance_transfer_that_overflows_raises_naming_expression_target_and_alpha(
        variables, encoding):
    # Target "solo" has one image: variance 0, so the latent is divided by var_eps alone.
    sources, source_stats, target_stats = _problem(encoding, "eps")
    with pytest.raises(sweep.NonFiniteError,
                       match=r"grid points: \d+ of 12 are non-finite .*"
                             r"target 1 \('solo'\).*var_eps=0.001\): raise var_eps") as err:
        sweep.transfer_sweep(MODEL, variables, sources, source_stats, target_stats, ALPHAS,
                             method="variance", chunk_size=5, var_eps=1e-3, quantize=False,
                             expression_names=["smile", "frown"], target_names=["pair", "solo"])
    assert "expression 0 ('smile')" in str(err.value) and err.value.points


def test_nan_weight_makes_encode_raise_naming_the_images_and_the_parameter(variables, images):
    broken = jax.tree.map(np.array, variables)
    broken["params"]["level_0"]["invconv"]["W"][0, 0, 0] = np.nan
    with pytest.raises(sweep.NonFiniteError, match=r"encode: images: 6 of 6 .*image 0 \('a.png'\)"):
        sweep.encode_images(MODEL, broken, images, chunk_size=4,  # the compile of the test above
                            names=[f"{c}.png" for c in "abcdef"])
    with pytest.raises(sweep.NonFiniteError, match=r"1 parameter array\(s\).*level_0.*invconv.*W"):
        sweep.check_finite_variables(broken)
    sweep.check_finite_variables(variables)  # the intact weights pass


def test_decoding_a_nan_latent_raises_instead_of_writing_a_black_image(variables, encoding):
    flat = np.asarray(latents.flatten(list(encoding.eps)))[:3].copy()
    flat[1, 7] = np.nan
    with pytest.raises(sweep.NonFiniteError, match=r"1 of 3 are non-finite.*latent 1 \('mean b'\)"):
        sweep.decode_latents(MODEL, variables, flat, names=["mean a", "mean b", "mean c"])


def test_attribute_sweep_with_an_infinite_vector_raises_naming_the_vector(variables, encoding):
    flat = np.asarray(latents.flatten(list(encoding.eps)))
    vector = np.full_like(flat[0], np.inf)
    with pytest.raises(sweep.NonFiniteError, match=r"vector 0 \('Smiling'\), alpha 0.5"):
        sweep.attribute_sweep(MODEL, variables, flat[:4], vector[None], ALPHAS, chunk_size=5,
                              quantize=False, vector_names=["Smiling"])


def _far_expression(encoding):
    """A transfer whose source expression lies 100 from its identity mean: this model
    decodes latents up to about 2,000 from the mean, so alphas 0 to 3 decode and alpha 100
    (10,000 away) overflows it, as alpha 100 does the demo Glow (issue #27)."""
    flat = np.asarray(latents.flatten(list(encoding.eps)))
    direction = (flat[3] - flat[0]) / np.linalg.norm(flat[3] - flat[0])
    ones = np.ones((1, flat.shape[1]), np.float32)
    return ((flat[0] + 100 * direction)[None], latents.IdentityStats(flat[0][None], ones, 1),
            latents.IdentityStats(flat[5][None], ones, 1))


def test_a_large_alpha_that_overflows_good_weights_is_named_not_the_weights(variables,
                                                                            encoding):
    with pytest.raises(sweep.NonFiniteError) as err:
        sweep.transfer_sweep(MODEL, variables, *_far_expression(encoding),
                             (0.0, 1.0, 3.0, 100.0), chunk_size=5, quantize=False)
    message = str(err.value)
    assert "grid points: 1 of 4 are non-finite" in message and err.value.points == [3]
    assert re.search(r"weights are finite \(checked\), so alpha 100 overflowed the model "
                     r"\(alpha 0, 1, 3 decoded finite\)", message), message
    assert "weights are probably" not in message and "NaN or inf (" not in message
    # the error carries the whole grid: the alphas that decoded are the sweep's own images
    decoded = sweep.transfer_sweep(MODEL, variables, *_far_expression(encoding),
                                   (0.0, 1.0, 3.0), chunk_size=5, quantize=False)
    assert err.value.partial.shape == (1, 1, 4, *decoded.shape[3:])
    np.testing.assert_allclose(err.value.partial[:, :, :3], decoded, rtol=0, atol=1e-6)


def test_non_finite_weights_are_blamed_only_when_they_are_non_finite(variables, encoding):
    broken = jax.tree.map(np.array, variables)
    broken["params"]["level_0"]["invconv"]["W"][0, 0, 0] = np.nan
    with pytest.raises(sweep.NonFiniteError) as err:
        sweep.transfer_sweep(MODEL, broken, *_far_expression(encoding),
                             (0.0, 1.0, 3.0, 100.0), chunk_size=5, quantize=False)
    message = str(err.value)
    assert "4 of 4 are non-finite" in message
    assert re.search(r"weights hold NaN or inf \(1 parameter array\(s\): "
                     r"\['params'\]\['level_0'\]\['invconv'\]\['W'\]\)", message), message
    assert "overflowed" not in message and "are finite" not in message


@pytest.mark.parametrize("bad", [1e6, 1e39, float("inf"), float("nan"), -101.0])
def test_alphas_out_of_range_are_refused_before_any_compute(variables, encoding, bad,
                                                             monkeypatch):
    monkeypatch.setattr(sweep, "_run_chunks", lambda *a, **k: pytest.fail("computed"))
    sources, source_stats, target_stats = _problem(encoding, "eps")
    with pytest.raises(ValueError, match=r"alphas \[.*\] out of range: every alpha must be "
                                         r"finite and within \+-100"):
        sweep.transfer_sweep(MODEL, variables, sources, source_stats, target_stats, (0.5, bad))
    with pytest.raises(ValueError, match="out of range"):
        sweep.attribute_sweep(MODEL, variables, sources, sources[:1], (bad,))


@pytest.mark.parametrize("method", latents.VARIANCE_METHODS)
def test_zero_var_eps_is_refused_for_the_variance_methods(variables, encoding, method):
    sources, source_stats, target_stats = _problem(encoding, "eps")
    with pytest.raises(ValueError, match=rf"var_eps=0 with method '{method}'.*use var_eps > 0"):
        sweep.transfer_sweep(MODEL, variables, sources, source_stats, target_stats, ALPHAS,
                             method=method, var_eps=0.0)


_SHARDED_SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from flowjax.models import glow, random_variables
    from flowjax.transfer import latents, sweep
    assert len(jax.devices()) == 4, jax.devices()
    chunk = sweep.Placement().shard_batch(np.zeros((4, 3)))
    assert len(chunk.sharding.device_set) == 4, chunk.sharding
    model = glow.Glow(image_size=8, n_levels=2, depth=2, width=8)
    v = random_variables(model, seed=1)
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    one = [jax.devices()[0]]
    enc4 = sweep.encode_images(model, v, images, chunk_size=4)
    enc1 = sweep.encode_images(model, v, images, chunk_size=4, devices=one)
    for a, b in zip(enc4.eps, enc1.eps):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    flat = np.asarray(latents.flatten(list(enc1.eps)))
    s, t = latents.identity_stats(flat[:3]), latents.identity_stats(flat[3:])
    S = latents.IdentityStats(np.stack([s.mean] * 2), np.stack([s.var] * 2), 3)
    T = latents.IdentityStats(np.stack([t.mean]), np.stack([t.var]), 3)
    kw = dict(method="std_rescale", quantize=False, chunk_size=3)  # rounded up to 4 devices
    g4 = sweep.transfer_sweep(model, v, flat[[0, 2]], S, T, [0.0, 0.4, 1.0], **kw)
    g1 = sweep.transfer_sweep(model, v, flat[[0, 2]], S, T, [0.0, 0.4, 1.0], devices=one, **kw)
    np.testing.assert_allclose(g4, g1, rtol=0, atol=1e-5)
    print("SHARDED_OK", g4.shape)
""")


def test_sharded_sweep_on_four_devices_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHARDED_OK (2, 1, 3, 8, 8, 3)" in result.stdout


def test_a_process_share_names_its_non_finite_points_by_their_grid_index():
    # A process's share holds some grid points (here 3 and 5 of a 2 x 1 x 3 grid);
    # the error must name them as the grid knows them, not by their place in the share.
    images = np.zeros((2, 4, 4, 3), np.uint8)
    outputs = [(np.array([3, 5]), (images, np.array([True, False])))]
    with pytest.raises(sweep.NonFiniteError, match=r"point \(1, 0, 2\)") as error:
        sweep._grid_result(outputs, (2, 1, 3), True,
                           lambda i: f"point {tuple(int(c) for c in np.unravel_index(i, (2, 1, 3)))}",
                           "test sweep", "hint")
    assert error.value.points == [5]


def test_sweeps_invert_the_1x1_convs_once_for_all_their_chunks(variables, encoding):
    # Each chunk's decode would otherwise factorise every 1x1 conv again (one LAPACK
    # call per level and chunk, which on CPU costs more than a small chunk's convs);
    # a sweep computes the inverses once and its compiled chunk has none left.
    flat = np.asarray(latents.flatten(list(encoding.eps)))
    placement = sweep.Placement()

    def factorisations(chunk_variables):
        return unconditional_calls(sweep._decode_chunk.lower(
            MODEL, chunk_variables, flat, space="eps", quantize=True).compile().as_text())

    assert factorisations(placement.replicate(variables)) == MODEL.n_levels
    assert factorisations(sweep._decoder_variables(variables, placement)) == 0
    np.testing.assert_array_equal(sweep.decode_latents(MODEL, variables, flat),
                                  glow.decode(MODEL, variables, list(encoding.eps)))
