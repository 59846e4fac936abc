"""OpenFace 2.x CSVs: parse them strictly, and turn rows into per-image results.

Facts about OpenFace's output that this module relies on (from
``lib/local/Utilities/src/RecorderCSV.cpp``, ``RecorderOpenFace.cpp`` and
``exe/FaceLandmarkImg/FaceLandmarkImg.cpp``):

* One CSV per input image, ``<out_dir>/<image stem>.csv``, one row per
  detected face (``face`` = 0, 1, ... in detection order), plus an
  ``<image stem>_of_details.txt`` that is written in every case.
* The CSV is only created when the first face is written, so an image in
  which no face was detected has **no CSV at all**, only the details file.
  ``FeatureExtraction`` instead writes a row for every frame, with
  ``success`` 0 when no face was tracked.
* Header: ``face, confidence`` (image) or ``frame, face_id, timestamp,
  confidence, success`` (sequence), then the optional blocks, in this order,
  each present only when its output is on: gaze (8 values + 2D/3D eye
  landmarks), pose (6), 2D landmarks, 3D landmarks, PDM parameters, AU
  intensities (``AU*_r``, sorted) then AU presences (``AU*_c``, sorted).
  ``-aus`` alone restricts the file to the AU block.
* Separator: OpenFace 2.0-2.2 releases write ``", "``; the current master
  writes ``","`` (spaces were dropped after 2.2). Both are accepted: fields
  are split on commas and stripped of surrounding blanks. Lines end in
  ``\\n`` (``\\r\\n`` on Windows). Numbers are fixed-point; NaN may appear as
  ``nan``, ``-nan`` or MSVC's ``-nan(ind)`` and is read as NaN.

Anything else (another header, a row with the wrong number of fields, a value
that is not a number, an AU intensity outside OpenFace's 0-5 scale) raises
``ValueError`` naming the file and line.

Longer than 400 lines because it is one file format read strictly: the column layout,
number parsing, face policy and per-image results change together when OpenFace's output
does.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# The 17 intensities and 18 presences OpenFace 2.x writes, in its (sorted) order.
OPENFACE_INTENSITY_AUS: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)  # fmt: skip
OPENFACE_PRESENCE_AUS: tuple[str, ...] = tuple(
    sorted(OPENFACE_INTENSITY_AUS + ("AU28",))
)

FACE_POLICY = "highest_confidence"
INTENSITY_MAX = 5.0  # OpenFace's AU intensity scale is 0-5

_IMAGE_PREFIX = ("face", "confidence")
_SEQUENCE_PREFIX = ("frame", "face_id", "timestamp", "confidence", "success")
_GAZE = (
    "gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z",
    "gaze_angle_x", "gaze_angle_y",
)  # fmt: skip
_POSE = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
_PDM_RIGID = ("p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty")
_AU_R = re.compile(r"AU\d\d_r")
_AU_C = re.compile(r"AU\d\d_c")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
# C++ streams print NaN/inf in platform-specific spellings (MSVC: -nan(ind)).
_NON_FINITE = {
    "nan": np.nan, "-nan": np.nan, "nan(ind)": np.nan, "-nan(ind)": np.nan,
    "inf": np.inf, "-inf": -np.inf,
}  # fmt: skip


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OpenFaceCSV:
    """One parsed OpenFace CSV.

    Attributes:
      path: the file.
      layout: ``"image"`` (FaceLandmarkImg) or ``"sequence"``
        (FeatureExtraction, FaceLandmarkVid(Multi)).
      columns: the header's column names, blanks stripped.
      values: ``[n_rows, n_columns]`` float64, every field of every row.
      lines: ``[n_rows]`` the 1-based line number of each row in the file.
    """

    path: Path
    layout: str
    columns: tuple[str, ...]
    values: np.ndarray
    lines: tuple[int, ...]

    @property
    def intensity_names(self) -> tuple[str, ...]:
        """AU names with an intensity column (``"AU01"``, ...), file order."""
        return tuple(c[:-2] for c in self.columns if _AU_R.fullmatch(c))

    @property
    def presence_names(self) -> tuple[str, ...]:
        """AU names with a presence column, file order."""
        return tuple(c[:-2] for c in self.columns if _AU_C.fullmatch(c))

    def column(self, name: str) -> np.ndarray:
        """All rows' values of one column; KeyError naming the file if absent."""
        if name not in self.columns:
            raise KeyError(
                f"{self.path}: no column {name!r}; the file has {len(self.columns)} "
                "columns (run OpenFace with the output that writes it)"
            )
        return self.values[:, self.columns.index(name)]


def _indexed_run(tokens: Sequence[str], start: int, prefix: str) -> int:
    """How many tokens from ``start`` read ``prefix0, prefix1, ...``."""
    n = 0
    while start + n < len(tokens) and tokens[start + n] == f"{prefix}{n}":
        n += 1
    return n


def _parse_header(tokens: list[str], path: Path) -> str:
    """Validates the header against OpenFace's grammar; returns the layout."""

    def fail(pos: int, expected: str) -> ValueError:
        got = repr(tokens[pos]) if pos < len(tokens) else "the end of the header"
        return ValueError(
            f"{path}, line 1: expected {expected} at column {pos + 1} of the "
            f"header, got {got}. This is not a header OpenFace 2.x writes "
            "(FaceLandmarkImg or FeatureExtraction); pass the CSV file unchanged."
        )

    if tuple(tokens[:5]) == _SEQUENCE_PREFIX:
        layout, pos = "sequence", 5
    elif tuple(tokens[:2]) == _IMAGE_PREFIX:
        layout, pos = "image", 2
    else:
        raise ValueError(
            f"{path}, line 1: unknown layout: the header starts with "
            f"{', '.join(tokens[:5])!r}; expected 'face, confidence' (FaceLandmarkImg) "
            "or 'frame, face_id, timestamp, confidence, success' (FeatureExtraction)."
        )

    def expect(names: Sequence[str], what: str) -> None:
        nonlocal pos
        for name in names:
            if pos >= len(tokens) or tokens[pos] != name:
                raise fail(pos, f"{name!r} ({what})")
            pos += 1

    def indexed_block(prefixes: Sequence[str], what: str) -> None:
        n = _indexed_run(tokens, pos, prefixes[0])
        for prefix in prefixes:
            expect([f"{prefix}{i}" for i in range(n)], what)

    def gaze() -> None:
        expect(_GAZE, "gaze")
        indexed_block(
            ["eye_lmk_x_", "eye_lmk_y_", "eye_lmk_X_", "eye_lmk_Y_", "eye_lmk_Z_"],
            "eye landmarks",
        )

    def pdm() -> None:
        expect(_PDM_RIGID, "PDM parameters")
        indexed_block(["p_"], "PDM parameters")

    # The optional blocks, in RecorderCSV's order, keyed by their first column.
    blocks = [
        ("gaze_0_x", gaze),
        ("pose_Tx", lambda: expect(_POSE, "pose")),
        ("x_0", lambda: indexed_block(["x_", "y_"], "2D landmarks")),
        ("X_0", lambda: indexed_block(["X_", "Y_", "Z_"], "3D landmarks")),
        ("p_scale", pdm),
    ]
    for first, consume in blocks:
        if pos < len(tokens) and tokens[pos] == first:
            consume()
    # AU block: intensities then presences, each sorted (RecorderCSV sorts them).
    for pattern, what in ((_AU_R, "AU intensity"), (_AU_C, "AU presence")):
        start = pos
        while pos < len(tokens) and pattern.fullmatch(tokens[pos]):
            pos += 1
        names = tokens[start:pos]
        if names != sorted(set(names)):
            raise ValueError(
                f"{path}, line 1: {what} columns are not sorted and unique "
                f"({', '.join(names)}), which OpenFace never writes."
            )
    if pos != len(tokens):
        raise fail(pos, "an OpenFace column in OpenFace's order (or the end)")
    return layout


def _parse_field(text: str, integer: bool, path: Path, line: int, column: str) -> float:
    if integer and _INTEGER.fullmatch(text):
        return float(int(text))
    if not integer:
        if _NUMBER.fullmatch(text):
            return float(text)
        if text.lower() in _NON_FINITE:
            return _NON_FINITE[text.lower()]
    kind = "an integer" if integer else "a number"
    raise ValueError(
        f"{path}, line {line}: column {column!r} should be {kind}, got {text!r}. "
        "The file is corrupt or was edited; re-run OpenFace on the image."
    )


def read_openface_csv(path: str | os.PathLike) -> OpenFaceCSV:
    """Parses an OpenFace 2.x CSV (either layout), strictly.

    Raises:
      ValueError: naming the file and line, for an empty file, an unknown
        header, a row whose field count differs from the header's, a
        non-numeric value, a non-integer id or a ``success`` other than 0/1.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not a text file (byte {e.start} is not UTF-8); pass OpenFace's .csv."
        ) from None
    lines = text.split("\n")
    # A final newline leaves one empty string; trailing blank lines are harmless.
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(
            f"{path}: the file is empty. OpenFace writes a header with the first "
            "face, so an empty file means it was interrupted; re-run it."
        )
    columns = [c.strip(" \t") for c in lines[0].rstrip("\r").split(",")]
    layout = _parse_header(columns, path)
    integer_columns = {"face", "frame", "face_id", "success"}
    rows: list[list[float]] = []
    row_lines: list[int] = []
    for number, raw in enumerate(lines[1:], start=2):
        fields = [f.strip(" \t") for f in raw.rstrip("\r").split(",")]
        if len(fields) != len(columns):
            raise ValueError(
                f"{path}, line {number}: expected {len(columns)} fields as in the "
                f"header, got {len(fields)}. The file is truncated or mixes outputs "
                "of different runs; re-run OpenFace into an empty directory."
            )
        row = [
            _parse_field(f, c in integer_columns, path, number, c)
            for f, c in zip(fields, columns)
        ]
        if layout == "sequence" and row[4] not in (0.0, 1.0):
            raise ValueError(
                f"{path}, line {number}: 'success' must be 0 or 1, got {fields[4]!r}."
            )
        rows.append(row)
        row_lines.append(number)
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(columns))
    _check_intensity_scale(path, columns, values, row_lines)
    return OpenFaceCSV(path, layout, tuple(columns), values, tuple(row_lines))


def _check_intensity_scale(path: Path, columns: Sequence[str], values: np.ndarray,
                           lines: Sequence[int]) -> None:
    """AU intensities lie on OpenFace's 0-5 scale (it clips its predictions to it);
    anything else (e.g. 1e308) is a corrupt file, not a strong expression."""
    for c, name in enumerate(columns):
        if not _AU_R.fullmatch(name):
            continue
        column = values[:, c]
        bad = np.flatnonzero(~np.isnan(column) & ((column < 0) | (column > INTENSITY_MAX)))
        if bad.size:
            r = int(bad[0])
            raise ValueError(
                f"{path}, line {lines[r]}: column {name!r} is {float(column[r])!r}, outside "
                f"OpenFace's intensity scale 0-{INTENSITY_MAX:g}. The file is corrupt or was "
                "edited; re-run OpenFace on the image.")


# --------------------------------------------------------------------------
# Per-image results
# --------------------------------------------------------------------------


class FaceStatus(enum.StrEnum):
    """What OpenFace found in one image."""

    OK = "ok"
    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"


@dataclasses.dataclass(frozen=True)
class Face:
    """One CSV row: a detected face with its AU estimates."""

    face_id: int
    confidence: float
    success: bool  # always True in the image layout, which has no such column
    intensities: np.ndarray  # [len(au_names)] of the owning result
    presence: np.ndarray  # [len(presence_names)]
    source: str  # "file, line N"


@dataclasses.dataclass(frozen=True)
class ImageAUResult:
    """OpenFace's verdict on one image.

    ``faces`` holds every row OpenFace wrote for the image (nothing dropped,
    failed tracks included). ``status`` counts the successful ones: 0 ->
    ``no_face``, 1 -> ``ok``, more -> ``multiple_faces``. When there is at
    least one, ``chosen`` indexes the face whose AUs are reported, picked by
    ``policy``: the highest confidence, ties going to the lowest face id.
    """

    image: str
    status: FaceStatus
    au_names: tuple[str, ...]
    presence_names: tuple[str, ...]
    faces: tuple[Face, ...]
    chosen: int | None
    policy: str = FACE_POLICY

    def intensities(self, au_names: Sequence[str] | None = None) -> np.ndarray:
        """The chosen face's intensities in ``au_names`` order (default: file
        order); all NaN when no face was found."""
        names = self.au_names if au_names is None else tuple(au_names)
        if self.chosen is None:
            return np.full(len(names), np.nan)
        face = self.faces[self.chosen]
        missing = [n for n in names if n not in self.au_names]
        if missing:
            raise ValueError(
                f"{face.source}: no intensity for {', '.join(missing)}; the file "
                f"has {', '.join(self.au_names) or 'no AU columns'} (run OpenFace "
                "with -aus and its AU models installed)."
            )
        return face.intensities[[self.au_names.index(n) for n in names]]


def _choose(faces: Sequence[Face]) -> int | None:
    candidates = [i for i, f in enumerate(faces) if f.success]
    if not candidates:
        return None
    # A NaN confidence ranks last rather than making the comparison arbitrary.
    return min(
        candidates,
        key=lambda i: (-np.nan_to_num(faces[i].confidence, nan=-np.inf), faces[i].face_id, i),
    )


def _result(image: str, table: OpenFaceCSV, rows: Sequence[int]) -> ImageAUResult:
    r_idx = [table.columns.index(f"{n}_r") for n in table.intensity_names]
    c_idx = [table.columns.index(f"{n}_c") for n in table.presence_names]
    if table.layout == "image":
        ids, success = table.column("face"), np.ones(len(table.lines), bool)
    else:
        ids, success = table.column("face_id"), table.column("success") == 1.0
    confidence = table.column("confidence")
    faces = tuple(
        Face(
            face_id=int(ids[r]),
            confidence=float(confidence[r]),
            success=bool(success[r]),
            intensities=table.values[r, r_idx],
            presence=table.values[r, c_idx],
            source=f"{table.path}, line {table.lines[r]}",
        )
        for r in rows
    )
    n_ok = sum(f.success for f in faces)
    status = (
        FaceStatus.NO_FACE if n_ok == 0
        else FaceStatus.OK if n_ok == 1
        else FaceStatus.MULTIPLE_FACES
    )  # fmt: skip
    return ImageAUResult(
        image, status, table.intensity_names, table.presence_names, faces, _choose(faces)
    )


def results_from_csv(table: OpenFaceCSV, image: str | None = None) -> list[ImageAUResult]:
    """Per-image results of a parsed CSV.

    Image layout: one result named ``image`` (default: the file's stem).
    Sequence layout: one result per frame present in the file, named
    ``"<image or stem>:frame<N>"``, in frame order. (FaceLandmarkVidMulti
    writes nothing for a frame without faces, so such frames cannot appear.)
    """
    name = table.path.stem if image is None else image
    if table.layout == "image":
        return [_result(name, table, range(len(table.lines)))]
    frames = table.column("frame").astype(np.int64)
    return [
        _result(f"{name}:frame{f}", table, np.flatnonzero(frames == f).tolist())
        for f in np.unique(frames)
    ]


def no_face_result(image: str) -> ImageAUResult:
    """The result for an image in which OpenFace detected no face (no CSV)."""
    return ImageAUResult(image, FaceStatus.NO_FACE, (), (), (), None)


def collect_facelandmarkimg_outputs(
    out_dir: str | os.PathLike, images: Sequence[str | os.PathLike]
) -> list[ImageAUResult]:
    """Results of a FaceLandmarkImg run, one per input image, in input order.

    ``<stem>.csv`` -> parsed; no CSV but ``<stem>_of_details.txt`` -> no_face
    (OpenFace saw the image and found no face); neither -> RuntimeError, since
    OpenFace never processed the image.
    """
    out_dir = Path(out_dir)
    results = []
    for image in images:
        stem = Path(image).stem
        csv_path = out_dir / f"{stem}.csv"
        if csv_path.exists():
            table = read_openface_csv(csv_path)
            if table.layout != "image":
                raise ValueError(
                    f"{csv_path}: expected FaceLandmarkImg's per-image layout "
                    f"('face, confidence, ...'), got the {table.layout} layout."
                )
            results.extend(results_from_csv(table, image=stem))
        elif (out_dir / f"{stem}_of_details.txt").exists():
            results.append(no_face_result(stem))
        else:
            raise RuntimeError(
                f"OpenFace wrote no output for {image} in {out_dir} (neither "
                f"{stem}.csv nor {stem}_of_details.txt); check its log."
            )
    return results
