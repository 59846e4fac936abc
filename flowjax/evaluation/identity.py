"""Identity embeddings of faces with facenet-pytorch's InceptionResnetV1.

``FaceEmbedder`` maps uint8 RGB images ``[N, H, W, 3]`` to 512-d embeddings
``[N, 512]``. The network L2-normalises its output (``F.normalize`` at the end
of ``InceptionResnetV1.forward`` when ``classify=False``), so the identity
distance used by the paper, the Euclidean distance between two embeddings, lies
in ``[0, 2]``. That distance is defined in ``flowjax.evaluation.metrics``;
this module only embeds.

Pipeline, per image:

1. **Crop** to 160x160 uint8. ``crop="mtcnn"``: facenet-pytorch's MTCNN (the
   largest face, ``margin`` pixels of context in the 160 px output, as in
   facenet-pytorch's own LFW evaluation, which uses ``margin=14``).
   ``crop="fixed"``: a fixed square for images already aligned to the
   project's layout (``flowjax.faces.align``: eyes at ``0.48 S``, inter-eye distance
   ``0.258 S``), see :data:`FIXED_CROP`. ``crop="auto"`` uses MTCNN when it
   imports and the fixed crop otherwise. If MTCNN finds no face in an image,
   that image gets the fixed crop and is reported as ``"fixed_no_face"``
   (:meth:`FaceEmbedder.crop` returns the method per image; an evaluation
   records it in ``scores.csv`` and, with ``identity.fallback=nan``, makes such
   an image's embedding NaN instead). Both paths resize
   with PIL's bilinear filter (antialiased when shrinking), which is what
   MTCNN's ``extract_face`` uses for PIL input.
2. **Standardise** with facenet's fixed image standardisation
   ``(x - 127.5) / 128``.
3. **Embed** in batches under ``torch.no_grad()`` with the network in eval mode,
   on CUDA when available.

The network and its weights come from
:mod:`flowjax.evaluation.facenet_weights`: facenet-pytorch's
``InceptionResnetV1`` loaded without ``import facenet_pytorch`` (whose
``__init__`` imports torchvision through MTCNN, which fails where torchvision
does not match torch), and the released weights checked against their sha256
and read with ``torch.load(..., weights_only=True)``. MTCNN alone still needs
that import; its error is kept, not hidden: :func:`mtcnn_unavailable_reason`
returns it and :meth:`FaceEmbedder.provenance` records it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from flowjax.evaluation.facenet_weights import (
    EMBEDDING_DIM,
    WeightsProvenance,
    build_network,
    facenet_pytorch_version,
    load_weights_file,
    pretrained_weights,
    resolve_weights_file,
)
from flowjax.faces.detectors import mtcnn_import_error

logger = logging.getLogger(__name__)

IMAGE_SIZE = 160
# facenet-pytorch's examples/lfw_evaluate.ipynb builds MTCNN(image_size=160, margin=14).
DEFAULT_MARGIN = 14
STANDARDIZATION = "(x - 127.5) / 128"
INTERPOLATION = "PIL bilinear (antialiased when shrinking)"

CropOption = Literal["auto", "mtcnn", "fixed"]
CROP_OPTIONS = ("auto", "mtcnn", "fixed")
# Per-image crop methods reported by FaceEmbedder.crop.
CROP_MTCNN = "mtcnn"
CROP_FIXED = "fixed"
CROP_FIXED_NO_FACE = "fixed_no_face"


@dataclasses.dataclass(frozen=True)
class FixedCrop:
    """A square crop given in fractions of an ``H x W`` image.

    Centre ``(center_x * W, center_y * H)``, side ``side * min(H, W)``; pixel
    bounds are rounded half up, and the square is shifted (never shrunk) to stay
    inside the image.
    """

    center_x: float
    center_y: float
    side: float


# For the project's alignment (eyes at 0.48 S, inter-eye distance d = 0.258 S,
# see flowjax.faces.align) this square spans 0.15-0.85 S across and 0.25-0.95 S down:
# the eyes sit a third of the way down and it reaches 1.8 d below the eye line
# (about the chin), roughly the framing of an MTCNN crop. It is a fixed
# convention derived from that geometry, not fitted to MTCNN's boxes.
FIXED_CROP = FixedCrop(center_x=0.5, center_y=0.60, side=0.70)


# --------------------------------------------------------------------------
# facenet-pytorch's MTCNN (imports torchvision)
# --------------------------------------------------------------------------


def mtcnn_unavailable_reason() -> str | None:
    """None if facenet-pytorch's MTCNN imports, else the import error as text.

    The import is attempted once per process (shared with ``flowjax.faces.detectors``).
    """
    return mtcnn_import_error()


# --------------------------------------------------------------------------
# Crops and standardisation (pure numpy + PIL)
# --------------------------------------------------------------------------


def _check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    if not isinstance(images, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array (uint8 RGB [N, H, W, 3]), "
            f"got {type(images).__name__}; convert with np.asarray first."
        )
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{name} must be uint8 RGB [N, H, W, 3], got {images.dtype} "
            f"{images.shape}; convert with flowjax.io.images (and add a batch axis with "
            "images[None] for a single image)."
        )
    return images


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def fixed_crop_bounds(
    height: int, width: int, box: FixedCrop = FIXED_CROP
) -> tuple[int, int, int]:
    """``(top, left, side)`` in pixels of ``box`` in a ``height x width`` image."""
    if not (0.0 < box.side <= 1.0):
        raise ValueError(f"FixedCrop.side must be in (0, 1], got {box.side}")
    side = max(1, _round_half_up(box.side * min(height, width)))
    top = _round_half_up(box.center_y * height - side / 2)
    left = _round_half_up(box.center_x * width - side / 2)
    top = min(max(top, 0), height - side)
    left = min(max(left, 0), width - side)
    return top, left, side


def fixed_crop(
    images: np.ndarray, box: FixedCrop = FIXED_CROP, size: int = IMAGE_SIZE
) -> np.ndarray:
    """Cut ``box`` out of every image and resize it to ``size x size``.

    uint8 ``[N, H, W, 3]`` in, uint8 ``[N, size, size, 3]`` out. Resizing uses
    PIL's bilinear filter; a crop that already has the target size is returned
    unresampled.
    """
    images = _check_images(images)
    n, height, width, _ = images.shape
    top, left, side = fixed_crop_bounds(height, width, box)
    crops = images[:, top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(crops)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        resized = Image.fromarray(crops[i]).resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(resized)
    return out


def standardize(crops: np.ndarray) -> np.ndarray:
    """facenet's fixed image standardisation: float32 ``(x - 127.5) / 128``."""
    return (np.asarray(crops, dtype=np.float32) - np.float32(127.5)) / np.float32(128.0)


# --------------------------------------------------------------------------
# The embedder
# --------------------------------------------------------------------------


class FaceEmbedder:
    """512-d, L2-normalised FaceNet embeddings of uint8 RGB face images.

    ``crop_method`` is the configured method (``"mtcnn"`` or ``"fixed"``; with
    ``crop="auto"`` whichever was available), ``mtcnn_unavailable_reason`` the
    MTCNN import error (None if it imported or, with ``crop="fixed"``, was not
    attempted), ``weights_provenance`` which weights file (path, sha256, whether
    verified) was loaded, ``network`` the torch module (eval mode), and
    :meth:`provenance` collects everything a manifest should record.
    """

    def __init__(
        self,
        weights: str = "vggface2",
        weights_path: str | os.PathLike | None = None,
        crop: CropOption = "auto",
        margin: int = DEFAULT_MARGIN,
        device: str | torch.device | None = None,
        batch_size: int = 32,
        *,
        fixed_box: FixedCrop = FIXED_CROP,
        expected_sha256: str | None = None,
        download: bool = True,
    ):
        """Load ``weights`` (from ``weights_path`` or facenet-pytorch's cache).

        The settings, including whether MTCNN is available for ``crop``, are
        checked before any weights are read.

        Args:
          weights: ``"vggface2"`` or ``"casia-webface"``.
          weights_path: a local state-dict file; None uses facenet-pytorch's
            cache (:func:`~flowjax.evaluation.facenet_weights.default_weights_path`), downloading into it when
            ``download`` is True.
          crop: ``"auto"``, ``"mtcnn"`` (an error if MTCNN cannot import) or
            ``"fixed"``.
          margin: MTCNN margin in pixels of the 160 px crop.
          device: torch device; None picks CUDA when available, else CPU.
          batch_size: images per forward pass (and per MTCNN call).
          fixed_box: the fixed crop (used by ``"fixed"`` and for MTCNN misses).
          expected_sha256: overrides the known checksum of ``weights``.
          download: allow downloading missing weights into the cache.
        """
        spec = pretrained_weights(weights)
        self._configure(crop, margin, device, batch_size, fixed_box)
        path = resolve_weights_file(spec, weights_path, download)
        state, self.weights_provenance = load_weights_file(path, spec.name, expected_sha256)
        self.network = build_network(state, str(path)).to(self.device).eval()

    @classmethod
    def with_random_weights(
        cls,
        seed: int = 0,
        crop: CropOption = "fixed",
        margin: int = DEFAULT_MARGIN,
        device: str | torch.device | None = None,
        batch_size: int = 32,
        *,
        fixed_box: FixedCrop = FIXED_CROP,
    ) -> FaceEmbedder:
        """An embedder with randomly initialised weights, for tests only.

        Initialisation draws from a forked torch RNG seeded with ``seed``, so the
        same seed gives the same network and the global RNG is left untouched.
        """
        embedder = cls.__new__(cls)
        embedder._configure(crop, margin, device, batch_size, fixed_box)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = build_network(None, None)
        embedder.network = network.to(embedder.device).eval()
        embedder.weights_provenance = WeightsProvenance(
            name="random", path=None, sha256=None, expected_sha256=None,
            verified=False, url=None, seed=seed,
        )  # fmt: skip
        return embedder

    def _configure(
        self,
        crop: str,
        margin: int,
        device: str | torch.device | None,
        batch_size: int,
        fixed_box: FixedCrop,
    ) -> None:
        """Validate the settings and choose the crop method (no weights involved)."""
        if crop not in CROP_OPTIONS:
            raise ValueError(f"crop must be one of {CROP_OPTIONS}, got {crop!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(margin, bool) or not isinstance(margin, int) or not 0 <= margin < IMAGE_SIZE:
            raise ValueError(f"margin must be an int in [0, {IMAGE_SIZE}), got {margin!r}")
        fixed_crop_bounds(IMAGE_SIZE, IMAGE_SIZE, fixed_box)  # validates the box
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.margin = margin
        self.fixed_box = fixed_box
        self.crop_requested = crop
        # crop="fixed" never needs MTCNN, so it never attempts the import.
        reason = None if crop == "fixed" else mtcnn_unavailable_reason()
        self.mtcnn_unavailable_reason = reason
        if crop == "mtcnn" and reason is not None:
            raise RuntimeError(
                "crop='mtcnn' needs facenet-pytorch's MTCNN, which failed to import "
                f"({reason}). MTCNN's face detection imports torchvision, whose "
                "compiled ops must match the installed torch: install the torchvision "
                "release built for your torch (https://pytorch.org/get-started/"
                "previous-versions/), or use crop='fixed' for aligned faces."
            )
        if crop == "auto" and reason is not None:
            logger.warning(
                "MTCNN unavailable (%s); identity crops use the fixed crop %s", reason, fixed_box
            )
        self.crop_method = CROP_MTCNN if reason is None and crop != "fixed" else CROP_FIXED
        self._mtcnn = _make_mtcnn(margin, self.device) if self.crop_method == CROP_MTCNN else None

    def crop(self, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """160x160 uint8 face crops ``[N, 160, 160, 3]`` and the method used per image.

        Methods: ``"mtcnn"``, ``"fixed"``, or ``"fixed_no_face"`` when MTCNN found
        no face in that image.
        """
        images = _check_images(images)
        if self._mtcnn is None:
            return fixed_crop(images, self.fixed_box), [CROP_FIXED] * len(images)
        crops = np.empty((len(images), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        methods: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            faces = self._mtcnn([Image.fromarray(image) for image in batch])
            for offset, face in enumerate(faces):
                i = start + offset
                if face is None:
                    crops[i] = fixed_crop(images[i : i + 1], self.fixed_box)[0]
                    methods.append(CROP_FIXED_NO_FACE)
                    continue
                # post_process=False: values are 0-255 (PIL-resized uint8 as float).
                face = face.detach().to("cpu").permute(1, 2, 0).round().clamp(0, 255)
                crops[i] = face.to(torch.uint8).numpy()
                methods.append(CROP_MTCNN)
        misses = methods.count(CROP_FIXED_NO_FACE)
        if misses:
            logger.warning(
                "MTCNN found no face in %d of %d images; used the fixed crop", misses, len(images)
            )
        return crops, methods

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """float32 embeddings ``[N, 512]`` of uint8 crops ``[N, 160, 160, 3]``."""
        crops = _check_images(crops, "crops")
        if crops.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"crops must be {IMAGE_SIZE}x{IMAGE_SIZE}, got {crops.shape[1]}x"
                f"{crops.shape[2]}; make them with FaceEmbedder.crop or fixed_crop."
            )
        out = np.empty((len(crops), EMBEDDING_DIM), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(crops), self.batch_size):
                batch = standardize(crops[start : start + self.batch_size])
                x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)
                out[start : start + len(batch)] = self.network(x).float().cpu().numpy()
        return out

    def embed_with_methods(self, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """float32 embeddings ``[N, 512]`` and each image's crop method (:meth:`crop`)."""
        crops, methods = self.crop(images)
        return self.embed_crops(crops), methods

    def embed(self, images: np.ndarray) -> np.ndarray:
        """float32 embeddings ``[N, 512]`` (unit L2 norm) of uint8 RGB ``[N, H, W, 3]``."""
        return self.embed_with_methods(images)[0]

    @property
    def face_detector(self) -> str:
        """The detector that looks for each face, as the evaluation names it."""
        if self.crop_method == CROP_MTCNN:
            return f"facenet-pytorch MTCNN (margin {self.margin})"
        return "none (the fixed crop for every image)"

    def provenance(self) -> dict[str, Any]:
        """JSON-serialisable description of the embedder, for a run manifest."""
        return {
            "model": "facenet-pytorch InceptionResnetV1",
            "facenet_pytorch_version": facenet_pytorch_version(),
            "torch_version": torch.__version__,
            "weights": dataclasses.asdict(self.weights_provenance),
            "crop": {
                "requested": self.crop_requested,
                "method": self.crop_method,
                "mtcnn_margin": self.margin if self.crop_method == CROP_MTCNN else None,
                "mtcnn_unavailable_reason": self.mtcnn_unavailable_reason,
                "fixed_box": dataclasses.asdict(self.fixed_box),
                "image_size": IMAGE_SIZE,
                "interpolation": INTERPOLATION,
            },
            "standardization": STANDARDIZATION,
            "embedding": f"{EMBEDDING_DIM}-d, L2-normalised by the network",
            "device": str(self.device),
            "batch_size": self.batch_size,
        }


def _make_mtcnn(margin: int, device: torch.device) -> Any:
    """facenet-pytorch's MTCNN returning raw 0-255 crops of the largest face."""
    from facenet_pytorch import MTCNN

    # post_process=False: standardisation happens once, in embed_crops, for
    # both crop methods.
    return MTCNN(
        image_size=IMAGE_SIZE, margin=margin, post_process=False,
        select_largest=True, keep_all=False, device=device,
    )  # fmt: skip