"""Face detectors for :mod:`flowjax.faces.align`: the contract, MTCNN, and detector specs.

A :data:`Detector` maps a uint8 ``[H, W, 3]`` RGB photo to ``(boxes [N, 4] as
x0, y0, x1, y1; probabilities [N]; landmarks [N, 5, 2] in MTCNN order, or
[N, 68, 2] in dlib's)`` in the photo's pixels, with ``N = 0`` for no face;
:mod:`flowjax.faces.align` picks one face and warps it to OpenAI's layout.

Detectors (:data:`DETECTORS`, chosen by name or import path with
:func:`detector_from_spec`, as ``config.align_detector`` does):

* ``"dlib"`` (:class:`flowjax.faces.dlib_models.DlibDetector`, the optional extra
  ``.[faces]``): what OpenAI's demo ran -- HOG detection on a copy resized to
  width 800, 68 landmarks, eye centres = means of the eye contours. Use it to
  reproduce the CelebA-HQ Glow's alignment.
* ``"mtcnn"`` (default; :class:`MtcnnDetector`): facenet-pytorch's MTCNN (its
  weights ship inside the package), imported only when a detector is built,
  because it needs a torchvision whose compiled ops match the installed torch.
  It runs on a copy downscaled to width <= 800 (as the demo; measured 4.2x
  faster on a 2048 px photo, and issue #13 saw fewer false positives) and drops faces smaller than
  ``min_face_size`` photo pixels or less likely than ``min_score``. Its eye
  landmarks are eye centres too, so the same template applies; see
  :class:`MtcnnDetector` for the measured difference from dlib's.
* any ``"module:factory"``: a function returning a :data:`Detector`.

Options (``config.align_detector_options``) are passed to the factory as
keyword arguments, and a detector's ``settings`` dict (if it has one) is
recorded in every :class:`flowjax.faces.align.AlignmentInfo` (``detector``), hence
the manifest (:func:`detector_settings`).
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

# A detector maps a uint8 [H, W, 3] RGB image to (boxes [N, 4] as x0, y0, x1, y1;
# probabilities [N]; landmarks [N, 5, 2] in MTCNN order), with N = 0 for no face.
Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


# --------------------------------------------------------------------------
# MTCNN (facenet-pytorch, imported lazily); dlib is in flowjax.faces.dlib_models
# --------------------------------------------------------------------------


@functools.cache
def mtcnn_import_error() -> str | None:
    """None if facenet-pytorch's MTCNN imports, else the error it raised (as text)."""
    try:
        from facenet_pytorch import MTCNN  # noqa: F401
    except Exception as error:  # torchvision op registration raises RuntimeError
        return f"{type(error).__name__}: {error}"
    return None


# MTCNN's scores on real faces are ~0.999; its false positives on portraits
# (tiny boxes in hair and clothing) score 0.80-0.85 (issue #13).
MTCNN_MIN_SCORE = 0.95
MTCNN_MIN_FACE_SIZE = 40.0  # photo pixels, shorter side of the box
MAX_DETECTION_WIDTH = 800  # OpenAI's demo resized photos to width 800


def downscale_to_width(image: np.ndarray,
                       max_width: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(copy no wider than max_width, photo pixels per copy pixel as (x, y))``; box filter."""
    height, width = image.shape[:2]
    if max_width is None or width <= max_width:
        return image, np.ones(2)
    new_height = max(1, round(height * max_width / width))
    small = Image.fromarray(image).resize((max_width, new_height), Image.Resampling.BOX)
    return np.asarray(small), np.array([width / max_width, height / new_height])


class MtcnnDetector:
    """A :data:`Detector` backed by facenet-pytorch's MTCNN (all faces, unsorted).

    Detection runs on a copy no wider than ``max_width`` (None: the photo
    itself); boxes and landmarks are mapped back to photo pixels. Faces whose
    box is narrower or shorter than ``min_face_size`` photo pixels, or whose
    probability is below ``min_score``, are dropped (a one-person portrait
    otherwise yields tiny false positives, which ``multiple_faces="error"``
    would refuse). ``settings`` is what the alignment manifest records.

    MTCNN's two eye landmarks are used as eye centres, like dlib's eye-contour
    means; the template is the demo's. Measured difference from dlib's 68-point
    eye centres (``python -m tools.measure_faces --mtcnn_numpy_nms``): on scikit-image's
    astronaut (512 px, the one sharp bundled portrait) MTCNN's inter-eye
    distance is 0.964x dlib's and its eye midpoint is 0.021 d across and 0.001 d
    down from dlib's (d = dlib's inter-eye distance); on 92 faces of
    scikit-image's LFW subset (25 px crops enlarged 8x, blurry) 1.10x +- 0.08
    and -0.08 d +- 0.08, -0.05 d +- 0.09 (median +- sd); issue #13 reports
    1.028x and ~1.5 px at 256 on other photos. (The numbers are the same with
    torchvision's NMS and with ``--mtcnn_numpy_nms``.) Aligned with MTCNN, the
    astronaut's eyes re-detected by dlib land 2.5 px from the template at worst
    at 256 (0.18 px with dlib). The offsets disagree in sign
    between sources, so no correction is applied: expect MTCNN-aligned faces
    to differ from dlib-aligned ones by a few percent in scale and a pixel or
    two at 256; use the ``dlib`` detector where OpenAI's layout must be exact.
    """

    def __init__(self, device: str = "cpu", min_face_size: float = MTCNN_MIN_FACE_SIZE,
                 min_score: float = MTCNN_MIN_SCORE,
                 max_width: int | None = MAX_DETECTION_WIDTH, **mtcnn_kwargs: Any):
        if not min_face_size >= 0:
            raise ValueError(f"min_face_size must be >= 0 (pixels), got {min_face_size!r}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be a probability in [0, 1], got {min_score!r}")
        if max_width is not None and (not isinstance(max_width, int) or max_width < 1):
            raise ValueError(f"max_width must be a positive int or None, got {max_width!r}")
        error = mtcnn_import_error()
        if error is not None:
            raise ImportError(
                "face detection needs facenet-pytorch's MTCNN, which failed to import "
                f"({error}). This usually means torchvision does not match the installed "
                "torch: install the torchvision release built for your torch version "
                "(see https://pytorch.org/get-started/previous-versions/), or use "
                "detector 'dlib' (pip install -e '.[faces]'), or pass your own "
                "detector=..., or call align_image() with landmarks you already have."
            )
        from facenet_pytorch import MTCNN

        self.min_face_size, self.min_score = float(min_face_size), float(min_score)
        self.max_width = max_width
        self._mtcnn = MTCNN(keep_all=True, select_largest=False, device=device, **mtcnn_kwargs)
        self.settings = {
            "detector": "facenet-pytorch MTCNN (5 landmarks; eyes used as eye centres)",
            "max_width": max_width, "min_face_size": self.min_face_size,
            "min_score": self.min_score, "score": "MTCNN face probability",
            "mtcnn_options": {k: repr(v) for k, v in mtcnn_kwargs.items()},
        }

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        small, ratio = downscale_to_width(image, self.max_width)
        boxes, probs, points = self._mtcnn.detect(Image.fromarray(small), landmarks=True)
        if boxes is None:
            return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
        boxes = np.asarray(boxes, dtype=np.float64) * np.tile(ratio, 2)  # edges scale
        probs = np.asarray(probs, dtype=np.float64)
        # Pixel centres: photo = (copy + 0.5) * ratio - 0.5.
        points = (np.asarray(points, dtype=np.float64) + 0.5) * ratio - 0.5
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = (sides >= self.min_face_size) & (probs >= self.min_score)
        if not keep.all():
            logger.info("MTCNN: dropped %d of %d detections (smaller than %g px or "
                        "probability below %g)", int((~keep).sum()), len(keep),
                        self.min_face_size, self.min_score)
        return boxes[keep], probs[keep], points[keep]

    def describe_search(self, image_shape: tuple[int, ...]) -> str:
        """What a call on a photo of ``image_shape`` searches, in words (for "no face" errors)."""
        height, width = image_shape[:2]
        if self.max_width is None or width <= self.max_width:
            copy = "the photo itself"
        else:
            copy_height = max(1, round(height * self.max_width / width))
            copy = f"a copy resized to {self.max_width}x{copy_height}"
        return (f"facenet-pytorch's MTCNN on {copy}, keeping faces with probability >= "
                f"{self.min_score:g} and at least {self.min_face_size:g} px on their shorter "
                "side in the photo")


def mtcnn_detector(device: str = "cpu", **options: Any) -> MtcnnDetector:
    """An :class:`MtcnnDetector`; raises ImportError, with the cause, if MTCNN cannot import."""
    return MtcnnDetector(device=device, **options)


@functools.cache
def default_detector() -> Detector:
    """A CPU MTCNN detector, built once per process (the network load is slow)."""
    return mtcnn_detector()


# --------------------------------------------------------------------------
# Detector specs ("module:factory", as configs give them)
# --------------------------------------------------------------------------

DEFAULT_DETECTOR_SPEC = "flowjax.faces.detectors:default_detector"
# Names a config may give instead of an import path.
DETECTORS = {
    "mtcnn": "flowjax.faces.detectors:mtcnn_detector",
    "dlib": "flowjax.faces.dlib_models:dlib_detector",
}
_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def parse_detector_spec(spec: str, what: str = "detector spec") -> tuple[str, str]:
    """``(module, factory)`` of a detector name (:data:`DETECTORS`) or an import path
    ``"module:factory"``; ValueError if malformed."""
    if isinstance(spec, str) and spec in DETECTORS:
        spec = DETECTORS[spec]
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise ValueError(
            f"{what} {spec!r} is not an import path 'module:factory' (a module, a colon, "
            f"the name of a function returning a detector) nor a detector name "
            f"{sorted(DETECTORS)}; e.g. 'dlib' or {DEFAULT_DETECTOR_SPEC!r}"
        )
    module, factory = spec.split(":")
    return module, factory


def detector_from_spec(spec: str, what: str = "detector spec",
                       options: dict[str, Any] | None = None) -> Detector:
    """Imports ``module``, calls ``factory(**options)`` and checks it gave a callable
    :data:`Detector`. ``spec`` is a name of :data:`DETECTORS` or ``"module:factory"``.

    MTCNN's and dlib's ImportErrors (missing torchvision match, missing extra)
    are raised with a hint to name another detector.
    """
    module_name, factory_name = parse_detector_spec(spec, what)
    options = dict(options or {})
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"{what} {spec!r}: cannot import module {module_name!r} ({error}); check the "
            "spec and that the module is on the Python path"
        ) from error
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        found = "nothing" if factory is None else type(factory).__name__
        raise ValueError(
            f"{what} {spec!r}: {module_name}.{factory_name} is {found}, expected a "
            "function returning a detector; check the name"
        )
    try:
        detector = factory(**options)
    except ImportError as error:  # MTCNN without a matching torchvision, dlib not installed
        raise ImportError(
            f"{what} {spec!r}: {error} Or name another detector: {what}='mtcnn', 'dlib' "
            "or 'module:factory'."
        ) from error
    except TypeError as error:
        if not options:
            raise
        raise ValueError(
            f"{what} {spec!r}: {module_name}.{factory_name} does not take the detector "
            f"options {sorted(options)} ({error}); remove them or fix their names"
        ) from error
    if not callable(detector):
        raise ValueError(
            f"{what} {spec!r}: {factory_name}() returned {type(detector).__name__}, expected a "
            "detector (a callable: uint8 [H, W, 3] -> (boxes, probabilities, landmarks))"
        )
    return detector


def describe_search(detector: Detector, image_shape: tuple[int, ...]) -> str:
    """What ``detector`` searched in a photo of ``image_shape``, in words: its
    ``describe_search(image_shape)`` where it has one (MTCNN, dlib), else its settings."""
    describe = getattr(detector, "describe_search", None)
    if callable(describe):
        return describe(image_shape)
    settings = detector_settings(detector)
    name = settings.pop("detector", "the detector")
    shown = ", ".join(f"{k} {v!r}" for k, v in settings.items() if not isinstance(v, dict))
    return f"{name}{f' ({shown})' if shown else ''}"


def detector_settings(detector: Detector) -> dict[str, Any]:
    """What the manifest records about a detector: its ``settings`` or its name."""
    settings = getattr(detector, "settings", None)
    if isinstance(settings, dict):
        return dict(settings)
    kind = detector if isinstance(detector, types.FunctionType) else type(detector)
    return {"detector": f"{kind.__module__}.{kind.__qualname__}"}
