"""Specification of how identity was cropped, per image (issue 28, item 3).

A small study of real faces (scikit-image's astronaut, moved and rescaled, and
faces of its LFW subset) with one generated image that is a flat grey square:
no detector finds a face there. facenet's MTCNN is replaced by a stand-in that
finds a face in every image that is not flat (MTCNN itself does not import
where torchvision does not match torch); dlib's HOG detector runs for real,
with the optional extra ``pip install -e '.[faces]'`` (its tests are skipped
without it). Per image, ``tables/scores.csv`` says whether the embedder found
the face or fell back to its fixed box, the report counts them in its first
lines, and ``identity.fallback=nan`` makes exactly the fallbacks' distances NaN.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowjax import io as fio
from flowjax.evaluation import identity, pipeline, scorers, study
from flowjax.faces import dlib_models

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the test photos) "
                                   "is not installed; pip install -e '.[faces]'")
needs_dlib = pytest.mark.skipif(dlib_models.dlib_import_error() is not None,
                                reason=f"dlib unavailable: {dlib_models.dlib_import_error()}")

SIZE = 256
GREY = ("smile", "b", "1")  # the generated image with no face in it
SPEC = {
    "format": "flowjax-study/1", "source": "astro",
    "expressions": ["smile"], "targets": ["a", "b"], "alphas": ["0", "1"],
    "images": "gen/{target}_{alpha}.png", "source_images": "src/smile.png",
    "mean_faces": "means/{identity}.png",
    "description": {"method": "linear", "space": "z", "model": "real faces (test)"},
}


def _lfw_face(index: int) -> np.ndarray:
    grey = (skimage_data.lfw_subset()[index] * 255).round().astype(np.uint8)
    return np.asarray(Image.fromarray(grey).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
                      .convert("RGB"))


def _moved(image: np.ndarray, scale: float, shift: tuple[int, int]) -> np.ndarray:
    inverse = (1 / scale, 0, -shift[0] / scale, 0, 1 / scale, -shift[1] / scale)
    return np.asarray(Image.fromarray(image).transform(
        (SIZE, SIZE), Image.Transform.AFFINE, inverse, resample=Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    """The study on disk: 1 expression x 2 targets x 2 alphas, one of them grey."""
    root = tmp_path_factory.mktemp("faces")
    astronaut = np.asarray(Image.fromarray(skimage_data.astronaut()).resize(
        (SIZE, SIZE), Image.Resampling.LANCZOS))
    images = {"src/smile.png": _moved(astronaut, 1.05, (-6, 4)),
              "means/astro.png": astronaut, "means/a.png": _lfw_face(3),
              "means/b.png": _lfw_face(8),
              "gen/a_0.png": _moved(_lfw_face(3), 1.1, (-10, 8)),
              "gen/a_1.png": _moved(astronaut, 0.95, (5, -5)),
              "gen/b_0.png": _moved(_lfw_face(8), 1.1, (8, 6)),
              "gen/b_1.png": np.full((SIZE, SIZE, 3), 128, np.uint8)}
    for rel, image in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        fio.write_png(root / rel, image, generated=False)
    return study.write_spec(root / "spec.json", SPEC)


def _evaluate(spec: Path, embedder, out: Path, **kwargs) -> dict:
    return pipeline.evaluate_study(study.load_study(spec), embedder, None, out_dir=out,
                                   make_figures=False, **kwargs)


def _scores(out: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(out / "tables/scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {(r["expression"], r["target"], r["image"].split("_")[-1][0]): r for r in rows}


def _distances(row: dict[str, str]) -> np.ndarray:
    return np.array([float(row["distance_to_target_mean"]),
                     float(row["distance_to_source_mean"])])


# ---------------------------------------------------------------- dlib


@pytest.fixture(scope="module")
def dlib_embedder():
    """The dlib backend as the evaluation config builds it."""
    from configs import evaluate as evaluate_config

    config = evaluate_config.get_config()
    config.identity.backend = "dlib"
    return scorers.build_identity_embedder(config.identity)


@pytest.fixture(scope="module")
def dlib_crop(spec, dlib_embedder, tmp_path_factory):
    """Evaluated with the default policy (not passed: the behaviour before the option)."""
    out = tmp_path_factory.mktemp("dlib") / "crop"
    return out, _evaluate(spec, dlib_embedder, out, backends={"identity": "dlib"})


@pytest.fixture(scope="module")
def dlib_nan(spec, dlib_embedder, tmp_path_factory):
    out = tmp_path_factory.mktemp("dlib") / "nan"
    return out, _evaluate(spec, dlib_embedder, out, backends={"identity": "dlib"},
                          identity_fallback="nan")


@needs_dlib
def test_scores_csv_says_per_image_whether_dlib_found_the_face_or_fell_back(dlib_crop):
    out, summary = dlib_crop
    rows = _scores(out)
    assert {key: row["identity_face_box"] for key, row in rows.items()} == {
        ("smile", "a", "0"): "found", ("smile", "a", "1"): "found",
        ("smile", "b", "0"): "found", GREY: "fallback"}
    assert summary["identity_face_boxes"] == {
        "fallback": "crop", "detector": "dlib HOG frontal (upsample 1)",
        "generated": {"found": 3, "fallback": 1}, "mean_faces": {"found": 3},
        "source_images": {"found": 1}}
    assert np.isfinite(_distances(rows[GREY])).all()  # crop: the fixed box's embedding


@needs_dlib
def test_the_report_counts_the_fallbacks_in_its_first_lines(dlib_crop):
    out, _ = dlib_crop
    first = (out / "report.md").read_text().split("## Scorers")[0]
    assert "**Identity face boxes** (detector: dlib HOG frontal (upsample 1)" in first
    assert "generated images: 3 found, 1 fallback; mean faces: 3 found" in first
    assert "identity.fallback=crop" in first
    with open(out / "tables/missing_faces.csv", newline="") as f:
        assert list(csv.reader(f)) == [
            ["image", "role", "scorer", "outcome", "reason"],
            ["gen/b_1.png", "generated", "identity", "fixed box",
             "no face found by dlib HOG frontal (upsample 1)"]]


@needs_dlib
def test_fallback_nan_gives_nan_distances_for_exactly_the_fallbacks(dlib_crop, dlib_nan):
    (crop_out, _), (nan_out, summary) = dlib_crop, dlib_nan
    crop, nan = _scores(crop_out), _scores(nan_out)
    assert np.isnan(_distances(nan[GREY])).all()
    for key in crop:
        if key != GREY:
            np.testing.assert_array_equal(_distances(nan[key]), _distances(crop[key]))
            assert np.isfinite(_distances(nan[key])).all()
    assert nan[GREY]["identity_face_box"] == "fallback"
    assert summary["missing"]["identity"] == 1 and summary["identity_face_boxes"][
        "fallback"] == "nan"
    assert "its identity distances are NaN (identity.fallback=nan)" in (
        nan_out / "report.md").read_text()


@needs_dlib
def test_the_dlib_report_line_names_dlibs_model_files_and_crop_mode(dlib_crop):
    out, _ = dlib_crop
    line, = [line for line in (out / "report.md").read_text().splitlines()
             if line.startswith("- identity embedder:")]
    for name in ("face_recognition_resnet", "shape_predictor_5"):
        model = dlib_models.MODELS[name]
        assert f"{model.filename} (sha256 {model.sha256}, verified True)" in line
    assert "crop: auto (dlib HOG frontal, upsample 1; the fixed box" in line
    assert "None" not in line


@needs_dlib
def test_fallback_nan_where_the_evaluation_config_sets_it(spec, tmp_path):
    from configs import evaluate as evaluate_config
    from experiments import evaluate

    config = evaluate_config.get_config()
    config.study, config.figures = str(spec), False
    assert config.identity.fallback == "crop"  # the default
    config.identity.backend, config.identity.fallback = "dlib", "nan"
    config.action_units.backend = "none"
    evaluate.main(config, str(tmp_path / "out"))
    assert np.isnan(_distances(_scores(tmp_path / "out")[GREY])).all()
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["config"]["identity"]["fallback"] == "nan"


# ---------------------------------------------------------------- facenet


class StandInMTCNN:
    """A face (the centre square) in every image that is not flat; None otherwise."""

    def __call__(self, pil_images):
        faces = []
        for image in pil_images:
            pixels = np.asarray(image)
            if pixels.std() == 0:
                faces.append(None)
                continue
            centre = Image.fromarray(pixels[48:208, 48:208])
            faces.append(torch.from_numpy(np.asarray(centre, np.float32)).permute(2, 0, 1))
        return faces


@pytest.fixture()
def facenet(monkeypatch):
    monkeypatch.setattr(identity, "mtcnn_unavailable_reason", lambda: None)
    monkeypatch.setattr(identity, "_make_mtcnn", lambda margin, device: StandInMTCNN())
    return identity.FaceEmbedder.with_random_weights(crop="auto", device="cpu")


def test_scores_csv_says_per_image_whether_mtcnn_found_the_face(spec, facenet, tmp_path):
    summary = _evaluate(spec, facenet, tmp_path / "crop")
    rows = _scores(tmp_path / "crop")
    assert [rows[key]["identity_face_box"] for key in sorted(rows)] == [
        "found", "found", "found", "fallback"]
    assert summary["identity_face_boxes"]["generated"] == {"found": 3, "fallback": 1}
    assert summary["identity_face_boxes"]["detector"] == "facenet-pytorch MTCNN (margin 14)"
    nan = _evaluate(spec, facenet, tmp_path / "nan", identity_fallback="nan")
    assert np.isnan(_distances(_scores(tmp_path / "nan")[GREY])).all()
    assert np.isfinite(_distances(rows[GREY])).all()
    assert nan["missing"]["identity"] == 1


def test_facenets_fixed_crop_is_recorded_as_fixed_not_as_a_fallback(spec, tmp_path):
    embedder = identity.FaceEmbedder.with_random_weights(crop="fixed", device="cpu")
    summary = _evaluate(spec, embedder, tmp_path / "out", identity_fallback="nan")
    assert {row["identity_face_box"] for row in _scores(tmp_path / "out").values()} == {"fixed"}
    assert summary["missing"]["identity"] == 0 and summary["missing_faces"] == 0
    assert not (tmp_path / "out/tables/missing_faces.csv").exists()


def test_fallback_nan_is_refused_for_a_backend_that_does_not_say_where_it_found_faces(
        spec, tmp_path):
    with pytest.raises(ValueError, match=r"identity.fallback=nan needs an identity backend "
                                         r"that says where it found each face.*FakeEmbedder"):
        _evaluate(spec, scorers.FakeEmbedder(), tmp_path / "out", identity_fallback="nan")
    with pytest.raises(ValueError, match=r"identity.fallback must be 'crop' .* or 'nan'"):
        _evaluate(spec, scorers.FakeEmbedder(), tmp_path / "out", identity_fallback="skip")
    assert not (tmp_path / "out").exists()
