"""Scoring a study: verify its files, decode its images on demand, call the scorers.

Scorers receive pixels (``embed(images)``, ``scorer(images)``) or, when they
define ``embed_files(refs)`` / ``score_files(refs)``, the images' files
(:class:`~flowjax.evaluation.datatypes.ImageRef`); an identity backend may
instead give every distance (``distances(study)``). Images are decoded only
when a pixel scorer needs them. :func:`score_study` returns the
:class:`~flowjax.evaluation.datatypes.Scores` that tables, figures and the
report read; :mod:`flowjax.evaluation.pipeline` writes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from flowjax import io as fio
from flowjax.evaluation import faces_found, metrics
from flowjax.evaluation.action_units import ActionUnitScorer
from flowjax.evaluation.datatypes import FaceBoxes, IdentityScores, ImageRef, Scores, Study
from flowjax.evaluation.scorers import SYNTHETIC_SCORERS, IdentityEmbedder

AU_SET_NAMES = {"thesis": metrics.THESIS_AUS, "all": None, "active": metrics.ACTIVE}


# --------------------------------------------------------------------------
# Verifying and loading a study's images
# --------------------------------------------------------------------------


def verify_files(study: Study) -> None:
    """Checks every file with a recorded sha256 (generated images, mean faces,
    AU references) before anything is scored.

    Raises:
      ValueError naming the file, the recorded and the actual sha256, for a
      file that changed (e.g. a transfer PNG swapped for another image).
      FileNotFoundError for one that is gone.
    """
    where = "the transfer run's manifest.json" if study.is_transfer_run else (
        f"the study spec {study.spec_path or ''}".rstrip())
    for rel, expected in study.checksums.items():
        path = study.file(rel)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is gone; {where} records it with sha256 "
                                    f"{expected}. Restore it or re-run the study.")
        actual = fio.sha256_file(path)
        if actual != expected:
            raise ValueError(
                f"{path} changed since it was recorded: sha256 {actual}, {where} records "
                f"{expected}. Refusing to score a file that is not the one the study made; "
                "restore it, or re-run the transfer.")


class StudyImages:
    """The uint8 images of a study, decoded on first use: ``generated [E, T, A, H, W, 3]``,
    ``means [1 + T, H, W, 3]`` (source first, then the targets), ``sources [E, H, W, 3]``."""

    def __init__(self, study: Study):
        self.study = study

    @cached_property
    def generated(self) -> np.ndarray:
        s = self.study
        images = fio.load_images(s.generated_files()).images
        return images.reshape(len(s.expressions), len(s.targets), len(s.labels),
                              *images.shape[1:])

    @cached_property
    def means(self) -> np.ndarray:
        return self._same_size("mean face", fio.load_images(self.study.mean_files()).images,
                               self.study.mean_files())

    @cached_property
    def sources(self) -> np.ndarray:
        opts = self.study.source_options
        images = []
        for path, digest in zip(self.study.source_inputs, self.study.source_sha256):
            if not path.is_file():
                raise FileNotFoundError(f"the source expression image {path} does not exist; "
                                        "the AU error is measured against it")
            if digest is not None and fio.sha256_file(path) != digest:
                raise ValueError(
                    f"source input {path} changed since the study recorded it: sha256 "
                    f"{fio.sha256_file(path)}, recorded {digest}. The AU reference must be the "
                    "image the transfer encoded; restore it or re-run the transfer.")
            image, _ = fio.load_image(path, size=opts.get("size"), resize=opts.get("resize"),
                                       alpha=opts.get("alpha", "composite"),
                                       background=tuple(opts.get("background",
                                                                 (255, 255, 255))))
            images.append(image)
        return self._same_size("source input", np.stack(images), self.study.source_inputs)

    def _same_size(self, name: str, images: np.ndarray, files: Sequence[Path]) -> np.ndarray:
        shape = self.generated.shape[3:]
        if images.shape[1:] != shape:
            raise ValueError(f"{name} images ({files[0]}, ...) are {images.shape[1:3]}, the "
                             f"generated images {shape[:2]}; they must share one size")
        return images


# Earlier name of the loaded images of a transfer run.
RunImages = StudyImages


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


def parse_au_set(au_set: Sequence[str] | str | None) -> tuple[str, ...] | str | None:
    """``"thesis"`` -> THESIS_AUS, ``"active"``, ``"all"``/None -> None (every AU
    the scorer has), ``"AU06,AU12"`` or a sequence -> a tuple of names."""
    if au_set is None:
        return None
    if isinstance(au_set, str):
        if au_set in AU_SET_NAMES:
            return AU_SET_NAMES[au_set]
        names = tuple(a.strip() for a in au_set.split(",") if a.strip())
    else:
        names = tuple(au_set)
    if not names:
        raise ValueError(f"the AU set {au_set!r} is empty; give AU names or one of "
                         f"{sorted(AU_SET_NAMES)}")
    return names


THRESHOLD_OPTION = "action_units.threshold"


def check_threshold(threshold: Any) -> float:
    """The activation threshold of ``aus="active"``: a finite number >= 0."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{THRESHOLD_OPTION} (the activation threshold of aus='active') must "
                         f"be a finite number >= 0 on the AU scorer's scale (OpenFace: 0-5); "
                         f"got {threshold!r}. Pass e.g. --config.{THRESHOLD_OPTION}=1.0")
    return value


def _embed(embedder: IdentityEmbedder, images: np.ndarray) -> np.ndarray:
    out = np.asarray(embedder.embed(images), np.float64)
    if out.ndim != 2 or out.shape[0] != len(images):
        raise ValueError(f"the identity embedder returned shape {out.shape} for {len(images)} "
                         "images; it must return [N, D]")
    return out


def _score_aus(scorer: ActionUnitScorer, images: StudyImages) -> np.ndarray:
    """AUs of the generated images, the sources and the target means, in that order."""
    if callable(getattr(scorer, "score_files", None)):
        generated, sources, means = images.study.refs()
        refs = [*generated, *sources, *means]
        out = np.asarray(scorer.score_files(refs), np.float64)
        n = len(refs)
    else:
        flat = images.generated.reshape(-1, *images.generated.shape[3:])
        pixels = np.concatenate([flat, images.sources, images.means[1:]])
        out = np.asarray(scorer(pixels), np.float64)
        n = len(pixels)
    if out.shape != (n, len(scorer.au_names)):
        raise ValueError(f"the AU scorer returned shape {out.shape} for {n} images; it "
                         f"must return [N, {len(scorer.au_names)}] (one column per au_names)")
    return out


def _identity(identity: Any, images: StudyImages, fallback: str = "crop") -> IdentityScores:
    study = images.study
    n_e, n_t, n_a = len(study.expressions), len(study.targets), len(study.alphas)
    if callable(getattr(identity, "distances", None)):
        return identity.distances(study)
    n_gen, n_means = n_e * n_t * n_a, 1 + n_t
    boxes: FaceBoxes | None = None
    if callable(getattr(identity, "embed_files", None)):  # a scorer that reads files
        generated, sources, _ = study.refs()
        means_refs = [ImageRef(p, p.stem) for p in study.mean_files()]
        refs = [*generated, *means_refs, *sources]
        emb = np.asarray(identity.embed_files(refs), np.float64)
        if emb.ndim != 2 or emb.shape[0] != len(refs):
            raise ValueError(f"the identity embedder returned shape {emb.shape} for "
                             f"{len(refs)} files; it must return [N, D]")
    elif faces_found.records_face_boxes(identity):  # facenet, dlib: found / fallback / fixed
        flat = images.generated.reshape(-1, *images.generated.shape[3:])
        emb, found = faces_found.embed_recording_boxes(
            identity, np.concatenate([flat, images.means, images.sources]), fallback)
        boxes = FaceBoxes(np.array(found[:n_gen], object).reshape(n_e, n_t, n_a),
                          tuple(found[n_gen: n_gen + n_means]), tuple(found[n_gen + n_means:]),
                          fallback, getattr(identity, "face_detector", None))
    elif callable(getattr(identity, "embed", None)):
        flat = images.generated.reshape(-1, *images.generated.shape[3:])
        emb = _embed(identity, np.concatenate([flat, images.means, images.sources]))
    else:  # backend "none"
        return IdentityScores.unmeasured(n_e, n_t, n_a)
    gen = emb[:n_gen].reshape(n_e, n_t, n_a, -1)
    means = emb[n_gen: n_gen + n_means]
    src = emb[n_gen + n_means:]
    source_mean, target_means = means[0], means[1:]
    d = metrics.identity_distances(gen, target_means[None, :, None], source_mean)

    def per_expression(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x, (n_e, n_t)).copy()

    return IdentityScores(
        to_target=d.to_target, to_source=d.to_source,
        source_to_source_mean=metrics.identity_distance(src, source_mean),
        source_to_target_mean=metrics.identity_distance(src[:, None], target_means[None]),
        target_mean_to_source_mean=per_expression(
            metrics.identity_distance(target_means, source_mean)),
        target_mean_to_target_mean=per_expression(
            metrics.identity_distance(target_means, target_means)),
        source_mean_to_target_mean=per_expression(
            metrics.identity_distance(source_mean, target_means)),
        source_mean_to_source_mean=per_expression(
            metrics.identity_distance(source_mean, source_mean)),
        face_boxes=boxes)


def _trend(alphas: np.ndarray, errors: np.ndarray, identity: np.ndarray) -> metrics.Trend | None:
    if np.isnan(errors).all():
        return None
    return metrics.general_trend(alphas, errors, identity)


def _where(scorer: Any, files: str) -> str:
    """Where a scorer's values came from, for an error that finds none: its own
    ``where()`` (a file reader) or its class (a scorer on pixels)."""
    if callable(getattr(scorer, "where", None)):
        return f"Looked in {scorer.where()}. Check {files} (docs/study_format.md)"
    return (f"The scorer {type(scorer).__module__}.{type(scorer).__qualname__} found no face in "
            "any of them")


def _check_aus_not_all_missing(study: Study, generated: np.ndarray, sources: np.ndarray,
                               scorer: ActionUnitScorer) -> None:
    """An evaluation whose every AU error is NaN for want of AUs is a mistake (a
    wrong folder, wrong names), not a result: it stops, naming where it looked."""
    missing = getattr(scorer, "missing", None) or []
    example = f" (first: {missing[0]})" if missing else ""
    if np.isnan(generated).any(-1).all():
        n = generated.shape[0] * generated.shape[1] * generated.shape[2]
        raise ValueError(
            f"AUs are missing (no face or no result) for all {n} generated images{example}, so "
            "every AU error would be NaN; nothing was written. "
            + _where(scorer, "the folders and that the images' file names match the results'"))
    if np.isnan(sources).any(-1).all():
        stems = study.openface_source_stems or tuple(p.stem for p in study.source_inputs)
        raise ValueError(
            f"AUs are missing for every source expression image "
            f"({', '.join(f'{e}: {s}' for e, s in zip(study.expressions, stems))}), the AU "
            "error's reference, so every AU error would be NaN; nothing was written. "
            + _where(scorer, "'source_images' and 'openface.source_stems'"))


def _check_not_all_missing(d: IdentityScores, identity: Any) -> None:
    """Identity distances that are all NaN stop the evaluation, naming their source."""
    if d.measured and np.isnan(d.to_target).all() and np.isnan(d.to_source).all():
        boxes = d.face_boxes
        nan = "" if boxes is None or boxes.policy != "nan" or not boxes.fallbacks else (
            f" ({faces_found.FALLBACK_OPTION}=nan made the {boxes.fallbacks} image(s) in which "
            f"{boxes.detector} found no face NaN; {faces_found.FALLBACK_OPTION}=crop embeds the "
            "fixed box instead)")
        raise ValueError(
            f"identity distances are missing (NaN) for all {d.to_target.size} generated "
            f"images{nan}; nothing was written. "
            + _where(identity, "them, or pass --config.identity.backend=none for an AU-only "
                     "evaluation"))


def score_study(
    study: Study,
    images: StudyImages,
    identity: Any,
    au_scorer: ActionUnitScorer | None,
    *,
    au_set: Sequence[str] | str | None = metrics.THESIS_AUS,
    au_threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD,
    detector: metrics.FakeDetector | None = None,
    detection_threshold: float = metrics.DEFAULT_DETECTION_THRESHOLD,
    identity_fallback: str = "crop",
) -> Scores:
    """All scores of a study: one identity call and one AU-scorer call on every image.

    ``identity`` is an :class:`~flowjax.evaluation.scorers.IdentityEmbedder`, a
    distance source (``distances(study)``) or anything else for "not measured".
    ``identity_fallback`` is what an image the embedder finds no face in gets:
    the fixed box's embedding (``"crop"``) or NaN (``"nan"``;
    :mod:`~flowjax.evaluation.faces_found`).
    """
    n_e, n_t, n_a = len(study.expressions), len(study.targets), len(study.alphas)
    fallback = faces_found.check_fallback_policy(identity_fallback, identity)
    d = _identity(identity, images, fallback)
    _check_not_all_missing(d, identity)
    au_missing: dict[str, np.ndarray] = {}
    au_reasons = {}
    fields: dict[str, Any] = dict(run=study, identity=d, detection_threshold=detection_threshold)
    notes: list[str] = []
    if callable(getattr(identity, "notes", None)):
        notes += identity.notes()
    if au_scorer is not None:
        names = tuple(au_scorer.au_names)
        au = _score_aus(au_scorer, images)
        if callable(getattr(au_scorer, "notes", None)):
            notes += au_scorer.notes()
        n_gen = n_e * n_t * n_a
        au_gen = au[:n_gen].reshape(n_e, n_t, n_a, -1)
        au_src, au_means = au[n_gen: n_gen + n_e], au[n_gen + n_e:]
        _check_aus_not_all_missing(study, au_gen, au_src, au_scorer)
        au_missing = {"generated": np.isnan(au_gen).any(-1).ravel(),
                      "source image": np.isnan(au_src).any(-1),
                      "mean face": np.isnan(au_means).any(-1)}
        if callable(getattr(au_scorer, "no_face_reasons", None)):
            au_reasons = au_scorer.no_face_reasons()
        chosen = parse_au_set(au_set)
        errors, sets = np.full((n_e, n_t, n_a), np.nan), []
        for e, expression in enumerate(study.expressions):
            if chosen == metrics.ACTIVE:
                aus = metrics.active_aus(au_src[e], names, au_threshold)
                if not aus:
                    why = ("no face was found in it" if np.isnan(au_src[e]).any()
                           else f"it activates no AU above {THRESHOLD_OPTION}={au_threshold} "
                                f"(lower --config.{THRESHOLD_OPTION} or use a fixed AU set)")
                    notes.append(f"expression {expression!r}: the AU error is undefined (NaN) "
                                 f"because {why}.")
            else:
                aus = names if chosen is None else chosen
            sets.append(tuple(aus))
            if aus:
                errors[e] = metrics.au_mean_error(au_gen[e], au_src[e], names, aus=aus)
        best = metrics.best_alpha(study.alphas, errors)
        trends = {"all": _trend(study.alphas, errors, d.to_target)}
        for e, expression in enumerate(study.expressions):
            trends[expression] = _trend(study.alphas, errors[e], d.to_target[e])
        fields.update(au_names=names, au_generated=au_gen, au_source=au_src,
                      au_target_means=au_means, au_set=chosen, au_sets=tuple(sets),
                      au_error=errors, best=best, trends=trends)
    if detector is not None:
        flat = images.generated.reshape(-1, *images.generated.shape[3:])
        p = np.asarray(detector(flat), np.float64)
        if p.shape != (len(flat),):
            raise ValueError(f"the fake detector returned shape {p.shape} for {len(flat)} images; "
                             "it must return one probability per image")
        fields.update(p_generated=p.reshape(n_e, n_t, n_a),
                      detection_rate=metrics.detection_rate(p, detection_threshold))
    missing_faces = faces_found.find_missing_faces(study, d.face_boxes, au_missing, au_reasons)
    return Scores(**fields, notes=tuple(notes), missing_faces=missing_faces)


def score_run(run: Study, images: StudyImages, identity_embedder: Any,
              au_scorer: ActionUnitScorer | None, **kwargs: Any) -> Scores:
    """:func:`score_study` under its earlier name."""
    return score_study(run, images, identity_embedder, au_scorer, **kwargs)


def check_scorers_fit(study: Study, *scorers: Any) -> None:
    """Refuses the synthetic scorers on images that are not flowjax.synthetic faces:
    their numbers would look fine and mean nothing."""
    for scorer in scorers:
        if scorer is not None and type(scorer).__module__ == SYNTHETIC_SCORERS \
                and not study.synthetic_faces:
            raise ValueError(
                f"the synthetic scorer {type(scorer).__name__} scores only flowjax.synthetic "
                f"faces, but {study.path} is not a flowjax run on the synthetic study "
                f"({'its manifest records other images' if study.is_transfer_run else 'a spec'}"
                "). Choose --config.identity.backend=facenet and "
                "--config.action_units.backend=openface (or precomputed), and "
                "--config.detector.backend=none.")
