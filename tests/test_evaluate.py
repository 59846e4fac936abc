"""Specification of the evaluation pipeline: tables, figures, report, command line.

Two transfer runs: a hand-made one (1 expression, 1 target, 2 alphas, solid
grey images) scored by lookup-table scorers whose outputs are set here, so
every table value is worked out by hand; and a real tiny transfer run
(``experiments/transfer.py``, random weights) for the command line, the
facenet path and the output-directory rules.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from configs import common as config_common
from configs import evaluate as evaluate_config
from flowjax import io as fio
from flowjax.evaluation import metrics, pipeline, scorers
from flowjax.runs import run_dirs

ROOT = Path(__file__).resolve().parents[1]

# ---- a hand-made run: every image is a 4x4 solid grey whose value names it ----------

GEN_0, GEN_1, SOURCE_MEAN, TARGET_MEAN, SOURCE = 10, 20, 30, 40, 50
EMBEDDINGS = {TARGET_MEAN: [0, 0], SOURCE_MEAN: [6, 8], GEN_0: [0, 1], GEN_1: [3, 4],
              SOURCE: [6, 0]}
AUS = ("AU06", "AU12", "AU25")
INTENSITIES = {SOURCE: [2, 4, 0], GEN_0: [0, 0, 5], GEN_1: [2, 3, 1], TARGET_MEAN: [1, 1, 1]}
DETECTOR = {GEN_0: 0.9, GEN_1: 0.2}


def _grey(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


class LookupEmbedder:
    def embed(self, images):
        return np.array([EMBEDDINGS[int(im[0, 0, 0])] for im in images], float)

    def provenance(self):
        return {"model": "lookup table (test)"}


class LookupAUs:
    au_names = AUS

    def __call__(self, images):
        return np.array([INTENSITIES[int(im[0, 0, 0])] for im in images], float)


def lookup_detector(images):
    return np.array([DETECTOR[int(im[0, 0, 0])] for im in images])


def make_hand_run(path: Path) -> Path:
    """A transfer run directory as experiments/transfer.py lays it out."""
    with run_dirs.create_run_dir(path) as run:
        inputs = []
        for identity, value in (("src", SOURCE), ("tgt", TARGET_MEAN)):
            target = run.write_png(f"inputs/{identity}/smile.png", _grey(value), generated=False)
            inputs.append({"path": str(target), "sha256": fio.sha256_file(target)})
        run.write_png("means/src_mean.png", _grey(SOURCE_MEAN))
        run.write_png("means/tgt_mean.png", _grey(TARGET_MEAN))
        images = {}
        for label, value in (("0.00", GEN_0), ("1.00", GEN_1)):
            images[label] = f"transfer/smile/tgt/{label}/tgt_{label}.png"
            run.write_png(images[label], _grey(value))
        run.write_json("transfer.json", {
            "method": "linear", "space": "eps", "alphas": [0.0, 1.0],
            "alpha_labels": ["0.00", "1.00"], "source": "src",
            "expressions": {"smile": "smile.png"}, "targets": ["tgt"],
            "identity_images": {"src": 1, "tgt": 1}, "images": {"smile": {"tgt": images}},
            "means": {"src": "means/src_mean.png", "tgt": "means/tgt_mean.png"},
            "model": {"checkpoint": "ckpt", "sha256": "0" * 64, "random_init": False}})
        run.manifest.add_inputs(inputs)
    return path


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory) -> Path:
    return make_hand_run(tmp_path_factory.mktemp("hand") / "run")


def _evaluate(run_dir: Path, out: Path, au_scorer=None, **kwargs) -> dict:
    kwargs.setdefault("make_figures", False)
    kwargs.setdefault("au_set", AUS[:2])
    return pipeline.evaluate_run(run_dir, LookupEmbedder(), au_scorer or LookupAUs(),
                                 out_dir=out, **kwargs)


@pytest.fixture(scope="module")
def hand_eval(hand_run, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("hand_eval") / "evaluation"
    return out, _evaluate(hand_run, out, detector=lookup_detector, make_figures=True)


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def numbers(row: list[str]) -> list[float]:
    return [float(x) for x in row]


# ---- tables: the seed study's layouts, values by hand ----------------------------


def test_identity_table_has_the_seed_layout(hand_eval):
    out, _ = hand_eval
    header, rows = read_table(out / "tables/smile/identity_distances.csv")
    assert header == ["", "0.00", "1.00", "source", "target"]
    assert [r[0] for r in rows] == ["tgt_source", "tgt_target"]


def test_identity_table_values_are_distances_to_the_mean_faces(hand_eval):
    out, _ = hand_eval
    _, rows = read_table(out / "tables/smile/identity_distances.csv")
    # alphas: generated (0,1) and (3,4); source column: the source image (6,0);
    # target column: the target mean (0,0); against the source mean (6,8) / target mean (0,0).
    np.testing.assert_allclose(numbers(rows[0][1:]), [math.sqrt(85), 5, 8, 10])
    np.testing.assert_allclose(numbers(rows[1][1:]), [1, 5, 6, 0])


def test_au_table_has_a_row_per_image_and_a_column_per_au(hand_eval):
    out, _ = hand_eval
    header, rows = read_table(out / "tables/smile/action_units.csv")
    assert header == ["", *AUS]
    assert [r[0] for r in rows] == ["tgt_0.00", "tgt_1.00", "tgt_mean", "source"]
    assert [numbers(r[1:]) for r in rows] == [[0, 0, 5], [2, 3, 1], [1, 1, 1], [2, 4, 0]]


def test_tidy_csv_has_one_row_per_generated_image_with_every_number(hand_eval):
    out, _ = hand_eval
    header, rows = read_table(out / "tables/scores.csv")
    assert header == ["expression", "target", "alpha", "image", "distance_to_target_mean",
                      "distance_to_source_mean", "au_error", *AUS, "p_generated"]
    assert rows[0][:4] == ["smile", "tgt", "0.0", "transfer/smile/tgt/0.00/tgt_0.00.png"]
    # AU error over AU06, AU12 against the source (2, 4): (2+4)/2 and (0+1)/2.
    np.testing.assert_allclose(numbers(rows[0][4:]), [1, math.sqrt(85), 3, 0, 0, 5, 0.9])
    np.testing.assert_allclose(numbers(rows[1][4:]), [5, 5, 0.5, 2, 3, 1, 0.2])


def test_best_alpha_is_the_alpha_with_the_smallest_au_error(hand_eval):
    out, summary = hand_eval
    header, rows = read_table(out / "tables/best_alpha.csv")
    assert header == ["expression", "target", "best_alpha", "au_error",
                      "distance_to_target_mean", "distance_to_source_mean"]
    assert rows == [["smile", "tgt", "1.0", "0.5", "5.0", "5.0"]]
    assert summary["best_alpha"]["smile"]["tgt"] == {
        "alpha": 1.0, "au_error": 0.5, "distance_to_target_mean": 5.0,
        "distance_to_source_mean": 5.0}


def test_general_trend_table_has_a_row_per_expression_and_all(hand_eval):
    out, summary = hand_eval
    header, rows = read_table(out / "tables/general_trend.csv")
    assert header == ["expression", "pairs", "skipped", "mean_best_alpha", "mean_au_error",
                      "mean_distance_to_target_mean"]
    assert rows == [["smile", "1", "0", "1.0", "0.5", "5.0"], ["all", "1", "0", "1.0", "0.5",
                                                                "5.0"]]
    assert summary["general_trend"]["all"]["mean_best_alpha"] == 1.0


def test_detection_rate_counts_images_the_detector_flags(hand_eval):
    _, summary = hand_eval
    assert summary["detection_rate"] == 0.5  # p = 0.9 and 0.2 against threshold 0.5


def test_active_au_set_uses_the_aus_the_source_activates(hand_run, tmp_path):
    # Threshold 3: of the source's (2, 4, 0) only AU12 is active; errors |0-4|, |3-4|.
    summary = _evaluate(hand_run, tmp_path / "e", au_set="active", au_threshold=3.0)
    assert summary["au_sets"] == {"smile": ["AU12"]}
    assert summary["best_alpha"]["smile"]["tgt"]["au_error"] == 1.0


def test_a_source_without_active_aus_gets_nan_errors_and_a_note(hand_run, tmp_path):
    summary = _evaluate(hand_run, tmp_path / "e", au_set="active", au_threshold=10.0)
    assert summary["best_alpha"]["smile"]["tgt"]["alpha"] is None
    assert summary["general_trend"]["all"] is None
    assert "activates no AU above action_units.threshold=10.0" in summary["notes"][0]
    _, rows = read_table(tmp_path / "e/tables/general_trend.csv")
    assert rows[-1] == ["all", "0", "1", "nan", "nan", "nan"]


def test_without_an_au_scorer_only_identity_tables_are_written(hand_run, tmp_path):
    summary = pipeline.evaluate_run(hand_run, LookupEmbedder(), None, out_dir=tmp_path / "e",
                                    make_figures=True)
    written = sorted(p.relative_to(tmp_path / "e").as_posix()
                     for p in (tmp_path / "e").rglob("*.*"))
    assert "tables/smile/identity_distances.csv" in written
    assert not [p for p in written if "action_units" in p or "best_alpha" in p]
    assert summary["files"]["figures"] == ["figures/smile/identity_distance.png",
                                           "figures/per_alpha.png"]
    header, _ = read_table(tmp_path / "e/tables/scores.csv")
    assert "au_error" not in header


class NoFaceAUs:
    """An AU scorer that finds a face only in the source photo."""

    au_names = AUS

    def __call__(self, images):
        return np.array([INTENSITIES[SOURCE] if int(im[0, 0, 0]) == SOURCE else [np.nan] * 3
                         for im in images], float)


def test_an_au_scorer_that_finds_no_face_in_any_generated_image_stops_naming_it(hand_run,
                                                                                tmp_path):
    with pytest.raises(ValueError, match=r"AUs are missing .* for all 2 generated images, so "
                                         r"every AU error would be NaN; nothing was written. "
                                         r"The scorer .*NoFaceAUs found no face"):
        _evaluate(hand_run, tmp_path / "e", au_scorer=NoFaceAUs())
    assert not (tmp_path / "e").exists()


def test_an_au_set_the_scorer_lacks_is_an_error_naming_it(hand_run, tmp_path):
    with pytest.raises(ValueError, match=r"AU07, AU10, AU14, AU20, AU45 not among the scorer's"):
        _evaluate(hand_run, tmp_path / "e", au_set="thesis")
    assert not (tmp_path / "e").exists()


# ---- figures and report --------------------------------------------------------------


def test_figures_are_pngs_labelled_as_flowjax_outputs(hand_eval):
    out, summary = hand_eval
    assert summary["files"]["figures"] == [
        "figures/smile/identity_distance.png", "figures/smile/au_error.png",
        "figures/smile/au_bars_tgt.png", "figures/per_alpha.png"]
    for rel in summary["files"]["figures"]:
        chunks = fio.read_png_provenance(out / rel)
        assert chunks["Software"] == fio.SOFTWARE
        assert "chart of metrics" in chunks["kind"]


def test_report_states_the_definitions_from_the_metrics_docstring(hand_eval):
    out, _ = hand_eval
    text = (out / "report.md").read_text()
    assert "``argmin_a E(x(e,t,a))`` per pair (ties: smallest alpha)" in text
    assert "original source input image" in text


def test_report_links_resolve_to_written_files(hand_eval):
    out, _ = hand_eval
    import re

    links = re.findall(r"\]\(([^)]+)\)", (out / "report.md").read_text())
    assert "figures/smile/au_error.png" in links and "tables/scores.csv" in links
    assert all((out / link).is_file() for link in links)


def test_manifest_records_the_scorers_references_and_inputs(hand_eval, hand_run):
    out, _ = hand_eval
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["extra"]["scorers"]["identity"]["provenance"] == {
        "model": "lookup table (test)"}
    assert manifest["extra"]["scorers"]["action_units"]["au_names"] == list(AUS)
    assert manifest["extra"]["references"]["source_inputs"]["smile"].endswith(
        "inputs/src/smile.png")
    assert len(manifest["inputs"]) == 1 + 2 + 2  # source input, 2 means, 2 generated


# ---- bad runs ------------------------------------------------------------------------


def test_a_folder_that_is_not_a_transfer_run_is_named(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match=r"run/transfer.json does not exist"):
        _evaluate(tmp_path / "run", tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_a_changed_source_input_is_refused(tmp_path):
    run = make_hand_run(tmp_path / "run")
    fio.write_png(run / "inputs/src/smile.png", _grey(SOURCE + 1), overwrite=True)
    with pytest.raises(ValueError, match=r"src/smile.png changed since it was recorded"):
        _evaluate(run, tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_output_that_contains_the_run_is_refused(hand_run):
    with pytest.raises(ValueError, match="contains the transfer run"):
        pipeline.resolve_output_dir(hand_run, hand_run.parent)


def test_output_inside_a_transfer_output_folder_is_refused(hand_run):
    with pytest.raises(ValueError, match="one of the transfer run's own outputs"):
        pipeline.resolve_output_dir(hand_run, hand_run / "transfer" / "scores")


def test_output_equal_to_the_run_means_its_evaluation_subfolder(hand_run):
    assert pipeline.resolve_output_dir(hand_run, hand_run) == hand_run / "evaluation"


# ---- scorer registry -----------------------------------------------------------------


def test_unknown_backend_lists_the_choices():
    config = evaluate_config.get_config()
    config.identity.backend = "arcface"
    with pytest.raises(ValueError, match=r"unknown identity backend 'arcface'.*'facenet'"):
        scorers.build_identity_embedder(config.identity)


def test_a_backend_can_be_named_module_colon_callable():
    config = evaluate_config.get_config()
    config.identity.backend = "flowjax.evaluation.scorers:FakeEmbedder"
    assert isinstance(scorers.build_identity_embedder(config.identity), scorers.FakeEmbedder)


def test_fake_variant_selects_the_test_only_scorers():
    config = evaluate_config.get_config("fake")
    assert isinstance(scorers.build_identity_embedder(config.identity), scorers.FakeEmbedder)
    assert isinstance(scorers.build_au_scorer(config.action_units), scorers.FakeAUScorer)
    assert scorers.build_detector(config.detector) is scorers.fake_detector


def test_au_backend_none_builds_no_scorer():
    config = evaluate_config.get_config()
    config.action_units.backend = "none"
    assert scorers.build_au_scorer(config.action_units) is None


# ---- a real transfer run, through the command line ---------------------------------


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): fio.sha256_file(p)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    from configs import transfer as transfer_config
    from experiments import transfer
    from flowjax import synthetic

    root = tmp_path_factory.mktemp("smoke")
    synthetic.write_generated_faces(root / "faces", n_identities=2,
                                 expressions=("neutral", "smile"), size=16)
    config = transfer_config.get_config()
    config.data.identities = str(root / "faces")
    config.source, config.alphas, config.progress = "id00", (0.0, 1.0), False
    config.checkpoint = None
    config.evaluation.enabled = False
    config.random_init.enabled, config.random_init.ddi = True, False
    config.model = config_common.model_config(image_size=16, n_levels=2, depth=1, width=4)
    transfer.main(config, str(root / "run"))
    return root / "run"


def test_command_line_evaluates_a_transfer_run_in_place(smoke_run):
    before = _files(smoke_run)
    result = subprocess.run(
        [sys.executable, "experiments/evaluate.py", "--config=configs/evaluate.py:fake",
         f"--workdir={smoke_run}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = smoke_run / "evaluation"
    written = set(_files(out))
    assert {"report.md", "evaluation.json", "manifest.json", "tables/scores.csv",
            "tables/best_alpha.csv", "tables/general_trend.csv",
            "tables/smile/identity_distances.csv", "tables/smile/action_units.csv",
            "figures/smile/identity_distance.png", "figures/smile/au_error.png",
            "figures/smile/au_bars_id01.png"} <= written
    header, rows = read_table(out / "tables/neutral/identity_distances.csv")
    assert header == ["", "0.00", "1.00", "source", "target"]
    assert [r[0] for r in rows] == ["id01_source", "id01_target"]
    assert len(read_table(out / "tables/scores.csv")[1]) == 2 * 1 * 2
    after = {k: v for k, v in _files(smoke_run).items() if not k.startswith("evaluation/")}
    assert after == before  # the transfer outputs are untouched


def test_run_py_form_writes_to_the_workdir_and_records_facenet_crop_and_weights(
        smoke_run, tmp_path):
    from experiments import evaluate

    config = evaluate_config.get_config("fixed_crop")
    config.run_dir = str(smoke_run)
    config.identity.facenet.random_weights = True
    config.action_units.backend = "none"
    summary = evaluate.main(config, str(tmp_path / "out"))
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    identity = manifest["extra"]["scorers"]["identity"]
    assert identity["backend"] == "facenet"
    assert identity["provenance"]["weights"]["name"] == "random"
    assert identity["provenance"]["crop"]["method"] == "fixed"
    assert manifest["config"]["run_dir"] == str(smoke_run)
    assert summary["output_dir"] == str(tmp_path / "out")
    _, rows = read_table(tmp_path / "out/tables/smile/identity_distances.csv")
    assert np.isfinite(numbers(rows[0][1:])).all()


def test_existing_evaluation_is_kept_unless_overwrite(smoke_run, tmp_path):
    from experiments import evaluate

    config = evaluate_config.get_config("fake")
    config.run_dir, config.figures = str(smoke_run), False
    evaluate.main(config, str(tmp_path / "out"))
    first = _files(tmp_path / "out")
    with pytest.raises(FileExistsError, match="already exists"):
        evaluate.main(config, str(tmp_path / "out"))
    assert _files(tmp_path / "out") == first
    config.overwrite = True
    evaluate.main(config, str(tmp_path / "out"))
    assert (tmp_path / "out/report.md").is_file()


def test_au_set_names_parse_to_au_tuples():
    assert pipeline.parse_au_set("thesis") == metrics.THESIS_AUS
    assert pipeline.parse_au_set("AU06, AU12") == ("AU06", "AU12")
    assert pipeline.parse_au_set("all") is None


# ---- a run directory is verified before scoring (issue 18, item 4) -----------------


def _edit_transfer_json(run: Path, edit) -> None:
    """Edits transfer.json and records its new sha256, as a consistent but altered run."""
    summary = json.loads((run / "transfer.json").read_text())
    edit(summary)
    (run / "transfer.json").write_text(json.dumps(summary))
    manifest = json.loads((run / "manifest.json").read_text())
    for entry in manifest["outputs"]:
        if entry["path"] == "transfer.json":
            entry["sha256"] = fio.sha256_file(run / "transfer.json")
    (run / "manifest.json").write_text(json.dumps(manifest))


def test_a_swapped_transfer_png_is_refused_naming_it(tmp_path):
    run = make_hand_run(tmp_path / "run")
    fio.write_png(run / "transfer/smile/tgt/1.00/tgt_1.00.png", _grey(GEN_0), overwrite=True)
    with pytest.raises(ValueError, match=r"transfer/smile/tgt/1.00/tgt_1.00.png changed since it "
                                         r"was recorded: sha256 [0-9a-f]{64}, the transfer "
                                         r"run's manifest.json records [0-9a-f]{64}"):
        _evaluate(run, tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_an_edited_transfer_json_is_refused(tmp_path):
    run = make_hand_run(tmp_path / "run")
    summary = json.loads((run / "transfer.json").read_text())
    summary["alphas"] = [0.0, 2.0]
    (run / "transfer.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"transfer.json changed since the run wrote it"):
        _evaluate(run, tmp_path / "e")


@pytest.mark.parametrize("path", ["../outside.png", "/tmp/outside.png",
                                  "means/../../outside.png"])
def test_a_transfer_json_path_that_leaves_the_run_is_refused(tmp_path, path):
    run = make_hand_run(tmp_path / "run")
    _edit_transfer_json(run, lambda s: s["means"].update(tgt=path))
    with pytest.raises(ValueError, match=rf"{re.escape(repr(path))} leaves the run directory .* "
                                         r"not an input the run recorded with a checksum"):
        _evaluate(run, tmp_path / "e")


def test_a_path_outside_the_run_recorded_as_an_input_with_its_checksum_is_read(tmp_path):
    outside = tmp_path / "shared/tgt_mean.png"
    outside.parent.mkdir()
    fio.write_png(outside, _grey(TARGET_MEAN))
    run = make_hand_run(tmp_path / "run")
    _edit_transfer_json(run, lambda s: s["means"].update(tgt=str(outside)))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["inputs"].append({"path": str(outside), "sha256": fio.sha256_file(outside)})
    (run / "manifest.json").write_text(json.dumps(manifest))
    summary = _evaluate(run, tmp_path / "e")
    assert summary["best_alpha"]["smile"]["tgt"]["distance_to_target_mean"] == 5.0
    fio.write_png(outside, _grey(GEN_1), overwrite=True)  # the external file changes
    with pytest.raises(ValueError, match=r"shared/tgt_mean.png changed since it was recorded"):
        _evaluate(run, tmp_path / "e2")


def test_a_copied_run_reads_its_own_inputs_not_the_original_runs(tmp_path):
    import shutil

    original = make_hand_run(tmp_path / "run")
    copy = Path(shutil.copytree(original, tmp_path / "copy"))
    # The original's input changes: the copy must neither read nor notice it.
    fio.write_png(original / "inputs/src/smile.png", _grey(SOURCE + 1), overwrite=True)
    summary = _evaluate(copy, tmp_path / "e")
    assert summary["best_alpha"]["smile"]["tgt"]["alpha"] == 1.0
    manifest = json.loads((tmp_path / "e/manifest.json").read_text())
    assert manifest["extra"]["references"]["source_inputs"]["smile"] == str(
        copy / "inputs/src/smile.png")


# ---- one code path: a transfer run through its generated spec -----------------------


def test_a_transfer_run_through_its_generated_spec_gives_identical_tables(smoke_run, tmp_path):
    from experiments import evaluate
    from flowjax.evaluation import transfer_run

    config = evaluate_config.get_config("fake")
    config.run_dir, config.figures = str(smoke_run), False
    evaluate.main(config, str(tmp_path / "direct"))
    spec = transfer_run.write_transfer_spec(smoke_run, tmp_path / "spec.json")
    config = evaluate_config.get_config("fake")
    config.study, config.figures = str(spec), False
    evaluate.main(config, str(tmp_path / "via_spec"))
    direct = _files(tmp_path / "direct/tables")
    assert len(direct) == 8  # scores, best_alpha, general_trend, per_alpha, 2 x (identity, AUs)
    assert _files(tmp_path / "via_spec/tables") == direct
    written = json.loads(spec.read_text())
    assert len(written["sha256"]) == 2 * 1 * 2 + 2 + 2  # generated, means, sources


def test_synthetic_scorers_are_refused_on_a_run_of_other_images(smoke_run, tmp_path):
    from experiments import evaluate

    config = evaluate_config.get_config("synthetic")
    config.run_dir = str(smoke_run)
    with pytest.raises(ValueError, match=r"identity.backend, action_units.backend, "
                                         r"detector.backend = 'synthetic' scores only "
                                         r"flowjax.synthetic faces"):
        evaluate.main(config, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# ---- options -------------------------------------------------------------------------


def test_active_au_threshold_comes_from_the_config_and_its_error_names_it(smoke_run, tmp_path):
    from experiments import evaluate

    config = evaluate_config.get_config("fake,active")
    config.run_dir, config.figures = str(smoke_run), False
    config.action_units.threshold = 4.9
    summary = evaluate.main(config, str(tmp_path / "ok"))
    assert all("action_units.threshold=4.9" in n for n in summary["notes"])
    config.action_units.threshold = -1.0
    with pytest.raises(ValueError, match=r"action_units.threshold .* got -1.0. Pass e.g. "
                                         r"--config.action_units.threshold=1.0"):
        evaluate.main(config, str(tmp_path / "bad"))


def test_a_custom_backends_options_can_be_given_on_the_command_line(monkeypatch):
    from absl import flags
    from ml_collections import config_flags

    argv = ["run.py", f"--config={ROOT / 'configs/evaluate.py'}",
            "--config.action_units.backend=my.module:build",
            "--config.action_units.options.weights=/models/au.npz",
            "--config.action_units.options.batch_size=8"]
    monkeypatch.setattr(sys, "argv", argv)
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", flag_values=values)
    values(argv)
    options = holder.value.action_units.options
    assert options.weights == "/models/au.npz" and options.batch_size == 8
    # The same through configs/transfer.py, which nests this config as config.evaluation.
    argv = ["run.py", f"--config={ROOT / 'configs/transfer.py'}",
            "--config.evaluation.action_units.options.weights=/models/au.npz"]
    monkeypatch.setattr(sys, "argv", argv)
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", flag_values=values)
    values(argv)
    assert holder.value.evaluation.action_units.options.weights == "/models/au.npz"
    # Only options are free-form: a misspelt key elsewhere is still refused.
    argv = ["run.py", f"--config={ROOT / 'configs/evaluate.py'}",
            "--config.action_units.bakend=x"]
    monkeypatch.setattr(sys, "argv", argv)
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values)
    with pytest.raises(Exception, match="bakend"):
        values(argv)
