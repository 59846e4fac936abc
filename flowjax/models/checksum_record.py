"""A folder's integrity record: ``checksums.json`` with the sha256 and size of its files.

Written once a folder's files are final, verified before they are read
(``flowjax.models.checkpoints`` keeps one in every model export and training step).
Nothing here knows about orbax; the record is plain JSON::

    {"format": "flowjax-checkpoint-checksums/1", "algorithm": "sha256",
     "files": {"<relative posix path>": {"sha256": "<hex>", "bytes": <int>}, ...}}

Files the record does not list are not checked (a stray ``.DS_Store`` is no
damage); every listed file must exist with its size and sha256. A record
written before it covered a checkpoint's JSON files lists only ``variables/``:
:func:`listed` tells a caller which files a record can vouch for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

from flowjax import io as fio

PathLike = Union[str, "os.PathLike[str]"]

RECORD_NAME = "checksums.json"
RECORD_FORMAT = "flowjax-checkpoint-checksums/1"


class ChecksumError(ValueError):
    """A folder does not match its record, or the record is unreadable; the message
    starts with the folder and names each damaged file."""


def write(directory: PathLike, covered: tuple[str, ...] = (), *, overwrite: bool = False) -> Path:
    """Records every file under ``directory`` (only its ``covered`` files and subfolders
    when given) in ``<directory>/checksums.json``, atomically; returns its path.

    ``overwrite=True`` replaces an existing record (verify it first: see
    ``flowjax.models.checkpoints.add_checksums``).
    """
    directory = Path(directory)
    roots = [directory / name for name in covered] or [directory]
    files = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            rel = path.relative_to(directory).as_posix()
            if rel != RECORD_NAME:
                files[rel] = {"sha256": fio.sha256_file(path), "bytes": path.stat().st_size}
    if not files:
        raise ValueError(f"{directory} holds no files to record")
    record_path = directory / RECORD_NAME
    fio.atomic_write_json(record_path, {"format": RECORD_FORMAT, "algorithm": "sha256",
                                        "files": files}, overwrite=overwrite)
    return record_path


def listed(directory: PathLike) -> frozenset[str] | None:
    """The relative paths ``<directory>/checksums.json`` lists; None when there is no record.

    Raises :class:`ChecksumError` for an unreadable record.
    """
    expected = _read(Path(directory))
    return None if expected is None else frozenset(expected)


def verify(directory: PathLike, only: tuple[str, ...] | None = None) -> bool:
    """True when every file the record lists matches it; False when there is no record.

    ``only`` checks just those of the listed files (a name the record does not
    list is skipped). Raises :class:`ChecksumError` naming each missing, resized
    or changed file (at most four, then a count), or the unreadable record.
    """
    directory = Path(directory)
    expected = _read(directory)
    if expected is None:
        return False
    if only is not None:
        expected = {rel: entry for rel, entry in expected.items() if rel in only}
    problems = []
    for rel, (sha256, size) in sorted(expected.items()):
        path = directory / rel
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{path} has {path.stat().st_size} bytes, {RECORD_NAME} "
                            f"records {size} (truncated or overwritten)")
        elif (actual := fio.sha256_file(path)) != sha256:
            problems.append(f"{path} has sha256 {actual}, {RECORD_NAME} records {sha256} "
                            "(its bytes changed)")
    if problems:
        more = f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        raise ChecksumError(f"{directory} is damaged: {'; '.join(problems[:4])}{more}")
    return True


def _read(directory: Path) -> dict[str, tuple[str, int]] | None:
    """``{relative path: (sha256, bytes)}`` of the record; None when there is none."""
    record_path = directory / RECORD_NAME
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        files = record["files"]
        if record.get("format") != RECORD_FORMAT or not isinstance(files, dict) or not files:
            raise ValueError(f"format {record.get('format')!r} with {type(files).__name__} files")
        expected = {rel: (entry["sha256"], int(entry["bytes"])) for rel, entry in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSON or layout
        raise ChecksumError(f"{directory} cannot be verified: {record_path} is damaged "
                            f"({type(e).__name__}: {e})") from e
    return expected
