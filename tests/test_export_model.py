"""tools.export_model: the metrics and configs it records come from the workdir as written."""

import json

from flowjax.training import log
from tools import export_model


def test_exported_metrics_are_each_splits_last_line_up_to_the_checkpoint_step(tmp_path):
    writer = log.MetricWriter(tmp_path)
    writer.write(100, "train", {"bits_per_dim": 3.0})
    writer.write(100, "eval", {"bits_per_dim": 3.2})
    writer.write(200, "train", {"bits_per_dim": 2.5})
    writer.write(300, "train", {"bits_per_dim": 2.0})  # logged after the last checkpoint
    writer.close()
    last = export_model.last_metrics(tmp_path, up_to_step=200)
    assert {split: (r["step"], r["bits_per_dim"]) for split, r in last.items()} == {
        "train": (200, 2.5), "eval": (100, 3.2)}


def test_a_workdir_without_a_training_log_has_no_metrics(tmp_path):
    assert export_model.last_metrics(tmp_path, up_to_step=10) == {}


def test_a_resumed_runs_newest_config_is_the_training_config_and_every_one_is_kept(tmp_path):
    # A run resumed with a new schedule: config.json is its first piece's, not its last's.
    for name, steps in (("config.json", 8000), ("config.resumed-20261207-183104.json", 6500),
                        ("config.resumed-20261207-180357.json", 7000)):
        (tmp_path / name).write_text(json.dumps({"num_steps": steps}))
    configs = export_model.training_configs(tmp_path)
    assert list(configs) == ["config.json", "config.resumed-20261207-180357.json",
                             "config.resumed-20261207-183104.json"]  # oldest first
    assert list(configs.values())[-1] == {"num_steps": 6500}
    assert export_model.training_configs(tmp_path / "missing") == {}
