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

Photos. Paths are read by ``flowjax.io.images.load_image``, the project's one
loading policy (PNG/JPEG only, alpha composited over white by default, 16-bit
scaled, EXIF orientation applied, every conversion recorded); arrays must
already be uint8 RGB. :func:`load_aligned_images` and
:func:`load_aligned_identities` take what ``flowjax.io.images.load_images`` /
``flowjax.faces.identity_folders.load_identities`` take, list the files by their
rules, align every photo and return the same ``ImageSet`` (records extended
by the alignment), so the experiments switch to them with ``config.align=True``.

Photos that cannot be aligned. A photo with no face, or with several under
``multiple_faces="error"``, raises :class:`AlignmentError`, whose message says
what was searched (the detector, its upsampling or working copy, the photo's
size: :func:`flowjax.faces.detectors.describe_search`) rather than guessing
why. With ``failures="skip"`` the loaders leave such photos out instead and
list them in the set's ``skipped`` (the reason, the photo's checksum and size,
the detector's settings); a set, or an identity, left with no photo is an
error naming it.

Detectors live in :mod:`flowjax.faces.detectors` (the ``Detector`` contract,
MTCNN, dlib by name, ``"module:factory"`` specs as ``config.align_detector``
gives them); this module picks one of the faces a detector finds and aligns it.

Longer than 400 lines because the geometry, the per-photo policy (no face, several
faces; raise or skip) and the loaders that apply it are together the one alignment of
OpenAI's demo; a tenth of it is this docstring.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from flowjax import io as fio
from flowjax.faces import identity_folders
from flowjax.faces.detectors import (Detector, default_detector, describe_search,
                                     detector_settings)

# imutils FaceAligner parameters used by OpenAI's demo (GLOW_SPEC.md section 5).
LEFT_EYE_TEMPLATE = (0.371, 0.480)
DEFAULT_SIZE = 256

MultipleFaces = Literal["error", "largest", "most_confident"]
MULTIPLE_FACES_POLICIES = ("error", "largest", "most_confident")
# What the loaders do with a photo that cannot be aligned (no face; several under "error").
AlignFailures = Literal["error", "skip"]
ALIGN_FAILURE_POLICIES = ("error", "skip")

logger = logging.getLogger(__name__)


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
# Photos
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AlignmentInfo:
    """What :func:`align_photo` did, for the manifest.

    ``matrix`` maps source pixels (as loaded, i.e. after EXIF orientation) to
    output pixels; ``landmarks`` are in source pixels, ``aligned_landmarks``
    in output pixels; ``face_index`` counts from 0 in the detector's order;
    ``conversions`` are the loading conversions (``flowjax.io.images``);
    ``detector`` the detector's settings
    (:func:`flowjax.faces.detectors.detector_settings`), and
    ``probability`` its score (dlib: a HOG margin, not a probability).
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
    detector: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for an :class:`~flowjax.io.images.ImageRecord`'s conversions."""
        if self.n_faces == 1:
            choice = "the only face found"
        else:
            rule = "largest box" if self.multiple_faces == "largest" else "highest probability"
            choice = f"face {self.face_index + 1} of {self.n_faces} chosen by {rule}"
        linear = np.asarray(self.matrix)[:, :2]
        scale = math.sqrt(abs(np.linalg.det(linear)))
        # + 0.0 turns a rounded -0.0 into 0.0.
        degrees = round(math.degrees(math.atan2(linear[1, 0], linear[0, 0])), 2) + 0.0
        eyes = np.stack(eye_centers(np.asarray(self.landmarks)))
        (lx, ly), (rx, ry) = eyes
        (alx, aly), (arx, ary) = transform_points(self.matrix, eyes)
        return (
            f"aligned to {self.size}x{self.size} (OpenAI CelebA-HQ layout): {choice}; eyes at "
            f"({lx:.1f}, {ly:.1f}) and ({rx:.1f}, {ry:.1f}) moved to ({alx:.2f}, {aly:.2f}) "
            f"and ({arx:.2f}, {ary:.2f}) by scale {scale:.4g}, rotation {degrees:.2f} deg"
        )


class AlignmentError(ValueError):
    """A photo that cannot be aligned: no face found, or several under ``multiple_faces="error"``.

    ``record`` is JSON-ready: ``source``, ``reason`` ("no face" or "several faces"),
    ``message`` (this error's text), ``source_size`` (width, height), ``n_faces`` and
    the ``detector``'s settings; the loaders' ``skipped`` entries add the file's
    ``sha256``.
    """

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.record = {**record, "message": message}


def align_photo(
    photo: str | os.PathLike | np.ndarray,
    detector: Detector | None = None,
    size: int = DEFAULT_SIZE,
    multiple_faces: MultipleFaces = "largest",
    antialias: bool = True,
    alpha: str = "composite",
) -> tuple[np.ndarray, AlignmentInfo]:
    """Detect the face in a photo (path or uint8 RGB array) and align it.

    A path is read by :func:`flowjax.io.images.load_image` (PNG/JPEG; ``alpha``
    "composite" over white or "drop"; its conversions are recorded in the
    info). ``detector`` defaults to
    :func:`flowjax.faces.detectors.default_detector` (MTCNN). With
    several faces, ``multiple_faces`` picks one: "largest" (default: the
    largest box, normally the subject of a portrait; the demo took dlib's
    first detection), "most_confident" (highest probability) or "error"; a
    choice among several is logged as a warning and recorded in the returned
    :class:`AlignmentInfo`. No face raises :class:`AlignmentError` naming the photo
    and what was searched.
    """
    _check_policy(multiple_faces)
    _check_size(size)
    if isinstance(photo, np.ndarray):
        _check_image(photo, "<array>")
        image, source, conversions = photo, "<array>", ()
    else:
        image, record = fio.load_image(photo, alpha=alpha)
        source, conversions = record.path, record.conversions
    if detector is None:
        detector = default_detector()
    return _align_loaded(image, source, conversions, detector, size, multiple_faces, antialias)


def _align_loaded(
    image: np.ndarray,
    source: str,
    conversions: tuple[str, ...],
    detector: Detector,
    size: int,
    multiple_faces: str,
    antialias: bool,
) -> tuple[np.ndarray, AlignmentInfo]:
    boxes, probs, points = detector(image)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    points = np.asarray(points, dtype=np.float64)
    n_faces = len(boxes)
    if len(probs) != n_faces or points.shape not in ((n_faces, 5, 2), (n_faces, 68, 2)):
        raise ValueError(
            f"{source}: the detector returned {n_faces} boxes, {len(probs)} probabilities "
            f"and landmarks of shape {points.shape}; expected [N, 4], [N] and [N, 5, 2] "
            "(or [N, 68, 2]) for the same N. Fix the detector"
        )
    record = {"source": source, "source_size": [image.shape[1], image.shape[0]],
              "n_faces": n_faces, "detector": detector_settings(detector)}
    if n_faces == 0:
        raise AlignmentError(
            f"{source}: no face found in this {image.shape[1]}x{image.shape[0]} (WxH) photo by "
            f"{describe_search(detector, image.shape)}. Leave such photos out with "
            "align_failures='skip', try another detector, or align the photo from landmarks "
            "you have with align_image(image, landmarks)",
            {**record, "reason": "no face"})
    if n_faces > 1 and multiple_faces == "error":
        raise AlignmentError(
            f"{source}: found {n_faces} faces, expected 1 (multiple_faces='error'); "
            "crop the photo to one person, pass multiple_faces='largest' or "
            "'most_confident', or leave such photos out with align_failures='skip'",
            {**record, "reason": "several faces"})
    if multiple_faces == "most_confident":
        index = int(np.argmax(probs))
    else:
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        index = int(np.argmax(areas))
    if n_faces > 1:
        logger.warning(
            "%s: found %d faces; aligning face %d (multiple_faces=%r). Crop the photo to "
            "one person, or set multiple_faces='error' to refuse such photos",
            source, n_faces, index + 1, multiple_faces,
        )
    matrix = similarity_from_eyes(*eye_centers(points[index]), size=size)
    aligned = warp_affine(image, matrix, size, antialias=antialias)
    info = AlignmentInfo(
        source=source,
        source_size=(image.shape[1], image.shape[0]),
        conversions=tuple(conversions),
        size=int(size),
        n_faces=n_faces,
        face_index=index,
        multiple_faces=multiple_faces,
        box=tuple(float(v) for v in boxes[index]),
        probability=float(probs[index]),
        landmarks=_as_tuples(points[index]),
        aligned_landmarks=_as_tuples(transform_points(matrix, points[index])),
        matrix=_as_tuples(matrix),
        detector=detector_settings(detector),
    )
    return aligned, info


def _check_policy(multiple_faces: str) -> None:
    if multiple_faces not in MULTIPLE_FACES_POLICIES:
        raise ValueError(
            f"multiple_faces must be one of {MULTIPLE_FACES_POLICIES}, got {multiple_faces!r}"
        )


def _as_tuples(array: np.ndarray) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(array))


# --------------------------------------------------------------------------
# Folders and lists of photos -> fio.ImageSet
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AlignedImageSet(fio.ImageSet):
    """A :class:`flowjax.io.images.ImageSet` of aligned photos.

    ``images[i]`` is ``paths[i]`` aligned as ``alignment[i]`` says; each
    record's conversions end with that alignment's :meth:`AlignmentInfo.describe`;
    ``options`` are the loading options (no size: photos differ in size).
    ``skipped`` lists the photos left out under ``failures="skip"`` (the
    :attr:`AlignmentError.record` of each, with its ``sha256``); they are not in
    ``paths``.
    """

    alignment: tuple[AlignmentInfo, ...] = ()
    skipped: tuple[dict[str, Any], ...] = ()


def load_aligned_images(
    source: fio.PathLike | Sequence[fio.PathLike],
    *,
    size: int,
    detector: Detector | None = None,
    multiple_faces: MultipleFaces = "largest",
    alpha: str = "composite",
    background: Sequence[int] = (255, 255, 255),
    antialias: bool = True,
    failures: AlignFailures = "error",
    label: str = "the photos",
) -> AlignedImageSet:
    """:func:`flowjax.io.images.load_images` for unaligned photos: each aligned to ``size``.

    Files are listed by ``flowjax.io.images``'s rules and read by its
    :func:`~flowjax.io.images.load_image` (any size); every face is detected and
    aligned as by :func:`align_photo`. A photo without a face (or with several
    under "error") raises :class:`AlignmentError` naming it (``failures="error"``)
    or is left out and listed in ``skipped`` (``"skip"``; logged as a warning); no
    photo left is a ValueError naming ``label`` and every photo's reason.
    """
    detector = _prepare(size, multiple_faces, alpha, background, detector, failures)
    return _align_files(fio.image_files(source), size, detector, multiple_faces, alpha,
                        background, antialias, failures, label)


def load_aligned_identities(
    source: identity_folders.IdentitySource,
    *,
    size: int,
    base_dir: fio.PathLike | None = None,
    detector: Detector | None = None,
    multiple_faces: MultipleFaces = "largest",
    alpha: str = "composite",
    background: Sequence[int] = (255, 255, 255),
    antialias: bool = True,
    failures: AlignFailures = "error",
) -> dict[str, AlignedImageSet]:
    """:func:`flowjax.faces.identity_folders.load_identities` for unaligned photos (see :func:`load_aligned_images`).

    ``source`` is a root folder ``root/<identity>/*.png`` or an ``{identity:
    paths}`` mapping (relative paths against ``base_dir``), as there; every
    folder is listed before the first photo is read. With ``failures="skip"``, an
    identity left with no photo is a ValueError naming it.
    """
    detector = _prepare(size, multiple_faces, alpha, background, detector, failures)
    groups = identity_folders.identity_files(source, base_dir=base_dir)
    return {
        identity: _align_files(files, size, detector, multiple_faces, alpha, background, antialias,
                               failures, f"identity {identity!r}")
        for identity, files in groups.items()
    }


def _prepare(size, multiple_faces, alpha, background, detector, failures) -> Detector:
    """Checks the options (before any file is read) and builds the default detector."""
    _check_size(size)
    _check_policy(multiple_faces)
    if failures not in ALIGN_FAILURE_POLICIES:
        raise ValueError(f"failures must be one of {ALIGN_FAILURE_POLICIES}, got {failures!r}")
    fio.LoadOptions.make(None, None, alpha, background)
    return default_detector() if detector is None else detector


def _align_files(files, size, detector, multiple_faces, alpha, background, antialias,
                 failures, label) -> AlignedImageSet:
    images, paths, records, infos, skipped = [], [], [], [], []
    for path in files:
        image, record = fio.load_image(path, alpha=alpha, background=background)
        try:
            aligned, info = _align_loaded(image, record.path, record.conversions, detector, size,
                                          multiple_faces, antialias)
        except AlignmentError as error:
            if failures == "error":
                raise
            skipped.append({**error.record, "sha256": record.sha256})
            logger.warning("left out (align_failures='skip'): %s", error)
            continue
        images.append(aligned)
        paths.append(path)
        records.append(dataclasses.replace(record,
                                           conversions=(*record.conversions, info.describe())))
        infos.append(info)
    if not images:
        reasons = "; ".join(f"{s['source']}: {s['reason']}" for s in skipped)
        raise ValueError(
            f"{label} is left with no photo: none of its {len(skipped)} photo(s) could be "
            f"aligned ({reasons}). Add a photo in which the detector finds one face, or "
            f"remove {label} from the inputs")
    return AlignedImageSet(
        images=np.stack(images),
        paths=tuple(paths),
        records=tuple(records),
        options=fio.LoadOptions.make(None, None, alpha, background),
        alignment=tuple(infos),
        skipped=tuple(skipped),
    )
