"""tools/benchmark_checkpoint: the time a save holds training, and hashing one step."""

import jax

from flowjax.models import glow
from flowjax.models.glow import Glow
from tools import benchmark_checkpoint


def test_both_saves_land_and_one_step_is_hashed_with_its_real_size(tmp_path):
    model = Glow(image_size=8, n_levels=2, depth=1, width=8)
    t = benchmark_checkpoint.time_saves(model, gap_s=0.0, directory=str(tmp_path))
    # Random weights do not compress: the step holds at least the float32 parameters
    # and their two moments.
    n_params = sum(x.size for x in jax.tree.leaves(glow.abstract_variables(model)["params"]))
    assert t["bytes"] >= 3 * 4 * n_params
    assert t["hash_s"] > 0 and t["save_s"] >= 0
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1", "2"]
