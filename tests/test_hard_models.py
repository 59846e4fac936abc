"""The hard setting's shipped models (weights/demo/hard), what the benchmark's ``hard``
variant runs: a Glow and scorers trained on ``flowjax.synthetic``'s hard faces.

Each model is checked against the easy one on both settings' faces, so the tests
fail if the hard files were swapped for easy ones (or never trained on hard faces).
Faces come from seeds the training never drew (training: make_dataset seed 0,
scorers' fresh keys and evaluation seeds 10,001-10,004).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from configs import synthetic_benchmark as benchmark_config
from flowjax import synthetic
from flowjax.evaluation import synthetic_scorers
from flowjax.models import checkpoints, glow

ROOT = Path(__file__).resolve().parents[1]
EASY, HARD = ROOT / "weights" / "demo", ROOT / "weights" / "demo" / "hard"


@pytest.fixture(scope="module")
def faces():
    return {setting: synthetic.make_dataset(777, 32, 64, setting=setting)
            for setting in synthetic.SETTINGS}


def test_the_benchmark_hard_variant_runs_the_hard_models():
    config = benchmark_config.get_config("hard")
    assert Path(config.checkpoint).resolve() == HARD / "glow"
    assert Path(config.scorers_dir).resolve() == HARD / "scorers"
    assert config.study.setting == "hard"


def test_each_demo_glow_models_its_own_settings_faces_best_and_the_hard_one_round_trips(faces):
    hard, hard_variables = checkpoints.load_model(HARD / "glow")  # verifies the checksums
    easy, easy_variables = checkpoints.load_model(EASY / "glow")
    metadata = json.loads((HARD / "glow" / "metadata.json").read_text())
    assert metadata["training_config"]["data"]["synthetic_setting"] == "hard"

    def bits(model, variables, setting):
        return float(np.mean(glow.encode(model, variables, faces[setting].images).bits_per_dim))

    # Measured: hard faces 1.12 (hard Glow) vs 1.75 (easy Glow); easy faces 0.92 vs 0.76.
    assert bits(hard, hard_variables, "hard") < bits(easy, easy_variables, "hard") - 0.3
    assert bits(easy, easy_variables, "easy") < bits(hard, hard_variables, "easy")
    x = faces["hard"].images[:8]
    decoded = np.asarray(glow.decode(hard, hard_variables, glow.encode(hard, hard_variables, x).eps))
    np.testing.assert_array_equal(decoded, (x >> 3) << 3)  # exact at the model's 5 bits


def test_hard_scorers_were_trained_on_hard_faces_and_read_them_better_than_the_easy_ones(faces):
    for kind in synthetic_scorers.KINDS:
        record = json.loads((HARD / "scorers" / f"{kind}.json").read_text())
        assert record["training"]["setting"] == "hard", kind
    hard_faces = faces["hard"]
    errors = {}
    for name, folder in (("hard", HARD / "scorers"), ("easy", EASY / "scorers")):
        scorer = synthetic_scorers.build_au_scorer(folder)  # verifies the sha256
        errors[name] = float(np.mean(np.abs(np.clip(scorer(hard_faces.images), 0, 5)
                                            - hard_faces.aus)))
    assert errors["hard"] < 0.8 * errors["easy"], errors
    detector = synthetic_scorers.build_fake_detector(HARD / "scorers")
    # Clean hard renders are mostly taken for clean renders.
    assert np.mean(detector.is_fake(hard_faces.images)) < 0.2
