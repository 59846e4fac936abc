"""The evaluation's shared types: a study to score, the images it names, its scores.

One :class:`Study` describes whatever is evaluated: a flowjax transfer run
(:mod:`flowjax.evaluation.transfer_run` reads it and checks it against its
manifest) or any other study described by a spec file
(:mod:`flowjax.evaluation.study`, ``docs/study_format.md``). Scoring
(:mod:`flowjax.evaluation.pipeline`), tables, figures and the report read only
these types, so they import this module and never each other in a cycle.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from flowjax.evaluation import metrics
from flowjax.runs import names

TRANSFER_RUN = "flowjax transfer run"
USER_STUDY = "study spec"


@dataclasses.dataclass(frozen=True)
class DistanceFiles:
    """Precomputed identity distances: ``layout`` ``"published"`` (one likeliness
    matrix per expression, ``files[e]``) or ``"tidy"`` (one long CSV, ``files[0]``)."""

    layout: str
    files: tuple[Path, ...]


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """Where an image is, for scorers that read files instead of pixels.

    ``au_dirs`` are the folders that may hold its precomputed OpenFace outputs
    (``<au_stem>.csv``), searched in order; empty when the study names none.
    """

    path: Path
    au_stem: str
    au_dirs: tuple[Path, ...] = ()


@dataclasses.dataclass(frozen=True)
class Study:
    """Everything the evaluation needs to know about a study.

    E expressions, T targets, A alphas. ``image_paths[e][t][a]`` and the
    values of ``mean_paths`` (the source's and each target's mean face) are
    relative to ``path`` (or absolute); ``source_inputs[e]`` is the image the
    AU error of expression ``e`` is measured against, ``source_sha256[e]`` its
    checksum (None: not verified). ``checksums`` maps every other file that is
    verified before scoring (relative to ``path``) to its sha256.
    ``synthetic_faces`` is True only for a flowjax run on flowjax.synthetic
    faces (the only images the synthetic scorers understand).
    """

    path: Path
    kind: str
    source: str
    expressions: tuple[str, ...]
    targets: tuple[str, ...]
    alphas: np.ndarray
    labels: tuple[str, ...]
    image_paths: tuple[tuple[tuple[str, ...], ...], ...]
    mean_paths: dict[str, str]
    source_inputs: tuple[Path, ...]
    source_sha256: tuple[str | None, ...]
    summary: dict[str, Any]
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)
    source_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    checksums: dict[str, str] = dataclasses.field(default_factory=dict)
    openface_dirs: tuple[Path, ...] = ()
    openface_source_stems: tuple[str, ...] = ()
    distances: DistanceFiles | None = None
    synthetic_faces: bool = False
    spec_path: Path | None = None

    @property
    def model_label(self) -> str:
        """The model as shown on the page and in the report: a study's own text, or a
        flowjax record by :func:`flowjax.runs.names.model_label` (no absolute path)."""
        model = self.summary.get("model")
        if isinstance(model, str):
            return model
        if not model:
            return "not recorded"
        return names.model_label(model, run_dir=self.path)

    @property
    def is_transfer_run(self) -> bool:
        return self.kind == TRANSFER_RUN

    def file(self, rel: str) -> Path:
        """A path of the study (relative to ``path`` unless absolute)."""
        return self.path / rel

    def generated_files(self) -> list[Path]:
        """Every generated image, expression-major then target then alpha."""
        return [self.file(p) for row in self.image_paths for cell in row for p in cell]

    def mean_files(self) -> list[Path]:
        """The mean faces: the source's first, then each target's."""
        return [self.file(self.mean_paths[n]) for n in [self.source, *self.targets]]

    def refs(self) -> tuple[list[ImageRef], list[ImageRef], list[ImageRef]]:
        """File references of the generated images ``[E*T*A]``, the source
        images ``[E]`` and the target mean faces ``[T]``."""
        dirs = self.openface_dirs
        generated = [ImageRef(p, p.stem, (dirs[e],) if dirs else ())
                     for e, row in enumerate(self.image_paths)
                     for cell in row for p in map(self.file, cell)]
        stems = self.openface_source_stems or tuple(p.stem for p in self.source_inputs)
        sources = [ImageRef(p, stem, (dirs[e],) if dirs else ())
                   for e, (p, stem) in enumerate(zip(self.source_inputs, stems))]
        means = [ImageRef(p, p.stem, dirs) for p in self.mean_files()[1:]]
        return generated, sources, means


# The name the figures and earlier code use for a flowjax run; one type serves both.
TransferRun = Study


# How an identity embedder placed an image's face box (column ``identity_face_box`` of
# ``tables/scores.csv``): its detector found the face; it found none and the fixed box was
# used (NaN under ``identity.fallback=nan``); the fixed box by choice (``crop="fixed"``,
# for aligned faces: not a miss).
FACE_FOUND, FACE_FALLBACK, FACE_FIXED = "found", "fallback", "fixed"


@dataclasses.dataclass(frozen=True)
class FaceBoxes:
    """Where the identity embedder found each face (:data:`FACE_FOUND`,
    :data:`FACE_FALLBACK` or :data:`FACE_FIXED` per image).

    ``generated [E, T, A]`` (strings), ``means`` (the source's mean face, then
    each target's), ``sources [E]`` (the source expression images). ``policy``
    is what a fallback's embedding became: ``"crop"`` (the fixed box's, the
    default) or ``"nan"`` (NaN, so every distance involving it is NaN).
    ``detector`` names the detector that found (or missed) the faces.
    """

    generated: np.ndarray
    means: tuple[str, ...]
    sources: tuple[str, ...]
    policy: str = "crop"
    detector: str | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        """Per group (``generated``, ``mean_faces``, ``source_images``): how many
        images had each face-box source (only those that occur)."""
        groups = {"generated": list(np.asarray(self.generated).ravel()),
                  "mean_faces": list(self.means), "source_images": list(self.sources)}
        return {name: {kind: values.count(kind) for kind in (FACE_FOUND, FACE_FALLBACK,
                                                             FACE_FIXED) if kind in values}
                for name, values in groups.items()}

    @property
    def fallbacks(self) -> int:
        """Images, of every group, in which no face was found."""
        return sum(group.get(FACE_FALLBACK, 0) for group in self.counts().values())


@dataclasses.dataclass(frozen=True)
class MissingFace:
    """An image in which a scorer found no face (a row of ``tables/missing_faces.csv``).

    ``image`` is its path as the study names it; ``role`` ``"generated"``,
    ``"source image"`` or ``"mean face"``; ``scorer`` ``"action_units"`` or
    ``"identity"``; ``outcome`` what its values became (``"nan"``, or
    ``"fixed box"`` for an identity embedding of the fixed box); ``reason``
    what the scorer reported.
    """

    image: str
    role: str
    scorer: str
    outcome: str
    reason: str


@dataclasses.dataclass(frozen=True)
class IdentityScores:
    """Identity distances of a study (NaN where unknown).

    ``to_target``/``to_source [E, T, A]``: generated image to the target's /
    the source's mean face. ``source_to_source_mean [E]`` and
    ``source_to_target_mean [E, T]``: the source expression image.
    ``target_mean_to_source_mean``, ``target_mean_to_target_mean``,
    ``source_mean_to_target_mean`` and ``source_mean_to_source_mean [E, T]``:
    the mean faces themselves (the published likeliness matrix's last
    two columns; per expression because a published matrix is).
    ``face_boxes``: where the embedder found each face (None for backends
    that do not say, e.g. precomputed distances).
    """

    to_target: np.ndarray
    to_source: np.ndarray
    source_to_source_mean: np.ndarray
    source_to_target_mean: np.ndarray
    target_mean_to_source_mean: np.ndarray
    target_mean_to_target_mean: np.ndarray
    source_mean_to_target_mean: np.ndarray
    source_mean_to_source_mean: np.ndarray
    measured: bool = True
    face_boxes: FaceBoxes | None = None

    @classmethod
    def unmeasured(cls, n_e: int, n_t: int, n_a: int) -> IdentityScores:
        """All NaN: the evaluation runs without identity scores (backend ``none``)."""
        nan = np.full
        return cls(nan((n_e, n_t, n_a), np.nan), nan((n_e, n_t, n_a), np.nan),
                   nan(n_e, np.nan), nan((n_e, n_t), np.nan), nan((n_e, n_t), np.nan),
                   nan((n_e, n_t), np.nan), nan((n_e, n_t), np.nan), nan((n_e, n_t), np.nan),
                   measured=False)


@dataclasses.dataclass(frozen=True)
class Scores:
    """Every number of an evaluation; E expressions, T targets, A alphas, K AUs.

    Identity: ``identity`` (:class:`IdentityScores`). AUs (None without an AU
    scorer): ``au_generated [E, T, A, K]``, ``au_source [E, K]``,
    ``au_target_means [T, K]``, ``au_sets`` (the set S per expression),
    ``au_error [E, T, A]``, ``best`` (``[E, T]``) and ``trends`` (``"all"`` and
    per expression; None where no pair had a valid error). Detector:
    ``p_generated [E, T, A]`` and ``detection_rate``. ``missing_faces``: every
    image in which a scorer found no face (:class:`MissingFace`).
    """

    run: Study
    identity: IdentityScores
    au_names: tuple[str, ...] | None = None
    au_generated: np.ndarray | None = None
    au_source: np.ndarray | None = None
    au_target_means: np.ndarray | None = None
    au_set: tuple[str, ...] | str | None = None
    au_sets: tuple[tuple[str, ...], ...] | None = None
    au_error: np.ndarray | None = None
    best: metrics.BestAlpha | None = None
    trends: dict[str, metrics.Trend | None] | None = None
    notes: tuple[str, ...] = ()
    missing_faces: tuple[MissingFace, ...] = ()
    p_generated: np.ndarray | None = None
    detection_rate: float | None = None
    detection_threshold: float = metrics.DEFAULT_DETECTION_THRESHOLD

    @property
    def has_aus(self) -> bool:
        return self.au_error is not None

    @property
    def has_identity(self) -> bool:
        return self.identity.measured

    def missing(self) -> dict[str, int]:
        """How many values are missing (NaN), out of ``generated_images`` and
        ``source_images``: ``identity`` (generated images without both
        distances), ``au_generated``/``au_source`` (images without AUs: no face
        or no result), ``au_error`` (undefined errors); only what was measured."""
        d = self.identity
        out = {"generated_images": int(d.to_target.size),
               "source_images": len(self.run.expressions)}
        if self.has_identity:
            out["identity"] = int((np.isnan(d.to_target) | np.isnan(d.to_source)).sum())
        if self.has_aus:
            out["au_generated"] = int(np.isnan(self.au_generated).any(-1).sum())
            out["au_source"] = int(np.isnan(self.au_source).any(-1).sum())
            out["au_error"] = int(np.isnan(self.au_error).sum())
        return out

    def best_distances(self) -> tuple[np.ndarray, np.ndarray]:
        """Distances to the target and source means at each pair's best alpha ``[E, T]``
        (NaN where the pair has none)."""
        assert self.best is not None
        index = np.maximum(self.best.index, 0)[..., None]
        valid = self.best.index >= 0

        def pick(x: np.ndarray) -> np.ndarray:
            return np.where(valid, np.take_along_axis(x, index, -1)[..., 0], np.nan)

        return pick(self.identity.to_target), pick(self.identity.to_source)
