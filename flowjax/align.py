"""Face alignment to the crop layout of OpenAI's CelebA-HQ Glow demo.

OpenAI's ``demo/align_face.py`` (dlib landmarks + imutils' ``FaceAligner``)
rotates, scales and shifts a photo so that, in an ``S x S`` output, the eye on
the image's left lands at ``(0.371 S, 0.480 S)`` and the other at
``((1 - 0.371) S, 0.480 S)``: the eye line is horizontal, the inter-eye distance
is ``(1 - 2 * 0.371) S`` (66.05 px at 256) and the eye midpoint is at
``(S / 2, 0.480 S)``. Resampling is bicubic with a black constant border. This
module reproduces that geometry exactly, in pure numpy + PIL (no OpenCV, no
dlib).

Conventions:

* Points are ``(x, y)`` = (column, row) in pixel-index coordinates, i.e. the
  centre of pixel ``[r, c]`` is ``(c, r)`` -- the convention of dlib, OpenCV and
  facenet-pytorch's MTCNN.
* ``left_eye`` is the eye that appears on the *image's* left in an upright face,
  i.e. the subject's right eye: MTCNN landmark 0, the mean of dlib's 68-point
  landmarks 36-41. ``right_eye`` is MTCNN landmark 1 / dlib 42-47. The labels
  are semantic, so a face photographed upside down is rotated upright.
* A transform is a 2x3 matrix ``M`` mapping source points to output points:
  ``p_out = M[:, :2] @ p_src + M[:, 2]``.

Known differences from the demo, none of which moves the eyes: the demo first
resizes every photo to width 800 with area interpolation (only to speed up
dlib); here, when the face is shrunk by 2x or more, the photo is first reduced
by an integer factor with a box filter so the bicubic warp does not alias. PIL's
bicubic kernel uses a = -0.5 (OpenCV: -0.75), and some imutils versions floor
the eye midpoint to whole pixels, which this module does not.

Detection uses facenet-pytorch's MTCNN (its weights ship inside the package),
imported only when a detector is built, because it needs a torchvision whose
compiled ops match the installed torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps

# imutils FaceAligner parameters used by OpenAI's demo (GLOW_SPEC.md section 5).
LEFT_EYE_TEMPLATE = (0.371, 0.480)
DEFAULT_SIZE = 256

MultipleFaces = Literal["error", "largest", "most_confident"]
MULTIPLE_FACES_POLICIES = ("error", "largest", "most_confident")
_EXIF_ORIENTATION = 0x0112

# A detector maps a uint8 [H, W, 3] RGB image to (boxes [N, 4] as x0, y0, x1, y1;
# probabilities [N]; landmarks [N, 5, 2] in MTCNN order), with N = 0 for no face.
Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


# --------------------------------------------------------------------------
# Geometry (pure numpy)
# --------------------------------------------------------------------------


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(left_eye, right_eye)`` from 2, 5 (MTCNN) or 68 (dlib) landmarks [N, 2]."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in (2, 5, 68):
        raise ValueError(
            f"landmarks must have shape [2, 2] (left eye, right eye), [5, 2] (MTCNN) "
            f"or [68, 2] (dlib) as (x, y) points, got shape {points.shape}"
        )
    if not np.all(np.isfinite(points)):
        raise ValueError(f"landmarks must be finite, got {points.tolist()}")
    if points.shape[0] == 68:
        return points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    return points[0], points[1]


def similarity_from_eyes(
    left_eye: np.ndarray,
    right_eye: np.ndarray,
    size: int = DEFAULT_SIZE,
    left_eye_template: tuple[float, float] = LEFT_EYE_TEMPLATE,
) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, shift) taking the eyes to the template.

    ``left_eye`` goes to ``(tx * size, ty * size)`` and ``right_eye`` to
    ``((1 - tx) * size, ty * size)``, where ``(tx, ty) = left_eye_template``.
    """
    _check_size(size)
    left = np.asarray(left_eye, dtype=np.float64).reshape(2)
    right = np.asarray(right_eye, dtype=np.float64).reshape(2)
    delta = right - left
    distance = math.hypot(delta[0], delta[1])
    if not distance > 1e-6:
        raise ValueError(
            f"the two eyes coincide (left {left.tolist()}, right {right.tolist()}); "
            "cannot fix rotation and scale from them"
        )
    tx, ty = left_eye_template
    scale = (1.0 - 2.0 * tx) * size / distance
    angle = math.atan2(delta[1], delta[0])
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    # Rotating by -angle makes the eye line point along +x.
    linear = np.array([[cos, sin], [-sin, cos]])
    midpoint = (left + right) / 2.0
    target = np.array([0.5 * size, ty * size])
    return np.concatenate([linear, (target - linear @ midpoint)[:, None]], axis=1)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(x, y)`` points [..., 2] through a 2x3 affine ``matrix``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine map (output -> source)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    linear_inv = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear_inv, (-linear_inv @ matrix[:, 2])[:, None]], axis=1)


def warp_affine(
    image: np.ndarray, matrix: np.ndarray, size: int, antialias: bool = True
) -> np.ndarray:
    """Resample ``image`` (uint8 [H, W, 3]) into ``size x size`` through ``matrix``.

    Bicubic, black outside the source. With ``antialias``, a shrink by 2x or
    more is split into an integer box-filter reduction followed by the warp.
    """
    _check_image(image)
    _check_size(size)
    matrix = np.asarray(matrix, dtype=np.float64)
    pil = Image.fromarray(image)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    factor = int(1.0 / scale) if antialias and scale > 0 else 1
    if factor >= 2:
        pil = pil.reduce(factor)
        # Reduced pixel j averages source pixels j*k .. j*k+k-1, centred at
        # j*k + (k-1)/2, so source = k * reduced + (k-1)/2.
        to_source = np.array(
            [[factor, 0.0, (factor - 1) / 2.0], [0.0, factor, (factor - 1) / 2.0]]
        )
        matrix = _compose(matrix, to_source)
    inverse = invert_affine(matrix)
    # PIL samples in continuous coordinates (pixel centres at +0.5), so convert
    # the index-coordinate inverse: c' = c + 0.5 * (1 - sum of the row).
    offset = inverse[:, 2] + 0.5 * (1.0 - inverse[:, :2].sum(axis=1))
    coefficients = (*inverse[0, :2], offset[0], *inverse[1, :2], offset[1])
    out = pil.transform(
        (size, size),
        Image.Transform.AFFINE,
        coefficients,
        resample=Image.Resampling.BICUBIC,
        fillcolor=(0, 0, 0),
    )
    return np.asarray(out, dtype=np.uint8)


def align_image(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int = DEFAULT_SIZE,
    antialias: bool = True,
) -> np.ndarray:
    """Align a uint8 [H, W, 3] RGB face given its landmarks (see :func:`eye_centers`)."""
    matrix = similarity_from_eyes(*eye_centers(landmarks), size=size)
    return warp_affine(image, matrix, size, antialias=antialias)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 matrix of ``outer(inner(p))``."""
    return np.concatenate(
        [outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]],
        axis=1,
    )


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")


def _check_image(image: np.ndarray, source: str = "image") -> None:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
    ):
        described = (
            f"{image.dtype} array of shape {image.shape}"
            if isinstance(image, np.ndarray)
            else type(image).__name__
        )
        raise ValueError(
            f"{source}: expected a uint8 RGB array of shape [H, W, 3], got {described}; "
            "load photos with align_photo(path) or convert to uint8 RGB first"
        )


# --------------------------------------------------------------------------
# Detection (facenet-pytorch MTCNN, imported lazily)
# --------------------------------------------------------------------------


@functools.cache
def mtcnn_import_error() -> str | None:
    """None if facenet-pytorch's MTCNN imports, else the error it raised (as text)."""
    try:
        from facenet_pytorch import MTCNN  # noqa: F401
    except Exception as error:  # torchvision op registration raises RuntimeError
        return f"{type(error).__name__}: {error}"
    return None


def mtcnn_detector(device: str = "cpu", **mtcnn_kwargs: Any) -> Detector:
    """A :data:`Detector` backed by facenet-pytorch's MTCNN (all faces, unsorted).

    Raises ImportError, with the original error, if MTCNN cannot be imported.
    """
    error = mtcnn_import_error()
    if error is not None:
        raise ImportError(
            "face detection needs facenet-pytorch's MTCNN, which failed to import "
            f"({error}). This usually means torchvision does not match the installed "
            "torch: install the torchvision release built for your torch version "
            "(see https://pytorch.org/get-started/previous-versions/), or pass your "
            "own detector=..., or call align_image() with landmarks you already have."
        )
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, select_largest=False, device=device, **mtcnn_kwargs)

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, probs, points = mtcnn.detect(Image.fromarray(image), landmarks=True)
        if boxes is None:
            return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
        return (
            np.asarray(boxes, dtype=np.float64),
            np.asarray(probs, dtype=np.float64),
            np.asarray(points, dtype=np.float64),
        )

    return detect


@functools.cache
def default_detector() -> Detector:
    """A CPU MTCNN detector, built once per process (the network load is slow)."""
    return mtcnn_detector()


# --------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AlignmentInfo:
    """What :func:`align_photo` did, for the manifest.

    ``matrix`` maps source (after EXIF orientation) to output pixels;
    ``landmarks`` are in source pixels, ``aligned_landmarks`` in output pixels.
    """

    source: str
    source_size: tuple[int, int]  # (width, height) after EXIF orientation
    conversions: tuple[str, ...]
    size: int
    n_faces: int
    face_index: int
    multiple_faces: str
    box: tuple[float, float, float, float]
    probability: float
    landmarks: tuple[tuple[float, float], ...]
    aligned_landmarks: tuple[tuple[float, float], ...]
    matrix: tuple[tuple[float, float, float], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)


def align_photo(
    photo: str | os.PathLike | np.ndarray,
    detector: Detector | None = None,
    size: int = DEFAULT_SIZE,
    multiple_faces: MultipleFaces = "largest",
    antialias: bool = True,
) -> tuple[np.ndarray, AlignmentInfo]:
    """Detect the face in a photo (path or uint8 RGB array) and align it.

    ``detector`` defaults to :func:`default_detector` (MTCNN). With several
    faces, ``multiple_faces`` picks one: "largest" (default: the largest box,
    normally the subject of a portrait; the demo took dlib's first detection),
    "most_confident" (highest probability) or "error". The choice is recorded
    in the returned :class:`AlignmentInfo`. No face raises ValueError naming
    the photo.
    """
    if multiple_faces not in MULTIPLE_FACES_POLICIES:
        raise ValueError(
            f"multiple_faces must be one of {MULTIPLE_FACES_POLICIES}, got {multiple_faces!r}"
        )
    image, source, conversions = _load_photo(photo)
    if detector is None:
        detector = default_detector()
    boxes, probs, points = detector(image)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
    n_faces = len(boxes)
    if n_faces == 0:
        raise ValueError(
            f"{source}: no face found; use a frontal photo with the face at least "
            "~20 px tall, or align it yourself with align_image(image, landmarks)"
        )
    if n_faces > 1 and multiple_faces == "error":
        raise ValueError(
            f"{source}: found {n_faces} faces, expected 1 (multiple_faces='error'); "
            "crop the photo to one person or pass multiple_faces='largest' or "
            "'most_confident'"
        )
    if multiple_faces == "most_confident":
        index = int(np.argmax(probs))
    else:
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        index = int(np.argmax(areas))
    matrix = similarity_from_eyes(*eye_centers(points[index]), size=size)
    aligned = warp_affine(image, matrix, size, antialias=antialias)
    info = AlignmentInfo(
        source=source,
        source_size=(image.shape[1], image.shape[0]),
        conversions=conversions,
        size=size,
        n_faces=n_faces,
        face_index=index,
        multiple_faces=multiple_faces,
        box=tuple(float(v) for v in boxes[index]),
        probability=float(probs[index]),
        landmarks=_as_tuples(points[index]),
        aligned_landmarks=_as_tuples(transform_points(matrix, points[index])),
        matrix=_as_tuples(matrix),
    )
    return aligned, info


def _load_photo(
    photo: str | os.PathLike | np.ndarray,
) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """uint8 RGB array, a name for messages, and the conversions applied."""
    if isinstance(photo, np.ndarray):
        _check_image(photo, "<array>")
        return photo, "<array>", ()
    path = os.fspath(photo)
    try:
        with Image.open(path) as opened:
            conversions = []
            orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)
            # Phones store rotated pixels plus a tag; detectors expect upright faces.
            oriented = ImageOps.exif_transpose(opened)
            if orientation != 1:
                conversions.append(f"exif_orientation_{orientation}_applied")
            if oriented.mode not in ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr"):
                raise ValueError(
                    f"{path}: unsupported image mode {oriented.mode!r} (expected 8-bit "
                    "RGB, RGBA, grayscale or palette); convert it to 8-bit RGB first"
                )
            if oriented.mode != "RGB":
                # Alpha is dropped (not composited): the demo read photos as RGB.
                conversions.append(f"{oriented.mode}_to_RGB")
            image = np.asarray(oriented.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such photo") from None
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: cannot read as an image ({error})") from error
    return image, path, tuple(conversions)


def _as_tuples(array: np.ndarray) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(array))
