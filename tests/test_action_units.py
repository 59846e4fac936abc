"""OpenFace CSV parsing, per-image results, and running FaceLandmarkImg.

Fixtures are written in OpenFace's own formats (RecorderCSV.cpp): header
blocks in its order, ", " separators (2.0-2.2 releases) or "," (master),
fixed-point numbers. OpenFace itself is replaced by a small fake executable.
"""

import stat
import sys
import time

import numpy as np
import pytest

from flowjax.evaluation import action_units as au

from openface_format import header, row, write_csv  # noqa: E402  (tests/ is on sys.path)

SMILE = {"AU06": 1.52, "AU12": 2.31, "AU25": 1.8}


# --- parsing: layouts and format variants ----------------------------------


def test_parses_facelandmarkimg_file_with_every_output(tmp_path):
    cols = header()
    path = write_csv(tmp_path / "img.csv", cols, [row(cols, 0, 0.975, SMILE)])
    table = au.read_openface_csv(path)
    assert table.layout == "image"
    assert table.intensity_names == au.OPENFACE_INTENSITY_AUS
    assert table.presence_names == au.OPENFACE_PRESENCE_AUS
    assert table.values.shape == (1, len(cols))
    (result,) = au.results_from_csv(table)
    assert result.image == "img" and result.status == au.FaceStatus.OK
    np.testing.assert_allclose(result.intensities(("AU12", "AU06", "AU01")), [2.31, 1.52, 0.0])


def test_parses_aus_only_file(tmp_path):
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    path = write_csv(tmp_path / "a.csv", cols, [row(cols, 0, 0.9, SMILE)])
    (result,) = au.results_from_csv(au.read_openface_csv(path))
    assert result.intensities(("AU25",)) == pytest.approx([1.8])


def test_parses_master_format_without_spaces(tmp_path):
    cols = header(gaze=False, lmk3d=False)
    path = write_csv(tmp_path / "a.csv", cols, [row(cols, 0, 0.9, SMILE)], sep=",")
    (result,) = au.results_from_csv(au.read_openface_csv(path))
    assert result.intensities(("AU12",)) == pytest.approx([2.31])


def test_parses_crlf_line_endings_and_trailing_spaces(tmp_path):
    cols = header(pose=False)
    fields = row(cols, 0, 0.9, SMILE)
    fields[-1] += "  "
    path = write_csv(tmp_path / "a.csv", [*cols[:-1], cols[-1] + " "], [fields], newline="\r\n")
    (result,) = au.results_from_csv(au.read_openface_csv(path))
    assert result.status == au.FaceStatus.OK
    assert result.intensities(("AU06",)) == pytest.approx([1.52])


def test_reads_nan_spellings_as_nan(tmp_path):
    cols = header(pose=False, lmk2d=False, lmk3d=False, pdm=False)
    fields = row(cols, 0, 0.9, SMILE)
    fields[cols.index("gaze_angle_x")] = "-nan(ind)"  # MSVC's spelling
    fields[cols.index("gaze_angle_y")] = "-nan"  # glibc's spelling
    table = au.read_openface_csv(write_csv(tmp_path / "a.csv", cols, [fields]))
    assert np.isnan(table.column("gaze_angle_x")).all()
    assert np.isnan(table.column("gaze_angle_y")).all()


def test_parses_featureextraction_frames_with_failed_tracking(tmp_path):
    cols = header("sequence", gaze=False, lmk2d=False, lmk3d=False, pdm=False)
    rows = [
        row(cols, (1, 0), 0.98, SMILE),
        row(cols, (2, 0), 0.03, {}, success=0),  # FeatureExtraction's "no face"
        row(cols, (3, 0), 0.97, {"AU12": 3.0}),
    ]
    table = au.read_openface_csv(write_csv(tmp_path / "vid.csv", cols, rows))
    assert table.layout == "sequence"
    results = au.results_from_csv(table)
    assert [r.image for r in results] == ["vid:frame1", "vid:frame2", "vid:frame3"]
    assert [r.status for r in results] == ["ok", "no_face", "ok"]
    assert len(results[1].faces) == 1 and not results[1].faces[0].success
    assert np.isnan(results[1].intensities(("AU12",))).all()
    assert results[2].intensities(("AU12",)) == pytest.approx([3.0])


# --- parsing: faces per image ----------------------------------------------


def test_several_faces_report_multiple_and_use_highest_confidence(tmp_path):
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    rows = [row(cols, 0, 0.60, {"AU12": 1.0}), row(cols, 1, 0.95, {"AU12": 4.0})]
    (result,) = au.results_from_csv(au.read_openface_csv(write_csv(tmp_path / "a.csv", cols, rows)))
    assert result.status == au.FaceStatus.MULTIPLE_FACES
    assert len(result.faces) == 2
    assert result.chosen == 1 and result.policy == "highest_confidence"
    assert result.intensities(("AU12",)) == pytest.approx([4.0])


def test_equal_confidence_goes_to_lowest_face_id(tmp_path):
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    rows = [row(cols, 1, 0.9, {"AU12": 4.0}), row(cols, 0, 0.9, {"AU12": 1.0})]
    (result,) = au.results_from_csv(au.read_openface_csv(write_csv(tmp_path / "a.csv", cols, rows)))
    assert result.faces[result.chosen].face_id == 0


def test_header_only_file_is_no_face(tmp_path):
    table = au.read_openface_csv(write_csv(tmp_path / "a.csv", header(), []))
    (result,) = au.results_from_csv(table)
    assert result.status == au.FaceStatus.NO_FACE and result.chosen is None


def test_image_without_csv_but_with_details_is_no_face(tmp_path):
    # FaceLandmarkImg opens the CSV with the first face: no face, no CSV.
    (tmp_path / "b_of_details.txt").write_text("Input:b.png\n")
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    write_csv(tmp_path / "a.csv", cols, [row(cols, 0, 0.9, SMILE)])
    results = au.collect_facelandmarkimg_outputs(tmp_path, ["in/a.png", "in/b.png"])
    assert [(r.image, r.status) for r in results] == [("a", "ok"), ("b", "no_face")]
    assert np.isnan(results[1].intensities(au.OPENFACE_INTENSITY_AUS)).all()


def test_image_without_any_output_raises(tmp_path):
    with pytest.raises(RuntimeError, match="no output for in/c.png"):
        au.collect_facelandmarkimg_outputs(tmp_path, ["in/c.png"])


def test_requesting_an_au_the_file_lacks_names_file_and_line(tmp_path):
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    cols = [c for c in cols if c != "AU45_r"]
    path = write_csv(tmp_path / "a.csv", cols, [row(cols, 0, 0.9)])
    (result,) = au.results_from_csv(au.read_openface_csv(path))
    with pytest.raises(ValueError, match=r"a\.csv, line 2: no intensity for AU45"):
        result.intensities(("AU12", "AU45"))


# --- parsing: strictness -----------------------------------------------------


def _aus_only_lines():
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    return cols, [row(cols, 0, 0.9, SMILE), row(cols, 1, 0.8)]


def test_row_with_wrong_field_count_names_file_and_line(tmp_path):
    cols, rows = _aus_only_lines()
    rows[1] = rows[1][:-1]
    path = write_csv(tmp_path / "bad.csv", cols, rows)
    with pytest.raises(ValueError, match=r"bad\.csv, line 3: expected 37 fields .* got 36"):
        au.read_openface_csv(path)


def test_non_numeric_value_names_file_line_and_column(tmp_path):
    cols, rows = _aus_only_lines()
    rows[0][cols.index("AU12_r")] = "high"
    path = write_csv(tmp_path / "bad.csv", cols, rows)
    with pytest.raises(ValueError, match=r"bad\.csv, line 2: column 'AU12_r' .* got 'high'"):
        au.read_openface_csv(path)


def test_non_integer_face_id_is_rejected(tmp_path):
    cols, rows = _aus_only_lines()
    rows[0][0] = "0.5"
    with pytest.raises(ValueError, match=r"line 2: column 'face' should be an integer"):
        au.read_openface_csv(write_csv(tmp_path / "bad.csv", cols, rows))


def test_unknown_layout_names_file_and_line(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["image", "AU01_r"], [["0", "1.0"]])
    with pytest.raises(ValueError, match=r"bad\.csv, line 1: unknown layout"):
        au.read_openface_csv(path)


def test_unknown_column_is_rejected(tmp_path):
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    cols.insert(2, "emotion")
    path = write_csv(tmp_path / "bad.csv", cols, [])
    with pytest.raises(ValueError, match=r"line 1: expected .* at column 3 .* got 'emotion'"):
        au.read_openface_csv(path)


def test_truncated_landmark_block_is_rejected(tmp_path):
    cols = [c for c in header(gaze=False, pose=False, lmk3d=False, pdm=False) if c != "y_67"]
    with pytest.raises(ValueError, match=r"expected 'y_67' \(2D landmarks\)"):
        au.read_openface_csv(write_csv(tmp_path / "bad.csv", cols, []))


def test_success_must_be_zero_or_one(tmp_path):
    cols = header("sequence", gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    path = write_csv(tmp_path / "bad.csv", cols, [row(cols, (1, 0), 0.9, success=2)])
    with pytest.raises(ValueError, match=r"line 2: 'success' must be 0 or 1"):
        au.read_openface_csv(path)


def test_binary_file_is_rejected_naming_it(tmp_path):
    (tmp_path / "img.hog").write_bytes(b"\x1f\x8b\xff\x00")
    with pytest.raises(ValueError, match=r"img\.hog: not a text file"):
        au.read_openface_csv(tmp_path / "img.hog")


def test_empty_file_is_rejected(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: the file is empty"):
        au.read_openface_csv(tmp_path / "empty.csv")


# --- the command line and the binary ---------------------------------------


def test_command_for_an_image_directory_outputs_aus_only():
    cmd = au.facelandmarkimg_command("/of/FaceLandmarkImg", "/out", image_dir="/in")
    assert cmd == ["/of/FaceLandmarkImg", "-fdir", "/in", "-out_dir", "/out", "-aus"]


def test_command_for_image_files_repeats_f_and_appends_extra_args():
    cmd = au.facelandmarkimg_command("of", "/out", images=["a.png", "b.png"], extra_args=["-wild"])
    assert cmd == ["of", "-f", "a.png", "-f", "b.png", "-out_dir", "/out", "-aus", "-wild"]


def test_command_needs_exactly_one_input_kind():
    with pytest.raises(ValueError, match="exactly one"):
        au.facelandmarkimg_command("of", "/out")
    with pytest.raises(ValueError, match="exactly one"):
        au.facelandmarkimg_command("of", "/out", images=["a.png"], image_dir="/in")


def test_missing_binary_says_how_to_configure(tmp_path, monkeypatch):
    monkeypatch.delenv(au.BINARY_ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"not configured.*{au.BINARY_ENV_VAR}="):
        au.find_openface_binary()
    with pytest.raises(FileNotFoundError, match=f"does not exist.*{au.BINARY_ENV_VAR}="):
        au.find_openface_binary(tmp_path / "FaceLandmarkImg")


def test_an_intensity_outside_the_0_to_5_scale_names_file_line_and_column(tmp_path):
    cols = header()
    path = write_csv(tmp_path / "img.csv", cols, [row(cols, 0, 0.9, SMILE)])
    text = path.read_text().replace("2.31", "1e308")
    path.write_text(text)
    with pytest.raises(ValueError, match=r"img.csv, line 2: column 'AU12_r' is 1e\+308, "
                                         r"outside OpenFace's intensity scale 0-5"):
        au.read_openface_csv(path)


def test_a_negative_intensity_is_an_error(tmp_path):
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    path = write_csv(tmp_path / "img.csv", cols, [row(cols, 0, 0.9, {"AU06": -0.5})])
    with pytest.raises(ValueError, match=r"column 'AU06_r' is -0.5, outside"):
        au.read_openface_csv(path)


def test_binary_pointed_at_a_folder_says_it_is_a_folder(tmp_path):
    (tmp_path / "FaceLandmarkImg").write_text("#!/bin/sh\n")
    message = r"is a directory, not the FaceLandmarkImg executable \(.*FaceLandmarkImg exists"
    with pytest.raises(IsADirectoryError, match=message):
        au.find_openface_binary(tmp_path)
    with pytest.raises(IsADirectoryError, match=r"build/bin/FaceLandmarkImg"):
        au.find_openface_binary(tmp_path.parent)


def test_binary_comes_from_the_environment_variable(tmp_path, monkeypatch):
    fake = _fake_openface(tmp_path)
    monkeypatch.setenv(au.BINARY_ENV_VAR, str(fake))
    assert au.find_openface_binary() == fake


def test_non_executable_binary_is_rejected(tmp_path):
    path = tmp_path / "FaceLandmarkImg"
    path.write_text("")
    with pytest.raises(PermissionError, match="not executable"):
        au.find_openface_binary(path)


# --- running a fake FaceLandmarkImg -----------------------------------------

# Mimics FaceLandmarkImg -fdir ... -out_dir ... -aus: for each image a details
# file; a CSV with one face, none (img_000001) or two faces (img_000002).
FAKE_OPENFACE = '''
import os, sys
from pathlib import Path
args = sys.argv[1:]
if os.environ.get("FAKE_ARGV_LOG"):
    Path(os.environ["FAKE_ARGV_LOG"]).write_text("\\n".join(args))
if os.environ.get("FAKE_MODE") == "sleep":
    import time; time.sleep(30)
if os.environ.get("FAKE_MODE") == "fail":
    print("ERROR: Could not load the landmark detector"); sys.exit(1)
in_dir, out_dir = Path(args[args.index("-fdir") + 1]), Path(args[args.index("-out_dir") + 1])
out_dir.mkdir(parents=True, exist_ok=True)
header = HEADER
for i, image in enumerate(sorted(in_dir.glob("*.png"))):
    (out_dir / (image.stem + "_of_details.txt")).write_text("Input:" + str(image) + "\\n")
    if i == 1:
        continue
    faces = [(0, 0.95, i + 0.5)] + ([(1, 0.40, 4.0)] if i == 2 else [])
    lines = [", ".join(header)]
    for face, conf, au12 in faces:
        vals = ["%.2f" % (au12 if c == "AU12_r" else 0.0) for c in header[2:19]]
        lines.append(", ".join([str(face), "%.3f" % conf] + vals + ["0.0"] * 18))
    (out_dir / (image.stem + ".csv")).write_text("\\n".join(lines) + "\\n")
'''


def _fake_openface(tmp_path):
    cols = header(gaze=False, pose=False, lmk2d=False, lmk3d=False, pdm=False)
    script = f"#!{sys.executable}\n" + FAKE_OPENFACE.replace("HEADER", repr(cols))
    path = tmp_path / "bin" / "FaceLandmarkImg"
    path.parent.mkdir(exist_ok=True)
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _images(n):
    return np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_openface_scorer_scores_each_image_with_status(tmp_path, monkeypatch):
    log = tmp_path / "argv.txt"
    monkeypatch.setenv("FAKE_ARGV_LOG", str(log))
    scorer = au.OpenFaceScorer(_fake_openface(tmp_path))
    results = scorer.score(_images(3))
    assert [r.status for r in results] == ["ok", "no_face", "multiple_faces"]
    args = log.read_text().split("\n")
    assert args[0] == "-fdir" and args[2:] == ["-out_dir", args[3], "-aus"]


def test_openface_scorer_returns_intensities_with_nan_for_no_face(tmp_path):
    scorer = au.OpenFaceScorer(_fake_openface(tmp_path))
    assert isinstance(scorer, au.ActionUnitScorer)
    out = scorer(_images(3))
    assert out.shape == (3, 17)
    au12 = scorer.au_names.index("AU12")
    np.testing.assert_allclose(out[[0, 2], au12], [0.5, 2.5])  # image 2: its 0.95 face
    assert np.isnan(out[1]).all()


def test_openface_scorer_rejects_float_images(tmp_path):
    scorer = au.OpenFaceScorer(_fake_openface(tmp_path))
    with pytest.raises(ValueError, match=r"uint8 RGB images \[N, H, W, 3\]"):
        scorer(np.zeros((1, 8, 8, 3), np.float32))


def test_run_that_exceeds_timeout_is_killed(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "sleep")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="longer than 0.5 s"):
        au.run_facelandmarkimg(
            _fake_openface(tmp_path), tmp_path / "out", image_dir=tmp_path, timeout_s=0.5
        )
    assert time.monotonic() - start < 10


def test_non_zero_exit_reports_code_and_output(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(RuntimeError, match=r"code 1(.|\n)*Could not load the landmark detector"):
        au.run_facelandmarkimg(_fake_openface(tmp_path), tmp_path / "out", image_dir=tmp_path)


def test_run_refuses_a_non_empty_output_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.csv").write_text("face, confidence\n")
    with pytest.raises(ValueError, match="not empty"):
        au.run_facelandmarkimg(_fake_openface(tmp_path), tmp_path / "out", image_dir=tmp_path)
