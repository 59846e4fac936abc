"""Scores computed elsewhere: existing OpenFace outputs and identity distances.

* :class:`PrecomputedOpenFace`: an AU scorer that reads files instead of
  pixels. Each image is mapped by its stem to ``<folder>/<stem>.csv`` in the
  study's OpenFace output folders (``FaceLandmarkImg``'s naming) and parsed
  with :func:`~flowjax.evaluation.openface_csv.collect_facelandmarkimg_outputs`.
  An image without a CSV is a missing face (NaN), as OpenFace itself writes no
  CSV when it finds no face; the binary is never run.
* :class:`PrecomputedDistances`: identity distances read from the study's
  distance files, in the published likeliness layout (one matrix per
  expression: header ``output_images,<alphas...>,source,target``, rows
  ``<target>_source`` and ``<target>_target``) or a tidy CSV (columns
  ``expression,target,alpha,distance_to_target_mean,distance_to_source_mean``,
  which ``tables/scores.csv`` of an evaluation has).
* :data:`NO_IDENTITY`: ``identity.backend=none``, for AU-only evaluations.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowjax.evaluation.datatypes import IdentityScores, ImageRef, Study
from flowjax.evaluation.openface_csv import (OPENFACE_INTENSITY_AUS, FaceStatus, ImageAUResult,
                                            collect_facelandmarkimg_outputs, no_face_result)

TIDY_COLUMNS = ("expression", "target", "alpha", "distance_to_target_mean",
                "distance_to_source_mean")


class PrecomputedOpenFace:
    """AU intensities from existing ``FaceLandmarkImg`` CSVs (never runs OpenFace).

    A file-reading scorer: the pipeline calls :meth:`score_files` with each
    image's :class:`~flowjax.evaluation.datatypes.ImageRef` instead of pixels.
    ``missing`` lists, after a call, the images for which no output exists
    (scored as missing faces).
    """

    def __init__(self, au_names: Sequence[str] = OPENFACE_INTENSITY_AUS):
        self.au_names = tuple(au_names)
        self.missing: list[str] = []
        self.multiple: list[str] = []

    def results(self, refs: Sequence[ImageRef]) -> list[ImageAUResult]:
        """Per-image results in input order; images without any output are no_face."""
        out = []
        self.missing, self.multiple = [], []
        for ref in refs:
            if not ref.au_dirs:
                raise ValueError(
                    f"no OpenFace output folder is known for {ref.path}: the study spec has no "
                    "'openface.folders' (docs/study_format.md); give them, or choose another "
                    "--config.action_units.backend")
            folder = next((d for d in ref.au_dirs if (d / f"{ref.au_stem}.csv").is_file()
                           or (d / f"{ref.au_stem}_of_details.txt").is_file()), None)
            if folder is None:
                self.missing.append(f"{ref.path} (no {ref.au_stem}.csv in "
                                    f"{', '.join(map(str, ref.au_dirs))})")
                out.append(no_face_result(ref.au_stem))
                continue
            # A file name, not the bare stem: stems such as "01_0.32" hold a dot.
            result, = collect_facelandmarkimg_outputs(folder, [f"{ref.au_stem}.png"])
            if result.status == FaceStatus.NO_FACE:
                self.missing.append(f"{ref.path} (OpenFace found no face: no "
                                    f"{ref.au_stem}.csv in {folder})")
            if len(result.faces) > 1:
                self.multiple.append(f"{folder / ref.au_stem}.csv ({len(result.faces)} faces)")
            out.append(result)
        return out

    def score_files(self, refs: Sequence[ImageRef]) -> np.ndarray:
        """Intensities ``[N, len(au_names)]`` of the chosen faces; NaN rows for no face."""
        rows = [r.intensities(self.au_names) for r in self.results(refs)]
        return np.stack(rows) if rows else np.zeros((0, len(self.au_names)))

    def notes(self) -> list[str]:
        """What the last call found that a reader should know."""
        notes = []
        if self.missing:
            notes.append(f"{len(self.missing)} image(s) have no face in OpenFace's output and "
                         f"count as missing faces (NaN): {'; '.join(self.missing[:5])}"
                         + (" ..." if len(self.missing) > 5 else ""))
        if self.multiple:
            notes.append(f"{len(self.multiple)} OpenFace CSV(s) hold several faces; the most "
                         f"confident face is used: {'; '.join(self.multiple[:5])}"
                         + (" ..." if len(self.multiple) > 5 else ""))
        return notes

    def provenance(self) -> dict[str, Any]:
        return {"model": "OpenFace 2.x FaceLandmarkImg outputs read from existing CSVs "
                         "(not run by flowjax)"}


def _float(text: str, path: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}: column {column!r} should be a number, got "
                         f"{text!r}") from None


def _alpha_columns(header: Sequence[str], study: Study, path: Path) -> list[int]:
    """The column of each study alpha in a published header; errors name the mismatch."""
    try:
        values = [float(h) for h in header]
    except ValueError:
        raise ValueError(f"{path}, line 1: expected 'output_images', the alphas, 'source', "
                         f"'target'; got {list(header)}") from None
    columns = []
    for alpha, label in zip(study.alphas, study.labels):
        hits = [i for i, v in enumerate(values) if np.isclose(v, alpha, rtol=0, atol=1e-9)]
        if len(hits) != 1:
            raise ValueError(f"{path}, line 1: expected one column for alpha {label}, found "
                             f"{len(hits)} among {list(header)}")
        columns.append(hits[0])
    if len(values) != len(columns):
        extra = sorted(set(range(len(values))) - set(columns))
        raise ValueError(f"{path}, line 1: alphas {[header[i] for i in extra]} are not the "
                         f"study's alphas {list(study.labels)}")
    return columns


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f) if row]
    if not rows:
        raise ValueError(f"{path}: the file is empty")
    return rows


def read_published_distances(study: Study, e: int, path: Path) -> dict[str, np.ndarray]:
    """One published likeliness matrix: per target, the rows ``<t>_source``/``<t>_target``."""
    rows = _read_csv(path)
    header = rows[0]
    if header[0] != "output_images" or header[-2:] != ["source", "target"]:
        raise ValueError(f"{path}, line 1: expected the header 'output_images,<alphas...>,"
                         f"source,target'; got {header}")
    columns = _alpha_columns(header[1:-2], study, path)
    by_name: dict[str, tuple[int, list[str]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields for {len(header)} columns")
        if row[0] in by_name:
            raise ValueError(f"{path}, line {line}: row {row[0]!r} repeats")
        by_name[row[0]] = (line, row)
    n_t, n_a = len(study.targets), len(study.alphas)
    out = {k: np.full((n_t, n_a), np.nan) for k in ("to_source", "to_target")}
    for k in ("ss", "st", "ts", "tt"):
        out[k] = np.full(n_t, np.nan)
    for t, target in enumerate(study.targets):
        for kind in ("source", "target"):
            name = f"{target}_{kind}"
            if name not in by_name:
                raise ValueError(f"{path}: no row {name!r} for target {target!r} of expression "
                                 f"{study.expressions[e]!r}; rows are {sorted(by_name)}")
            line, row = by_name[name]
            cells = [_float(row[1 + c], path, line, header[1 + c]) for c in columns]
            out[f"to_{kind}"][t] = cells
            mean_cols = [_float(row[-2], path, line, "source"),
                         _float(row[-1], path, line, "target")]
            # Row <t>_source: distances to the source mean; columns: source mean, target mean.
            out[kind[0] + "s"][t], out[kind[0] + "t"][t] = mean_cols
    return out


def read_tidy_distances(study: Study, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``to_target``, ``to_source [E, T, A]`` from a tidy CSV; every cell exactly once."""
    rows = _read_csv(path)
    header = rows[0]
    missing = [c for c in TIDY_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}, line 1: missing column(s) {missing}; a tidy distance file "
                         f"has {list(TIDY_COLUMNS)}")
    col = {c: header.index(c) for c in TIDY_COLUMNS}
    shape = (len(study.expressions), len(study.targets), len(study.alphas))
    to_target, to_source = np.full(shape, np.nan), np.full(shape, np.nan)
    seen = np.zeros(shape, bool)
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields for {len(header)} columns")
        e_name, t_name = row[col["expression"]], row[col["target"]]
        if e_name not in study.expressions or t_name not in study.targets:
            continue  # a file may hold more of the study than this spec evaluates
        alpha = _float(row[col["alpha"]], path, line, "alpha")
        hits = np.flatnonzero(np.isclose(study.alphas, alpha, rtol=0, atol=1e-9))
        if hits.size == 0:
            continue
        index = (study.expressions.index(e_name), study.targets.index(t_name), int(hits[0]))
        if seen[index]:
            raise ValueError(f"{path}, line {line}: a second row for ({e_name}, {t_name}, "
                             f"alpha {alpha})")
        seen[index] = True
        to_target[index] = _float(row[col["distance_to_target_mean"]], path, line,
                                  "distance_to_target_mean")
        to_source[index] = _float(row[col["distance_to_source_mean"]], path, line,
                                  "distance_to_source_mean")
    if not seen.all():
        e, t, a = np.argwhere(~seen)[0]
        raise ValueError(f"{path}: no row for expression {study.expressions[e]!r}, target "
                         f"{study.targets[t]!r}, alpha {study.labels[a]} "
                         f"({int((~seen).sum())} cells missing)")
    return to_target, to_source


class PrecomputedDistances:
    """Identity distances read from the study's distance files
    (``identity.backend=precomputed``)."""

    def distances(self, study: Study) -> IdentityScores:
        if study.distances is None:
            raise ValueError(
                "identity.backend is 'precomputed' but the study names no distance files "
                "(spec key 'distances', docs/study_format.md); add them, or pass "
                "--config.identity.backend=none (AU-only) or facenet")
        n_e, n_t = len(study.expressions), len(study.targets)
        scores = IdentityScores.unmeasured(n_e, n_t, len(study.alphas))
        if study.distances.layout == "tidy":
            to_target, to_source = read_tidy_distances(study, study.distances.files[0])
            return IdentityScores(to_target, to_source, *_fields(scores)[2:], measured=True)
        parts = [read_published_distances(study, e, f)
                 for e, f in enumerate(study.distances.files)]

        def stack(key: str) -> np.ndarray:
            return np.stack([p[key] for p in parts])

        return IdentityScores(
            to_target=stack("to_target"), to_source=stack("to_source"),
            source_to_source_mean=scores.source_to_source_mean,
            source_to_target_mean=scores.source_to_target_mean,
            target_mean_to_source_mean=stack("st"), target_mean_to_target_mean=stack("tt"),
            source_mean_to_target_mean=stack("ts"),
            source_mean_to_source_mean=stack("ss"), measured=True)

    def provenance(self) -> dict[str, Any]:
        return {"model": "identity distances read from the study's distance files "
                         "(computed elsewhere; not recomputed by flowjax)"}


def _fields(scores: IdentityScores) -> list[np.ndarray]:
    return [scores.to_target, scores.to_source, scores.source_to_source_mean,
            scores.source_to_target_mean, scores.target_mean_to_source_mean,
            scores.target_mean_to_target_mean, scores.source_mean_to_target_mean,
            scores.source_mean_to_source_mean]


class NoIdentity:
    """``identity.backend=none``: no identity scores (AU-only evaluation)."""

    def provenance(self) -> dict[str, Any]:
        return {"model": "none: identity distances were not measured"}


NO_IDENTITY = NoIdentity()
