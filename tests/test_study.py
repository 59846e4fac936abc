"""Specification of evaluating an existing study from a spec file (docs/study_format.md).

The fixture is a study in the published layout, made here: placeholder PNGs
under ``results/transferring/expression<N>/<target>/<alpha>/``, mean faces in
``<target>_source/`` and ``<target>_target/``, OpenFace FaceLandmarkImg CSVs
with the real header (``tests/openface_format.py``) beside ``.hog``,
``_of_details.txt`` and ``_aligned/`` files in
``evaluation/quality/raw_data/processed_expression<N>/``, and likeliness
matrices in ``evaluation/likeliness/expression<N>.csv`` (one of them labelling
its last two columns ``01_source, 01_target``, as most published ones do). Every expected number
is computed directly with :mod:`flowjax.evaluation.metrics` from the numbers
written into those files.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from configs import evaluate as evaluate_config
from flowjax import io as fio
from flowjax.evaluation import action_units as au
from flowjax.evaluation import metrics, pipeline, scoring, study
from openface_format import header, row, write_csv  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
EXPRESSIONS = ("expression1", "expression2")
TARGETS = ("01", "02")
ALPHAS = ("0.3", "0.32", "0.5")  # as the published study writes them: not zero-padded
SOURCE_PHOTO = {"expression1": "actor_happy", "expression2": "actor_surprised"}
NO_FACE = ("expression2", "02", "0.32")  # OpenFace found no face: only _of_details.txt
STRIP = ("expression1", "01", "0.5")  # a strip: two faces, the second more confident
# As four of the five published likeliness matrices: the mean faces' columns labelled after
# the first target ("01_source, 01_target") instead of "source, target".
LABELLED = "expression2"
COLS = header()
N_AU = len(au.OPENFACE_INTENSITY_AUS)


def _intensities(rng: np.random.Generator) -> np.ndarray:
    return np.round(rng.uniform(0, 5, N_AU), 2)  # OpenFace writes two decimals


def _write_openface(folder: Path, stem: str, faces: list[tuple[float, np.ndarray]]) -> None:
    rows = [row(COLS, i, conf, dict(zip(au.OPENFACE_INTENSITY_AUS, values)))
            for i, (conf, values) in enumerate(faces)]
    write_csv(folder / f"{stem}.csv", COLS, rows)
    (folder / f"{stem}.hog").write_bytes(b"\x00" * 16)
    (folder / f"{stem}_of_details.txt").write_text("Input:" + stem + "\n")
    (folder / f"{stem}_aligned").mkdir()


def _png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fio.write_png(path, image)


def make_published_study(root: Path, seed: int = 0) -> dict:
    """The study on disk; returns every number written, for the expected values."""
    rng = np.random.default_rng(seed)
    grey = np.full((8, 8, 3), 128, np.uint8)
    n_e, n_t, n_a = len(EXPRESSIONS), len(TARGETS), len(ALPHAS)
    truth = {"au_gen": np.full((n_e, n_t, n_a, N_AU), np.nan), "au_src": np.zeros((n_e, N_AU)),
             "to_source": rng.uniform(0.5, 1.5, (n_e, n_t, n_a)).round(4),
             "to_target": rng.uniform(0.5, 1.5, (n_e, n_t, n_a)).round(4),
             # Target mean to source mean, as written in each row (real files hold one value
             # twice; two values here show which cell goes where).
             "mean_dist": rng.uniform(1.0, 2.0, n_t).round(4),
             "mean_dist_t": rng.uniform(1.0, 2.0, n_t).round(4)}
    (root / "photos").mkdir(parents=True)
    for e, expression in enumerate(EXPRESSIONS):
        # The photo's file name is not its CSV's stem: the spec names the stem.
        fio.write_png(root / "photos" / f"{expression}.png", grey, generated=False)
        folder = root / f"evaluation/quality/raw_data/processed_{expression}"
        folder.mkdir(parents=True)
        truth["au_src"][e] = _intensities(rng)
        _write_openface(folder, SOURCE_PHOTO[expression], [(0.98, truth["au_src"][e])])
        for identity in ("actor", *TARGETS):
            _write_openface(folder, f"{identity}_mean", [(0.97, _intensities(rng))])
        for t, target in enumerate(TARGETS):
            base = root / f"results/transferring/{expression}/{target}"
            _png(base / f"{target}_source/actor_mean.png", grey)
            _png(base / f"{target}_target/{target}_mean.png", grey)
            for a, alpha in enumerate(ALPHAS):
                _png(base / alpha / f"{target}_{alpha}.png", grey)
                stem = f"{target}_{alpha}"
                if (expression, target, alpha) == NO_FACE:
                    (folder / f"{stem}_of_details.txt").write_text("no face\n")
                    continue
                values = _intensities(rng)
                faces = [(0.95, values)]
                if (expression, target, alpha) == STRIP:
                    faces = [(0.60, _intensities(rng)), (0.99, values)]
                _write_openface(folder, stem, faces)
                truth["au_gen"][e, t, a] = values
        likeliness = root / "evaluation/likeliness"
        likeliness.mkdir(parents=True, exist_ok=True)
        means = f"{TARGETS[0]}_source, {TARGETS[0]}_target" if expression == LABELLED else \
            "source, target"
        lines = ["output_images," + ",".join(ALPHAS) + ", " + means]
        for t, target in enumerate(TARGETS):
            d, d_t = truth["mean_dist"][t], truth["mean_dist_t"][t]
            lines.append(f"{target}_source," + ",".join(map(str, truth["to_source"][e, t]))
                         + f",0.0,{d}")
            lines.append(f"{target}_target," + ",".join(map(str, truth["to_target"][e, t]))
                         + f",{d_t},0.0")
        (likeliness / f"{expression}.csv").write_text("\n".join(lines) + "\n")
    return truth


SPEC = {
    "format": "flowjax-study/1",
    "root": "study",
    "source": "actor",
    "expressions": list(EXPRESSIONS),
    "targets": list(TARGETS),
    "alphas": list(ALPHAS),
    "images": "results/transferring/{expression}/{target}/{alpha}/{target}_{alpha}.png",
    "source_images": "photos/{expression}.png",
    "mean_faces": {
        "actor": "results/transferring/expression1/01/01_source/actor_mean.png",
        "01": "results/transferring/expression1/01/01_target/01_mean.png",
        "02": "results/transferring/expression1/02/02_target/02_mean.png"},
    "openface": {"folders": "evaluation/quality/raw_data/processed_{expression}",
                 "source_stems": SOURCE_PHOTO},
    "distances": {"layout": "published", "files": "evaluation/likeliness/{expression}.csv"},
    "description": {"method": "linear", "space": "z", "model": "Glow (published study)"},
}


def write_spec(folder: Path, **changes) -> Path:
    spec = {**SPEC, **changes}
    return study.write_spec(folder / f"spec{len(list(folder.glob('spec*.json')))}.json", spec)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("published")
    truth = make_published_study(folder / "study")
    return folder, truth


def expected(truth: dict) -> dict:
    """The tables' values, computed directly with flowjax.evaluation.metrics."""
    alphas = np.array([float(a) for a in ALPHAS])
    errors = metrics.au_mean_error(truth["au_gen"], truth["au_src"][:, None, None],
                                   au.OPENFACE_INTENSITY_AUS, aus=metrics.THESIS_AUS)
    best = metrics.best_alpha(alphas, errors)
    return {"errors": errors, "best": best,
            "trend": metrics.general_trend(alphas, errors, truth["to_target"]),
            "trends": [metrics.general_trend(alphas, errors[e], truth["to_target"][e])
                       for e in range(len(EXPRESSIONS))]}


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def command_output(published) -> Path:
    """The documented command, run as a user runs it."""
    folder, _ = published
    spec = write_spec(folder)
    out = folder / "out"
    result = subprocess.run(
        [sys.executable, "run.py", "--config=configs/evaluate.py:study",
         f"--config.study={spec}", f"--workdir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_study_command_writes_best_alpha_equal_to_a_direct_computation(command_output,
                                                                        published):
    want = expected(published[1])
    header_row, rows = read_table(command_output / "tables/best_alpha.csv")
    assert header_row[:4] == ["expression", "target", "best_alpha", "au_error"]
    assert [r[:2] for r in rows] == [[e, t] for e in EXPRESSIONS for t in TARGETS]
    got = np.array([[float(x) for x in r[2:]] for r in rows])
    best = want["best"]
    to_t = np.take_along_axis(published[1]["to_target"], best.index[..., None], -1)[..., 0]
    np.testing.assert_array_equal(got[:, 0], best.alpha.ravel())
    np.testing.assert_allclose(got[:, 1], best.error.ravel(), rtol=1e-12)
    np.testing.assert_allclose(got[:, 2], to_t.ravel(), rtol=1e-12)


def test_study_command_writes_the_general_trend_of_a_direct_computation(command_output,
                                                                         published):
    want = expected(published[1])
    _, rows = read_table(command_output / "tables/general_trend.csv")
    assert [r[0] for r in rows] == [*EXPRESSIONS, "all"]
    for r, trend in zip(rows, [*want["trends"], want["trend"]]):
        assert int(r[1]) == trend.n_pairs and int(r[2]) == trend.n_skipped
        np.testing.assert_allclose([float(x) for x in r[3:]],
                                   [trend.mean_best_alpha, trend.mean_au_error,
                                    trend.mean_identity_distance], rtol=1e-12)


def test_study_command_identity_tables_hold_the_precomputed_distances(command_output,
                                                                      published):
    truth = published[1]
    for e, expression in enumerate(EXPRESSIONS):
        header_row, rows = read_table(
            command_output / f"tables/published/likeliness/{expression}.csv")
        assert header_row == ["output_images", *ALPHAS, "source", "target"]
        for t, target in enumerate(TARGETS):
            d, d_t = truth["mean_dist"][t], truth["mean_dist_t"][t]
            assert rows[2 * t][0] == f"{target}_source"
            np.testing.assert_allclose([float(x) for x in rows[2 * t][1:]],
                                       [*truth["to_source"][e, t], 0.0, d], rtol=1e-12)
            np.testing.assert_allclose([float(x) for x in rows[2 * t + 1][1:]],
                                       [*truth["to_target"][e, t], d_t, 0.0], rtol=1e-12)
        # The tidy identity table has the same alphas; its source column is the
        # source photo, which precomputed matrices do not give.
        _, tidy = read_table(command_output / f"tables/{expression}/identity_distances.csv")
        assert [float(x) for x in tidy[1][1:4]] == list(truth["to_target"][e, 0])
        assert tidy[1][4] == "nan"


def test_published_au_tables_hold_each_images_thesis_aus_and_error(command_output, published):
    truth, want = published[1], expected(published[1])
    columns = [au.OPENFACE_INTENSITY_AUS.index(a) for a in metrics.THESIS_AUS]
    header_row, rows = read_table(command_output / "tables/published/quality/expression1.csv")
    assert header_row == ["output_images", *metrics.THESIS_AUS, "au_error"]
    assert rows[0][0] == "01_0.3"
    np.testing.assert_allclose([float(x) for x in rows[0][1:]],
                               [*truth["au_gen"][0, 0, 0, columns], want["errors"][0, 0, 0]])
    assert rows[-1][0] == "source"
    _, matrix = read_table(command_output / "tables/published/quality/expression2_au_error.csv")
    np.testing.assert_allclose([[float(x) for x in r[1:]] for r in matrix], want["errors"][1])


def test_a_strip_csv_uses_its_most_confident_face_and_says_so(command_output, published):
    _, rows = read_table(command_output / "tables/expression1/action_units.csv")
    by_name = {r[0]: [float(x) for x in r[1:]] for r in rows}
    np.testing.assert_allclose(by_name["01_0.5"], published[1]["au_gen"][0, 0, 2])
    notes = json.loads((command_output / "evaluation.json").read_text())["notes"]
    assert any("several faces" in n and "01_0.5.csv (2 faces)" in n for n in notes)


def test_an_image_openface_found_no_face_in_is_a_missing_face(command_output):
    notes = json.loads((command_output / "evaluation.json").read_text())["notes"]
    assert any("1 image(s) have no face" in n and "every one is listed" in n for n in notes)
    image = "results/transferring/expression2/02/0.32/02_0.32.png"
    reason = ("OpenFace found no face: no 02_0.32.csv in "
              f"{command_output.parent / 'study/evaluation/quality/raw_data'}"
              "/processed_expression2")
    assert read_table(command_output / "tables/missing_faces.csv") == (
        ["image", "role", "scorer", "outcome", "reason"],
        [[image, "generated", "action_units", "nan", reason]])
    report = (command_output / "report.md").read_text()  # short: listed in the report itself
    assert f"| {image} | generated | action_units | nan | {reason} |" in report
    _, rows = read_table(command_output / "tables/scores.csv")
    row_ = next(r for r in rows if r[:3] == ["expression2", "02", "0.32"])
    assert row_[6] == "nan"  # au_error
    best = next(r for r in read_table(command_output / "tables/best_alpha.csv")[1]
                if r[:2] == ["expression2", "02"])
    assert best[2] != "0.32"


def test_study_command_writes_report_figures_and_a_manifest(command_output):
    written = {p.relative_to(command_output).as_posix() for p in command_output.rglob("*.*")}
    assert {"report.md", "evaluation.json", "manifest.json", "tables/scores.csv",
            "figures/expression1/au_error.png", "figures/expression1/identity_distance.png",
            "figures/expression2/au_bars_01.png"} <= written
    manifest = json.loads((command_output / "manifest.json").read_text())
    assert manifest["extra"]["evaluated_study"]["spec"].endswith("spec0.json")
    assert manifest["extra"]["scorers"]["action_units"]["backend"] == "precomputed"
    text = (command_output / "report.md").read_text()
    assert "Evaluation of the study" in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert "tables/published/likeliness/expression1.csv" in links
    assert all((command_output / link).is_file() for link in links)


# ---- other inputs: tidy distances, identity none, pixel scorers --------------------


def _evaluate(spec: Path, out: Path, **overrides):
    from experiments import evaluate

    config = evaluate_config.get_config("study")
    config.study, config.figures = str(spec), False
    for key, value in overrides.items():
        node = config
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    return evaluate.main(config, str(out))


def test_a_tidy_distance_file_gives_the_same_tables_as_the_published_matrices(
        published, command_output, tmp_path):
    folder, truth = published
    lines = ["expression,target,alpha,distance_to_target_mean,distance_to_source_mean"]
    for e, expression in enumerate(EXPRESSIONS):
        for t, target in enumerate(TARGETS):
            for a, alpha in enumerate(ALPHAS):
                lines.append(f"{expression},{target},{alpha},{truth['to_target'][e, t, a]},"
                             f"{truth['to_source'][e, t, a]}")
    (tmp_path / "distances.csv").write_text("\n".join(lines) + "\n")
    spec = write_spec(tmp_path, root=str(folder / "study"),
                      distances={"layout": "tidy", "files": str(tmp_path / "distances.csv")})
    _evaluate(spec, tmp_path / "out")
    for name in ("best_alpha.csv", "general_trend.csv", "scores.csv"):
        assert (tmp_path / "out/tables" / name).read_bytes() == \
            (command_output / "tables" / name).read_bytes()


def test_identity_backend_none_evaluates_aus_only(published, command_output, tmp_path):
    folder, _ = published
    spec = write_spec(tmp_path, root=str(folder / "study"))
    summary = _evaluate(spec, tmp_path / "out", **{"identity.backend": "none"})
    assert summary["scorers"]["identity"] == "none"
    assert not list((tmp_path / "out/tables").glob("*/identity_distances.csv"))
    assert not (tmp_path / "out/tables/published/likeliness").exists()
    _, rows = read_table(tmp_path / "out/tables/best_alpha.csv")
    _, published_rows = read_table(command_output / "tables/best_alpha.csv")
    assert [r[:4] for r in rows] == [r[:4] for r in published_rows]
    assert {r[4] for r in rows} == {"nan"}


def test_a_pixel_only_scorer_still_scores_a_study(published, tmp_path):
    folder, _ = published
    spec = write_spec(tmp_path, root=str(folder / "study"))
    summary = _evaluate(spec, tmp_path / "out", **{"identity.backend": "fake",
                                                   "action_units.backend": "fake"})
    # Every placeholder image is the same grey: the fake scorer gives the same AUs to all.
    assert summary["best_alpha"]["expression1"]["01"]["au_error"] == 0.0
    assert summary["best_alpha"]["expression1"]["01"]["alpha"] == 0.3


def test_precomputed_aus_without_openface_folders_name_the_spec_key(published, tmp_path):
    folder, _ = published
    spec = {k: v for k, v in SPEC.items() if k != "openface"}
    path = study.write_spec(tmp_path / "spec.json", {**spec, "root": str(folder / "study")})
    with pytest.raises(ValueError, match=r"no 'openface.folders'"):
        _evaluate(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- the spec's errors -------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"targets": []}, r"'targets': expected a non-empty list"),
    ({"images": "results/{expr}/{target}.png"}, r"'images': template .* uses \['expr'\]"),
    ({"alphas": ["0.3", "0.31"]}, r"'images': .*0.31/01_0.31.png does not exist"),
    ({"mean_faces": {"actor": "x.png"}}, r"'mean_faces': no entry for identity '01'"),
    ({"distances": {"layout": "wide"}}, r"'distances': expected \{\"layout\""),
    ({"colour": 1}, r"'colour': unknown key"),
])
def test_a_bad_spec_is_refused_naming_the_key(published, tmp_path, change, message):
    folder, _ = published
    path = study.write_spec(tmp_path / "spec.json",
                            {**SPEC, "root": str(folder / "study"), **change})
    with pytest.raises(study.StudySpecError, match=message):
        study.load_study(path)


def test_a_published_matrix_without_a_targets_row_names_file_and_row(published, tmp_path):
    folder, _ = published
    bad = tmp_path / "expression1.csv"
    text = (folder / "study/evaluation/likeliness/expression1.csv").read_text()
    bad.write_text("\n".join(l for l in text.splitlines() if not l.startswith("02_target")))
    spec = write_spec(tmp_path, root=str(folder / "study"),
                      distances={"layout": "published", "files": str(bad)})
    with pytest.raises(ValueError, match=r"expression1.csv: no row '02_target'"):
        _evaluate(spec, tmp_path / "out")


def test_a_checksum_in_the_spec_is_verified_before_scoring(published, tmp_path):
    folder, _ = published
    rel = "results/transferring/expression1/01/0.3/01_0.3.png"
    spec = write_spec(tmp_path, root=str(folder / "study"), sha256={rel: "0" * 64})
    with pytest.raises(ValueError, match=r"01_0.3.png changed since it was recorded: sha256 "
                                         r"[0-9a-f]{64}, the study spec .*records 0{64}"):
        _evaluate(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_synthetic_scorers_are_refused_on_a_study(published, tmp_path):
    folder, _ = published
    spec = write_spec(tmp_path, root=str(folder / "study"))
    loaded = pipeline.load_study(spec)

    class Stand:  # a class of flowjax.evaluation.synthetic_scorers, without its weights
        __module__ = scoring.SYNTHETIC_SCORERS

    with pytest.raises(ValueError, match=r"scores only flowjax.synthetic faces"):
        pipeline.check_scorers_fit(loaded, Stand())


def test_the_synthetic_fake_detector_is_refused_on_a_study_before_anything_is_written(
        published, tmp_path):
    folder, _ = published
    spec = write_spec(tmp_path, root=str(folder / "study"))
    with pytest.raises(ValueError, match=r"detector.backend = 'synthetic' scores only "
                                         r"flowjax.synthetic faces.*--config.detector.backend=none"):
        _evaluate(spec, tmp_path / "out", **{"detector.backend": "synthetic"})
    assert not (tmp_path / "out").exists()
    # The pipeline's own check refuses the detector too (for callers of pipeline.evaluate).
    from flowjax.evaluation import synthetic_scorers

    with pytest.raises(ValueError, match=r"SyntheticFakeDetector scores only flowjax.synthetic "
                                         r".*--config.detector.backend=none"):
        pipeline.check_scorers_fit(pipeline.load_study(spec), None, None,
                                   synthetic_scorers.build_fake_detector())


def test_an_image_without_any_openface_output_is_a_missing_face_never_a_run(tmp_path):
    from flowjax.evaluation.datatypes import ImageRef
    from flowjax.evaluation.precomputed import PrecomputedOpenFace

    folder = tmp_path / "processed"
    folder.mkdir()
    _write_openface(folder, "01_0.3", [(0.9, np.full(N_AU, 1.5))])
    scorer = PrecomputedOpenFace()
    out = scorer.score_files([ImageRef(tmp_path / "01_0.3.png", "01_0.3", (folder,)),
                              ImageRef(tmp_path / "01_0.5.png", "01_0.5", (folder,))])
    np.testing.assert_array_equal(out[0], np.full(N_AU, 1.5))
    assert np.isnan(out[1]).all()
    assert scorer.no_face_reasons() == {(tmp_path / "01_0.5.png").resolve():
                                        f"no 01_0.5.csv in {folder}"}
    assert scorer.notes() == ["1 image(s) have no face in OpenFace's output and count as "
                              "missing faces (NaN); every one is listed, with the reason, "
                              "under 'Missing faces'."]


def test_every_missing_face_is_listed_in_a_file_the_report_links(tmp_path):
    """Eleven of twelve generated images and a target's mean face without a CSV: the
    notes used to list the first five; the table lists every one, with its reason."""
    make_published_study(tmp_path / "study")
    kept = ("expression1", "01", "0.3")
    gone = []
    for e, expression in enumerate(EXPRESSIONS):
        folder = tmp_path / f"study/evaluation/quality/raw_data/processed_{expression}"
        (folder / "02_mean.csv").unlink()
        for target in TARGETS:
            for alpha in ALPHAS:
                if (expression, target, alpha) != kept:
                    (folder / f"{target}_{alpha}.csv").unlink(missing_ok=True)  # NO_FACE has none
                    gone.append((f"results/transferring/{expression}/{target}/{alpha}/"
                                 f"{target}_{alpha}.png", "generated"))
    gone.append(("results/transferring/expression1/02/02_target/02_mean.png", "mean face"))
    summary = _evaluate(write_spec(tmp_path), tmp_path / "out")
    header_row, rows = read_table(tmp_path / "out/tables/missing_faces.csv")
    assert header_row == ["image", "role", "scorer", "outcome", "reason"]
    assert [tuple(r[:2]) for r in rows] == gone and len(rows) == 12
    assert all(r[2:4] == ["action_units", "nan"] and " no " in r[4] for r in rows)
    assert summary["missing_faces"] == 12
    report = (tmp_path / "out/report.md").read_text()
    first = report.split("## Scorers")[0]
    assert "**Missing faces:** 12" in first
    assert ("12 images in which a scorer found no face; every one, with its role, the scorer, "
            "what its values became and why, is in [`tables/missing_faces.csv`]"
            "(tables/missing_faces.csv)") in report


class FileEmbedder:
    """Reads file names, never pixels: a generated image ``<t>_<alpha>`` embeds to
    ``[alpha]``, the source's mean face to ``[10]``, every other image to ``[0]``."""

    def embed(self, images):
        raise AssertionError("a file scorer must not be given pixels")

    def embed_files(self, refs):
        def vector(stem):
            if stem == "actor_mean":
                return [10.0]
            target, _, alpha = stem.partition("_")
            return [float(alpha)] if target in TARGETS and alpha != "mean" else [0.0]
        return np.array([vector(r.path.stem) for r in refs])

    def provenance(self):
        return {"model": "file names (test)"}


def test_an_identity_scorer_that_reads_files_gets_each_images_path(published, tmp_path):
    from flowjax.evaluation.precomputed import PrecomputedOpenFace

    folder, _ = published
    loaded = pipeline.load_study(write_spec(tmp_path, root=str(folder / "study")))
    pipeline.evaluate_study(loaded, FileEmbedder(), PrecomputedOpenFace(),
                            out_dir=tmp_path / "out", make_figures=False)
    _, rows = read_table(tmp_path / "out/tables/expression2/identity_distances.csv")
    alphas = [float(a) for a in ALPHAS]
    assert rows[0][0] == "01_source"
    np.testing.assert_allclose([float(x) for x in rows[0][1:]],
                               [10 - a for a in alphas] + [10, 10])
    np.testing.assert_allclose([float(x) for x in rows[1][1:]], alphas + [0, 0])


# ---- published files as published (#28 item 1) ------------------------------------


def test_matrices_labelling_their_mean_columns_after_a_target_are_read_and_noted(
        command_output, published):
    """Four of the five published matrices label their last two columns
    ``01_source, 01_target``; the fixture's expression2 does too."""
    truth = published[1]
    _, rows = read_table(command_output / f"tables/published/likeliness/{LABELLED}.csv")
    np.testing.assert_allclose([float(x) for x in rows[0][1:]],
                               [*truth["to_source"][1, 0], 0.0, truth["mean_dist"][0]])
    notes = json.loads((command_output / "evaluation.json").read_text())["notes"]
    noted = [n for n in notes if "harmless variant" in n]
    assert len(noted) == 1 and f"{LABELLED}.csv" in noted[0]
    assert "columns labelled '01_source', '01_target'" in noted[0]
    assert noted[0] in (command_output / "report.md").read_text()


def _matrix(published, out: Path, header: str, drop_alpha: str | None = None,
            end: str = "\n") -> Path:
    """expression1's published matrix with another header (and an alpha's column
    dropped from every line), written to ``out``."""
    text = (published[0] / "study/evaluation/likeliness/expression1.csv").read_text()
    rows = [r.split(",") for r in text.splitlines()]
    keep = [i for i, h in enumerate(rows[0]) if h.strip() != drop_alpha]
    out.write_text("\n".join([header] + [",".join(r[i] for i in keep) for r in rows[1:]]) + end)
    return out


def _read_expression1(published, file: Path) -> tuple[dict, list[str]]:
    from flowjax.evaluation import precomputed

    folder, _ = published
    loaded = study.load_study(write_spec(folder))
    accepted: list[str] = []
    return precomputed.read_published_distances(loaded, 0, file, accepted), accepted


@pytest.mark.parametrize("header, end, variant", [
    ("output_images,0.3,0.32,0.5,02_source,02_target", "\n", "labelled '02_source'"),
    ("Output_Images, 0.3, 0.32, 0.5, SOURCE, Target", "\n", "'SOURCE', 'Target' read as"),
    ("output_images,0.3,0.32,0.5,source,target", "", "no newline after the last row"),
])
def test_harmless_header_variants_read_the_same_numbers_and_are_named(published, tmp_path,
                                                                      header, end, variant):
    truth = published[1]
    got, accepted = _read_expression1(published, _matrix(published, tmp_path / "e1.csv", header,
                                                          end=end))
    np.testing.assert_array_equal(got["to_target"], truth["to_target"][0])
    np.testing.assert_array_equal(got["to_source"], truth["to_source"][0])
    np.testing.assert_array_equal(got["st"], truth["mean_dist"])
    assert len(accepted) == 1 and variant in accepted[0]


@pytest.mark.parametrize("header, drop, message", [
    # A missing alpha: the labelled header does not excuse it.
    ("output_images,0.3,0.5,01_source,01_target", "0.32",
     r"expected one column for alpha 0.32"),
    ("output_images,0.3,0.32,0.5,03_source,03_target", None,
     r"name target '03', which has no rows here"),
    ("output_images,0.3,0.32,0.5,01_source,02_target", None, r"name two targets"),
    ("output_images,0.3,0.32,0.5,source_01,target_01", None, r"expected the header"),
    ("output_images,0.3,0.32,0.3,source,target", "0.5", r"one column for alpha 0.3, found 2"),
    ("output_images,0.3,0.32,0.5,source,source", None, r"expected the header"),
    ("images,0.3,0.32,0.5,source,target", None, r"expected the header"),
])
def test_header_mismatches_are_still_refused(published, tmp_path, header, drop, message):
    with pytest.raises(ValueError, match=message):
        _read_expression1(published, _matrix(published, tmp_path / "e1.csv", header,
                                             drop_alpha=drop))


# ---- evaluations that cannot mislead (#28 item 3) -----------------------------------


def _study_copy(published, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(published[0] / "study", tmp_path / "study"))


def test_images_sharing_a_stem_in_an_expressions_folder_are_refused(published, tmp_path):
    """``{expression}/{target}/{alpha}.png``: every target's image of one alpha has the
    stem ``<alpha>``, so all would read ``<alpha>.csv``: target 02 would get 01's AUs."""
    root = _study_copy(published, tmp_path)
    for e in EXPRESSIONS:
        folder = root / f"evaluation/quality/raw_data/processed_{e}"
        for t in TARGETS:
            for a in ALPHAS:
                _png(root / f"flat/{e}/{t}/{a}.png", np.full((8, 8, 3), 128, np.uint8))
        for a in ALPHAS:
            if (folder / f"01_{a}.csv").is_file():
                (folder / f"{a}.csv").write_bytes((folder / f"01_{a}.csv").read_bytes())
    spec = write_spec(tmp_path, root=str(root), images="flat/{expression}/{target}/{alpha}.png")
    with pytest.raises(ValueError, match=r"flat/expression1/01/0.3.png and .*flat/expression1/"
                                         r"02/0.3.png map to one OpenFace result"):
        _evaluate(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_alpha_labels_that_contradict_their_alphas_are_refused(published, tmp_path):
    folder, _ = published
    spec = write_spec(tmp_path, root=str(folder / "study"), alphas=[0.3, 0.32, 0.5],
                      alpha_labels=["0.5", "0.32", "0.3"])
    with pytest.raises(study.StudySpecError, match=r"'alpha_labels': label '0.5' is given for "
                                                   r"alpha 0.3"):
        study.load_study(spec)
    spec = write_spec(tmp_path, root=str(folder / "study"), alphas=[0.3, 0.32, 0.5],
                      alpha_labels=list(ALPHAS))
    assert study.load_study(spec).labels == ALPHAS


@pytest.mark.parametrize("label, alpha, contradicts", [
    ("0.3", 0.3, False), ("0.30", 0.3, False), ("0.12", 0.125, False), ("0.13", 0.125, False),
    ("1e-05", 1e-5, False), ("a0.5", 0.3, False), ("0.5", 0.3, True), ("0.31", 0.3, True),
    ("05", 0.5, True), ("0.0", 0.05000001, True),
])
def test_a_numeric_label_must_be_its_alpha_rounded_to_the_labels_digits(label, alpha,
                                                                         contradicts):
    assert study._label_contradicts(label, alpha) is contradicts


def test_an_expression_named_all_is_refused(published, tmp_path):
    """``all`` is general_trend.csv's row over every expression."""
    root = _study_copy(published, tmp_path)
    for old, new in [("results/transferring/expression2", "results/transferring/all"),
                     ("evaluation/quality/raw_data/processed_expression2",
                      "evaluation/quality/raw_data/processed_all"),
                     ("evaluation/likeliness/expression2.csv", "evaluation/likeliness/all.csv"),
                     ("photos/expression2.png", "photos/all.png")]:
        (root / old).rename(root / new)
    spec = write_spec(tmp_path, root=str(root), expressions=["expression1", "all"],
                      openface={**SPEC["openface"], "source_stems": {
                          "expression1": "actor_happy", "all": "actor_surprised"}})
    with pytest.raises(study.StudySpecError, match=r"'expressions': 'all' is reserved"):
        _evaluate(spec, tmp_path / "out")


@pytest.mark.parametrize("images, message", [
    ("results/transferring/{expression}/{target}/0.3/{target}_0.3.png", r"has no \{alpha\}"),
    ("results/transferring/{expression}/01/{alpha}/01_{alpha}.png", r"has no \{target\}"),
    ({e: {t: {a: "results/transferring/expression1/01/0.3/01_0.3.png" if a == "0.5" else
              f"results/transferring/{e}/{t}/{a}/{t}_{a}.png" for a in ALPHAS}
          for t in TARGETS} for e in EXPRESSIONS},
     r"'images': \(expression1, 01, alpha 0.3\) and \(expression1, 01, alpha 0.5\) are both"),
])
def test_images_that_give_two_cells_one_file_are_refused(published, tmp_path, images, message):
    folder, _ = published
    spec = write_spec(tmp_path, root=str(folder / "study"), images=images)
    with pytest.raises(study.StudySpecError, match=message):
        study.load_study(spec)


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _outputs(out: Path) -> dict:
    """Every table's bytes and every figure's pixels of an evaluation."""
    return {**{p.relative_to(out): p.read_bytes() for p in (out / "tables").rglob("*.csv")},
            **{p.relative_to(out): _pixels(p) for p in (out / "figures").rglob("*.png")}}


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for rel, value in want.items():
        np.testing.assert_array_equal(np.asarray(got[rel]), np.asarray(value), err_msg=str(rel))


def test_an_unsorted_alpha_grid_is_read_in_alpha_order(published, tmp_path):
    """Tables, figures and the viewer follow the grid's order: a spec listing
    0.5, 0.3, 0.32 gives what 0.3, 0.32, 0.5 gives (no zig-zag curves)."""
    folder, _ = published
    outputs = {}
    for name, alphas in (("sorted", list(ALPHAS)), ("unsorted", ["0.5", "0.3", "0.32"])):
        spec = write_spec(tmp_path, root=str(folder / "study"), alphas=alphas)
        assert study.load_study(spec).labels == ALPHAS
        _evaluate(spec, tmp_path / name, figures=True)
        outputs[name] = _outputs(tmp_path / name)
    _assert_same(outputs["unsorted"], outputs["sorted"])


def test_figures_plot_a_study_in_alpha_order_whatever_its_order(published, tmp_path):
    import dataclasses

    from flowjax.evaluation.precomputed import PrecomputedDistances, PrecomputedOpenFace

    folder, _ = published
    loaded = study.load_study(write_spec(tmp_path, root=str(folder / "study")))
    order = [2, 0, 1]
    shuffled = dataclasses.replace(
        loaded, alphas=loaded.alphas[order], labels=tuple(loaded.labels[i] for i in order),
        image_paths=tuple(tuple(tuple(cell[i] for i in order) for cell in row)
                          for row in loaded.image_paths))
    figures = {}
    for name, which in (("sorted", loaded), ("shuffled", shuffled)):
        pipeline.evaluate_study(which, PrecomputedDistances(), PrecomputedOpenFace(),
                                out_dir=tmp_path / name)
        figures[name] = {p.relative_to(tmp_path / name): _pixels(p)
                         for p in (tmp_path / name / "figures").rglob("*.png")}
    _assert_same(figures["shuffled"], figures["sorted"])


def test_an_openface_folder_without_the_studys_csvs_stops_naming_it(published, tmp_path):
    folder, _ = published
    empty = tmp_path / "processed_{expression}"
    for e in EXPRESSIONS:
        Path(str(empty).format(expression=e)).mkdir()
    spec = write_spec(tmp_path, root=str(folder / "study"),
                      openface={"folders": str(empty), "source_stems": SOURCE_PHOTO})
    with pytest.raises(ValueError, match=r"AUs are missing .* for all 12 generated images.*"
                                         r"Looked in the OpenFace folder\(s\) .*processed_"
                                         r"expression1, .*processed_expression2"):
        _evaluate(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_source_stems_that_match_no_csv_stop_naming_them(published, tmp_path):
    folder, _ = published
    spec = write_spec(tmp_path, root=str(folder / "study"),
                      openface={**SPEC["openface"], "source_stems": {
                          "expression1": "happy", "expression2": "surprised"}})
    with pytest.raises(ValueError, match=r"AUs are missing for every source expression image "
                                         r"\(expression1: happy, expression2: surprised\)"):
        _evaluate(spec, tmp_path / "out")


def test_distances_that_are_all_missing_stop_naming_the_files(published, tmp_path):
    folder, _ = published
    files = []
    for e in EXPRESSIONS:
        text = (folder / f"study/evaluation/likeliness/{e}.csv").read_text().splitlines()
        cells = [text[0]] + [",".join([r.split(",")[0]] + ["nan"] * (len(r.split(",")) - 1))
                             for r in text[1:]]
        files.append(tmp_path / f"{e}.csv")
        files[-1].write_text("\n".join(cells) + "\n")
    spec = write_spec(tmp_path, root=str(folder / "study"), distances={
        "layout": "published", "files": str(tmp_path / "{expression}.csv")})
    with pytest.raises(ValueError, match=r"identity distances are missing \(NaN\) for all 12 "
                                         r"generated images.*distance file\(s\) .*expression1.csv"):
        _evaluate(spec, tmp_path / "out")


def test_the_report_says_how_many_values_are_missing_in_its_first_lines(command_output):
    first = (command_output / "report.md").read_text().splitlines()[:6]
    assert any(line.startswith("**Missing values** (NaN") and "AUs: 1 of 12 generated images "
               "and 0 of 2 source images" in line and "AU error: 1 of 12" in line
               and "identity distances: 0 of 12" in line for line in first), first
    summary = json.loads((command_output / "evaluation.json").read_text())
    assert summary["missing"] == {"generated_images": 12, "source_images": 2, "identity": 0,
                                  "au_generated": 1, "au_source": 0, "au_error": 1}


def test_per_alpha_table_equals_a_direct_computation(command_output, published):
    truth, want = published[1], expected(published[1])
    header_row, rows = read_table(command_output / "tables/per_alpha.csv")
    assert header_row == ["expression", "alpha", "images",
                          "au_error", "au_error_se", "au_error_n",
                          "distance_to_target_mean", "distance_to_target_mean_se",
                          "distance_to_target_mean_n",
                          "distance_to_source_mean", "distance_to_source_mean_se",
                          "distance_to_source_mean_n"]
    numbers = {"au_error": want["errors"], "distance_to_target_mean": truth["to_target"],
               "distance_to_source_mean": truth["to_source"]}
    expected_rows = []
    for name, pick in [*((e, (lambda x, i=i: x[i])) for i, e in enumerate(EXPRESSIONS)),
                       ("all", lambda x: x.reshape(-1, x.shape[-1]))]:
        for a, alpha in enumerate(ALPHAS):
            row = [name, float(alpha), len(pick(truth["to_target"]))]
            for values in numbers.values():
                column = pick(values)[:, a]
                column = column[~np.isnan(column)]
                se = column.std(ddof=1) / np.sqrt(len(column)) if len(column) > 1 else np.nan
                row += [column.mean(), se, len(column)]
            expected_rows.append(row)
    assert [r[0] for r in rows] == [r[0] for r in expected_rows]
    got = np.array([[float(x) for x in r[1:]] for r in rows])
    np.testing.assert_allclose(got, np.array([r[1:] for r in expected_rows], float),
                               rtol=1e-12, equal_nan=True)
    assert (got[:, 4] == 1).any()  # au_error_n: the missing face leaves one image there


def test_the_manifest_records_every_openface_csv_and_distance_file_read(command_output,
                                                                       published):
    folder, _ = published
    manifest = json.loads((command_output / "manifest.json").read_text())
    read = {Path(i["path"]).resolve(): i for i in manifest["inputs"]
            if i.get("role") in ("precomputed OpenFace output", "precomputed identity distances")}
    processed = folder / "study/evaluation/quality/raw_data"
    want = {*(processed / f"processed_{e}" / f"{t}_{a}.csv" for e in EXPRESSIONS
              for t in TARGETS for a in ALPHAS if (e, t, a) != NO_FACE),
            *(processed / f"processed_{e}" / f"{SOURCE_PHOTO[e]}.csv" for e in EXPRESSIONS),
            *(processed / f"processed_expression1/{t}_mean.csv" for t in TARGETS),
            *(folder / f"study/evaluation/likeliness/{e}.csv" for e in EXPRESSIONS)}
    assert set(read) == {p.resolve() for p in want}
    for path, entry in read.items():
        assert entry["sha256"] == fio.sha256_file(path)


def test_a_mean_faces_csv_is_found_in_a_later_folder_than_a_details_file(tmp_path):
    from flowjax.evaluation.datatypes import ImageRef
    from flowjax.evaluation.precomputed import PrecomputedOpenFace

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    (first / "01_mean_of_details.txt").write_text("no face\n")
    _write_openface(second, "01_mean", [(0.9, np.full(N_AU, 2.0))])
    out = PrecomputedOpenFace().score_files([ImageRef(tmp_path / "01_mean.png", "01_mean",
                                                      (first, second))])
    np.testing.assert_array_equal(out[0], np.full(N_AU, 2.0))
