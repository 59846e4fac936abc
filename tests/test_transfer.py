"""Specification of experiments/transfer.py: layout, provenance, manifest, errors.

One run on generated faces with a small random checkpoint (module fixture);
error cases fail before any model work. The ``:smoke`` command runs in a
subprocess.
"""

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
from configs import transfer as transfer_config
from experiments import transfer
from flowjax import models, synthetic
from flowjax import io as fio
from flowjax.faces import align
from flowjax.io.images import ImageDataError
from flowjax.models import glow
from flowjax.runs import run_dirs

ROOT = Path(__file__).resolve().parents[1]
MODEL = glow.Glow(image_size=16, n_levels=2, depth=2, width=8)
ALPHAS = (0.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from flowjax.models import checkpoints

    path = tmp_path_factory.mktemp("ckpt") / "model"
    return checkpoints.save_model(path, MODEL, models.random_variables(MODEL, seed=3))


def _faces(root: Path, size: int = 16) -> Path:
    synthetic.write_generated_faces(root, n_identities=3,
                                          expressions=("neutral", "smile"), size=size)
    return root


def _config(faces: Path, checkpoint=None, **overrides):
    config = transfer_config.get_config()
    config.data.identities = str(faces)
    config.source = "id00"
    config.alphas = ALPHAS
    config.progress = False
    config.evaluation.enabled = False  # scoring is tested in test_evaluate.py
    if checkpoint is None:
        config.checkpoint = None
        config.random_init.enabled = True
        config.random_init.ddi = False
        config.model = config_common.model_config(image_size=16, n_levels=2, depth=2, width=8)
    else:
        config.checkpoint = str(checkpoint)
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory, checkpoint):
    faces = _faces(tmp_path_factory.mktemp("faces"))
    workdir = tmp_path_factory.mktemp("runs") / "transfer"
    summary = transfer.main(_config(faces, checkpoint), str(workdir))
    return workdir, summary


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ---- onto each target photo (config.target="photos") -------------------------------


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory, checkpoint):
    faces = _faces(tmp_path_factory.mktemp("faces"))
    workdir = tmp_path_factory.mktemp("runs") / "photos"
    return faces, workdir, transfer.main(_config(faces, checkpoint, target="photos"), str(workdir))


def test_onto_photos_alpha_0_returns_each_target_photo_itself_up_to_quantisation(photo_run):
    faces, workdir, summary = photo_run
    assert summary["target_mode"] == "photos"
    assert summary["targets"] == ["id01/neutral", "id01/smile", "id02/neutral", "id02/smile"]
    assert summary["target_identities"]["id02/smile"] == "id02"
    shift = 8 - MODEL.n_bits
    zero, one = summary["alpha_labels"][0], summary["alpha_labels"][-1]
    moved = 0
    for target in summary["targets"]:
        identity, stem = target.split("/")
        photo = np.asarray(Image.open(faces / identity / f"{stem}.png").convert("RGB"))
        quantised = photo >> shift << shift
        reference = np.asarray(Image.open(workdir / summary["means"][target]))
        np.testing.assert_array_equal(reference, quantised)  # what identity is measured to
        for expression in ("neutral", "smile"):
            row = summary["images"][expression][target]
            np.testing.assert_array_equal(np.asarray(Image.open(workdir / row[zero])), quantised)
            moved += not np.array_equal(np.asarray(Image.open(workdir / row[one])), quantised)
    assert moved == 8  # alpha 1 moves every photo


def test_photo_targets_are_evaluated_each_against_its_own_photo(photo_run):
    from flowjax.evaluation import pipeline, scorers

    _, workdir, summary = photo_run
    result = pipeline.evaluate_run(workdir, scorers.FakeEmbedder(), scorers.FakeAUScorer(),
                                   make_figures=False)
    report = (workdir / "evaluation" / "report.md").read_text()
    assert "4 target(s)" in report and result["output_dir"]


def test_an_unknown_target_mode_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"config.target must be one of \('mean', 'photos'\)"):
        transfer.main(_config(_faces(tmp_path / "faces"), target="photo"), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# ---- outputs ----------------------------------------------------------------------


def test_writes_one_png_per_expression_target_and_alpha_in_the_seed_layout(run):
    workdir, _ = run
    for expression in ("neutral", "smile"):
        for target in ("id01", "id02"):
            for label in ("0.00", "0.50", "1.00"):
                assert (workdir / f"transfer/{expression}/{target}/{label}/{target}_{label}.png"
                        ).is_file()
    assert len(list((workdir / "transfer").rglob("*.png"))) == 2 * 2 * 3


def test_writes_strips_and_identity_means(run):
    workdir, _ = run
    assert _files(workdir / "means") == ["id00_mean.png", "id01_mean.png", "id02_mean.png"]
    assert _files(workdir / "strips") == ["neutral/id01.png", "neutral/id02.png",
                                          "smile/id01.png", "smile/id02.png"]


def test_strip_holds_target_mean_alphas_source_and_source_mean(run):
    workdir, _ = run
    strip = np.asarray(Image.open(workdir / "strips/smile/id01.png"))
    mean = np.asarray(Image.open(workdir / "means/id01_mean.png"))
    assert strip.shape[1] == 4 + 6 * (16 + 4)  # 6 images of 16 px, 4 px gaps
    first = strip[-4 - 16:-4, 4:20]
    np.testing.assert_array_equal(first, mean)


def test_alpha_zero_image_is_the_target_mean_face(run):
    workdir, _ = run
    at_zero = np.asarray(Image.open(workdir / "transfer/smile/id02/0.00/id02_0.00.png"))
    mean = np.asarray(Image.open(workdir / "means/id02_mean.png"))
    np.testing.assert_array_equal(at_zero, mean)


def test_every_png_is_labelled_synthetic_with_its_provenance(run):
    workdir, _ = run
    pngs = list(workdir.rglob("*.png"))
    assert pngs
    for png in pngs:
        chunks = fio.read_png_provenance(png)
        assert chunks["Synthetic"] == "true", png
        assert chunks["Software"] == fio.SOFTWARE, png
    chunks = fio.read_png_provenance(workdir / "transfer/smile/id01/0.50/id01_0.50.png")
    assert (chunks["method"], chunks["alpha"], chunks["source"], chunks["target"],
            chunks["space"]) == ("linear", "0.5", "id00/smile", "id01", "eps")
    assert "sha256:" in chunks["model"]


def test_manifest_lists_every_output_with_its_checksum(run):
    workdir, _ = run
    manifest = json.loads((workdir / "manifest.json").read_text())
    listed = {o["path"]: o["sha256"] for o in manifest["outputs"]}
    on_disk = set(_files(workdir)) - {"manifest.json", run_dirs.RUN_MARKER}
    assert set(listed) == on_disk
    for rel, digest in listed.items():
        assert fio.sha256_file(workdir / rel) == digest, rel


def test_manifest_records_checkpoint_checksum_inputs_and_timings(run, checkpoint):
    workdir, _ = run
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["model"]["sha256"] == fio.sha256_path(checkpoint)
    assert manifest["model"]["random_init"] is False
    assert len(manifest["inputs"]) == 6 and all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert {"encode", "sweep", "decode_means", "write"} <= set(manifest["timings"])
    assert manifest["config"]["method"] == "linear"
    assert "jax" in manifest["versions"]


def test_summary_maps_every_grid_point_to_its_file(run):
    workdir, summary = run
    assert json.loads((workdir / "transfer.json").read_text())["images"] == summary["images"]
    assert summary["images"]["smile"]["id02"]["0.50"] == "transfer/smile/id02/0.50/id02_0.50.png"


# ---- bad input: a clear error and no output -----------------------------------------


def _fails_without_output(config, workdir: Path, error, match: str) -> None:
    with pytest.raises(error, match=match):
        transfer.main(config, str(workdir))
    assert not workdir.exists()


def test_corrupt_image_is_named_and_nothing_is_written(tmp_path):
    faces = _faces(tmp_path / "faces")
    (faces / "id01" / "smile.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _fails_without_output(_config(faces), tmp_path / "run", ImageDataError,
                          r"id01/smile.png: cannot decode")


def test_empty_identity_folder_is_named_and_nothing_is_written(tmp_path):
    faces = _faces(tmp_path / "faces")
    (faces / "id03").mkdir()
    _fails_without_output(_config(faces), tmp_path / "run", ImageDataError,
                          r"id03 has no images")


def test_image_of_the_wrong_size_is_named_and_nothing_is_written(tmp_path):
    faces = _faces(tmp_path / "faces")
    Image.new("RGB", (32, 32)).save(faces / "id02" / "big.png")
    _fails_without_output(_config(faces), tmp_path / "run", ImageDataError,
                          r"id02/big.png: size 32x32 .*expected 16x16")


def test_existing_workdir_is_refused_and_left_untouched(tmp_path):
    faces = _faces(tmp_path / "faces")
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "old.txt").write_text("earlier results")
    with pytest.raises(FileExistsError, match="already exists"):
        transfer.main(_config(faces), str(workdir))
    assert _files(workdir) == ["old.txt"]


def test_unknown_source_lists_the_identities(tmp_path):
    faces = _faces(tmp_path / "faces")
    _fails_without_output(_config(faces, source="nobody"), tmp_path / "run", ValueError,
                          r"'nobody' is not one of the identities \['id00', 'id01', 'id02'\]")


def test_synthetic_scorers_refuse_the_users_own_images(tmp_path):
    faces = _faces(tmp_path / "faces")
    config = _config(faces)
    config.evaluation.enabled = True
    _fails_without_output(config, tmp_path / "run", ValueError,
                          r"evaluation.identity.backend, evaluation.action_units.backend, "
                          r"evaluation.detector.backend = 'synthetic' scores only "
                          r"flowjax.synthetic faces")


def test_root_folder_and_identity_map_together_are_an_error(tmp_path):
    faces = _faces(tmp_path / "faces")
    config = _config(faces)
    config.data.identity_map = {"id00": str(faces / "id00")}
    _fails_without_output(config, tmp_path / "run", ValueError,
                          "exactly one of config.data.identities")


def test_identity_map_names_identities_from_paths(tmp_path):
    faces = _faces(tmp_path / "faces")
    config = _config(faces)
    config.data.identities = None
    config.data.base_dir = str(faces)
    # The fixture run's shapes (3 identities of 2 images): no recompilation.
    config.data.identity_map = {"id00": "id00", "second": "id01",
                                "third": ("id02/smile.png", "id02/neutral.png")}
    summary = transfer.main(config, str(tmp_path / "run"))
    assert summary["targets"] == ["second", "third"]
    assert (tmp_path / "run" / "transfer/smile/third/0.50/third_0.50.png").is_file()


def test_missing_checkpoint_without_random_init_is_an_error(tmp_path):
    config = _config(_faces(tmp_path / "faces"))
    config.random_init.enabled = False
    _fails_without_output(config, tmp_path / "run", ValueError, r"--config.checkpoint=DIR")


def test_repeated_alphas_are_an_error(tmp_path):
    _fails_without_output(_config(_faces(tmp_path / "faces"), alphas=(0.5, 0.5)),
                          tmp_path / "run", ValueError, "repeated values")


# ---- unaligned photos (config.align) ----------------------------------------------

# Box and landmarks of each face ``_unaligned_photos`` placed, keyed by the photo's
# shape (unique per photo): the detector "finds" exactly the faces we drew.
PLACED_FACES: dict[tuple[int, int], list] = {}
DETECTOR_SPEC = f"{__name__}:placed_faces_detector"


def placed_faces_detector():
    """A config.align_detector factory (zero arguments)."""

    def detect(image):
        faces = PLACED_FACES.get(image.shape[:2], [])
        return (np.array([box for box, _ in faces]).reshape(-1, 4), np.full(len(faces), 0.99),
                np.array([marks for _, marks in faces]).reshape(-1, 5, 2))

    return detect


@pytest.fixture(autouse=True)
def _forget_placed_faces():
    yield
    PLACED_FACES.clear()


def _unaligned_photos(root: Path, size: int = 32) -> Path:
    """Generated faces (eyes taken to be on the template), each scaled, rotated and
    shifted into a square photo of its own size: root/photos/<identity>/*.png."""
    tx, ty = align.LEFT_EYE_TEMPLATE
    marks = np.array([[tx, ty], [1 - tx, ty], [0.5, 0.62], [0.4, 0.78], [0.6, 0.78]]) * size
    generated = synthetic.write_generated_faces(root / "aligned", n_identities=3,
                                             expressions=("neutral", "smile"), size=size)
    for k, (identity, files) in enumerate(generated.items()):
        (root / "photos" / identity).mkdir(parents=True)
        for j, path in enumerate(files):
            side, scale, angle = 50 + 10 * k + 5 * j, 1.2 + 0.2 * j, 0.3 * (k - 1)
            linear = scale * np.array([[np.cos(angle), -np.sin(angle)],
                                       [np.sin(angle), np.cos(angle)]])
            shift = np.array([side / 2, side / 2]) - linear @ [size / 2, size / 2]
            placed = np.concatenate([linear, shift[:, None]], axis=1)
            face = np.asarray(Image.open(path).convert("RGB"))
            Image.fromarray(align.warp_affine(face, placed, side)).save(
                root / "photos" / identity / path.name)
            points = align.transform_points(placed, marks)
            PLACED_FACES[(side, side)] = [([*points.min(0) - 5, *points.max(0) + 5], points)]
    return root / "photos"


def _aligned_config(photos: Path, **overrides):
    config = transfer_config.get_config("smoke")  # random-init tiny Glow, 32x32
    config.data.generated.enabled = False
    config.data.identities = str(photos)
    config.random_init.ddi = False  # random weights: no init compile
    config.progress = False
    config.align = True
    config.align_detector = DETECTOR_SPEC
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def aligned_run(tmp_path_factory):
    """(photos folder, run directory, summary) of one transfer run with config.align."""
    root = tmp_path_factory.mktemp("aligned")
    photos = _unaligned_photos(root)
    workdir = root / "run"
    return photos, workdir, transfer.main(_aligned_config(photos), str(workdir))


def test_unaligned_photos_are_aligned_and_the_manifest_records_it(aligned_run):
    photos, workdir, summary = aligned_run
    assert len(list((workdir / "transfer").rglob("*.png"))) == 2 * 2 * 3
    assert summary["expressions"] == {"neutral": "neutral.png", "smile": "smile.png"}
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert len(manifest["inputs"]) == 6
    for entry in manifest["inputs"]:
        assert entry["path"].startswith(str(photos)), entry["path"]
        assert entry["conversions"][-1].startswith(
            "aligned to 32x32 (OpenAI CelebA-HQ layout): the only face found"), entry
    alignment = manifest["extra"]["alignment"]
    assert sorted(a["source"] for a in alignment) == sorted(e["path"] for e in manifest["inputs"])
    assert all(a["size"] == 32 and a["multiple_faces"] == "largest" for a in alignment)
    assert manifest["config"]["align_detector"] == DETECTOR_SPEC


def test_aligned_photos_are_written_as_encoded_and_labelled_not_generated(aligned_run):
    _, workdir, summary = aligned_run
    assert sorted(summary["aligned_inputs"]) == ["id00", "id01", "id02"]
    assert summary["source_images"] == {"neutral": "inputs/aligned/id00/neutral.png",
                                        "smile": "inputs/aligned/id00/smile.png"}
    smile = workdir / summary["source_images"]["smile"]
    assert Image.open(smile).size == (32, 32)
    provenance = fio.read_png_provenance(smile)
    assert provenance["Synthetic"] == "false"
    assert provenance["source_file"].endswith("smile.png")


def test_an_aligned_run_is_evaluated_against_the_aligned_source_photos(aligned_run):
    from configs import evaluate as evaluate_config
    from experiments import evaluate

    _, workdir, summary = aligned_run
    result = evaluate.main(evaluate_config.get_config("fake"), str(workdir))
    manifest = json.loads((Path(result["output_dir"]) / "manifest.json").read_text())
    assert manifest["extra"]["references"]["source_inputs"] == {
        e: str(workdir / rel) for e, rel in summary["source_images"].items()}


def test_aligned_photo_without_a_face_is_named_and_nothing_is_written(tmp_path):
    photos = _unaligned_photos(tmp_path)
    Image.new("RGB", (41, 43)).save(photos / "id01" / "blank.png")
    _fails_without_output(_aligned_config(photos), tmp_path / "run", ValueError,
                          r"id01/blank\.png: no face found")


def test_align_with_the_synthetic_study_is_an_error(tmp_path):
    config = transfer_config.get_config()  # the demo: synthetic study, no data given
    config.align = True
    _fails_without_output(config, tmp_path / "run", ValueError,
                          r"config.align=True .* the synthetic study .* already aligned renders")


def test_align_with_generated_faces_is_an_error(tmp_path):
    config = transfer_config.get_config("smoke")
    config.align = True
    _fails_without_output(config, tmp_path / "run", ValueError,
                          r"config.data.generated.enabled=True .* already aligned renders")


def test_align_with_resize_is_an_error(tmp_path):
    config = _aligned_config(tmp_path / "photos")
    config.data.resize = "lanczos"
    _fails_without_output(config, tmp_path / "run", ValueError,
                          r"config.data.resize='lanczos' with config.align=True")


def test_malformed_detector_spec_is_an_error_before_any_work(tmp_path):
    config = _aligned_config(tmp_path / "photos", align_detector="my_detector")
    _fails_without_output(config, tmp_path / "run", ValueError,
                          r"config.align_detector 'my_detector' is not an import path")


# ---- configs ----------------------------------------------------------------------


def test_repo_variant_is_the_eleven_value_grid():
    config = transfer_config.get_config("repo")
    assert config.method == "linear" and len(config.alphas) == 11
    assert config.alphas[0] == 0.30 and config.alphas[-1] == 0.50


def test_thesis_half_variant_halves_the_vector():
    assert transfer_config.get_config("thesis_half").method == "half"


def test_variants_combine_in_order():
    config = transfer_config.get_config("variance,z")
    assert (config.method, config.space) == ("variance", "z")


def test_unknown_variant_is_an_error():
    with pytest.raises(ValueError, match="unknown variant"):
        transfer_config.get_config("bogus")


def test_smoke_command_runs_end_to_end(tmp_path):
    workdir = tmp_path / "smoke"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "run.py", "--config=configs/transfer.py:smoke", f"--workdir={workdir}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["model"]["random_init"] is True
    assert len(list((workdir / "transfer").rglob("*.png"))) == 3 * 2 * 3
    assert "RANDOMLY INITIALISED" in result.stderr
    for png in workdir.rglob("*.png"):  # generated inputs, transfers, strips, means
        assert fio.read_png_provenance(png)["Synthetic"] == "true", png


def test_a_source_method_runs_through_the_one_sweep_and_is_recorded(tmp_path):
    config = transfer_config.get_config("smoke")
    config.method, config.level_weights, config.progress = "levels", (1.0, 0.0), False
    workdir = tmp_path / "levels"
    summary = transfer.main(config, str(workdir))
    assert summary["method"] == "levels"
    png = next((workdir / "transfer").rglob("*.png"))
    meta = fio.read_png_provenance(png)
    assert meta["method"] == "levels" and json.loads(meta["level_weights"]) == [1.0, 0.0]
    config.method = "linear"
    linear = transfer.main(config, str(tmp_path / "linear"))
    read = lambda root, rel: np.asarray(Image.open(root / rel))  # noqa: E731
    for expression, by_target in summary["images"].items():
        for target, by_alpha in by_target.items():
            paths = list(by_alpha.values())
            other = list(linear["images"][expression][target].values())
            # alpha 0: both are the target mean; alpha 1: the top level is not moved
            np.testing.assert_array_equal(read(workdir, paths[0]),
                                          read(tmp_path / "linear", other[0]))
    assert any(not np.array_equal(read(workdir, p), read(tmp_path / "linear", q))
               for e, by_target in summary["images"].items() for t, by_alpha in by_target.items()
               for p, q in zip(by_alpha.values(), linear["images"][e][t].values()))
    assert transfer_config.get_config("fine").method == "fine"
    assert transfer_config.get_config("subspace").method == "subspace"


def test_levels_without_weights_names_the_option_and_writes_nothing(tmp_path):
    config = transfer_config.get_config("smoke")
    config.method = "levels"
    _fails_without_output(config, tmp_path / "run", ValueError,
                          r"method 'levels' needs level_weights.*--config.level_weights")
