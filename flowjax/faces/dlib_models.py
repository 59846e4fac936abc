"""dlib's face models, offline: where the files are, their checksums, and the
detector OpenAI's Glow demo aligned faces with.

The optional extra ``pip install -e '.[faces]'`` installs ``dlib-bin`` (a
prebuilt dlib wheel; never build ``dlib`` from source, ~30 min) and
``face-recognition-models`` 0.3.0, which packages Davis King's model files from
https://github.com/davisking/dlib-models (``dlib.net/files/<name>.bz2``,
decompressed). Importing ``face_recognition_models`` fails under current
setuptools (its ``__init__`` imports ``pkg_resources``), so the package's
folder is located with :func:`importlib.util.find_spec`, which does not execute
it. Every file is checked against the sha256 pinned in :data:`MODELS` before
dlib reads it; a mismatch is an error naming the file and both checksums.

Licences (dlib-models' README): Davis King released the model files into the
public domain, but the 68-landmark predictor was trained on iBUG 300-W, whose
licence excludes commercial use, so that model must not be used in a
commercial product. The ResNet face-recognition model and the 5-landmark
predictor have no such restriction.

:class:`DlibDetector` is the :data:`flowjax.faces.detectors.Detector` behind
``--config.align_detector=dlib``. It runs what OpenAI's ``demo/align_face.py``
runs (GLOW_SPEC.md section 5): the photo resized to width 800 (area filter when
shrinking; the demo uses OpenCV's INTER_AREA, here PIL's box filter, and
bilinear when enlarging), converted to grey with OpenCV's integer BT.601
weights, dlib's HOG frontal face detector with 2 upsampling passes and score
threshold 0, and the 68-point shape predictor on each detection. Landmarks are
mapped back to the photo's own pixels, so :func:`flowjax.faces.align.align_image`
warps the full-resolution photo; the eye centres (means of landmarks 36-41 and
42-47) then go to the demo's template.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from flowjax import io as fio

DEMO_WIDTH = 800  # imutils.resize(image, width=800) in OpenAI's align_face.py
DEMO_UPSAMPLE = 2  # detector(gray, 2)
HOG_WINDOW = 80  # px: dlib's frontal face detector finds faces of about 80x80 and up, per upsampling halved
_DLIB_MODELS = "https://github.com/davisking/dlib-models"


@dataclasses.dataclass(frozen=True)
class DlibModel:
    """One model file of ``face-recognition-models`` (a copy of dlib.net's)."""

    filename: str
    sha256: str
    bytes: int
    url: str
    licence: str


# sha256 and sizes measured on face-recognition-models 0.3.0 as installed from
# PyPI (`sha256sum .../face_recognition_models/models/*.dat`); the same
# numbers are asserted by tests/test_real_photos.py.
MODELS: dict[str, DlibModel] = {
    "shape_predictor_68": DlibModel(
        "shape_predictor_68_face_landmarks.dat",
        "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        99_693_937,
        "http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2",
        "trained on iBUG 300-W, whose licence excludes commercial use "
        f"({_DLIB_MODELS}): not for commercial products",
    ),
    "shape_predictor_5": DlibModel(
        "shape_predictor_5_face_landmarks.dat",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        9_150_489,
        "http://dlib.net/files/shape_predictor_5_face_landmarks.dat.bz2",
        f"public domain (Davis King, {_DLIB_MODELS})",
    ),
    "face_recognition_resnet": DlibModel(
        "dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        22_466_066,
        "http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2",
        f"public domain (Davis King, {_DLIB_MODELS})",
    ),
}

INSTALL_HINT = (
    "install the optional extra: pip install -e '.[faces]' (dlib-bin and "
    "face-recognition-models, ~130 MB; never `pip install dlib`, which compiles for ~30 min)"
)


@functools.cache
def dlib_import_error() -> str | None:
    """None if dlib and face-recognition-models' files are available, else why not."""
    try:
        import dlib  # noqa: F401
    except (ImportError, OSError) as error:  # OSError: a shared library that does not load
        return f"dlib does not import ({type(error).__name__}: {error}); {INSTALL_HINT}"
    try:
        models_dir()
    except FileNotFoundError as error:
        return str(error)
    return None


def models_dir() -> Path:
    """face-recognition-models' ``models/`` folder, found without importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"face-recognition-models is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def package_versions() -> dict[str, str | None]:
    """Installed versions of the distributions that provide dlib and its models."""
    versions: dict[str, str | None] = {}
    for name in ("dlib-bin", "dlib", "face-recognition-models"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def verified_path(name: str) -> Path:
    """Path of model ``name`` (a key of :data:`MODELS`) after checking its sha256."""
    if name not in MODELS:
        raise ValueError(f"unknown dlib model {name!r}; choose one of {sorted(MODELS)}")
    model = MODELS[name]
    path = models_dir() / model.filename
    if not path.is_file():
        raise FileNotFoundError(f"dlib model file missing: {path}; reinstall "
                                f"face-recognition-models==0.3.0 ({INSTALL_HINT})")
    actual = fio.sha256_file(path)
    if actual != model.sha256:
        raise ValueError(
            f"checksum mismatch for dlib model {path}: expected sha256 {model.sha256}, "
            f"got {actual}. The file is corrupt or a different model: reinstall "
            "face-recognition-models==0.3.0 (pip install --force-reinstall)")
    return path


def provenance(name: str) -> dict[str, Any]:
    """JSON-ready record of model ``name``: file, verified sha256, source, licence."""
    model = MODELS[name]
    return {"file": str(verified_path(name)), "sha256": model.sha256, "verified": True,
            "bytes": model.bytes, "url": model.url, "licence": model.licence,
            "packages": package_versions()}


def require_dlib() -> Any:
    error = dlib_import_error()
    if error is not None:
        raise ImportError(error)
    import dlib

    return dlib


@functools.cache
def shape_predictor(name: str) -> Any:
    """dlib's shape predictor ``name`` ("shape_predictor_68" or "_5"), loaded once."""
    return require_dlib().shape_predictor(str(verified_path(name)))


@functools.cache
def hog_detector() -> Any:
    """dlib's HOG frontal face detector (built into dlib), built once."""
    return require_dlib().get_frontal_face_detector()


@functools.cache
def face_recognition_model() -> Any:
    """dlib's ResNet face-recognition model (128-d descriptors), loaded once."""
    return require_dlib().face_recognition_model_v1(
        str(verified_path("face_recognition_resnet")))


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grey of uint8 RGB, OpenCV's fixed-point BT.601 (``cv2.COLOR_BGR2GRAY``)."""
    rgb = image.astype(np.uint32)
    gray = (rgb[..., 0] * 4899 + rgb[..., 1] * 9617 + rgb[..., 2] * 1868 + 8192) >> 14
    return gray.astype(np.uint8)


def resize_to_width(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` at ``width`` px wide, height ``int(H * width / W)`` (imutils' rule)."""
    height, old_width = image.shape[:2]
    new_height = max(1, int(height * width / old_width))
    if (new_height, width) == (height, old_width):
        return image
    shrinking = width < old_width
    filter_ = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize((width, new_height), filter_))


def landmarks_of(shape: Any) -> np.ndarray:
    """float64 [P, 2] (x, y) points of a ``dlib.full_object_detection``."""
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                    dtype=np.float64)


class DlibDetector:
    """OpenAI's demo detection as a :data:`flowjax.faces.detectors.Detector` (see the
    module docstring).

    Returns boxes ``[N, 4]`` (x0, y0, x1, y1, photo pixels), dlib's HOG scores
    ``[N]`` (an SVM margin, not a probability; > 0 is a detection) in dlib's
    order (highest first) and the 68 landmarks ``[N, 68, 2]``. Detections
    smaller than ``min_face_size`` photo pixels (the shorter box side) or
    scoring below ``min_score`` are dropped. ``settings`` is what the
    alignment manifest records.
    """

    def __init__(self, width: int | None = DEMO_WIDTH, upsample: int = DEMO_UPSAMPLE,
                 min_face_size: float = 0.0, min_score: float = 0.0):
        if width is not None and (not isinstance(width, int) or width < 1):
            raise ValueError(f"width must be a positive int or None, got {width!r}")
        if not isinstance(upsample, int) or upsample < 0:
            raise ValueError(f"upsample must be an int >= 0, got {upsample!r}")
        if not min_face_size >= 0:
            raise ValueError(f"min_face_size must be >= 0 (pixels), got {min_face_size!r}")
        self.width, self.upsample = width, upsample
        self.min_face_size, self.min_score = float(min_face_size), float(min_score)
        self._detector = hog_detector()
        self._predictor = shape_predictor("shape_predictor_68")
        self.settings = {
            "detector": "dlib HOG frontal face detector + 68-point shape predictor "
                        "(OpenAI demo/align_face.py)",
            "width": width, "upsample": upsample, "min_face_size": self.min_face_size,
            "min_score": self.min_score, "score": "dlib HOG SVM margin (not a probability)",
            "landmarks": provenance("shape_predictor_68"),
        }

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        small = image if self.width is None else resize_to_width(image, self.width)
        gray = to_gray(small)
        # Pixel centres map as src = (dst + 0.5) * ratio - 0.5; box edges as src = dst * ratio.
        ratio = np.array([width / small.shape[1], height / small.shape[0]])
        rects, scores, _ = self._detector.run(gray, self.upsample, self.min_score)
        boxes, kept_scores, points = [], [], []
        for rect, score in zip(rects, scores):
            # dlib rectangles include their right and bottom rows.
            box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1],
                           dtype=np.float64) * np.tile(ratio, 2)
            if min(box[2] - box[0], box[3] - box[1]) < self.min_face_size:
                continue
            marks = landmarks_of(self._predictor(gray, rect))
            boxes.append(box)
            kept_scores.append(float(score))
            points.append((marks + 0.5) * ratio - 0.5)
        if not boxes:
            return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 68, 2))
        return np.stack(boxes), np.array(kept_scores), np.stack(points)


    def describe_search(self, image_shape: tuple[int, ...]) -> str:
        """What a call on a photo of ``image_shape`` searches, in words (for "no face" errors).

        dlib's HOG frontal face detector scans an 80x80 px window; each upsampling
        pass doubles the image, so it finds faces from about ``80 / 2**upsample`` px.
        """
        height, width = image_shape[:2]
        if self.width is None or self.width == width:
            copy, ratio = "the photo itself", 1.0
        else:
            copy_height = max(1, int(height * self.width / width))
            copy, ratio = f"a copy resized to {self.width}x{copy_height}", width / self.width
        smallest = HOG_WINDOW / 2 ** self.upsample
        in_photo = "" if ratio == 1.0 else f", about {smallest * ratio:.0f} px in the photo"
        return (f"dlib's HOG frontal face detector on {copy} with {self.upsample} upsampling "
                f"passes (smallest face it finds: about {smallest:g} px in what it scans"
                f"{in_photo}), keeping detections scoring >= {self.min_score:g} and at least "
                f"{self.min_face_size:g} px on their shorter side")


def dlib_detector(**options: Any) -> DlibDetector:
    """Factory of ``config.align_detector="dlib"`` (options: see :class:`DlibDetector`)."""
    return DlibDetector(**options)
