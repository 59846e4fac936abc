"""Files: checksums, atomic writes and JSON.

* **Atomic writes.** Every file is first written in full to a hidden temp file
  in the target's own folder (``.<name>.<random>.tmp``), flushed and fsynced,
  then put in place (``os.replace``; ``os.link`` when not overwriting, below).
  If anything fails the temp file is removed: a reader sees the old file or the
  complete new one, never a part.
  Writers serialise in memory first, so a serialisation error touches no file.
  Existing files are not replaced unless ``overwrite=True``: without it the
  temp file is hard-linked to the target (``os.link`` fails if the target
  exists, atomically), so of two writers racing for one name exactly one wins
  and the other gets ``FileExistsError``; a check-then-rename would let the
  second silently replace the first.

PNGs with provenance are :mod:`flowjax.io.png`'s, written through this module.
Run directories and their manifests (``create_run_dir``, ``RunDir``,
``Manifest``, ``check_workdir``, ``staging_dir``) are in ``flowjax.runs.run_dirs``,
which writes every file through this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_dir(path: PathLike) -> str:
    """Hex sha256 of a directory tree (e.g. an orbax checkpoint).

    The digest covers, for every regular file sorted by relative POSIX path,
    the line ``<relpath>\\0<file sha256>\\n``: it changes when a file's bytes,
    name or place change, and not with timestamps or permissions. Empty
    folders do not count. Symlinked folders raise (they would be silently
    skipped or could loop); symlinked files are hashed by content.
    """
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory; use sha256_file for files")
    lines = []
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames:
            if os.path.islink(os.path.join(folder, name)):
                raise ValueError(
                    f"{os.path.join(folder, name)} is a symlinked directory; sha256_dir "
                    "does not follow them. Replace it with a real copy."
                )
        for name in filenames:
            full = Path(folder, name)
            lines.append((full.relative_to(root).as_posix(), sha256_file(full)))
    digest = hashlib.sha256()
    for rel, file_hash in sorted(lines):
        digest.update(f"{rel}\0{file_hash}\n".encode())
    return digest.hexdigest()


def sha256_path(path: PathLike) -> str:
    """sha256_file for a file, sha256_dir for a directory."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"cannot checksum {p}: it does not exist")
    return sha256_dir(p) if p.is_dir() else sha256_file(p)


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows it.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, *, overwrite: bool = False) -> Iterator[IO[bytes]]:
    """Yields a binary file whose content appears at ``path`` only on success.

    On any exception inside the block the temp file is removed and ``path``
    is left as it was. Without ``overwrite``, an existing ``path`` raises
    ``FileExistsError`` before the block (a quick answer) and again, atomically,
    when the file is put in place (a file created meanwhile by another writer
    is kept; this one's bytes are dropped).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    if path.exists() and not overwrite:
        raise _exists(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide permissions (mkstemp forces 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _create_from(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


# errnos of a filesystem without hard links (FAT, some FUSE and network mounts)
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK,
             errno.EXDEV}


def _exists(path: Path) -> FileExistsError:
    return FileExistsError(f"{path} already exists; pass overwrite=True to replace it")


def _create_from(tmp: Path, path: Path) -> None:
    """Moves the complete ``tmp`` to ``path`` only if ``path`` does not exist, atomically."""
    try:
        os.link(tmp, path)  # fails with FileExistsError if path exists: the atomic check
    except FileExistsError:
        raise _exists(path) from None
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
        # No hard links here: claim the name with O_EXCL (atomic on local filesystems), then
        # rename over the empty claim; a reader may see the empty file for that moment.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise _exists(path) from None
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)  # our empty claim
            raise
        return
    os.unlink(tmp)


def atomic_write_bytes(path: PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_open(path, overwrite=overwrite) as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str, *, overwrite: bool = False) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically (newlines kept as given)."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "to_dict"):  # ml_collections.ConfigDict, ImageRecord, LoadOptions
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable: {obj!r}")


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """JSON text; also handles paths, numpy values, dataclasses and ConfigDicts."""
    return json.dumps(obj, indent=indent, default=_json_default, ensure_ascii=False)


def atomic_write_json(path: PathLike, obj: Any, *, overwrite: bool = False) -> None:
    """Writes ``obj`` as indented JSON atomically (serialised before any write)."""
    atomic_write_text(path, to_json(obj) + "\n", overwrite=overwrite)
