"""model_summary reports OpenAI's numbers for the CelebA-HQ configuration."""

import pathlib
import subprocess
import sys

import pytest

from flowjax.models import model_stats
from flowjax.models.glow import Glow

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_celeba256_summary_prints_openai_parameter_count_and_offsets():
    out = subprocess.run(
        [sys.executable, "experiments/model_summary.py", "--config=configs/celeba256.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    assert "total                    175,099,620" in out
    assert "flat size: 196,608" in out
    for offset in ["98,304", "147,456", "172,032", "184,320", "190,464"]:
        assert offset in out
    assert "244.07 GMAC = 488.1 GFLOP" in out


def test_per_component_counts_match_the_spec_table():
    counts = model_stats.parameter_counts(Glow(image_size=256, n_levels=6, depth=32, width=512))
    assert counts["coupling/conv2"] == 32 * 6 * (512 * 512 + 1024)
    assert counts["invconv"] == 32 * sum((12 * 2**i) ** 2 for i in range(6))
    assert counts["split_priors"] == 225_060
    assert counts["top_prior"] == 5_316_864
    assert counts["total"] == 175_099_620


def test_level_costs_match_the_spec_table():
    rows = model_stats.macs_per_level(Glow(image_size=256, n_levels=6, depth=32, width=512))
    assert [round(r["steps"] / 1e9, 2) for r in rows] == [168.95, 49.55, 16.07, 5.89, 2.44, 1.12]


def test_affine_coupling_doubles_the_output_conv_cost():
    additive = model_stats.macs_per_level(Glow(image_size=16, n_levels=2, depth=1, width=8))
    affine = model_stats.macs_per_level(Glow(image_size=16, n_levels=2, depth=1, width=8,
                                             coupling="affine"))
    c, hw = 12, 64
    assert affine[0]["step"] - additive[0]["step"] == pytest.approx(hw * 9 * 9 * (c // 2))
