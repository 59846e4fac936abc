"""Specification of experiments/reconstruction.py: the perfect-reconstruction claim, measured."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from configs import common as config_common
from configs import reconstruction as reconstruction_config
from experiments import reconstruction
from flowjax import synthetic
from flowjax import io as fio
from flowjax.faces import align

ROOT = Path(__file__).resolve().parents[1]


def _config(faces: Path, **overrides):
    config = reconstruction_config.get_config()
    config.random_init.enabled = True
    config.random_init.ddi = False  # random weights: no init compile
    config.model = config_common.model_config(image_size=16, n_levels=2, depth=2, width=8)
    config.data.images = str(faces / "*" / "*.png")
    config.progress = False
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    synthetic.write_generated_faces(root, n_identities=2,
                                          expressions=("neutral", "smile"), size=16)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, faces):
    workdir = tmp_path_factory.mktemp("runs") / "reconstruction"
    return workdir, reconstruction.main(_config(faces), str(workdir))


# ---- metrics ----------------------------------------------------------------------


def test_psnr_of_equal_images_is_infinite():
    a = np.full((2, 2, 3), 7, np.uint8)
    assert reconstruction.psnr(a, a) == math.inf


def test_psnr_of_an_off_by_one_image_is_48_db():
    a = np.zeros((2, 2, 3), np.uint8)
    assert reconstruction.psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_quantize_to_bits_clears_the_low_bits():
    x = np.array([0, 7, 8, 255], np.uint8)
    np.testing.assert_array_equal(reconstruction.quantize_to_bits(x, 5), [0, 0, 8, 248])


# ---- the experiment ---------------------------------------------------------------


def test_unseen_images_are_reconstructed_exactly_at_the_model_bits(run):
    _, result = run
    summary = result["summary"]
    assert summary["images"] == 4 and summary["all_exact_at_model_bits"]
    assert summary["max_error_model_bits"] == 0 and summary["min_psnr_model_bits"] is None
    assert summary["max_float_error"] < 1e-4


def test_error_against_the_8_bit_input_is_bounded_by_the_quantization(run):
    _, result = run
    summary = result["summary"]
    assert 0 < summary["max_error_8bit"] <= summary["quantization_error_bound_8bit"] == 7
    assert 30 < summary["mean_psnr_8bit"] < 60


def test_z_space_round_trip_is_exact_too(faces, tmp_path):
    result = reconstruction.main(_config(faces, space="z", write_images=False),
                                 str(tmp_path / "z"))
    assert result["summary"]["all_exact_at_model_bits"]
    assert not (tmp_path / "z" / "reconstructions").exists()


def test_csv_has_one_row_per_image_with_inf_for_exact_psnr(run):
    workdir, _ = run
    with open(workdir / "reconstruction.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["id00_neutral", "id00_smile", "id01_neutral", "id01_smile"]
    assert {r["psnr_model_bits"] for r in rows} == {"inf"}
    assert all(float(r["max_error_8bit"]) <= 7 for r in rows)


def test_reconstructions_have_provenance_and_are_in_the_manifest(run):
    workdir, _ = run
    pngs = sorted((workdir / "reconstructions").glob("*.png"))
    assert len(pngs) == 4
    for png in pngs:
        chunks = fio.read_png_provenance(png)
        assert chunks["Synthetic"] == "true" and chunks["kind"].startswith("reconstruction")
    manifest = json.loads((workdir / "manifest.json").read_text())
    listed = {o["path"] for o in manifest["outputs"]}
    assert {p.relative_to(workdir).as_posix() for p in pngs} <= listed
    assert {"reconstruction.csv", "reconstruction.json"} <= listed
    assert len(manifest["inputs"]) == 4


def test_missing_images_setting_is_an_error_without_output(faces, tmp_path):
    config = _config(faces)
    config.data.images = None
    with pytest.raises(ValueError, match="config.data.images is not set"):
        reconstruction.main(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def template_face_detector():
    """A config.align_detector factory: one face with its eyes already on the template."""

    def detect(image):
        h, w = image.shape[:2]
        tx, ty = align.LEFT_EYE_TEMPLATE
        marks = [[tx * w, ty * h], [(1 - tx) * w, ty * h], [w / 2, 0.6 * h], [0.4 * w, 0.8 * h],
                 [0.6 * w, 0.8 * h]]
        return np.array([[0.0, 0.0, w, h]]), np.array([0.99]), np.array([marks])

    return detect


def test_align_reconstructs_the_aligned_photos_and_records_the_alignment(faces, tmp_path):
    config = _config(faces, align=True, align_detector=f"{__name__}:template_face_detector")
    result = reconstruction.main(config, str(tmp_path / "run"))  # the fixture's shapes
    assert result["summary"]["images"] == 4
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert all(e["conversions"][-1].startswith("aligned to 16x16") for e in manifest["inputs"])
    assert len(manifest["extra"]["alignment"]) == 4


def test_align_with_generated_faces_is_an_error_without_output(faces, tmp_path):
    config = _config(faces, align=True)
    config.data.generated.enabled = True
    with pytest.raises(ValueError, match=r"config.align=True .* already aligned renders"):
        reconstruction.main(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_smoke_command_runs_end_to_end(tmp_path):
    workdir = tmp_path / "smoke"
    result = subprocess.run(
        [sys.executable, "run.py", "--config=configs/reconstruction.py:smoke",
         f"--workdir={workdir}"],
        cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "reconstruction.json").read_text())["summary"]
    assert summary["images"] == 9 and summary["all_exact_at_model_bits"]
