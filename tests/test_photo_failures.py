"""Specification of ``config.align_failures``: a photo set with a photo dlib cannot align.

Real faces (scikit-image's astronaut, a mirror image and a crop of it) aligned
with dlib, as ``--config.align=True --config.align_detector=dlib`` runs them, and
one faceless photo (a flat grey image) among them: ``error`` (the default) stops
with a message saying what the detector searched; ``skip`` leaves the photo out
and lists it, with its reason, in the manifest and the run's JSON; an identity
whose only photo fails is an error naming it. The model is the ``:smoke`` tiny
random Glow (32x32, no data-dependent init), and the detector is dlib's own
(``--config.align_detector=dlib``'s :class:`~flowjax.faces.dlib_models.DlibDetector`,
its settings and descriptions) behind a cache of its detections (:func:`cached_dlib`),
so the five photos are detected once in the module (about 0.5 s each). Skipped,
saying why, without the ``faces`` extra.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import reconstruction as reconstruction_config
from configs import transfer as transfer_config
from experiments import reconstruction, transfer
from flowjax.faces import align, dlib_models

pytestmark = pytest.mark.skipif(dlib_models.dlib_import_error() is not None,
                                reason=f"dlib unavailable: {dlib_models.dlib_import_error()}")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the test photos) "
                                   "is not installed; pip install -e '.[faces]'")

GREY_SIZE = (300, 200)  # (width, height) of the faceless photo
DETECTOR_SPEC = f"{__name__}:cached_dlib"
_DETECTIONS: dict[str, tuple] = {}


class _CachedDlib:
    """dlib's detector (``align_detector="dlib"``), each photo's detections kept."""

    def __init__(self) -> None:
        self.dlib = dlib_models.dlib_detector()
        self.settings = self.dlib.settings

    def describe_search(self, image_shape: tuple[int, ...]) -> str:
        return self.dlib.describe_search(image_shape)

    def __call__(self, image: np.ndarray) -> tuple:
        key = f"{image.shape}:{hashlib.sha256(image.tobytes()).hexdigest()}"
        if key not in _DETECTIONS:
            _DETECTIONS[key] = self.dlib(image)
        return _DETECTIONS[key]


def cached_dlib() -> _CachedDlib:
    """A config.align_detector factory: dlib's detector with its detections cached."""
    return _CachedDlib()


def _save(image: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def _grey() -> np.ndarray:
    return np.full((GREY_SIZE[1], GREY_SIZE[0], 3), 128, np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """``collins/{neutral,smile}.png`` (the astronaut and her mirror image) and
    ``crop/{crop,crop_flipped,wall}.png`` (a crop of her, mirrored, and a grey wall)."""
    root = tmp_path_factory.mktemp("photos")
    astronaut = skimage_data.astronaut()
    crop = astronaut[20:420, 40:440]
    _save(astronaut, root / "collins" / "neutral.png")
    _save(astronaut[:, ::-1], root / "collins" / "smile.png")
    _save(crop, root / "crop" / "crop.png")
    _save(crop[:, ::-1], root / "crop" / "crop_flipped.png")
    _save(_grey(), root / "crop" / "wall.png")
    return root


def _transfer_config(photos: Path, **overrides):
    config = transfer_config.get_config("smoke")  # random-init tiny Glow, 32x32
    config.data.generated.enabled = False
    config.data.identities = str(photos)
    config.source = "collins"
    config.alphas = (0.0, 1.0)
    config.random_init.ddi = False
    config.progress = False
    config.align = True
    config.align_detector = DETECTOR_SPEC
    config.update(overrides)
    return config


def test_error_stops_at_the_faceless_photo_saying_what_was_searched(photos, tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as caught:
        transfer.main(_transfer_config(photos), str(workdir))
    message = str(caught.value)
    assert message.startswith(f"{photos / 'crop' / 'wall.png'}: no face found"), message
    assert "300x200 (WxH) photo" in message  # the photo's size
    assert "dlib's HOG frontal face detector" in message  # the detector
    assert "a copy resized to 800x533 with 2 upsampling passes" in message  # what it scanned
    assert "--config.align_failures=skip" in message  # the way on
    assert "~20 px tall" not in message  # no guessed cause
    assert isinstance(caught.value, align.AlignmentError)
    assert caught.value.record["reason"] == "no face"
    assert not workdir.exists()


def test_skip_leaves_the_photo_out_and_lists_it_in_the_manifest_and_the_summary(photos, tmp_path):
    workdir = tmp_path / "run"
    summary = transfer.main(_transfer_config(photos, align_failures="skip"), str(workdir))
    wall = str(photos / "crop" / "wall.png")
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    (skipped,) = manifest["extra"]["alignment_skipped"]
    assert skipped["source"] == wall and skipped["reason"] == "no face"
    assert skipped["source_size"] == list(GREY_SIZE) and skipped["n_faces"] == 0
    assert "no face found" in skipped["message"] and skipped["detector"]["upsample"] == 2
    assert len(skipped["sha256"]) == 64
    assert wall not in [entry["path"] for entry in manifest["inputs"]]
    assert len(manifest["inputs"]) == len(manifest["extra"]["alignment"]) == 4
    assert summary["identity_images"] == {"collins": 2, "crop": 2}
    assert summary["alignment_skipped"] == manifest["extra"]["alignment_skipped"]
    assert sorted(summary["aligned_inputs"]["crop"]) == ["inputs/aligned/crop/crop.png",
                                                        "inputs/aligned/crop/crop_flipped.png"]


def test_the_evaluation_report_lists_each_photo_left_out_with_its_reason(photos, tmp_path):
    from flowjax.evaluation import pipeline, scorers

    workdir = tmp_path / "run"
    transfer.main(_transfer_config(photos, align_failures="skip"), str(workdir))
    pipeline.evaluate_run(workdir, scorers.FakeEmbedder(), scorers.FakeAUScorer(),
                          make_figures=False)
    report = (workdir / "evaluation" / "report.md").read_text()
    assert "**Photos left out:** 1 input photo(s)" in report
    assert f"- `.../crop/wall.png`: no face ({GREY_SIZE[0]}x{GREY_SIZE[1]} px)" in report
    assert str(photos) not in report  # no absolute path of this machine


def test_skip_fails_when_an_identity_is_left_with_no_photo_naming_it(photos, tmp_path):
    root = tmp_path / "photos"
    for path in (photos / "collins").iterdir():
        _save(np.asarray(Image.open(path)), root / "collins" / path.name)
    _save(_grey(), root / "ghost" / "portrait.png")
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=r"identity 'ghost' is left with no photo: none of its "
                                         r"1 photo\(s\) could be aligned \(.*portrait\.png: no face"):
        transfer.main(_transfer_config(root, align_failures="skip"), str(workdir))
    assert not workdir.exists()


def test_reconstruction_skips_the_faceless_photo_and_lists_it(photos, tmp_path):
    config = reconstruction_config.get_config("smoke")
    config.data.generated.enabled = False
    config.data.images = str(photos / "crop")
    config.random_init.ddi = False
    config.progress = False
    config.update(align=True, align_detector=DETECTOR_SPEC, align_failures="skip")
    result = reconstruction.main(config, str(tmp_path / "run"))
    assert [row["image"] for row in result["images"]] == ["crop", "crop_flipped"]
    assert [s["source"] for s in result["alignment_skipped"]] == [str(photos / "crop" / "wall.png")]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["extra"]["alignment_skipped"] == result["alignment_skipped"]


def test_align_failures_without_align_is_an_error(photos, tmp_path):
    config = _transfer_config(photos, align=False, align_failures="skip")
    with pytest.raises(ValueError, match=r"config.align_failures='skip' applies to photos aligned"):
        transfer.main(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_the_editor_aligns_its_identity_photos_and_skips_the_faceless_one(photos):
    from configs import explore as explore_config
    from experiments import explore
    from flowjax import runs

    config = explore_config.get_config("smoke")  # random-init tiny Glow, 32x32
    config.data.generated.enabled = False
    config.data.identities = str(photos)
    config.update(source="collins", progress=False, align=True, align_detector=DETECTOR_SPEC)
    config.random_init.ddi = False
    with pytest.raises(align.AlignmentError, match="wall.png: no face found"):
        explore.build_editor(config)
    config.align_failures = "skip"
    editor, _, identities = explore.build_editor(config)
    assert [s["source"] for s in runs.skipped_photos(identities)] == [
        str(photos / "crop" / "wall.png")]
    assert {name: len(s.images) for name, s in identities.items()} == {"collins": 2, "crop": 2}
    assert {face["name"] for face in editor.state()["faces"]} >= {"collins", "crop"}
