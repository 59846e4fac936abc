"""Scorer interfaces and the one place that builds scorer backends from a config.

Three kinds of scorer feed the evaluation (:mod:`flowjax.evaluation.pipeline`):

* an :class:`IdentityEmbedder`: ``embed(uint8 [N, H, W, 3]) -> [N, D]`` face
  embeddings plus ``provenance() -> dict`` (model, weights, crop) for the
  manifest. :class:`~flowjax.evaluation.identity.FaceEmbedder` (facenet) is one;
* an :class:`~flowjax.evaluation.action_units.ActionUnitScorer`: ``au_names``
  and ``__call__(uint8 [N, H, W, 3]) -> [N, len(au_names)]`` intensities on
  OpenFace's 0-5 scale, NaN rows where no face was found. ``provenance()`` is
  optional for AU scorers;
* optionally a fake detector (:data:`~flowjax.evaluation.metrics.FakeDetector`):
  ``uint8 [N, H, W, 3] -> p(generated) [N]``.

Backends are chosen by name in a config section (``configs/evaluate.py``):

================  ==========================================================
identity          ``"facenet"`` (facenet-pytorch InceptionResnetV1; with
                  ``facenet.random_weights`` randomly initialised, tests only),
                  ``"dlib"`` (dlib's ResNet, 128-d, the ``.[faces]`` extra),
                  ``"synthetic"`` (the CNN stand-in of
                  ``flowjax.evaluation.synthetic_scorers``), ``"fake"``,
                  ``"precomputed"`` (the study's distance files),
                  ``"none"`` (no identity scores: an AU-only evaluation)
action_units      ``"openface"`` (FaceLandmarkImg), ``"precomputed"`` (the
                  study's existing FaceLandmarkImg CSVs; never runs OpenFace),
                  ``"synthetic"``, ``"fake"``, ``"none"`` (no AU scores)
detector          ``"none"``, ``"synthetic"`` (the synthetic fake detector:
                  ``p(not a clean render)``, for synthetic faces only),
                  ``"fake"``
================  ==========================================================

An identity backend builds an :class:`IdentityEmbedder` (pixels in,
embeddings out; one that defines ``embed_files(refs)`` is given each image's
:class:`~flowjax.evaluation.datatypes.ImageRef` instead) or a
:class:`DistanceSource` (``distances(study)``: every distance at once, e.g.
read from files). An AU backend builds a pixel scorer
(``__call__(images)``) or a file scorer (``score_files(refs)``, which gets
each image's :class:`~flowjax.evaluation.datatypes.ImageRef`: its path and
where its precomputed outputs are).

Any backend may also be given as ``"package.module:callable"``; the callable
receives the section's ``options`` as keyword arguments (so does the
``"synthetic"`` entry, which is such a string).

The ``"fake"`` backends exist **for tests only**: deterministic functions of
the pixels (block means, band means, brightness) with no relation to identity
or expression, so a pipeline can be run end to end in a second. Their
provenance says so, and so does every table made with them.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from flowjax.evaluation.action_units import OPENFACE_INTENSITY_AUS, ActionUnitScorer
from flowjax.evaluation.metrics import FakeDetector

__all__ = [
    "ActionUnitScorer", "DistanceSource", "FakeDetector", "IdentityEmbedder", "FakeEmbedder",
    "FakeAUScorer",
    "fake_detector", "build_identity_embedder", "build_au_scorer", "build_detector",
    "describe", "IDENTITY_BACKENDS", "AU_BACKENDS", "DETECTOR_BACKENDS", "SECTIONS",
    "SYNTHETIC_SCORERS", "synthetic_only_sections",
]  # fmt: skip

TEST_ONLY = "FAKE scorer for tests only: a fixed function of the pixels, not a face model"


@runtime_checkable
class DistanceSource(Protocol):
    """Identity distances of a whole study at once (e.g. read from files):
    ``distances(study) -> IdentityScores`` and ``provenance()``."""

    def distances(self, study: Any) -> Any: ...

    def provenance(self) -> dict[str, Any]: ...


@runtime_checkable
class IdentityEmbedder(Protocol):
    """Face-recognition embeddings of uint8 RGB images.

    ``embed(images)`` maps ``[N, H, W, 3]`` uint8 to ``[N, D]`` floats (NaN
    rows allowed where no face was found); ``provenance()`` returns a
    JSON-friendly dict saying which model, weights and crop were used. An
    embedder that also defines ``embed_with_methods(images) -> (embeddings,
    methods)`` (facenet, dlib) says per image how it placed the face box,
    which ``tables/scores.csv`` records (:mod:`~flowjax.evaluation.faces_found`).
    """

    def embed(self, images: np.ndarray) -> np.ndarray: ...

    def provenance(self) -> dict[str, Any]: ...


def describe(scorer: Any, backend: str | None = None) -> dict[str, Any] | None:
    """The manifest entry of a scorer: its backend, class and ``provenance()``.

    AU scorers without ``provenance()`` are described by their class, their
    ``au_names`` and, for OpenFace, the binary path.
    """
    if scorer is None:
        return None
    entry: dict[str, Any] = {"backend": backend, "class": _qualname(scorer)}
    if hasattr(scorer, "au_names"):
        entry["au_names"] = list(scorer.au_names)
    if hasattr(scorer, "binary"):
        entry["binary"] = str(scorer.binary)
    if callable(getattr(scorer, "provenance", None)):
        entry["provenance"] = scorer.provenance()
    return entry


def _qualname(obj: Any) -> str:
    kind = obj if isinstance(obj, types.FunctionType) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


# --------------------------------------------------------------------------
# Fake scorers (tests only)
# --------------------------------------------------------------------------


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images [N, H, W, 3], got {images.dtype} "
                         f"{images.shape}")
    return images


def _box_resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaged ``[N, height, width, 3]`` float64 in [0, 1]."""
    out = [np.asarray(Image.fromarray(im).resize((width, height), Image.Resampling.BOX),
                      np.float64) for im in images]
    return np.stack(out) / 255.0 if out else np.zeros((0, height, width, 3))


class FakeEmbedder:
    """TESTS ONLY: the 4x4 block means of the image (48-d); no face model."""

    grid = 4

    def embed(self, images: np.ndarray) -> np.ndarray:
        images = _check_images(images)
        return _box_resize(images, self.grid, self.grid).reshape(len(images), -1)

    def provenance(self) -> dict[str, Any]:
        return {"model": TEST_ONLY, "embedding": f"{self.grid}x{self.grid} RGB block means"}


class FakeAUScorer:
    """TESTS ONLY: OpenFace's 17 AU names; AU k is 5x the mean of one colour
    channel over the k-th of 17 horizontal bands. No face model."""

    au_names = OPENFACE_INTENSITY_AUS

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = _check_images(images)
        bands = _box_resize(images, len(self.au_names), 1)[:, :, 0, :]  # [N, 17, 3]
        channel = np.arange(len(self.au_names)) % 3
        return 5.0 * bands[:, np.arange(len(self.au_names)), channel]

    def provenance(self) -> dict[str, Any]:
        return {"model": TEST_ONLY, "intensities": "5 x band mean of one channel per AU"}


def fake_detector(images: np.ndarray) -> np.ndarray:
    """TESTS ONLY: ``p(generated)`` = mean brightness in [0, 1]."""
    images = _check_images(images)
    return images.reshape(len(images), -1).mean(axis=1) / 255.0


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


def _option(section: Any, key: str, default: Any = None) -> Any:
    if section is None:
        return default
    value = section.get(key, default) if hasattr(section, "get") else getattr(section, key,
                                                                                default)
    return default if value is None else value


def _options(section: Any) -> dict[str, Any]:
    options = _option(section, "options", {})
    return dict(options.to_dict() if hasattr(options, "to_dict") else options)


def _facenet(section: Any) -> IdentityEmbedder:
    from flowjax.evaluation.identity import FaceEmbedder  # imports torch: only when chosen

    f = _option(section, "facenet", {})
    common = dict(crop=_option(f, "crop", "auto"), margin=int(_option(f, "margin", 14)),
                  device=_option(f, "device"), batch_size=int(_option(f, "batch_size", 32)))
    if _option(f, "random_weights", False):
        return FaceEmbedder.with_random_weights(seed=int(_option(f, "seed", 0)), **common)
    return FaceEmbedder(weights=_option(f, "weights", "vggface2"),
                        weights_path=_option(f, "weights_path"),
                        expected_sha256=_option(f, "expected_sha256"),
                        download=bool(_option(f, "download", True)), **common)


def _dlib(section: Any) -> IdentityEmbedder:
    from flowjax.evaluation.dlib_identity import DlibEmbedder  # needs the .[faces] extra

    d = _option(section, "dlib", {})
    return DlibEmbedder(crop=_option(d, "crop", "auto"), upsample=int(_option(d, "upsample", 1)),
                        num_jitters=int(_option(d, "num_jitters", 0)))


def _openface(section: Any) -> ActionUnitScorer:
    from flowjax.evaluation.action_units import DEFAULT_TIMEOUT_S, OpenFaceScorer

    o = _option(section, "openface", {})
    return OpenFaceScorer(_option(o, "binary"),
                          timeout_s=float(_option(o, "timeout_s", DEFAULT_TIMEOUT_S)))


def _precomputed() -> types.ModuleType:
    # Imported on use: precomputed imports the shared types, which import metrics only.
    return importlib.import_module("flowjax.evaluation.precomputed")


# The module of the scorers that understand only flowjax.synthetic faces.
SYNTHETIC_SCORERS = "flowjax.evaluation.synthetic_scorers"
Factory = Callable[[Any], Any]
IDENTITY_BACKENDS: dict[str, Factory | str] = {
    "facenet": _facenet,
    "dlib": _dlib,
    "synthetic": f"{SYNTHETIC_SCORERS}:build_identity_embedder",
    "fake": lambda section: FakeEmbedder(),
    "precomputed": lambda section: _precomputed().PrecomputedDistances(),
    "none": lambda section: _precomputed().NO_IDENTITY,
}
AU_BACKENDS: dict[str, Factory | str] = {
    "openface": _openface,
    "synthetic": f"{SYNTHETIC_SCORERS}:build_au_scorer",
    "fake": lambda section: FakeAUScorer(),
    "precomputed": lambda section: _precomputed().PrecomputedOpenFace(),
    "none": lambda section: None,
}
DETECTOR_BACKENDS: dict[str, Factory | str] = {
    "none": lambda section: None,
    "synthetic": f"{SYNTHETIC_SCORERS}:build_fake_detector",
    "fake": lambda section: fake_detector,
}
# The config sections (``configs/evaluate.py``) and the registry each chooses from.
SECTIONS: dict[str, Mapping[str, Factory | str]] = {
    "identity": IDENTITY_BACKENDS, "action_units": AU_BACKENDS, "detector": DETECTOR_BACKENDS,
}


def synthetic_only_sections(config: Any) -> list[str]:
    """The sections of an evaluation config (:data:`SECTIONS` order) whose backend is a
    synthetic scorer, which understands only flowjax.synthetic faces: registered by
    name, or given directly as ``"flowjax.evaluation.synthetic_scorers:<factory>"``.

    The experiments refuse these on other images before any scorer loads; the
    pipeline's own check (``scoring.check_scorers_fit``) catches the built scorers.
    """
    def synthetic_only(entry: Factory | str | None) -> bool:
        return isinstance(entry, str) and entry.partition(":")[0] == SYNTHETIC_SCORERS

    def entry(registry: Mapping[str, Factory | str], backend: Any) -> Factory | str | None:
        return registry.get(backend, backend) if isinstance(backend, str) else None

    return [name for name, registry in SECTIONS.items()
            if synthetic_only(entry(registry, _option(config[name], "backend", None)))]


def _import_callable(spec: str, backend: str, what: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(f"{what} backend {backend!r} needs module {module_name!r}, which does "
                          f"not import ({error}); choose another backend") from error
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ImportError(f"{what} backend {backend!r}: {module_name} has no callable {attr!r}")
    return factory


def _build(registry: Mapping[str, Factory | str], section: Any, what: str) -> Any:
    backend = _option(section, "backend", None)
    if backend is None:
        raise ValueError(f"{what}.backend is not set; choose one of {sorted(registry)}")
    entry = registry.get(backend)
    if entry is None and ":" in backend:
        entry = backend
    if entry is None:
        raise ValueError(f"unknown {what} backend {backend!r}; choose one of {sorted(registry)} "
                         "or give 'package.module:callable'")
    if isinstance(entry, str):
        return _import_callable(entry, backend, what)(**_options(section))
    return entry(section)


def build_identity_embedder(section: Any) -> IdentityEmbedder | DistanceSource | Any:
    """The identity backend named by ``section.backend`` (see the module docstring):
    an embedder, a distance source, or the ``none`` marker."""
    embedder = _build(IDENTITY_BACKENDS, section, "identity")
    if _option(section, "backend") == "none":
        return embedder
    if not isinstance(embedder, (IdentityEmbedder, DistanceSource)):
        raise TypeError(f"identity backend {section.backend!r} built a "
                        f"{type(embedder).__name__}, which lacks embed() (or distances()) "
                        "and provenance()")
    return embedder


def build_au_scorer(section: Any) -> ActionUnitScorer | None:
    """The AU scorer named by ``section.backend``; None for ``"none"``."""
    scorer = _build(AU_BACKENDS, section, "action_units")
    file_scorer = hasattr(scorer, "au_names") and callable(getattr(scorer, "score_files", None))
    if scorer is not None and not (file_scorer or isinstance(scorer, ActionUnitScorer)):
        raise TypeError(f"action_units backend {section.backend!r} built a "
                        f"{type(scorer).__name__}, which lacks au_names and __call__ "
                        "(or score_files)")
    return scorer


def build_detector(section: Any) -> FakeDetector | None:
    """The fake detector named by ``section.backend``; None for ``"none"``."""
    detector = _build(DETECTOR_BACKENDS, section, "detector")
    if detector is not None and not callable(detector):
        raise TypeError(f"detector backend {section.backend!r} built a non-callable "
                        f"{type(detector).__name__}")
    return detector
