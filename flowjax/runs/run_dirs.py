"""Run directories: where a run writes its outputs, and the manifest that records them.

* **Run directories.** ``create_run_dir`` never touches a non-empty directory
  unless ``overwrite=True``, and even then only one it created itself (it holds
  the marker file ``.flowjax-run``). With ``overwrite=True`` the old run is
  renamed to ``<workdir>.replaced-<time>`` and deleted only when the new run
  commits; if the new run fails, the old one is still there under that name.
  :func:`check_workdir` runs the same checks before any work, and more: the
  folder (or the one it will be created in) must be writable, and with
  ``overwrite=True`` no input may lie inside the directory to be replaced, nor any
  file an input folder leads to (symbolic links resolved).
  :func:`staging_dir` is the run's scratch folder, beside the workdir
  (``.<workdir>.staging-<pid>-<random>``) rather than in ``/tmp``: removed on
  exit, and a killed run's leftover is removed by the next run to that workdir.
* **Manifest.** A ``RunDir`` records each file it writes (path, sha256, size)
  in its :class:`Manifest`, with the config, package versions, platform, model
  checkpoint, inputs and timings; ``commit()`` (or leaving its ``with`` block)
  writes ``manifest.json`` atomically. A run directory without
  ``manifest.json`` did not finish; one whose manifest says
  ``"status": "failed"`` raised.
* **Write errors.** An ``OSError`` that names no file (``[Errno 28] No space
  left on device`` from a write) is raised again naming the file it was
  writing. When the run fails and its failed manifest cannot be written either
  (the disk is still full), the run's own error is raised, with the manifest's
  as a note: the first error is the one to fix.

Every file goes through ``flowjax.io``'s atomic writers, and PNGs through its
provenance writer (labelled synthetic). ``flowjax.runs`` builds the experiment
scaffold on top of this module.

Longer than 400 lines because a run directory and its manifest share one lifecycle
(check, stage, write, commit or fail), and the manifest records what the directory
writes.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import importlib.metadata
import io
import json
import logging
import os
import platform
import secrets
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from flowjax import __version__
from flowjax.io import (
    PathLike,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    encode_png,
    sha256_bytes,
    sha256_file,
    sha256_path,
    to_json,
)

MANIFEST_NAME = "manifest.json"
RUN_MARKER = ".flowjax-run"
VERSIONED_DISTRIBUTIONS = (
    "jax",
    "jaxlib",
    "flax",
    "numpy",
    "optax",
    "orbax-checkpoint",
    "torch",
    "facenet-pytorch",
    "pillow",
    "ml-collections",
)


logger = logging.getLogger(__name__)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------


def package_versions() -> dict[str, str | None]:
    """Installed versions of flowjax's key dependencies (None if absent).

    Read from package metadata, so nothing (torch in particular) is imported.
    """
    versions: dict[str, str | None] = {"flowjax": __version__}
    for name in VERSIONED_DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def platform_info() -> dict[str, Any]:
    """Python, OS and, when jax is already imported, its backend and devices."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    jax = sys.modules.get("jax")
    if jax is not None:
        with contextlib.suppress(Exception):  # a broken backend must not lose the manifest
            info["jax_backend"] = jax.default_backend()
            info["jax_devices"] = [d.device_kind for d in jax.devices()]
    return info


@contextlib.contextmanager
def timed(timings: dict[str, dict[str, float]], name: str) -> Iterator[None]:
    """Adds the block's wall time to ``timings[name]`` (``seconds``, ``calls``), also if it
    raises: the timings a manifest records."""
    start = time.perf_counter()
    try:
        yield
    finally:
        entry = timings.setdefault(name, {"seconds": 0.0, "calls": 0})
        entry["seconds"] += time.perf_counter() - start
        entry["calls"] += 1


class Manifest:
    """Everything needed to say how a run's outputs were made.

    Config, versions, model checkpoint and checksum, inputs with sha256,
    outputs with sha256 and size, timings, free-form ``extra`` sections.
    Values are checked for JSON-serialisability when added, so a bad value
    fails early rather than when ``manifest.json`` is written.
    """

    def __init__(self) -> None:
        self.created_utc = _utc_now()
        self.config: dict[str, Any] = {}
        self.model: dict[str, Any] | None = None
        self.inputs: list[dict[str, Any]] = []
        self.outputs: dict[str, dict[str, Any]] = {}
        self.timings: dict[str, dict[str, float]] = {}
        self.extra: dict[str, Any] = {}

    @staticmethod
    def _jsonable(value: Any) -> Any:
        return json.loads(to_json(value, indent=None))

    def set_config(self, config: Any) -> None:
        """Records the run's config (a dict or ConfigDict)."""
        self.config = self._jsonable(config)

    def set_model(self, checkpoint: PathLike, *, sha256: str | None = None, **details: Any) -> None:
        """Records the checkpoint path and its checksum (computed if not given)."""
        digest = sha256 or sha256_path(checkpoint)
        entry = {"checkpoint": os.fspath(checkpoint), "sha256": digest, **details}
        self.model = self._jsonable(entry)

    def add_input(self, path: PathLike, *, sha256: str | None = None, **details: Any) -> None:
        """Records one input file (hashed here if ``sha256`` is not given)."""
        entry = {"path": os.fspath(path), "sha256": sha256 or sha256_file(path), **details}
        self.add_inputs([entry])

    def add_inputs(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Records input entries with at least ``path`` and ``sha256``.

        ``ImageSet.manifest_entries()`` gives these; exact repeats are skipped.
        """
        for entry in entries:
            if "path" not in entry or "sha256" not in entry:
                raise ValueError(
                    f"an input entry needs 'path' and 'sha256', got keys {sorted(entry)}"
                )
            entry = self._jsonable(dict(entry))
            if entry not in self.inputs:
                self.inputs.append(entry)

    def add_output(self, relpath: str, *, sha256: str, size_bytes: int) -> None:
        """Records one output (RunDir calls this for every file it writes)."""
        self.outputs[relpath] = {"path": relpath, "sha256": sha256, "size_bytes": int(size_bytes)}

    def set_extra(self, key: str, value: Any) -> None:
        """Records a free-form section, e.g. the data loading options."""
        self.extra[key] = self._jsonable(value)

    def timed(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Adds the block's wall time to ``timings[name]`` (also if it raises)."""
        return timed(self.timings, name)

    def to_dict(self, *, status: str = "complete", error: str | None = None) -> dict[str, Any]:
        """The manifest as written to ``manifest.json``."""
        result: dict[str, Any] = {
            "format": "flowjax-manifest/1",
            "status": status,
            "created_utc": self.created_utc,
            "finished_utc": _utc_now(),
            "argv": list(sys.argv),
            "versions": package_versions(),
            "platform": platform_info(),
            "config": self.config,
            "model": self.model,
            "inputs": self.inputs,
            "outputs": list(self.outputs.values()),
            "timings": {k: {"seconds": round(v["seconds"], 6), "calls": v["calls"]}
                        for k, v in self.timings.items()},
            "extra": self.extra,
        }
        if error is not None:
            result["error"] = error
        return result


# --------------------------------------------------------------------------
# Run directories
# --------------------------------------------------------------------------


class RunDir:
    """A run's output folder; every file written through it is in its manifest.

    Use as ``with create_run_dir(workdir) as run: ...``: a normal exit commits
    (writes ``manifest.json``), an exception writes a manifest with
    ``"status": "failed"`` and the error, then re-raises.
    """

    def __init__(self, path: Path, replaced: Path | None = None) -> None:
        self.path = path
        self.manifest = Manifest()
        self._replaced = replaced
        self._committed = False

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._committed:
            return
        if exc is None:
            self.commit()
            return
        try:
            self._write_manifest(status="failed", error=f"{type(exc).__name__}: {exc}")
        except Exception as second:  # noqa: BLE001 - the run's own error is the one to raise
            # Raising here would replace ``exc``; it is re-raised as it is, noted.
            note = (f"and marking the run failed did not work either: {type(second).__name__}: "
                    f"{second}; {self.path} has no {MANIFEST_NAME}")
            exc.add_note(note)
            logger.error("%s", note)

    def path_for(self, relpath: str) -> Path:
        """The absolute path of ``relpath`` inside the run, parents created.

        For tools that write files themselves (orbax, matplotlib); follow with
        ``record_output``.
        """
        self._check_open()
        rel = PurePosixPath(relpath)
        if rel.is_absolute() or not rel.parts or ".." in rel.parts or "\\" in relpath:
            raise ValueError(
                f"output path {relpath!r} must be relative, inside the run directory "
                f"{self.path}, without '..'; e.g. 'images/0001.png'"
            )
        if rel.as_posix() in (MANIFEST_NAME, RUN_MARKER):
            raise ValueError(f"{relpath!r} is reserved for the run directory's own bookkeeping")
        target = self.path.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _write(self, relpath: str, data: bytes) -> Path:
        target = self.path_for(relpath)
        with _naming_write_errors(target):
            atomic_write_bytes(target, data)
        self.manifest.add_output(
            PurePosixPath(relpath).as_posix(), sha256=sha256_bytes(data), size_bytes=len(data)
        )
        return target

    def write_bytes(self, relpath: str, data: bytes) -> Path:
        """Writes raw bytes (e.g. a figure saved to a BytesIO)."""
        return self._write(relpath, bytes(data))

    def write_text(self, relpath: str, text: str) -> Path:
        """Writes UTF-8 text (markdown reports, logs)."""
        return self._write(relpath, text.encode("utf-8"))

    def write_json(self, relpath: str, obj: Any) -> Path:
        """Writes indented JSON (see ``to_json`` for the types handled)."""
        return self._write(relpath, (to_json(obj) + "\n").encode("utf-8"))

    def write_csv(
        self,
        relpath: str,
        rows: Iterable[Sequence[Any] | Mapping[str, Any]],
        header: Sequence[str] | None = None,
    ) -> Path:
        """Writes a CSV; rows are sequences, or mappings (header = first row's keys)."""
        rows = list(rows)
        buffer = io.StringIO()
        if rows and isinstance(rows[0], Mapping):
            fields = list(header) if header is not None else list(rows[0])
            writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)  # type: ignore[arg-type]
        else:
            plain = csv.writer(buffer, lineterminator="\n")
            if header is not None:
                plain.writerow(header)
            plain.writerows(rows)  # type: ignore[arg-type]
        return self._write(relpath, buffer.getvalue().encode("utf-8"))

    def write_png(
        self,
        relpath: str,
        image: Any,
        provenance: Mapping[str, Any] | None = None,
        *,
        generated: bool = True,
    ) -> Path:
        """Writes a PNG labelled synthetic (unless ``generated=False``) with provenance."""
        return self._write(relpath, encode_png(image, provenance, generated=generated))

    def record_output(self, relpath: str) -> None:
        """Records a file or directory written by another tool, with its checksum."""
        target = self.path_for(relpath)
        if not target.exists():
            raise FileNotFoundError(f"cannot record output {target}: it does not exist")
        size = (
            sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            if target.is_dir()
            else target.stat().st_size
        )
        self.manifest.add_output(
            PurePosixPath(relpath).as_posix(), sha256=sha256_path(target), size_bytes=size
        )

    def timed(self, name: str) -> contextlib.AbstractContextManager[None]:
        """``with run.timed("decode"): ...`` records the block's wall time."""
        return self.manifest.timed(name)

    def commit(self) -> Path:
        """Writes ``manifest.json``, then deletes the run this one replaced."""
        self._check_open()
        target = self._write_manifest(status="complete")
        if self._replaced is not None:
            shutil.rmtree(self._replaced)
        return target

    def _write_manifest(self, *, status: str, error: str | None = None) -> Path:
        manifest = self.manifest.to_dict(status=status, error=error)
        if self._replaced is not None:
            manifest["replaced_previous_run"] = (
                "deleted" if status == "complete" else f"kept at {self._replaced}"
            )
        target = self.path / MANIFEST_NAME
        with _naming_write_errors(target):
            atomic_write_json(target, manifest)
        self._committed = True
        return target

    def _check_open(self) -> None:
        if self._committed:
            raise RuntimeError(f"run directory {self.path} is already committed; start a new run")


@contextlib.contextmanager
def _naming_write_errors(path: Path) -> Iterator[None]:
    """Raises an ``OSError`` that names no file (a write's ``ENOSPC``, ``EIO``, ``EDQUOT``)
    again as the same kind of error naming ``path``; one that names a file passes as is."""
    try:
        yield
    except OSError as err:
        if err.errno is None or err.filename is not None:
            raise
        reason = err.strerror or os.strerror(err.errno)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            reason += " (free space on that disk, or choose a workdir on another)"
        # "[Errno 28] No space left on device (...): '<path>'", the form Python's own has
        raise OSError(err.errno, reason, os.fspath(path)) from err


OVERWRITE_HINT = "--config.overwrite=True (overwrite=True from Python)"


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_writable(folder: Path, workdir: Path) -> None:
    """Creates and removes a probe file in ``folder``: the only test that also holds for
    root, read-only mounts and ACLs (``os.access`` answers for the permission bits)."""
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot create the run directory {workdir}: {folder} is a "
                                 "file, not a folder; choose another workdir")
    probe = folder / f".flowjax-write-probe-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(
            f"cannot write in {folder} ({err.strerror}), so the run directory {workdir} could "
            "not be written; choose a writable workdir or fix the folder's permissions"
        ) from None


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False


def _reached_inside(input_path: Path, real_run: str) -> tuple[Path, str] | None:
    """The first thing below the input folder ``input_path`` whose real path lies in
    ``real_run`` (the run directory, resolved), with that real path; None if nothing does.

    Every file and folder below it counts, symbolic links to files and folders followed
    (each real folder walked once, so link loops end): the run reads an identity folder's
    files, not the folder's own path. The run directory itself, where it is an ordinary
    subfolder of an input folder (a data folder that also holds its runs), is not walked:
    only something that resolves into it is an input that overwrite would delete.
    """
    in_run = real_run.rstrip(os.sep) + os.sep
    seen: set[str] = set()
    stack = [(input_path, os.path.realpath(input_path))]
    while stack:
        shown, real_folder = stack.pop()
        if real_folder in seen:
            continue
        seen.add(real_folder)
        try:
            entries = sorted(os.scandir(real_folder), key=lambda e: e.name)
        except OSError:  # unreadable or not a folder: the run's own reading reports it
            continue
        folders = []
        for entry in entries:
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
            elif entry.path == real_run:  # an ordinary subfolder of a real folder
                continue
            else:
                real = entry.path  # a real folder's ordinary entry is real
            if real == real_run or real.startswith(in_run):
                return shown / entry.name, real
            if entry.is_dir():  # follows the link
                folders.append((shown / entry.name, real))
        stack.extend(reversed(folders))  # name order, depth first
    return None


def check_workdir(
    workdir: PathLike, overwrite: bool = False, inputs: Mapping[str, PathLike] | None = None
) -> None:
    """Raises now, before any work, if ``create_run_dir(workdir, overwrite)`` would refuse
    the folder or could not write it, or if replacing it would delete an input.

    ``inputs`` maps a name (e.g. the config field) to every input, model and reference
    path the run will read; with ``overwrite=True`` none may lie inside the directory
    that would be replaced, nor may anything below an input folder (its files, through
    symbolic links to files or folders): all are resolved first, the workdir too.
    """
    path = Path(workdir)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"workdir {path} exists and is a file; choose another workdir")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"run directory {path} already exists and is not empty; pass "
                f"{OVERWRITE_HINT} to replace it, or choose another workdir"
            )
        if not (path / RUN_MARKER).is_file():
            raise FileExistsError(
                f"{path} is not empty and was not created by flowjax (no {RUN_MARKER} "
                "file); refusing to replace it even with overwrite=True. Remove it "
                "yourself or choose another workdir."
            )
        real_run = os.path.realpath(path)
        shown_run = f"{path} (really {real_run})" if path.is_symlink() else str(path)
        for name, input_path in (inputs or {}).items():
            if _inside(Path(input_path), path):
                raise ValueError(
                    f"{name} = {os.fspath(input_path)} lies inside the run directory "
                    f"{shown_run}, which overwrite=True would replace (deleting it); move the "
                    "input out of it, or choose another workdir"
                )
            reached = _reached_inside(Path(input_path), real_run)
            if reached is not None:
                raise ValueError(
                    f"{name} = {os.fspath(input_path)} reads {reached[0]}, which resolves to "
                    f"{reached[1]} inside the run directory {shown_run}; overwrite=True would "
                    f"delete it with the old run. Copy the inputs out of {path} (cp -rL "
                    "copies what the links point to), or choose another workdir"
                )
        # The old run is renamed aside and the new one created in its parent folder.
        _check_writable(path.absolute().parent, path)
        return
    _check_writable(_nearest_existing(path.absolute()), path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextlib.contextmanager
def staging_dir(workdir: PathLike) -> Iterator[Path]:
    """A scratch folder beside ``workdir`` (``.<name>.staging-<pid>-<random>``), removed on exit.

    Beside the run, not in ``/tmp``: a run killed outright (SIGKILL) leaves it
    where the user looks, and the next run to the same workdir removes every
    such folder whose process is gone.
    """
    if _STOPPING:  # terminated, but the SystemExit was swallowed (see stop_staging)
        raise SystemExit(_STOPPING[0])
    absolute = Path(workdir).absolute()
    parent = absolute.parent
    parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{absolute.name}.staging-"
    for stale in parent.glob(f"{prefix}*"):
        pid = stale.name[len(prefix):].split("-", 1)[0]
        if stale.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    folder = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(3)}"
    folder.mkdir()
    _ACTIVE_STAGING.add(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _ACTIVE_STAGING.discard(folder)


_ACTIVE_STAGING: set[Path] = set()
_STOPPING: list[int] = []  # the exit code, once the process is terminating


def remove_staging_dirs() -> None:
    """Removes this process's staging folders now (for a signal handler about to exit)."""
    for folder in list(_ACTIVE_STAGING):
        shutil.rmtree(folder, ignore_errors=True)


def stop_staging(code: int) -> None:
    """For a process told to stop: removes its staging folders and refuses new ones
    (``SystemExit(code)`` where one would be made). Python swallows an exception a signal
    handler raises while certain callbacks run (a gc callback of jax's): the run then goes
    on, and must not stage a folder the process's forced exit would leave behind."""
    if not _STOPPING:
        _STOPPING.append(code)
    remove_staging_dirs()


def create_run_dir(workdir: PathLike, overwrite: bool = False) -> RunDir:
    """Creates (or, with ``overwrite=True``, replaces) a run directory.

    An existing empty folder is used as is. A non-empty one raises
    FileExistsError unless ``overwrite=True`` and it holds the ``.flowjax-run``
    marker; then it is renamed aside and deleted when the new run commits.
    """
    path = Path(workdir)
    replaced: Path | None = None
    check_workdir(path, overwrite)
    # A workdir given as a symbolic link names the run it points to: that folder is
    # replaced and the link kept (renaming the link would leave the old run in place).
    # absolute(): with_name needs a real last component, not ".".
    real = path.resolve() if path.is_symlink() else path.absolute()
    if path.is_dir() and any(path.iterdir()):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        replaced = real.with_name(f"{real.name}.replaced-{stamp}-{secrets.token_hex(2)}")
        os.rename(real, replaced)
    real.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / RUN_MARKER, f"flowjax run directory, created {_utc_now()}\n",
                      overwrite=True)
    return RunDir(path, replaced)
