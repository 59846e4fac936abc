"""Specification of experiments/attributes.py: directions from images or files, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import common as config_common
from configs import attributes as attributes_config
from experiments import attributes
from flowjax import synthetic
from flowjax import io as fio
from flowjax.faces import openai_attributes
from flowjax.runs import run_dirs

ROOT = Path(__file__).resolve().parents[1]
D = 16 * 16 * 3


def _config(faces: Path, **overrides):
    config = attributes_config.get_config()
    config.random_init.enabled = True
    config.random_init.ddi = False  # random weights: no init compile
    config.model = config_common.model_config(image_size=16, n_levels=2, depth=2, width=8)
    config.data.base_dir = str(faces)
    config.data.images = "*/neutral.png"
    config.data.positive = "*/smile.png"
    config.data.negative = "*/neutral.png"
    config.attribute = "smile"
    config.alphas = (-1.0, 0.0, 1.0)
    config.progress = False
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    synthetic.write_generated_faces(root, n_identities=3,
                                          expressions=("neutral", "smile"), size=16)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, faces):
    workdir = tmp_path_factory.mktemp("runs") / "attributes"
    return workdir, attributes.main(_config(faces), str(workdir))


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _from_file(tmp_path, faces, vectors: Path, **overrides):
    workdir = tmp_path / "from_file"
    config = _config(faces, vectors=str(vectors), **overrides)
    config.data.positive = config.data.negative = None
    attributes.main(config, str(workdir))
    return workdir


def test_writes_every_image_and_alpha_in_the_layout(run):
    workdir, summary = run
    for name in ("id00_neutral", "id01_neutral", "id02_neutral"):
        for label in ("-1.00", "0.00", "1.00"):
            assert (workdir / f"attributes/smile/{name}/{label}/{name}_{label}.png").is_file()
        assert (workdir / f"strips/smile/{name}.png").is_file()
    assert summary["images"]["id01_neutral"]["1.00"] == \
        "attributes/smile/id01_neutral/1.00/id01_neutral_1.00.png"


def test_alpha_zero_is_the_reconstruction_of_the_input(run, faces):
    workdir, _ = run
    original = _pixels(faces / "id01" / "neutral.png")
    at_zero = _pixels(workdir / "attributes/smile/id01_neutral/0.00/id01_neutral_0.00.png")
    np.testing.assert_array_equal(at_zero, (original >> 3) << 3)


def test_positive_alpha_changes_the_image(run):
    workdir, _ = run
    a = _pixels(workdir / "attributes/smile/id00_neutral/0.00/id00_neutral_0.00.png")
    b = _pixels(workdir / "attributes/smile/id00_neutral/1.00/id00_neutral_1.00.png")
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0


def test_saves_the_direction_with_how_it_was_made(run):
    workdir, _ = run
    vector = np.load(workdir / "vectors/smile.npy", allow_pickle=False)
    assert vector.shape == (D,) and vector.dtype == np.float32
    meta = json.loads((workdir / "vectors/smile.json").read_text())
    assert meta == {"attribute": "smile", "space": "eps", "scale": 1.0,
                    "positive_images": 3, "negative_images": 3}


def test_saved_vector_file_reproduces_the_run(run, faces, tmp_path):
    workdir, _ = run
    again = _from_file(tmp_path, faces, workdir / "vectors/smile.npy")
    rel = "attributes/smile/id02_neutral/1.00/id02_neutral_1.00.png"
    np.testing.assert_array_equal(_pixels(again / rel), _pixels(workdir / rel))


def test_openai_vector_file_row_is_picked_by_name(run, faces, tmp_path):
    workdir, _ = run
    rows = np.random.default_rng(0).standard_normal((40, D)).astype(np.float32)
    rows[openai_attributes.CELEBA_ATTRIBUTES.index("Smiling")] = np.load(workdir / "vectors/smile.npy")
    np.save(tmp_path / "z_manipulate.npy", rows)
    again = _from_file(tmp_path, faces, tmp_path / "z_manipulate.npy", attribute="Smiling")
    np.testing.assert_array_equal(
        _pixels(again / "attributes/Smiling/id00_neutral/-1.00/id00_neutral_-1.00.png"),
        _pixels(workdir / "attributes/smile/id00_neutral/-1.00/id00_neutral_-1.00.png"))


def test_openai_vectors_are_refused_in_z_space(faces, tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((40, D), np.float32))
    with pytest.raises(ValueError, match="eps space"):
        _from_file(tmp_path, faces, tmp_path / "z.npy", space="z")
    assert not (tmp_path / "from_file").exists()


def test_vector_of_the_wrong_size_names_the_file(faces, tmp_path):
    np.save(tmp_path / "short.npy", np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=r"short.npy: expected one flat latent \[768\]"):
        _from_file(tmp_path, faces, tmp_path / "short.npy")


def test_pickled_vector_file_is_never_loaded(faces, tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy: not a plain numeric"):
        _from_file(tmp_path, faces, tmp_path / "obj.npy")


def test_vector_file_and_labelled_images_together_are_an_error(faces, tmp_path):
    with pytest.raises(ValueError, match="either config.vectors"):
        attributes.main(_config(faces, vectors="v.npy"), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_glob_matching_nothing_is_named(faces, tmp_path):
    config = _config(faces)
    config.data.positive = "*/laughing.png"
    with pytest.raises(FileNotFoundError, match=r"laughing.png matches no file"):
        attributes.main(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_every_png_has_provenance_and_every_output_is_in_the_manifest(run):
    workdir, _ = run
    for png in workdir.rglob("*.png"):
        chunks = fio.read_png_provenance(png)
        assert chunks["Synthetic"] == "true" and chunks["attribute"] == "smile", png
    manifest = json.loads((workdir / "manifest.json").read_text())
    listed = {o["path"]: o["sha256"] for o in manifest["outputs"]}
    on_disk = {p.relative_to(workdir).as_posix() for p in workdir.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {"manifest.json", run_dirs.RUN_MARKER}
    assert all(fio.sha256_file(workdir / rel) == digest for rel, digest in listed.items())
    assert manifest["model"]["random_init"] is True


def test_openai_variant_uses_the_demo_setup():
    config = attributes_config.get_config("openai")
    assert config.demo_edits and config.attribute == "Smiling"
    assert config.model.image_size == 256 and 0.66 in config.alphas


def no_face_detector():
    """A config.align_detector factory whose detector never finds a face."""
    return lambda image: (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))


def test_align_names_a_photo_without_a_face_and_writes_nothing(faces, tmp_path):
    config = _config(faces, align=True, align_detector=f"{__name__}:no_face_detector")
    with pytest.raises(ValueError, match=r"id00/neutral\.png: no face found"):
        attributes.main(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_smoke_command_runs_end_to_end(tmp_path):
    workdir = tmp_path / "smoke"
    result = subprocess.run(
        [sys.executable, "run.py", "--config=configs/attributes.py:smoke", f"--workdir={workdir}"],
        cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((workdir / "attributes").rglob("*.png"))) == 9
    assert json.loads((workdir / "manifest.json").read_text())["status"] == "complete"
