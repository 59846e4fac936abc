"""Scoring a reenactment of your own clip frame by frame, where no exact answer exists.

On a real clip nobody rendered the answer, so the reference for the expression is
the actor itself, as in the thesis' AU error against the source expression: every
reenacted frame ``x_f`` is compared with the actor's frame ``a_f`` by the configured
AU scorer ``u`` (OpenFace's FeatureExtraction CSVs of the run's videos, read by
:func:`sequence_aus`, or any pixel AU scorer) and placed by the identity embedder
(dlib, facenet) between the target's photos and the actor:

* ``au_error_actor``: ``mean_k |u_k(x_f) - u_k(a_f)|`` over the scored AUs; NaN where
  the scorer found no face in either frame;
* ``au_error_active``: the same over the AUs active in the actor's frame
  (``u_k(a_f) > threshold``; NaN on frames with none);
* ``to_target`` / ``to_actor``: identity distance to the centroid of the target's
  photos / of the actor's frames (:func:`centroid`; in the embedder's own metric);
* over time, with ``d`` the change from the previous frame (NaN on the first):
  ``au_change`` ``mean_k |d u_k(x)|``, the actor's ``actor_au_change``, and the
  **jitter** ``au_jitter`` ``mean_k |d u_k(x) - d u_k(a)|``, the change of the result's
  expression that the actor's does not have; ``pixel_change`` ``RMS(d x)`` (0-255);
* ``face_found``: 1 where the AU scorer found a face in the result frame, else 0.

The same names as :mod:`flowjax.evaluation.reenactment`'s columns where they mean
the same (identity, change, jitter); ``au_error_actor`` is named apart from the
answer-based ``au_error`` because its reference is the actor, not the truth.
:func:`score_clip` scores one run's frames whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowjax.evaluation import metrics, openface_csv
from flowjax.evaluation.reenactment import active_au_error, change, frame_rows, segment_summary

METRICS = ("au_error_actor", "au_error_active", "to_target", "to_actor", "au_change",
           "actor_au_change", "au_jitter", "pixel_change", "face_found")


def sequence_aus(path: str | Path, n_frames: int, au_names: Sequence[str]) -> np.ndarray:
    """``[n_frames, K]`` AU intensities of a video from OpenFace's FeatureExtraction CSV.

    One row per frame, 1-based as OpenFace counts them; a frame where no face was
    tracked (``success`` 0) is all NaN; several faces: the most confident. A file
    whose frames are not exactly ``1 .. n_frames`` (another video, a truncated run),
    an image CSV, or one without ``au_names`` is a ValueError naming it.
    """
    table = openface_csv.read_openface_csv(path)
    if table.layout != "sequence":
        raise ValueError(f"{path}: a FaceLandmarkImg (image) CSV; score a video with "
                         "OpenFace's FeatureExtraction: FeatureExtraction -f VIDEO -aus "
                         "-out_dir DIR")
    frames = np.unique(table.column("frame").astype(np.int64))
    expected = np.arange(1, n_frames + 1)
    if not np.array_equal(frames, expected):
        missing = sorted(set(expected.tolist()) - set(frames.tolist()))
        extra = sorted(set(frames.tolist()) - set(expected.tolist()))
        raise ValueError(f"{path}: has frames {frames.min()}..{frames.max()} ({len(frames)}) "
                         f"but the video has {n_frames}"
                         + (f"; missing {missing[:5]}" if missing else "")
                         + (f"; extra {extra[:5]}" if extra else "")
                         + ": run FeatureExtraction again on this run's video")
    return np.stack([r.intensities(au_names) for r in openface_csv.results_from_csv(table)])


def clip_frame_metrics(images: np.ndarray, aus: np.ndarray, actor_aus: np.ndarray,
                       embeddings: np.ndarray, target_centroid: np.ndarray,
                       actor_centroid: np.ndarray,
                       threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD
                       ) -> dict[str, np.ndarray]:
    """:data:`METRICS` ``{name: [F]}`` of one target's frames ``[F, H, W, C]`` (uint8), their
    scored ``aus`` ``[F, K]`` and ``embeddings`` ``[F, D]`` (NaN rows: no face), against the
    actor's scored AUs ``[F, K]``."""
    images = np.asarray(images, np.float64)
    aus, actor = np.asarray(aus, np.float64), np.asarray(actor_aus, np.float64)
    if not (aus.shape == actor.shape and len(images) == len(aus) == len(embeddings)):
        raise ValueError(f"frames {images.shape}, scored AUs {aus.shape}, the actor's "
                         f"{actor.shape} and embeddings {np.shape(embeddings)} must describe "
                         "the same frames")
    active_error = active_au_error(aus, actor, actor > threshold)
    d_aus, d_actor, d_images = change(aus), change(actor), change(images)
    return {
        "au_error_actor": np.mean(np.abs(aus - actor), axis=-1),
        "au_error_active": active_error,
        "to_target": metrics.identity_distance(embeddings, target_centroid),
        "to_actor": metrics.identity_distance(embeddings, actor_centroid),
        "au_change": np.mean(np.abs(d_aus), axis=-1),
        "actor_au_change": np.mean(np.abs(d_actor), axis=-1),
        "au_jitter": np.mean(np.abs(d_aus - d_actor), axis=-1),
        "pixel_change": np.sqrt(np.mean(np.square(d_images), axis=(-3, -2, -1))),
        "face_found": np.isfinite(aus).all(axis=-1).astype(np.float64),
    }


def centroid(embeddings: np.ndarray, what: str) -> np.ndarray:
    """The mean of the rows the embedder found a face in (finite rows), L2-normalised
    when the embedder's own rows are (facenet, the synthetic embedder), raw otherwise
    (dlib: Euclidean distance between unnormalised descriptors)."""
    embeddings = np.asarray(embeddings, np.float64)
    found = embeddings[np.isfinite(embeddings).all(axis=-1)]
    if not len(found):
        raise ValueError(f"the identity embedder found no face in any of {what}: no identity "
                         "to measure against (choose another identity backend, or "
                         "--config.identity.backend=none)")
    mean = found.mean(axis=0)
    unit = np.allclose(np.linalg.norm(found, axis=-1), 1.0, atol=1e-3)
    return mean / np.linalg.norm(mean) if unit else mean


def score_clip(actor: np.ndarray, results: Mapping[str, np.ndarray],
               target_photos: Mapping[str, np.ndarray], au_scores: Mapping[str, np.ndarray],
               embed: Callable[[np.ndarray], np.ndarray] | None,
               segments: Sequence[str], segment_order: Sequence[str],
               threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD) -> dict[str, Any]:
    """Every target's reenacted frames scored against the actor.

    ``actor`` uint8 ``[F, S, S, 3]``; ``results`` ``{target: [F, S, S, 3]}``;
    ``target_photos`` ``{target: [P, S', S', 3]}`` (the identity the target should keep);
    ``au_scores`` ``{"actor" or target: [F, K]}`` (from :func:`sequence_aus` or a pixel
    scorer); ``embed`` images to embeddings (None: no identity columns, NaN). Returns
    ``rows`` (``tables/per_frame.csv``: one per target and frame, variant
    ``"transfer"``) and ``summary`` (means per segment and over the clip).
    """
    n_f = len(actor)
    if embed is not None:
        actor_centroid = centroid(embed(actor), "the actor's frames")
    rows: list[dict[str, Any]] = []
    for target, frames in results.items():
        if len(frames) != n_f:
            raise ValueError(f"target {target} has {len(frames)} frames, the actor {n_f}")
        if embed is None:
            embeddings = np.full((n_f, 1), np.nan)
            target_centroid = actor_centroid = np.full(1, np.nan)
        else:
            embeddings = embed(frames)
            target_centroid = centroid(embed(target_photos[target]),
                                       f"the photos of target {target}")
        values = clip_frame_metrics(frames, au_scores[target], au_scores["actor"], embeddings,
                                    target_centroid, actor_centroid, threshold)
        rows += frame_rows("transfer", None, target, segments, values, METRICS)
    return {"rows": rows, "summary": segment_summary(rows, segment_order, METRICS)}
