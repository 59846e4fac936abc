"""Read a flowjax transfer run as a :class:`~flowjax.evaluation.datatypes.Study`, verified.

A run directory of ``experiments/transfer.py`` holds ``transfer.json`` (the
grid and every image's path; schema in ``docs/study_format.md``) and
``manifest.json`` (every output's sha256, every input's path and sha256).
:func:`transfer_spec` turns a run into a study spec (explicit tables plus the
sha256 of every file), and :func:`read_transfer_run` reads that spec through
:func:`flowjax.evaluation.study.study_from_spec`, the same code path as a
user's spec. What is verified (and refused):

* the manifest says ``complete`` and ``transfer.json`` has the sha256 it records;
* every path in ``transfer.json`` stays inside the run directory (no absolute
  path, no ``..``) and is one of the run's recorded outputs, or else is an
  input the run recorded with its sha256 (an external photo);
* every generated image, mean face and AU reference is checked against its
  recorded sha256 before scoring (:func:`flowjax.evaluation.pipeline.verify_files`),
  so a swapped PNG is refused, naming the file;
* inputs the run copied into itself (``inputs/...``) are read from this run
  directory, never from the recorded absolute path, so a copied run does not
  read the original run's files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from flowjax import io as fio
from flowjax.evaluation import study as study_spec
from flowjax.evaluation.datatypes import TRANSFER_RUN, Study
from flowjax.runs import run_dirs


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {path.parent} is not a finished transfer run directory "
            f"(no {what}). Give the workdir of experiments/transfer.py, or describe another "
            "study in a spec file (docs/study_format.md) and pass --config.study=SPEC.")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}); the {what} is corrupt") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _require(mapping: Mapping[str, Any], key: str, path: Path, kind: type) -> Any:
    if key not in mapping or not isinstance(mapping[key], kind):
        got = type(mapping[key]).__name__ if key in mapping else "nothing"
        raise ValueError(f"{path}: expected key {key!r} ({kind.__name__}), got {got}; this file "
                         "was not written by experiments/transfer.py (or an older version)")
    return mapping[key]


class _RunFiles:
    """The run's recorded outputs and inputs, and the rule for paths in transfer.json."""

    def __init__(self, run_dir: Path, manifest_path: Path, manifest: Mapping[str, Any]):
        self.run_dir, self.manifest_path = run_dir, manifest_path
        self.outputs = {o.get("path"): o.get("sha256") for o in manifest.get("outputs", [])
                        if isinstance(o, Mapping)}
        self.inputs = [x for x in manifest.get("inputs", []) if isinstance(x, Mapping)]

    def output(self, rel: Any, where: str) -> tuple[str, str]:
        """``(path for the spec, sha256)`` of a path ``transfer.json`` names."""
        if not isinstance(rel, str) or not rel:
            raise ValueError(f"{where}: expected a path, got {rel!r}")
        pure = PurePosixPath(rel)
        if pure.is_absolute() or Path(rel).is_absolute() or ".." in pure.parts:
            external = [x for x in self.inputs if x.get("path") == rel and x.get("sha256")]
            if not external:
                raise ValueError(
                    f"{where}: {rel!r} leaves the run directory {self.run_dir} and is not an "
                    f"input the run recorded with a checksum in {self.manifest_path}; refusing "
                    "to read it. Re-run the transfer, or describe the study in a spec file.")
            return rel, external[0]["sha256"]
        digest = self.outputs.get(pure.as_posix())
        if digest is None:
            raise ValueError(f"{where}: {rel!r} is not among the run's recorded outputs in "
                             f"{self.manifest_path}; the run directory was changed. Re-run "
                             "the transfer.")
        return pure.as_posix(), digest

    def input_in_run(self, entry: Mapping[str, Any]) -> str | None:
        """The run-relative path of an input the run copied into itself, else None."""
        parts = PurePosixPath(Path(entry["path"]).as_posix()).parts
        for i in range(len(parts) - 1, -1, -1):
            rel = PurePosixPath(*parts[i:]).as_posix()
            if parts[i] == "inputs" and rel in self.outputs:
                return rel
        return None


def _recorded_sources(files: _RunFiles, expressions: Mapping[str, str],
                      n_source: int) -> dict[str, tuple[str, str]]:
    """The source expressions' input files (and sha256) from the manifest's input list."""
    # The transfer records the source identity's images first, in load order.
    entries = files.inputs[:n_source]
    found = {}
    for e, file_name in expressions.items():
        match = [x for x in entries if Path(x.get("path", "")).name == file_name]
        if len(match) != 1 or not match[0].get("sha256"):
            raise ValueError(
                f"{files.manifest_path}: expected one input entry (with sha256) for source "
                f"image {file_name!r} of expression {e!r} among the source's {n_source} "
                f"inputs, found {len(match)}")
        inside = files.input_in_run(match[0])
        if inside is not None:  # read this run's copy, never the recorded absolute path
            found[e] = (inside, match[0]["sha256"])
            continue
        recorded = Path(match[0]["path"])
        if not recorded.is_file():
            raise FileNotFoundError(
                f"the source input image {recorded} recorded in {files.manifest_path} does not "
                "exist any more; the AU error is measured against it. Put the file back (it "
                f"must have sha256 {match[0]['sha256']}).")
        found[e] = (os.fspath(recorded), match[0]["sha256"])
    return found


def _synthetic_faces(manifest: Mapping[str, Any], files: _RunFiles) -> bool:
    """True when the run transferred flowjax.synthetic faces (it wrote their ground truth)."""
    data = (manifest.get("config") or {}).get("data") or {}
    own = bool(data.get("identities") or data.get("identity_map"))
    return "inputs/ground_truth.json" in files.outputs and not own


def transfer_spec(run_dir: fio.PathLike) -> dict[str, Any]:
    """The study spec of a finished transfer run (explicit tables, every sha256).

    Raises:
      FileNotFoundError / ValueError naming the file, for a missing or
      unfinished run, a missing key, a path that leaves the run directory or
      is not a recorded output, or a source input that is gone.
    """
    run_dir = Path(run_dir)
    summary_path, manifest_path = run_dir / "transfer.json", run_dir / run_dirs.MANIFEST_NAME
    summary = _read_json(summary_path, "transfer.json")
    manifest = _read_json(manifest_path, run_dirs.MANIFEST_NAME)
    if manifest.get("status") != "complete":
        raise ValueError(f"{manifest_path}: status is {manifest.get('status')!r}, not 'complete': "
                         "the transfer run did not finish; re-run it before evaluating")
    source = _require(summary, "source", summary_path, str)
    expressions = _require(summary, "expressions", summary_path, dict)
    targets = _require(summary, "targets", summary_path, list)
    alphas = _require(summary, "alphas", summary_path, list)
    labels = _require(summary, "alpha_labels", summary_path, list)
    images = _require(summary, "images", summary_path, dict)
    means = _require(summary, "means", summary_path, dict)
    counts = _require(summary, "identity_images", summary_path, dict)
    if len(alphas) != len(labels) or not alphas:
        raise ValueError(f"{summary_path}: {len(alphas)} alphas but {len(labels)} alpha_labels")
    files = _RunFiles(run_dir, manifest_path, manifest)
    recorded = files.outputs.get("transfer.json")
    if recorded is not None and fio.sha256_file(summary_path) != recorded:
        raise ValueError(f"{summary_path} changed since the run wrote it: sha256 "
                         f"{fio.sha256_file(summary_path)}, {manifest_path} records {recorded}. "
                         "Refusing to evaluate an edited run; re-run the transfer.")
    sha256: dict[str, str] = {}

    def checked(rel: Any, where: str) -> str:
        path, digest = files.output(rel, f"{summary_path} {where}")
        sha256[path] = digest
        return path

    table: dict[str, dict[str, dict[str, str]]] = {}
    for e in expressions:
        table[e] = {}
        for t in targets:
            try:
                row = {label: images[e][t][label] for label in labels}
            except (KeyError, TypeError):
                raise ValueError(f"{summary_path}: 'images' has no entry for expression {e!r}, "
                                 f"target {t!r} and every alpha label {labels}") from None
            table[e][t] = {k: checked(v, f"images[{e}][{t}][{k}]") for k, v in row.items()}
    for name in [source, *targets]:
        if name not in means:
            raise ValueError(f"{summary_path}: 'means' has no mean face of identity {name!r}")
    mean_faces = {n: checked(means[n], f"means[{n}]") for n in [source, *targets]}
    if "source_images" in summary:  # aligned photos: the aligned copies the transfer wrote
        written = _require(summary, "source_images", summary_path, dict)
        for e in expressions:
            if e not in written:
                raise ValueError(f"{summary_path}: 'source_images' has no image of expression "
                                 f"{e!r}; re-run the transfer")
        sources = {e: checked(written[e], f"source_images[{e}]") for e in expressions}
    else:
        found = _recorded_sources(files, expressions, int(counts.get(source, 0)))
        sources = {e: path for e, (path, _) in found.items()}
        sha256.update({path: digest for path, digest in found.values()})
    options = (manifest.get("extra") or {}).get("data_options") or {}
    return {
        "format": study_spec.FORMAT, "root": os.fspath(run_dir.resolve()),
        "source": source, "expressions": list(expressions), "targets": list(targets),
        "alphas": [float(a) for a in alphas], "alpha_labels": list(labels),
        "images": table, "mean_faces": mean_faces, "source_images": sources,
        "sha256": sha256,
        "source_image_options": {k: options[k] for k in ("size", "resize", "alpha",
                                                          "background") if k in options},
        "description": {"kind": TRANSFER_RUN, "method": summary.get("method"),
                        "space": summary.get("space"), "model": summary.get("model"),
                        "expressions": dict(expressions),
                        "synthetic_faces": _synthetic_faces(manifest, files)},
    }


def read_transfer_run(run_dir: fio.PathLike) -> Study:
    """Reads and checks ``transfer.json`` and ``manifest.json`` of a transfer run
    (see :func:`transfer_spec` for what is refused)."""
    run_dir = Path(run_dir)
    spec = transfer_spec(run_dir)
    summary = json.loads((run_dir / "transfer.json").read_text())
    manifest = json.loads((run_dir / run_dirs.MANIFEST_NAME).read_text())
    return study_spec.study_from_spec(
        spec, run_dir, where=os.fspath(run_dir / "transfer.json"), kind=TRANSFER_RUN,
        summary=summary, manifest=manifest,
        synthetic_faces=spec["description"]["synthetic_faces"])


def write_transfer_spec(run_dir: fio.PathLike, path: fio.PathLike, *,
                        overwrite: bool = False) -> Path:
    """Writes the spec of the transfer run ``run_dir`` to ``path`` (see :func:`transfer_spec`)."""
    return study_spec.write_spec(path, transfer_spec(run_dir), overwrite=overwrite)
