"""Scores computed elsewhere: existing OpenFace outputs and identity distances.

* :class:`PrecomputedOpenFace`: an AU scorer that reads files instead of
  pixels. Each image is mapped by its stem to ``<folder>/<stem>.csv`` in the
  study's OpenFace output folders (``FaceLandmarkImg``'s naming) and parsed
  with :func:`~flowjax.evaluation.openface_csv.collect_facelandmarkimg_outputs`.
  An image without a CSV is a missing face (NaN), as OpenFace itself writes no
  CSV when it finds no face; the binary is never run. Two images mapped to
  one result are refused (one would get the other's AUs).
* :class:`PrecomputedDistances`: identity distances read from the study's
  distance files, in the published likeliness layout (one matrix per
  expression: header ``output_images,<alphas...>,source,target``, rows
  ``<target>_source`` and ``<target>_target``; the harmless variants the
  published files have are read and named in the notes) or a tidy CSV
  (columns
  ``expression,target,alpha,distance_to_target_mean,distance_to_source_mean``,
  which ``tables/scores.csv`` of an evaluation has).
* :data:`NO_IDENTITY`: ``identity.backend=none``, for AU-only evaluations.

The first two record each file they read with its sha256 (``inputs_read()``,
for the evaluation's manifest) and say where they looked (``where()``, for
the error of an evaluation in which every value is missing).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowjax import io as fio
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
    (scored as missing faces); :meth:`no_face_reasons` gives each one's reason.
    """

    def __init__(self, au_names: Sequence[str] = OPENFACE_INTENSITY_AUS):
        self.au_names = tuple(au_names)
        self.missing: list[str] = []
        self.reasons: dict[Path, str] = {}  # resolved image path -> why it has no face
        self.multiple: list[str] = []
        self.read: dict[Path, str] = {}  # every CSV parsed: its sha256 when it was read
        self.folders: list[Path] = []

    def _lookup(self, ref: ImageRef) -> tuple[Path | None, Path | tuple[Any, ...]]:
        """The folder holding ``ref``'s output (None: none does) and the key of the
        one result it maps to. A CSV in any folder wins over an earlier folder's
        ``_of_details.txt`` (a mean face is looked up in every expression's folder)."""
        for suffix in (".csv", "_of_details.txt"):
            for folder in ref.au_dirs:
                if (folder / f"{ref.au_stem}{suffix}").is_file():
                    return folder, (folder / f"{ref.au_stem}.csv").resolve()
        return None, (tuple(d.resolve() for d in ref.au_dirs), ref.au_stem)

    def results(self, refs: Sequence[ImageRef]) -> list[ImageAUResult]:
        """Per-image results in input order; images without any output are no_face.

        Raises:
          ValueError for two images mapped to one OpenFace result (e.g. the
          template ``{expression}/{target}/{alpha}.png`` gives every target of
          an expression the same stems): one image would get the other's AUs.
        """
        out = []
        self.missing, self.multiple, self.read, self.reasons = [], [], {}, {}
        self.folders = list(dict.fromkeys(d for ref in refs for d in ref.au_dirs))
        owner: dict[Any, ImageRef] = {}
        for ref in refs:
            if not ref.au_dirs:
                raise ValueError(
                    f"no OpenFace output folder is known for {ref.path}: the study spec has no "
                    "'openface.folders' (docs/study_format.md); give them, or choose another "
                    "--config.action_units.backend")
            folder, key = self._lookup(ref)
            first = owner.setdefault(key, ref)
            if first.path.resolve() != ref.path.resolve():
                where = f"{key}" if isinstance(key, Path) else (
                    f"{ref.au_stem}.csv in {', '.join(map(str, ref.au_dirs))}")
                raise ValueError(
                    f"{first.path} and {ref.path} map to one OpenFace result, {where}: results "
                    "are found by image stem within an expression's folder, so one image would "
                    "get the other's AUs. Give every image of an expression its own file name "
                    "(e.g. images '{expression}/{target}/{alpha}/{target}_{alpha}.png'), or "
                    "give source_stems that no generated image has (docs/study_format.md)")
            if folder is None:
                self._miss(ref, f"no {ref.au_stem}.csv in {', '.join(map(str, ref.au_dirs))}")
                out.append(no_face_result(ref.au_stem))
                continue
            # A file name, not the bare stem: stems such as "01_0.32" hold a dot.
            result, = collect_facelandmarkimg_outputs(folder, [f"{ref.au_stem}.png"])
            csv_path = folder / f"{ref.au_stem}.csv"
            if csv_path.is_file():
                self.read.setdefault(csv_path, fio.sha256_file(csv_path))
            if result.status == FaceStatus.NO_FACE:
                self._miss(ref, f"OpenFace found no face: no {ref.au_stem}.csv in {folder}")
            if len(result.faces) > 1:
                self.multiple.append(f"{folder / ref.au_stem}.csv ({len(result.faces)} faces)")
            out.append(result)
        return out

    def _miss(self, ref: ImageRef, reason: str) -> None:
        self.missing.append(f"{ref.path} ({reason})")
        self.reasons[ref.path.resolve()] = reason

    def no_face_reasons(self) -> dict[Path, str]:
        """Why each image of the last call has no AUs, by resolved image path."""
        return dict(self.reasons)

    def score_files(self, refs: Sequence[ImageRef]) -> np.ndarray:
        """Intensities ``[N, len(au_names)]`` of the chosen faces; NaN rows for no face."""
        rows = [r.intensities(self.au_names) for r in self.results(refs)]
        return np.stack(rows) if rows else np.zeros((0, len(self.au_names)))

    def notes(self) -> list[str]:
        """What the last call found that a reader should know."""
        notes = []
        if self.missing:  # every one is listed under "Missing faces" (tables/missing_faces.csv)
            notes.append(f"{len(self.missing)} image(s) have no face in OpenFace's output and "
                         "count as missing faces (NaN); every one is listed, with the reason, "
                         "under 'Missing faces'.")
        if self.multiple:
            notes.append(f"{len(self.multiple)} OpenFace CSV(s) hold several faces; the most "
                         f"confident face is used: {'; '.join(self.multiple[:5])}"
                         + (" ..." if len(self.multiple) > 5 else ""))
        return notes

    def provenance(self) -> dict[str, Any]:
        return {"model": "OpenFace 2.x FaceLandmarkImg outputs read from existing CSVs "
                         "(not run by flowjax)"}

    def where(self) -> str:
        """Where the last call looked, for an error that finds nothing there."""
        return (f"the OpenFace folder(s) {', '.join(map(str, self.folders))} (spec key "
                "'openface.folders'; an image's result is <folder>/<image stem>.csv)")

    def inputs_read(self) -> list[dict[str, Any]]:
        """Manifest entries of every CSV the last call parsed, hashed when read."""
        return [{"path": os.fspath(p), "sha256": h, "role": "precomputed OpenFace output"}
                for p, h in self.read.items()]


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


def _published_header(header: Sequence[str], rows: set[str], path: Path) -> list[str]:
    """Checks a published header ``output_images,<alphas...>,source,target``; returns
    the harmless variants it accepted (each a phrase for the notes).

    Accepted: another case (``Source``) and the mean faces' columns labelled
    ``<t>_source,<t>_target`` after a target ``t`` whose two rows the file has
    (four of the five published matrices label them after their first target).
    Anything else is refused: the values under a label it cannot place would be
    misread.
    """
    accepted = []
    expected = "expected the header 'output_images,<alphas...>,source,target'"
    if len(header) < 3 or header[0].lower() != "output_images":
        raise ValueError(f"{path}, line 1: {expected}; got {list(header)}")
    if header[0] != "output_images":
        accepted.append(f"first column {header[0]!r} read as 'output_images'")
    last = list(header[-2:])
    if last == ["source", "target"]:
        return accepted
    if [h.lower() for h in last] == ["source", "target"]:
        return [*accepted, f"columns {last[0]!r}, {last[1]!r} read as 'source', 'target'"]
    prefixes = [h[:-len(kind) - 1] if h.lower().endswith(f"_{kind}") else None
                for h, kind in zip(last, ("source", "target"))]
    if None in prefixes:
        raise ValueError(f"{path}, line 1: {expected} (or '<target>_source,<target>_target' "
                         f"for the last two); got {list(header)}")
    if prefixes[0] != prefixes[1]:
        raise ValueError(f"{path}, line 1: the last two columns {last} name two targets; "
                         f"{expected}")
    target = prefixes[0]
    if not {f"{target}_source", f"{target}_target"} <= rows:
        raise ValueError(f"{path}, line 1: the last two columns {last} name target {target!r}, "
                         f"which has no rows here (rows: {sorted(rows)}); {expected}")
    return [*accepted, f"the mean faces' columns labelled {last[0]!r}, {last[1]!r} (as the "
                       f"rows of target {target!r}) read as 'source', 'target'"]


def _file_variants(path: Path) -> list[str]:
    """Harmless ways a published file's bytes differ from the documented form."""
    data = path.read_bytes()
    out = []
    if data.startswith(b"\xef\xbb\xbf"):
        out.append("a UTF-8 byte order mark before the header (ignored)")
    if data and not data.endswith((b"\n", b"\r")):
        out.append("no newline after the last row (its field count and numbers were checked; "
                   "a file cut short inside a number would not show otherwise)")
    return out


def read_published_distances(study: Study, e: int, path: Path,
                             accepted: list[str] | None = None) -> dict[str, np.ndarray]:
    """One published likeliness matrix: per target, the rows ``<t>_source``/``<t>_target``.

    Harmless header variants (:func:`_published_header`, :func:`_file_variants`)
    are read and appended to ``accepted``; a missing or repeated alpha, an
    alpha the study lacks, a target without its rows or a malformed cell is an
    error naming the file and line.
    """
    rows = _read_csv(path)
    header = rows[0]
    variants = [*_published_header(header, {r[0] for r in rows[1:]}, path),
                *_file_variants(path)]
    columns = _alpha_columns(header[1:-2], study, path)
    by_name: dict[str, tuple[int, list[str]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields for {len(header)} columns")
        if row[0] in by_name:
            raise ValueError(f"{path}, line {line}: row {row[0]!r} repeats")
        by_name[row[0]] = (line, row)
    if variants and accepted is not None:
        accepted.append(f"{path}: read as the published layout with "
                        f"{len(variants)} harmless variant(s): {'; '.join(variants)}")
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
    (``identity.backend=precomputed``). After a call, ``accepted`` lists the
    harmless header variants read (for the notes) and ``read`` each file's sha256."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.read: dict[Path, str] = {}
        self.files: tuple[Path, ...] = ()

    def distances(self, study: Study) -> IdentityScores:
        self.accepted, self.read = [], {}
        self.files = () if study.distances is None else study.distances.files
        if study.distances is None:
            raise ValueError(
                "identity.backend is 'precomputed' but the study names no distance files "
                "(spec key 'distances', docs/study_format.md); add them, or pass "
                "--config.identity.backend=none (AU-only) or facenet")
        n_e, n_t = len(study.expressions), len(study.targets)
        scores = IdentityScores.unmeasured(n_e, n_t, len(study.alphas))
        self.read = {f: fio.sha256_file(f) for f in study.distances.files}
        if study.distances.layout == "tidy":
            to_target, to_source = read_tidy_distances(study, study.distances.files[0])
            return IdentityScores(to_target, to_source, *_fields(scores)[2:], measured=True)
        parts = [read_published_distances(study, e, f, self.accepted)
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

    def notes(self) -> list[str]:
        return list(self.accepted)

    def where(self) -> str:
        return f"the distance file(s) {', '.join(map(str, self.files))} (spec key 'distances')"

    def inputs_read(self) -> list[dict[str, Any]]:
        """Manifest entries of the distance files, hashed when read."""
        return [{"path": os.fspath(p), "sha256": h, "role": "precomputed identity distances"}
                for p, h in self.read.items()]


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
