"""Identity embeddings with dlib's ResNet face-recognition model (128-d), offline.

The identity backend ``"dlib"`` (``--config.identity.backend=dlib`` in
``configs/evaluate.py``; ``--config.evaluation.identity.backend=dlib`` in the
transfer config). Needs the optional extra ``pip install -e '.[faces]'``; the
model files come from ``face-recognition-models`` and are checked against the
sha256 pinned in :data:`flowjax.faces.dlib_models.MODELS` before they are read.

Pipeline, per image (uint8 RGB ``[H, W, 3]``):

1. An image narrower than ``min_width`` (256) is enlarged to it (bilinear) so
   that faces at the Glow's sizes (64 px) are large enough for dlib's HOG
   detector, which looks for faces of about 80 px.
2. **Face box.** ``crop="auto"``: dlib's HOG frontal face detector
   (``upsample`` passes), the largest box; where it finds none, the fixed box
   :data:`FIXED_BOX` (reported per image as ``"fixed_no_face"``; an
   evaluation records it in ``scores.csv`` and, with
   ``identity.fallback=nan``, makes that image's descriptor NaN instead).
   ``crop="fixed"``: always the fixed box, for images already aligned to the
   project's layout (``flowjax.faces.align``).
3. dlib's 5-point shape predictor inside the box, then
   ``compute_face_descriptor`` (dlib aligns a 150x150 chip with padding 0.25
   from the 5 points and runs the ResNet; ``num_jitters`` random jitters are
   averaged, 0 = none and deterministic).

Distance: the Euclidean distance between descriptors (not normalised;
``flowjax.evaluation.metrics`` computes it). dlib's documented rule is that
two faces closer than :data:`SAME_PERSON_THRESHOLD` = 0.6 are the same person
(99.38% accuracy on LFW, as dlib reports for this model). The scale differs
from facenet's (unit vectors, distances in [0, 2]); compare numbers only
within one backend.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from flowjax.faces import dlib_models

EMBEDDING_DIM = 128
SAME_PERSON_THRESHOLD = 0.6
MIN_WIDTH = 256
CHIP_PADDING = 0.25  # dlib's default for compute_face_descriptor

# dlib's HOG box on faces aligned by flowjax.faces.align (dlib detector), as
# fractions (x0, y0, x1, y1) of the image: the median over scikit-image's
# astronaut and 35 LFW-subset faces aligned to 256 (the boxes varied by
# 0.02-0.04 of the image, standard deviation).
FIXED_BOX = (0.18, 0.32, 0.79, 0.93)

CropOption = Literal["auto", "fixed"]
CROP_OPTIONS = ("auto", "fixed")
CROP_DETECTED = "hog"
CROP_FIXED = "fixed"
CROP_FIXED_NO_FACE = "fixed_no_face"


def _check_images(images: np.ndarray) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
            or images.shape[-1] != 3:
        described = (f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray)
                     else type(images).__name__)
        raise ValueError(f"images must be uint8 RGB [N, H, W, 3], got {described}; add a "
                         "batch axis with images[None] for one image")
    return images


class DlibEmbedder:
    """128-d dlib ResNet descriptors of uint8 RGB faces (see the module docstring).

    :meth:`boxes` says which face box each image got and how; :meth:`embed`
    returns float32 ``[N, 128]``; :meth:`provenance` is the manifest entry
    (models with their verified sha256, settings, threshold).
    """

    def __init__(self, crop: CropOption = "auto", upsample: int = 1, num_jitters: int = 0,
                 min_width: int = MIN_WIDTH):
        if crop not in CROP_OPTIONS:
            raise ValueError(f"crop must be one of {CROP_OPTIONS}, got {crop!r}")
        for name, value, lowest in (("upsample", upsample, 0), ("num_jitters", num_jitters, 0),
                                    ("min_width", min_width, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ValueError(f"{name} must be an int >= {lowest}, got {value!r}")
        self.crop_requested, self.upsample = crop, upsample
        self.num_jitters, self.min_width = num_jitters, min_width
        self._dlib = dlib_models.require_dlib()
        self._detector = dlib_models.hog_detector()
        self._predictor = dlib_models.shape_predictor("shape_predictor_5")
        self._model = dlib_models.face_recognition_model()

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        if image.shape[1] >= self.min_width:
            return np.ascontiguousarray(image)
        return dlib_models.resize_to_width(image, self.min_width)

    def _box(self, image: np.ndarray) -> tuple[Any, str]:
        if self.crop_requested == "auto":
            rects = self._detector(image, self.upsample)
            if len(rects):
                return max(rects, key=lambda r: r.area()), CROP_DETECTED
        height, width = image.shape[:2]
        x0, y0, x1, y1 = FIXED_BOX
        rect = self._dlib.rectangle(round(x0 * width), round(y0 * height),
                                    round(x1 * width) - 1, round(y1 * height) - 1)
        return rect, CROP_FIXED if self.crop_requested == "fixed" else CROP_FIXED_NO_FACE

    def boxes(self, images: np.ndarray) -> list[tuple[tuple[int, int, int, int], str]]:
        """Per image: the face box (x0, y0, x1, y1 in the enlarged image) and its method."""
        out = []
        for image in _check_images(images):
            rect, method = self._box(self._prepare(image))
            out.append(((rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1), method))
        return out

    def embed_with_methods(self, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """float32 descriptors ``[N, 128]`` and each image's face-box method."""
        images = _check_images(images)
        out = np.empty((len(images), EMBEDDING_DIM), dtype=np.float32)
        methods = []
        for i, image in enumerate(images):
            image = self._prepare(image)
            rect, method = self._box(image)
            shape = self._predictor(image, rect)
            descriptor = self._model.compute_face_descriptor(image, shape, self.num_jitters,
                                                             CHIP_PADDING)
            out[i] = np.asarray(descriptor, dtype=np.float32)
            methods.append(method)
        if not np.all(np.isfinite(out)):
            raise ValueError("dlib returned non-finite face descriptors; check the images")
        return out, methods

    @property
    def face_detector(self) -> str:
        """The detector that looks for each face, as the evaluation names it."""
        if self.crop_requested == "fixed":
            return "none (the fixed box for every image)"
        return f"dlib HOG frontal (upsample {self.upsample})"

    def embed(self, images: np.ndarray) -> np.ndarray:
        """float32 descriptors ``[N, 128]`` of uint8 RGB images ``[N, H, W, 3]``."""
        return self.embed_with_methods(images)[0]

    def provenance(self) -> dict[str, Any]:
        """JSON-ready description for a run manifest."""
        return {
            "model": "dlib ResNet face recognition (dlib_face_recognition_resnet_model_v1)",
            "weights": dlib_models.provenance("face_recognition_resnet"),
            "landmarks": dlib_models.provenance("shape_predictor_5"),
            "crop": {"requested": self.crop_requested, "detector": "dlib HOG frontal",
                     "upsample": self.upsample, "fixed_box": list(FIXED_BOX),
                     "min_width": self.min_width, "chip": "150x150, padding 0.25"},
            "num_jitters": self.num_jitters,
            "embedding": f"{EMBEDDING_DIM}-d, not normalised; Euclidean distance",
            "same_person_threshold": SAME_PERSON_THRESHOLD,
        }


def build_identity_embedder(crop: CropOption = "auto", upsample: int = 1,
                            num_jitters: int = 0, min_width: int = MIN_WIDTH) -> DlibEmbedder:
    """Factory for the ``"dlib"`` identity backend (options: see :class:`DlibEmbedder`)."""
    return DlibEmbedder(crop=crop, upsample=upsample, num_jitters=num_jitters,
                        min_width=min_width)
