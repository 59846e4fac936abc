"""tools.benchmark: how --pieces is read, and that each row says how its batch was cut."""

import ml_collections
import pytest
from absl import app

from tools import benchmark


def test_pieces_entries_are_auto_whole_or_a_positive_size():
    assert benchmark.piece_mode("auto") is None
    assert benchmark.piece_mode("whole") == 0
    assert benchmark.piece_mode("3") == 3
    for bad in ("0", "-2", "four"):
        with pytest.raises(app.UsageError, match="not auto, whole or a positive number"):
            benchmark.piece_mode(bad)


def test_each_row_records_its_piece_size_and_round_trips_exactly():
    config = ml_collections.ConfigDict({"model": {
        "family": "glow", "image_size": 16, "n_levels": 2, "depth": 1, "width": 8}})
    results = benchmark.run(config, [4], ["highest"], repeats=1, matmul_size=256,
                            pieces=("2", "whole"))
    rows = results["runs"]
    assert [(r["batch_size"], r["piece"]) for r in rows] == [(4, 2), (4, 4)]
    assert all(r["uint8_exact"] for r in rows)
    table = benchmark.format_table(results)
    assert "| 4 | 2 | highest |" in table and "| 4 | whole | highest |" in table


@pytest.mark.slow
def test_a_checkpoint_is_timed_with_its_own_weights_at_each_precision(tmp_path):
    """--checkpoint: the saved model and weights (not an init), at every precision asked
    for, whatever precision it was saved with."""
    import jax

    from flowjax.models import checkpoints, glow

    model = glow.Glow(image_size=16, n_levels=2, depth=1, width=8, precision="default")
    images = jax.random.randint(jax.random.key(0), (4, 16, 16, 3), 0, 256).astype("uint8")
    checkpoints.save_model(tmp_path / "export", model, glow.init(model, jax.random.key(0), images))
    results = benchmark.run(None, [2], ["highest", "default"], repeats=1, matmul_size=256,
                            checkpoint=str(tmp_path / "export"))
    assert results["model"]["image_size"] == 16 and results["checkpoint"].endswith("export")
    assert [r["precision"] for r in results["runs"]] == ["highest", "default"]
    assert all(r["uint8_exact"] for r in results["runs"])
