"""Specification of evaluating an existing study from a spec file (docs/study_format.md).

The fixture is a study in the published layout, made here: placeholder PNGs
under ``results/transferring/expression<N>/<target>/<alpha>/``, mean faces in
``<target>_source/`` and ``<target>_target/``, OpenFace FaceLandmarkImg CSVs
with the real header (``tests/openface_format.py``) beside ``.hog``,
``_of_details.txt`` and ``_aligned/`` files in
``evaluation/quality/raw_data/processed_expression<N>/``, and likeliness
matrices in ``evaluation/likeliness/expression<N>.csv``. Every expected number
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
        lines = ["output_images," + ",".join(ALPHAS) + ", source, target"]
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
    assert any("1 image(s) have no face" in n and "02_0.32.png (OpenFace found no face" in n
               for n in notes)
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
    assert "01_0.5.png (no 01_0.5.csv in" in scorer.notes()[0]


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
