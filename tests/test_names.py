"""flowjax.runs.names: how paths and the model are shown to a person (pages, reports, image
labels): never as an absolute path of the machine the run was made on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowjax import runs
from flowjax.runs import names

ROOT = Path(__file__).resolve().parents[1]
RECORD = {"checkpoint": os.fspath(ROOT / "weights" / "demo" / "glow"), "sha256": "ab" * 32,
          "random_init": False}


def test_the_repository_is_the_checkout_holding_flowjax():
    assert names.REPOSITORY == ROOT


def test_a_checkpoint_in_the_repository_is_shown_relative_to_it():
    assert names.display_path(ROOT / "weights" / "demo" / "glow") == "weights/demo/glow"


def test_a_relative_path_is_shown_as_given():
    assert names.display_path("weights/demo/glow", "/anywhere/run") == "weights/demo/glow"


@pytest.mark.parametrize("path, shown", [
    ("runs/explore-1/saved/edit_0001.png", "explore-1/saved/edit_0001.png"),  # in the run
    ("runs/train-1/checkpoints/5000", "train-1/checkpoints/5000"),  # in a sibling run
    ("data/celeba/glow", ".../celeba/glow"),  # elsewhere: its last two components
], ids=["inside-the-run", "beside-the-run", "elsewhere"])
def test_a_path_outside_the_repository_starts_at_the_folder_holding_the_run(tmp_path, path,
                                                                            shown):
    assert names.display_path(tmp_path / path, tmp_path / "runs" / "explore-1") == shown


def test_a_run_at_the_filesystem_root_does_not_make_every_path_relative_to_it():
    assert names.display_path("/data/celeba/glow", "/run") == ".../celeba/glow"


def test_the_model_label_names_the_checkpoint_relatively_with_its_sha256():
    assert runs.model_label(RECORD) == f"weights/demo/glow sha256:{'ab' * 32}"


def test_a_random_model_is_labelled_so():
    record = {"checkpoint": None, "sha256": None, "random_init": True, "seed": 3}
    assert runs.model_label(record) == "RANDOM INIT seed 3 (no checkpoint)"


def test_the_demo_model_is_recorded_whole_and_labelled_relatively(tmp_path, monkeypatch):
    import numpy as np

    from configs import transfer as transfer_config

    monkeypatch.chdir(ROOT)
    config = transfer_config.get_config()  # the shipped demo Glow, given as a user types it
    config.checkpoint = "weights/demo/glow"
    exp = runs.Experiment(config, tmp_path / "run", check_inputs=False)
    exp.load_model(np.zeros((1, 64, 64, 3), np.uint8))
    assert exp.model_record["checkpoint"] == os.fspath(ROOT / "weights" / "demo" / "glow")
    assert exp.model_label == f"weights/demo/glow sha256:{exp.model_record['sha256']}"
