"""Specification of cache-sized pieces: large CPU batches run as a loop over
pieces, and each image's result does not depend on how its batch was cut."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.models import glow, micro_batches
from flowjax.models.glow import Glow

TINY = dict(image_size=16, n_levels=2, depth=2, width=8)


def _images(n, seed=0):
    return jax.random.randint(jax.random.key(seed), (n, 16, 16, 3), 0, 256).astype(jnp.uint8)


def _moved_variables(model, images, y=None):
    """Initialised, then moved off the identity-like init so the flow does something."""
    variables = glow.init(model, jax.random.key(0), images, y)
    leaves, tree = jax.tree.flatten(variables["params"])
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [x + 0.02 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return {**variables, "params": jax.tree.unflatten(tree, leaves)}


# ---- how a batch is cut ---------------------------------------------------------

SMALL = Glow(image_size=64, n_levels=3, depth=1, width=512)  # 2 MiB per image at level 0


@pytest.mark.parametrize("batch,expected", [
    (1, 1), (4, 4),     # fits: whole
    (8, 4), (32, 4),    # pieces of as many as fit
    (5, 3), (10, 4),    # shared out over the fewest pieces: 3+3, 4+4+4
])
def test_on_a_cpu_pieces_hold_as_many_images_as_fit_the_cache_budget(batch, expected):
    assert micro_batches.widest_activation_bytes(SMALL) == 32 * 32 * 512 * 4
    assert micro_batches.piece_size(SMALL, batch, backend="cpu") == expected


def test_a_gpu_or_an_image_larger_than_the_budget_takes_the_whole_batch():
    assert micro_batches.piece_size(SMALL, 32, backend="gpu") == 32
    large = Glow(image_size=256, n_levels=6, depth=1, width=512)  # 32 MiB per image
    assert micro_batches.piece_size(large, 4, backend="cpu") == 4


def test_a_requested_size_wins_and_zero_means_the_whole_batch():
    assert micro_batches.piece_size(SMALL, 32, requested=3, backend="gpu") == 3
    assert micro_batches.piece_size(SMALL, 32, requested=0, backend="cpu") == 32
    assert micro_batches.piece_size(SMALL, 2, requested=8) == 2
    with pytest.raises(ValueError, match="0 \\(whole batch\\) or positive, got -1"):
        micro_batches.piece_size(SMALL, 32, requested=-1)


def test_map_pieces_calls_the_function_on_equal_pieces_and_drops_the_padding():
    seen = []

    def fn(x, extra):
        seen.append(x.shape[0])
        total = x if extra is None else x + extra
        return {"sum": total, "size": jnp.full(x.shape[0], x.shape[0])}

    x = jnp.arange(10.0)
    out = micro_batches.map_pieces(fn, (x, jnp.ones(10)), 4)
    assert seen == [4]  # traced once, as the body of one loop
    np.testing.assert_array_equal(out["sum"], x + 1)
    np.testing.assert_array_equal(out["size"], np.full(10, 4))
    unsplit = micro_batches.map_pieces(fn, (x, None), 10)  # None leaves pass through
    assert seen[-1] == 10
    np.testing.assert_array_equal(unsplit["sum"], x)


# ---- Glow: every image gets the result of the whole batch -------------------------


@pytest.mark.parametrize("piece", [pytest.param(1, marks=pytest.mark.slow), 2,
                                   pytest.param(4, marks=pytest.mark.slow)])
def test_encode_and_decode_in_pieces_equal_the_whole_batch(piece):
    model = Glow(**TINY, coupling="affine", n_classes=3)
    x, y = _images(5), jnp.array([0, 2, 1, 1, 0])
    variables = _moved_variables(model, x, y)
    whole = glow.encode(model, variables, x, None, y, piece=0)
    pieces = glow.encode(model, variables, x, None, y, piece=piece)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(pieces)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    decoded_whole = glow.decode(model, variables, whole.eps, y, "eps", False, piece=0)
    decoded = glow.decode(model, variables, whole.eps, y, "eps", False, piece=piece)
    np.testing.assert_allclose(decoded, decoded_whole, atol=1e-5)
    assert decoded.shape == (5, 16, 16, 3)


def test_pieces_make_one_loop_around_the_model():
    model = Glow(**TINY)
    x = _images(4)
    variables = glow.init(model, jax.random.key(0), x)

    def top_level_loops(piece):
        jaxpr = jax.make_jaxpr(lambda v, im: glow.apply_encode(model, v, im, piece=piece))(
            variables, x)
        return [e.primitive.name for e in jaxpr.eqns if e.primitive.name in ("scan", "while")]

    assert top_level_loops(2) == ["scan"]              # lax.map over the 2 pieces
    assert len(top_level_loops(0)) == model.n_levels   # each level's steps, unwrapped


def test_training_noise_key_is_drawn_for_the_whole_batch_whatever_the_piece():
    model = Glow(**TINY)
    x = _images(4)
    variables = glow.init(model, jax.random.key(0), x)
    key = jax.random.key(3)
    whole = glow.encode(model, variables, x, key, piece=0)
    pieces = glow.encode(model, variables, x, key, piece=1)
    np.testing.assert_array_equal(pieces.eps[0], whole.eps[0])


def test_array_noise_is_cut_with_its_images():
    model = Glow(**TINY)
    x = _images(4)
    variables = _moved_variables(model, x)
    noise = jax.random.uniform(jax.random.key(4), x.shape, maxval=1 / 256)
    whole = glow.encode(model, variables, x, noise, piece=0)
    pieces = glow.encode(model, variables, x, noise, piece=3)
    np.testing.assert_allclose(pieces.log_prob, whole.log_prob, rtol=1e-6)


def test_wrong_shapes_reach_the_models_own_check_unsplit():
    model = Glow(**TINY)
    variables = glow.init(model, jax.random.key(0), _images(1))
    with pytest.raises(ValueError, match=r"got shape \(4, 8, 8, 3\)"):
        glow.encode(model, variables, jnp.zeros((4, 8, 8, 3), jnp.uint8), piece=1)
    with pytest.raises(ValueError, match=r"latent level 0 must have shape \(4, 8, 8, 6\)"):
        glow.decode(model, variables, [jnp.zeros((4, 8, 8, 5)), jnp.zeros((4, 4, 4, 24))],
                    piece=1)
