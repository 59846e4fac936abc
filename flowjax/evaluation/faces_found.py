"""Where the scorers found faces, and every image in which they found none.

**Identity face boxes.** An identity embedder that says how it placed each
face box (``embed_with_methods(images) -> (embeddings, methods)``: facenet's
:class:`~flowjax.evaluation.identity.FaceEmbedder` and dlib's
:class:`~flowjax.evaluation.dlib_identity.DlibEmbedder`) reports per image
``"fixed_no_face"`` where its detector found no face and the fixed box was
embedded instead, ``"fixed"`` for the fixed box by choice (``crop="fixed"``,
for aligned faces) and its detector's name (``"mtcnn"``, ``"hog"``) for a face
it found. :func:`embed_recording_boxes` turns these into ``found`` /
``fallback`` / ``fixed`` (:class:`~flowjax.evaluation.datatypes.FaceBoxes`,
column ``identity_face_box`` of ``tables/scores.csv``) and applies the
fallback policy, ``identity.fallback``:

* ``"crop"`` (the default, and the behaviour before the option existed): a
  fallback's embedding is the fixed box's, so its distances are numbers;
* ``"nan"``: a fallback's embedding is NaN, so every distance involving that
  image is NaN, as an AU of an image without a face is.

**Missing faces.** :func:`find_missing_faces` lists every image in which a
scorer found no face (identity fallbacks, images without AUs), each with what
its values became and the scorer's reason, for ``tables/missing_faces.csv``
and the report. A file scorer may explain its misses with
``no_face_reasons() -> {resolved image path: reason}`` (the precomputed
OpenFace reader does).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowjax.evaluation.datatypes import (FACE_FALLBACK, FACE_FIXED, FACE_FOUND, FaceBoxes,
                                          MissingFace, Study)

FALLBACK_OPTION = "identity.fallback"
FALLBACK_POLICIES = ("crop", "nan")
# The per-image methods the embedders report (identity.py, dlib_identity.py).
METHOD_FIXED, METHOD_NO_FACE = "fixed", "fixed_no_face"
MISSING_FACES_TABLE = "tables/missing_faces.csv"
ROLES = ("generated", "source image", "mean face")


def check_fallback_policy(policy: Any, identity: Any = None) -> str:
    """``policy`` if it is one of :data:`FALLBACK_POLICIES` and ``identity`` can honour it.

    Raises:
      ValueError for another value, or for ``"nan"`` with an identity backend
      that does not say where it found each face (it could not be applied).
    """
    if policy not in FALLBACK_POLICIES:
        raise ValueError(
            f"{FALLBACK_OPTION} must be 'crop' (embed the fixed box where the identity "
            "embedder finds no face, the default) or 'nan' (make those images' distances "
            f"NaN); got {policy!r}")
    if policy == "nan" and identity is not None and not records_face_boxes(identity):
        raise ValueError(
            f"{FALLBACK_OPTION}=nan needs an identity backend that says where it found each "
            f"face (facenet, dlib); {type(identity).__module__}.{type(identity).__qualname__} "
            f"does not, so the option could not be applied. Pass {FALLBACK_OPTION}=crop.")
    return policy


def records_face_boxes(identity: Any) -> bool:
    """Whether ``identity`` reports how it placed each face box."""
    return callable(getattr(identity, "embed_with_methods", None))


def face_box_source(method: str) -> str:
    """An embedder's per-image method as ``found``, ``fallback`` or ``fixed``."""
    return {METHOD_NO_FACE: FACE_FALLBACK, METHOD_FIXED: FACE_FIXED}.get(method, FACE_FOUND)


def embed_recording_boxes(identity: Any, images: np.ndarray,
                          policy: str) -> tuple[np.ndarray, list[str]]:
    """float64 embeddings ``[N, D]`` of ``images`` and each one's face-box source;
    under ``policy="nan"`` the fallbacks' rows are NaN."""
    embeddings, methods = identity.embed_with_methods(images)
    out = np.array(embeddings, np.float64)
    if out.ndim != 2 or out.shape[0] != len(images) or len(methods) != len(images):
        raise ValueError(f"the identity embedder returned shape {out.shape} and "
                         f"{len(methods)} face-box methods for {len(images)} images; it must "
                         "return [N, D] and one method per image")
    sources = [face_box_source(m) for m in methods]
    if policy == "nan":
        out[np.array([s == FACE_FALLBACK for s in sources], bool)] = np.nan
    return out, sources


def _shown(study: Study, path: Path) -> str:
    """A path as the report shows it: relative to the study's folder when inside it."""
    try:
        return str(Path(path).relative_to(study.path))
    except ValueError:
        return str(path)


def _images(study: Study) -> dict[str, list[str]]:
    """The study's images per role, in the order the scorers see them."""
    generated = [p for row in study.image_paths for cell in row for p in cell]
    means = [study.mean_paths[n] for n in (study.source, *study.targets)]
    return {"generated": generated, "source image": [_shown(study, p) for p in study.source_inputs],
            "mean face": means}


def find_missing_faces(study: Study, face_boxes: FaceBoxes | None,
                       au_missing: Mapping[str, np.ndarray] | None = None,
                       au_reasons: Mapping[Path, str] | None = None) -> tuple[MissingFace, ...]:
    """Every image in which a scorer found no face: per role (generated, source
    images, mean faces), the identity fallbacks, then the images without AUs.

    ``au_missing`` maps a role to a boolean per image of that role (the target
    mean faces only, for ``"mean face"``: the AU scorer never sees the source's
    mean); ``au_reasons`` maps a resolved image path to the AU scorer's reason.
    """
    images, out = _images(study), []
    boxes = {} if face_boxes is None else {
        "generated": list(np.asarray(face_boxes.generated).ravel()),
        "source image": list(face_boxes.sources), "mean face": list(face_boxes.means)}
    for role in ROLES:
        for image, source in zip(images[role], boxes.get(role, [])):
            if source == FACE_FALLBACK:
                out.append(MissingFace(
                    image, role, "identity", "nan" if face_boxes.policy == "nan" else "fixed box",
                    f"no face found by {face_boxes.detector or 'the identity embedder'}"))
        missing = (au_missing or {}).get(role)
        if missing is None:
            continue
        names = images[role][1:] if role == "mean face" else images[role]
        for image, absent in zip(names, np.asarray(missing, bool)):
            if absent:
                reason = (au_reasons or {}).get((study.path / image).resolve(),
                                                "the AU scorer found no face (no AUs)")
                out.append(MissingFace(image, role, "action_units", "nan", reason))
    return tuple(out)
