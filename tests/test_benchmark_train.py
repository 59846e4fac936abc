"""tools/benchmark_train: one row per (precision, conditioner dtype), each a real training step."""

import math

from flowjax.models.glow import Glow
from tools import benchmark_train


def test_each_setting_compiles_and_trains_from_the_same_initial_state():
    model = Glow(image_size=8, n_levels=2, depth=1, width=8)
    rows = benchmark_train.time_training(model, batch_size=2, steps=1, precisions=["default"],
                                         dtypes=["float32", "bfloat16"])
    assert [(r["precision"], r["conditioner_dtype"]) for r in rows] == [
        ("default", "float32"), ("default", "bfloat16")]
    for row in rows:
        assert row["compile_s"] > 0 and row["step_s"] > 0 and math.isfinite(row["loss"])
    # Same state, same batch, two steps each: bfloat16 moves the loss a little, not a lot.
    assert rows[0]["loss"] != rows[1]["loss"]
    assert abs(rows[0]["loss"] - rows[1]["loss"]) < 0.05 * rows[0]["loss"]
