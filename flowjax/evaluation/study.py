"""Study specs: describe any expression-transfer study in a small JSON file.

A spec names the expressions, targets and alphas of a study and where its
files are: generated images, source expression images, mean faces, and
optionally OpenFace ``FaceLandmarkImg`` output folders and precomputed
identity distances. Paths are path templates (``{expression}``,
``{target}``, ``{alpha}``, ``{identity}``) or explicit tables, relative to
the spec's ``root`` (itself relative to the spec file's folder). The format,
with the published study's layout as the example, is ``docs/study_format.md``.

:func:`load_study` reads a spec into a :class:`~flowjax.evaluation.datatypes.Study`;
:func:`study_from_spec` is the one code path for both a user's spec and a
flowjax transfer run (:func:`flowjax.evaluation.transfer_run.transfer_spec`
writes a run's spec; :func:`write_spec` saves one).
"""

from __future__ import annotations

import decimal
import json
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowjax import io as fio
from flowjax.evaluation.datatypes import USER_STUDY, DistanceFiles, Study

FORMAT = "flowjax-study/1"
DISTANCE_LAYOUTS = ("published", "tidy")
_REQUIRED = ("source", "expressions", "targets", "alphas", "images", "source_images",
             "mean_faces")
_KNOWN = {*_REQUIRED, "format", "root", "alpha_labels", "openface", "distances", "sha256",
          "source_image_options", "description"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Table rows that are not expressions: general_trend.csv's and per_alpha.csv's overall rows.
RESERVED_EXPRESSIONS = ("all",)


class StudySpecError(ValueError):
    """A spec that cannot describe a study; the message names the spec and the key."""


def _fail(where: str, key: str, message: str) -> StudySpecError:
    return StudySpecError(f"{where}: {key!r}: {message} (see docs/study_format.md)")


def _names(spec: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = spec.get(key)
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and v for v in value):
        raise _fail(where, key, f"expected a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise _fail(where, key, f"names repeat in {value}")
    if key == "expressions":
        reserved = [v for v in value if v in RESERVED_EXPRESSIONS]
        if reserved:
            raise _fail(where, key, f"{reserved[0]!r} is reserved: the tables' row {reserved[0]!r} "
                        "holds the numbers over every expression; rename the expression")
    return tuple(value)


def _label_contradicts(label: str, alpha: float) -> bool:
    """True when a label that reads as a number is not ``alpha`` rounded to the
    label's own digits (``"0.12"`` may label 0.125; ``"0.5"`` cannot label 0.3).
    A label that is not a number (``"a03"``) is a name and is not compared."""
    try:
        number = decimal.Decimal(label.strip())
    except decimal.InvalidOperation:
        return False
    if not number.is_finite():
        return False
    half_unit = decimal.Decimal(5).scaleb(number.as_tuple().exponent - 1)
    return abs(number - decimal.Decimal(repr(float(alpha)))) > half_unit


def _alphas(spec: Mapping[str, Any], where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Alphas as numbers and as written in the paths (``"0.3"``, ``"0.32"``...),
    in increasing alpha."""
    raw = spec.get("alphas")
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "alphas", f"expected a non-empty list, got {raw!r}")
    try:
        values = np.array([float(a) for a in raw], np.float64)
    except (TypeError, ValueError):
        raise _fail(where, "alphas", f"expected numbers (or numbers as strings), got {raw}")
    if not np.isfinite(values).all() or len(set(values.tolist())) != len(values):
        raise _fail(where, "alphas", f"alphas must be finite and distinct, got {raw}")
    labels = spec.get("alpha_labels")
    if labels is None:
        labels = [a if isinstance(a, str) else repr(float(a)) for a in raw]
    if (not isinstance(labels, list) or len(labels) != len(raw)
            or not all(isinstance(x, str) and x for x in labels)):
        raise _fail(where, "alpha_labels", f"expected one string per alpha ({len(raw)}), got "
                    f"{labels!r}")
    if len(set(labels)) != len(labels):
        raise _fail(where, "alpha_labels", f"labels repeat in {labels}: two alphas would read "
                    "the same images")
    for alpha, label in zip(raw, labels):
        if _label_contradicts(label, float(alpha)):
            raise _fail(where, "alpha_labels", f"label {label!r} is given for alpha {alpha!r}: "
                        "images are read by label and distances by alpha, so a row would mix "
                        "two alphas. List alpha_labels in the order of alphas (a label that is "
                        "a number must be its alpha, rounded to the label's digits)")
    # Read in increasing alpha, whatever the spec's order: tables, figures and the viewer
    # follow the grid's order, and a curve drawn in another order zig-zags.
    order = np.argsort(values, kind="stable")
    return values[order], tuple(labels[i] for i in order)


def _fill(template: str, where: str, key: str, **fields: str) -> str:
    used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    unknown = used - set(fields)
    if unknown:
        raise _fail(where, key, f"template {template!r} uses {sorted(unknown)}; this entry "
                    f"may only use {sorted('{' + f + '}' for f in fields)}")
    return template.format(**fields)


def _entry(spec: Mapping[str, Any], key: str, where: str, **fields: str) -> str:
    """One path of ``spec[key]``: a template filled with ``fields``, or the
    explicit table's entry (nested in the order of ``fields``)."""
    value = spec.get(key)
    if isinstance(value, str):
        return _fill(value, where, key, **fields)
    node: Any = value
    for name, field in fields.items():
        if not isinstance(node, Mapping) or field not in node:
            raise _fail(where, key, f"no entry for {name} {field!r} (give a template string "
                        "or a table with every entry)")
        node = node[field]
    if not isinstance(node, str) or not node:
        raise _fail(where, key, f"expected a path for {dict(fields)}, got {node!r}")
    return node


def _openface(spec: Mapping[str, Any], where: str, root: Path,
              expressions: tuple[str, ...]) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    section = spec.get("openface")
    if section is None:
        return (), ()
    if not isinstance(section, Mapping) or "folders" not in section:
        raise _fail(where, "openface", "expected {\"folders\": template or table, "
                    "\"source_stems\": {expression: stem} (optional)}")
    dirs = tuple(root / _entry(section, "folders", f"{where} openface", expression=e)
                 for e in expressions)
    for e, folder in zip(expressions, dirs):
        if not folder.is_dir():
            raise _fail(where, "openface.folders", f"the OpenFace output folder {folder} of "
                        f"expression {e!r} does not exist")
    stems = section.get("source_stems")
    if stems is None:
        return dirs, ()
    return dirs, tuple(_entry(section, "source_stems", f"{where} openface", expression=e)
                       for e in expressions)


def _distances(spec: Mapping[str, Any], where: str, root: Path,
               expressions: tuple[str, ...]) -> DistanceFiles | None:
    section = spec.get("distances")
    if section is None:
        return None
    layout = section.get("layout") if isinstance(section, Mapping) else None
    if layout not in DISTANCE_LAYOUTS:
        raise _fail(where, "distances", f"expected {{\"layout\": one of {DISTANCE_LAYOUTS}, "
                    f"\"files\": ...}}, got {section!r}")
    if layout == "tidy":
        files = (root / _entry(section, "files", f"{where} distances"),)
    else:
        files = tuple(root / _entry(section, "files", f"{where} distances", expression=e)
                      for e in expressions)
    for file in files:
        if not file.is_file():
            raise _fail(where, "distances.files", f"the distance file {file} does not exist")
    return DistanceFiles(layout, files)


def _check_distinct(spec: Mapping[str, Any], where: str, root: Path, cells: dict[str, list[str]],
                    images: list[tuple[str, str]], means: dict[str, str]) -> None:
    """Refuses two cells of the study that name one file: a template without
    ``{alpha}`` would score one image for every alpha, one without ``{target}``
    one image for every target, and no table would show it. ``cells`` maps
    each template field to its values; ``images`` is ``(cell, path)`` per
    generated image."""
    template = spec.get("images")
    if isinstance(template, str):
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        for field, values in cells.items():
            if field not in used and len(values) > 1:
                raise _fail(where, "images", f"the template {template!r} has no {{{field}}}: "
                            f"every {field} would read the same file; put {{{field}}} in it")
    seen: dict[Path, str] = {}
    for key, (cell, rel) in [*(("images", c) for c in images),
                             *(("mean_faces", (f"identity {n!r}", p)) for n, p in means.items())]:
        path = (root / rel).resolve()
        if path in seen:
            raise _fail(where, key, f"{seen[path]} and {cell} are both {root / rel}: every "
                        "generated image and mean face must be its own file")
        seen[path] = cell


def _checksums(spec: Mapping[str, Any], where: str) -> dict[str, str]:
    table = spec.get("sha256", {})
    if not isinstance(table, Mapping) or not all(
            isinstance(v, str) and _SHA256.fullmatch(v) for v in table.values()):
        raise _fail(where, "sha256", "expected {path: 64 lowercase hex digits}")
    return dict(table)


def study_from_spec(spec: Mapping[str, Any], root: fio.PathLike, *, where: str,
                    kind: str = USER_STUDY, **fields: Any) -> Study:
    """The :class:`Study` a spec describes; ``root`` is the folder its paths are
    relative to; ``where`` names the spec in errors; ``fields`` set the
    Study's remaining fields (a transfer run's manifest, ...).

    Raises:
      StudySpecError naming the spec and key, for a missing or malformed key,
      an unknown template field, or a generated image or mean face that does
      not exist.
    """
    if not isinstance(spec, Mapping):
        raise StudySpecError(f"{where}: expected a JSON object, got {type(spec).__name__}")
    missing = [k for k in _REQUIRED if k not in spec]
    if missing:
        raise _fail(where, missing[0], f"missing; a spec needs {', '.join(_REQUIRED)}")
    unknown = sorted(set(spec) - _KNOWN)
    if unknown:
        raise _fail(where, unknown[0], f"unknown key; known keys: {', '.join(sorted(_KNOWN))}")
    if spec.get("format", FORMAT) != FORMAT:
        raise _fail(where, "format", f"expected {FORMAT!r}, got {spec['format']!r}")
    root = Path(root)
    source = spec["source"]
    if not isinstance(source, str) or not source:
        raise _fail(where, "source", f"expected the source identity's name, got {source!r}")
    expressions = _names(spec, "expressions", where)
    targets = _names(spec, "targets", where)
    if source in targets:
        raise _fail(where, "targets", f"the source {source!r} is also a target")
    alphas, labels = _alphas(spec, where)
    images = tuple(tuple(tuple(_entry(spec, "images", where, expression=e, target=t, alpha=a)
                               for a in labels) for t in targets) for e in expressions)
    means = {n: _entry(spec, "mean_faces", where, identity=n) for n in [source, *targets]}
    sources = tuple(root / _entry(spec, "source_images", where, expression=e)
                    for e in expressions)
    _check_distinct(spec, where, root, {"expression": expressions, "target": targets,
                                        "alpha": labels},
                    [(f"({e}, {t}, alpha {a})", images[i][j][k])
                     for i, e in enumerate(expressions) for j, t in enumerate(targets)
                     for k, a in enumerate(labels)], means)
    for rel in [*means.values(), *(p for row in images for cell in row for p in cell)]:
        if not (root / rel).is_file():
            raise _fail(where, "images" if rel not in means.values() else "mean_faces",
                        f"{root / rel} does not exist")
    checksums = _checksums(spec, where)
    options = spec.get("source_image_options", {})
    if not isinstance(options, Mapping):
        raise _fail(where, "source_image_options", "expected an object of data.load_image "
                    "options (size, resize, alpha, background)")
    summary = dict(spec.get("description") or {})
    summary.setdefault("expressions", {e: p.name for e, p in zip(expressions, sources)})
    openface_dirs, stems = _openface(spec, where, root, expressions)
    values: dict[str, Any] = dict(
        path=root, kind=kind, source=source, expressions=expressions, targets=targets,
        alphas=alphas, labels=labels, image_paths=images, mean_paths=means,
        source_inputs=sources,
        source_sha256=tuple(checksums.get(_rel(p, root)) for p in sources),
        summary=summary, source_options=dict(options), checksums=checksums,
        openface_dirs=openface_dirs, openface_source_stems=stems,
        distances=_distances(spec, where, root, expressions))
    values.update(fields)
    return Study(**values)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return os.fspath(path)


def read_spec(path: fio.PathLike) -> dict[str, Any]:
    """The JSON object of a spec file; ValueError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study spec {path} does not exist; write one as "
                                "docs/study_format.md shows")
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StudySpecError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(spec, dict):
        raise StudySpecError(f"{path}: expected a JSON object, got {type(spec).__name__}")
    return spec


def load_study(path: fio.PathLike) -> Study:
    """Reads the spec file ``path``; its ``root`` is relative to the file's folder."""
    path = Path(path)
    spec = read_spec(path)
    root = spec.get("root", ".")
    if not isinstance(root, str):
        raise _fail(str(path), "root", f"expected a folder, got {root!r}")
    return study_from_spec(spec, path.parent / root, where=str(path), spec_path=path)


def write_spec(path: fio.PathLike, spec: Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Writes a spec atomically (refusing to replace a file unless ``overwrite``)."""
    path = Path(path)
    fio.atomic_write_json(path, dict(spec), overwrite=overwrite)
    return path
