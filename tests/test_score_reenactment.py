"""Specification of scoring a reenactment against its actor, where no exact answer exists.

OpenFace cannot run here, so its FeatureExtraction CSVs are written by the tests in
OpenFace 2.2's layout with known AU values; the identity scorer is the synthetic
embedder (the smoke run's faces are flowjax.synthetic renders).
"""

from __future__ import annotations

import csv
import json
import os
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from configs import reenact as reenact_config
from configs import score_reenactment as score_config
from experiments import reenact as reenact_job
from experiments import score_reenactment as score_job
from flowjax import io as fio
from flowjax import synthetic
from flowjax.evaluation import clip_scores

pytest.importorskip("av", reason="PyAV reads the run's videos: pip install -e '.[test]'")

HEADER = "frame, face_id, timestamp, confidence, success, AU06_r, AU12_r"


def _sequence_csv(path: Path, rows: list[tuple]) -> Path:
    """An OpenFace 2.2 FeatureExtraction CSV: ``(frame, face_id, confidence, success, AU06,
    AU12)`` per row."""
    lines = [HEADER] + [f"{f}, {i}, {0.04 * (f - 1):.3f}, {c}, {s}, {a:.2f}, {b:.2f}"
                        for f, i, c, s, a, b in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_feature_extraction_csv_gives_one_au_row_per_frame(tmp_path):
    path = _sequence_csv(tmp_path / "clip.csv", [
        (1, 0, 0.98, 1, 0.5, 1.0),
        (2, 0, 0.40, 1, 4.0, 4.0), (2, 1, 0.95, 1, 2.0, 3.0),  # two faces: the confident one
        (3, 0, 0.00, 0, 0.0, 0.0),  # no face tracked
        (4, 0, 0.97, 1, 1.5, 0.25)])
    aus = clip_scores.sequence_aus(path, 4, ["AU12", "AU06"])
    np.testing.assert_array_equal(aus[[0, 1, 3]], [[1.0, 0.5], [3.0, 2.0], [0.25, 1.5]])
    assert np.isnan(aus[2]).all()
    with pytest.raises(ValueError, match=r"clip.csv: has frames 1..4 \(4\) but the video has 5; "
                                         r"missing \[5\]"):
        clip_scores.sequence_aus(path, 5, ["AU06"])
    with pytest.raises(ValueError, match="no intensity for AU25"):
        clip_scores.sequence_aus(path, 4, ["AU25"])
    image = tmp_path / "photo.csv"
    image.write_text("face, confidence, AU06_r\n0, 0.9, 1.0\n")
    with pytest.raises(ValueError, match="photo.csv: a FaceLandmarkImg"):
        clip_scores.sequence_aus(image, 1, ["AU06"])


def test_au_error_and_jitter_are_measured_against_the_actors_own_expression():
    actor = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    images = np.zeros((4, 4, 4, 3), np.uint8)
    emb = np.tile([[1.0, 0.0]], (4, 1))
    centre = np.array([1.0, 0.0])
    same = clip_scores.clip_frame_metrics(images, actor, actor, emb, centre, centre)
    np.testing.assert_array_equal(same["au_error_actor"], 0)
    np.testing.assert_array_equal(same["au_jitter"][1:], 0)
    frozen = clip_scores.clip_frame_metrics(images, np.zeros_like(actor), actor, emb, centre,
                                            centre, threshold=0.5)
    np.testing.assert_allclose(frozen["au_error_actor"], [0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(frozen["au_error_active"][1:], [1.0, 2.0, 2.0])
    assert np.isnan(frozen["au_error_active"][0])  # no AU active in the actor's first frame
    # A frozen face has the actor's own change as its jitter.
    np.testing.assert_allclose(frozen["au_jitter"][1:], frozen["actor_au_change"][1:])
    lost = actor.copy()
    lost[2] = np.nan
    found = clip_scores.clip_frame_metrics(images, lost, actor, emb, centre, centre)["face_found"]
    np.testing.assert_array_equal(found, [1, 1, 0, 1])


def test_a_centroid_is_renormalised_only_for_an_embedder_of_unit_rows():
    unit = np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]])  # a frame without a face
    np.testing.assert_allclose(clip_scores.centroid(unit, "x"), [0.5 ** 0.5] * 2)
    raw = np.array([[0.2, 0.1], [0.4, 0.3]])  # dlib: unnormalised descriptors
    np.testing.assert_allclose(clip_scores.centroid(raw, "x"), [0.3, 0.2])
    with pytest.raises(ValueError, match="found no face in any of the actor's frames"):
        clip_scores.centroid(np.full((2, 2), np.nan), "the actor's frames")


def _smoke(**overrides):
    config = reenact_config.get_config("smoke")
    config.random_init.ddi = False
    config.evaluation.enabled = False
    config.write_frames = False
    config.update_from_flattened_dict(overrides)
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reenact") / "run"
    reenact_job.main(_smoke(), str(workdir))
    return workdir


def _score_config(run_dir: Path, **overrides):
    config = score_config.get_config()
    config.run_dir = str(run_dir)
    config.identity.backend = "synthetic"
    config.update_from_flattened_dict(overrides)
    return config


def test_a_run_is_scored_from_openface_csvs_of_its_videos(run, tmp_path):
    csvs = tmp_path / "openface"
    csvs.mkdir()
    ramp = np.linspace(0, 3, 8)
    _sequence_csv(csvs / "actor.csv", [(f + 1, 0, 0.9, 1, ramp[f], ramp[f]) for f in range(8)])
    # The result smiles half a level more than the actor on AU12 and misses frame 5.
    _sequence_csv(csvs / "id00.csv", [(f + 1, 0, 0.9, int(f != 4), ramp[f], ramp[f] + 0.5)
                                      for f in range(8)])
    out = tmp_path / "scores"
    record = score_job.main(_score_config(run, **{"action_units.csv_dir": str(csvs)}), str(out))
    with open(out / "tables" / "per_frame.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(8))
    errors = [r["au_error_actor"] for r in rows]
    assert errors[4] == "" and [float(e) for e in errors[:4] + errors[5:]] == [0.25] * 7
    assert [float(r["face_found"]) for r in rows] == [1, 1, 1, 1, 0, 1, 1, 1]
    distances = np.array([[float(r["to_target"]), float(r["to_actor"])] for r in rows])
    assert np.isfinite(distances).all() and (distances >= 0).all() and (distances <= 2).all()
    assert record["scorers"]["action_units"]["au_names"] == ["AU06", "AU12"]
    manifest = json.loads((out / "manifest.json").read_text())
    read = {Path(e["path"]).name: e["sha256"] for e in manifest["inputs"]}
    assert read == {"actor.csv": fio.sha256_file(csvs / "actor.csv"),
                    "id00.csv": fio.sha256_file(csvs / "id00.csv")}
    assert "scored against its actor" in (out / "report.md").read_text()
    with open(out / "tables" / "au_curves.csv") as f:
        curves = [r for r in csv.DictReader(f) if r["au"] == "AU12"]
    assert [float(r["result"]) - float(r["actor"]) for r in curves if r["frame"] == "2"] == [
        pytest.approx(0.5, abs=0.01)]
    assert (out / "figures" / "au_curves_id00.png").is_file()
    page = (out / "index.html").read_text()  # the viewer plays the run's own video
    assert urllib.parse.quote(os.path.relpath(run / "videos" / "id00.mp4", out)) in page


def test_a_csv_of_another_video_is_refused_naming_it_and_writes_nothing(run, tmp_path):
    csvs = tmp_path / "openface"
    csvs.mkdir()
    _sequence_csv(csvs / "actor.csv", [(f + 1, 0, 0.9, 1, 1.0, 1.0) for f in range(8)])
    _sequence_csv(csvs / "id00.csv", [(f + 1, 0, 0.9, 1, 1.0, 1.0) for f in range(6)])
    out = tmp_path / "scores"
    with pytest.raises(ValueError, match=r"id00.csv: has frames 1..6 \(6\) but the video has 8"):
        score_job.main(_score_config(run, **{"action_units.csv_dir": str(csvs)}), str(out))
    assert not out.exists()


def test_a_pixel_au_scorer_scores_the_videos_when_there_are_no_csvs(run, tmp_path):
    out = tmp_path / "scores"
    score_job.main(_score_config(run, **{"action_units.backend": "synthetic",
                                         "identity.backend": "none"}), str(out))
    with open(out / "tables" / "segments.csv") as f:
        summary = {r["segment"]: r for r in csv.DictReader(f)}
    assert float(summary["all"]["au_error_actor"]) >= 0
    assert summary["all"]["to_target"] == ""  # no identity scorer: no identity columns


def test_your_photos_must_be_unchanged_since_the_run_read_them(tmp_path):
    photos = tmp_path / "faces"
    synthetic.write_generated_faces(photos, n_identities=1, expressions=("neutral", "smile"),
                                    size=64, seed=5)
    workdir = tmp_path / "run"
    reenact_job.main(_smoke(**{"targets.identities": str(photos)}), str(workdir))
    photo = sorted(photos.rglob("*.png"))[0]
    photo.write_bytes(photo.read_bytes() + b"edited")
    with pytest.raises(ValueError, match=f"{photo.name}: changed since the run read it"):
        score_job.main(_score_config(workdir, **{"action_units.backend": "synthetic"}),
                       str(tmp_path / "scores"))


def test_a_real_clip_is_scored_with_dlibs_face_embedder(tmp_path):
    """The offline real-scorer path: scikit-image's astronaut as the actor's clip, dlib's
    ResNet descriptors (unnormalised, Euclidean) for identity, CSVs for the AUs."""
    from flowjax.faces import dlib_models
    from flowjax.io import video

    if dlib_models.dlib_import_error() is not None:
        pytest.skip(f"dlib unavailable: {dlib_models.dlib_import_error()}")
    skimage_data = pytest.importorskip("skimage.data")
    clip = tmp_path / "astronaut.mp4"
    frames = np.repeat(skimage_data.astronaut()[None, :256, 96:352], 8, axis=0)
    video.write_video(clip, frames, fps=12, generated=False)
    workdir = tmp_path / "run"
    reenact_job.main(_smoke(**{"actor.video": str(clip), "data.resize": "lanczos"}),
                     str(workdir))
    csvs = tmp_path / "openface"
    csvs.mkdir()
    for name in ("actor", "id00"):
        _sequence_csv(csvs / f"{name}.csv", [(f + 1, 0, 0.9, 1, 1.0, 2.0) for f in range(8)])
    out = tmp_path / "scores"
    record = score_job.main(_score_config(workdir, **{"identity.backend": "dlib",
                                                      "action_units.csv_dir": str(csvs)}),
                            str(out))
    assert "dlib ResNet" in record["scorers"]["identity"]["provenance"]["model"]
    with open(out / "tables" / "per_frame.csv") as f:
        rows = list(csv.DictReader(f))
    distances = np.array([[float(r["to_target"]), float(r["to_actor"])] for r in rows])
    assert np.isfinite(distances).all() and (distances > 0).all()
    assert [float(r["au_error_actor"]) for r in rows] == [0.0] * 8

