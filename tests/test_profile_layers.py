"""tools.profile_layers (``tools.benchmark --profile``): the per-layer breakdown."""

import pytest

from flowjax.models import micro_batches, model_stats
from flowjax.models.glow import Glow
from tools import profile_layers


def _calls(fn, repeats):
    fn()  # the breakdown's timer only needs a number; run each layer once
    return 1e-3


@pytest.mark.parametrize("coupling", ["additive", "affine"])
def test_the_layer_rows_account_for_every_flop_of_both_directions(coupling):
    model = Glow(image_size=16, n_levels=2, depth=2, width=8, coupling=coupling)
    result = profile_layers.profile(model, batch=2, repeats=1, median_seconds=_calls)
    expected = 2 * model_stats.flops_per_image(model)
    for direction in ("encode", "decode"):
        flops = result[direction]["flops"]
        per_kind = sum(f for key, f in flops.items() if isinstance(key, str))
        assert per_kind == pytest.approx(expected, rel=1e-12)
        assert set(k for k in flops if isinstance(k, str)) <= set(profile_layers.KINDS)
        # The zero conv per level sums to its kind's row.
        assert sum(flops[(profile_layers.KINDS[4], level)] for level in range(2)) \
            == pytest.approx(flops[profile_layers.KINDS[4]])


def test_profile_refuses_a_flow_step_it_does_not_model():
    with pytest.raises(ValueError, match="permutation"):
        profile_layers.profile(Glow(image_size=16, n_levels=2, depth=2, width=8,
                                    permutation="shuffle"), 1, 1, _calls)


@pytest.mark.slow
def test_a_batch_cut_in_pieces_is_timed_per_piece_and_counted_once_per_piece(monkeypatch):
    model = Glow(image_size=16, n_levels=2, depth=2, width=8)
    whole = profile_layers.profile(model, batch=4, repeats=1, median_seconds=_calls)
    monkeypatch.setattr(micro_batches, "PIECE_BYTES", 2 * micro_batches.widest_activation_bytes(model))
    cut = profile_layers.profile(model, batch=4, repeats=1, median_seconds=_calls)
    for direction in ("encode", "decode"):
        assert (whole[direction]["piece"], cut[direction]["piece"]) == (4, 2)
        # Every layer call is timed once and counted for both pieces; the work is the batch's.
        for kind in profile_layers.KINDS:
            assert cut[direction]["seconds"].get(kind, 0) == \
                pytest.approx(2 * whole[direction]["seconds"].get(kind, 0))
        assert cut[direction]["flops"] == whole[direction]["flops"]
