"""OpenAI's CelebA-HQ Glow in one command: download, verify, convert, check.

    python -m tools.fetch_model openai-celeba256 --out=weights/celeba256
        [--url=MIRROR_BASE_URL | --from=DIR] [--download_dir=DIR]
        [--allow_downsampled_image] [--retries=5] [--timeout=60] [--spec=FILE.json]

1. **Download** each file of the model's table (:data:`MODELS`: OpenAI's
   ``graph_unoptimized.pb`` and ``z_manipulate.npy``) from the table's base URL,
   or ``--url``, a mirror with the same relative paths, into ``--download_dir``
   (default ``~/.cache/flowjax/downloads/<model>``). A transfer goes to
   ``<name>.part`` (with ``<name>.part.json``: its URL, size and validator) and
   resumes with an HTTP ``Range`` request, after a dropped connection (up to
   ``--retries`` times) or in a later run; a server that answers a range with
   the whole file (or an ``If-Range`` validator that changed) starts it again.
   Progress: ``flowjax.io.console.progress`` (a bar on a terminal, a line every
   10 s in a log). ``--from=DIR`` takes the files, by name, from a folder instead.
2. **Verify** each file against the table before it is used: its size (the
   server's declared size is checked before the transfer) and, where the table
   pins one, its sha256. A mismatch stops with an error naming the file, the
   expected and the found value; a download that fails is deleted. The
   attribute vectors are loaded with ``np.load(allow_pickle=False)`` and must
   be float32 ``[40, D]`` (``D`` the model's flat size), finite.
3. **Convert** the graph with ``weights/convert_openai.py``'s ``convert_file``
   (the model from the table's config; random ops allowed as the table says,
   ``--allow_downsampled_image`` as the converter's flag).
4. **Check** the converted model: scikit-image's astronaut, aligned with dlib
   as ``flowjax.faces`` does (OpenAI's demo alignment), encodes and decodes
   back to itself exactly at the model's bits, with a finite bits/dim.

Everything is written in a staging folder beside ``--out`` and renamed into
place only when all checks passed, so ``--out`` is either absent or complete:
the checkpoint (``flowjax.models.checkpoints.save_model``'s layout, loadable
with ``load_model``), the attribute vectors as published, and
``fetch_manifest.json`` (each file's source, size, sha256 and whether the table
pinned it; the conversion's counts and warnings; the check's results).

No sha256 of OpenAI's files is known to this project, so their table pins
sizes only (bounds derived from their contents); the sha256 found is printed
and recorded. ``--spec=FILE.json`` describes another model (a mirror with other
names, a small test model: :meth:`ModelSpec.from_json`); it cannot take a
built-in model's name, so the defaults cannot be replaced by accident.

Longer than 400 lines because the table, the resumable transfer and the
pipeline that verifies, converts and checks are one command, pinned end to end
by tests/test_fetch_model.py against a local HTTP server.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.client
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import IO, Any

from flowjax import __version__
from flowjax import io as fio
from flowjax.runs import run_dirs

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DOWNLOADS = Path.home() / ".cache" / "flowjax" / "downloads"
MANIFEST_NAME = "fetch_manifest.json"
CHUNK_BYTES = 1 << 20
MB = 1_000_000
ROLES = ("graph", "attributes")
ALIGNMENTS = ("dlib", "resize")
CONVERTER_ALLOW = ("random_uniform", "downsampled_image")  # convert_openai.ALLOWABLE
ELSEWHERE = ("pass --url=BASE_URL of a mirror, or download the files yourself (weights/README.md, "
             "'Fetch by hand') and pass --from=DIR")

# What is known about OpenAI's files (weights/README.md, GLOW_SPEC.md §4.3, §5, §7).
OPENAI_BASE_URL = "https://openaipublic.azureedge.net/glow-demo/"
OPENAI_WEIGHTS = 175_099_620  # float32 values of configs/celeba256.py's model
OPENAI_FLAT = 196_608         # 256 * 256 * 3: the flat eps
PROTOBUF_LIMIT = 2**31 - 1    # a larger GraphDef cannot be parsed


class FetchError(ValueError):
    """A file or a check failed; the message names the file and the values."""


class _Interrupted(Exception):
    """The transfer stopped before its end; the ``.part`` file keeps what arrived."""


@dataclasses.dataclass(frozen=True)
class PublishedFile:
    """One published file: where it is and what it must be.

    ``name`` is its name in the download folder, in ``--from=DIR`` and in
    ``--out``; ``path`` is relative to the model's base URL (or ``--url``);
    ``role`` is "graph" (converted) or "attributes" (checked, copied into
    ``--out``). Its size must lie in ``[min_bytes, max_bytes]`` (equal when the
    exact size is known; ``about`` says where the bounds come from) and its
    sha256 must be ``sha256`` unless that is None (not known: recorded only).
    """

    name: str
    path: str
    role: str
    min_bytes: int
    max_bytes: int
    sha256: str | None = None
    about: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.name or "/" in self.name or self.name.startswith("."):
            problems.append(f"name {self.name!r} must be a plain file name")
        if self.role not in ROLES:
            problems.append(f"role {self.role!r} must be one of {ROLES}")
        if not 0 < self.min_bytes <= self.max_bytes:
            problems.append(f"sizes must satisfy 0 < min_bytes <= max_bytes, got "
                            f"{self.min_bytes}, {self.max_bytes}")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            problems.append(f"sha256 {self.sha256!r} must be 64 lowercase hex digits or null")
        if problems:
            raise ValueError(f"published file {self.name!r}: " + "; ".join(problems))

    def size_text(self) -> str:
        if self.min_bytes == self.max_bytes:
            return f"{self.min_bytes:,} bytes"
        return f"between {self.min_bytes:,} and {self.max_bytes:,} bytes"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A published model: its files, the model config the graph holds, how to check it.

    ``config`` is a config file (relative to the repository) whose ``.model``
    is updated with ``model``; ``allow`` names the converter's refusals to
    downgrade (:data:`CONVERTER_ALLOW`); ``alignment`` brings the check photo to
    the model's size: "dlib" (OpenAI's demo alignment) or "resize" (a plain
    resize, for models not trained on aligned faces).
    """

    name: str
    base_url: str
    files: tuple[PublishedFile, ...]
    config: str = "configs/celeba256.py"
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    allow: tuple[str, ...] = ()
    alignment: str = "dlib"

    def __post_init__(self) -> None:
        problems = []
        roles = [f.role for f in self.files]
        if roles.count("graph") != 1:
            problems.append(f"needs exactly one file of role 'graph', got {roles.count('graph')}")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            problems.append(f"file names repeat: {names}")
        if not set(self.allow) <= set(CONVERTER_ALLOW):
            problems.append(f"allow may only hold {CONVERTER_ALLOW}, got {list(self.allow)}")
        if self.alignment not in ALIGNMENTS:
            problems.append(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if problems:
            raise ValueError(f"model spec {self.name!r}: " + "; ".join(problems))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSpec:
        """From ``{"name", "base_url", "files": [{"name", "path", "role", "min_bytes",
        "max_bytes" | "bytes", "sha256", "about"}, ...], "config", "model", "allow",
        "alignment"}``; unknown keys are errors."""
        data = dict(data)
        _no_unknown(data, {f.name for f in dataclasses.fields(cls)}, "model spec")
        files = []
        for entry in data.pop("files", []):
            entry = dict(entry)
            if "bytes" in entry:  # an exact size
                entry["min_bytes"] = entry["max_bytes"] = entry.pop("bytes")
            _no_unknown(entry, {f.name for f in dataclasses.fields(PublishedFile)}, "file")
            files.append(PublishedFile(**entry))
        return cls(files=tuple(files), allow=tuple(data.pop("allow", ())), **data)

    def graph(self) -> PublishedFile:
        return next(f for f in self.files if f.role == "graph")


def _no_unknown(data: Mapping[str, Any], known: Collection[str], what: str) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; known: {sorted(known)}")


MODELS: dict[str, ModelSpec] = {
    "openai-celeba256": ModelSpec(
        name="openai-celeba256",
        base_url=OPENAI_BASE_URL,
        files=(
            PublishedFile(
                "graph_unoptimized.pb", "large3/graph_unoptimized.pb", "graph",
                min_bytes=4 * OPENAI_WEIGHTS, max_bytes=PROTOBUF_LIMIT,
                about="its 175,099,620 float32 weights alone take 700,398,480 bytes, and "
                      "protobuf cannot parse more than 2 GiB; the exact size was never measured "
                      "here (about 700 MB expected)"),
            PublishedFile(
                "z_manipulate.npy", "z_manipulate.npy", "attributes",
                min_bytes=4 * 40 * OPENAI_FLAT + 16, max_bytes=4 * 40 * OPENAI_FLAT + 4096,
                about="float32 [40, 196608] is 31,457,280 bytes plus the .npy header (80 or "
                      "128 bytes, by numpy's version); the exact size was never measured here"),
        ),
        config="configs/celeba256.py",
        # The demo graph samples its dequantisation noise (model/random_uniform,
        # GLOW_SPEC §4.4.3); flowjax takes the noise explicitly.
        allow=("random_uniform",),
        alignment="dlib",
    ),
}


# ---------------------------------------------------------------------------
# Files: verify, download (resumable), or take from a folder
# ---------------------------------------------------------------------------


def verify(file: PublishedFile, path: Path, where: str) -> str:
    """Checks ``path``'s size and (when pinned) sha256 against ``file``; returns its sha256.

    ``where`` says what ``path`` is (a download, a local copy) in the error.
    """
    size = path.stat().st_size
    if not file.min_bytes <= size <= file.max_bytes:
        about = f" ({file.about})" if file.about else ""
        raise FetchError(f"{file.name}: {where} has {size:,} bytes, expected {file.size_text()}"
                         f"{about}")
    if size > 100 * MB:
        with fio.stage(f"sha256 of {file.name} ({size / MB:,.0f} MB)"):
            digest = fio.sha256_file(path)
    else:
        digest = fio.sha256_file(path)
    if file.sha256 is not None and digest != file.sha256:
        raise FetchError(f"{file.name}: {where} has sha256 {digest}, expected {file.sha256}")
    return digest


def file_url(base_url: str, file: PublishedFile) -> str:
    return base_url.rstrip("/") + "/" + file.path.lstrip("/")


def download(file: PublishedFile, url: str, folder: Path, *, retries: int = 5,
             timeout: float = 60.0, backoff_s: float = 1.0,
             stream: IO[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """``folder/<name>``, downloaded (or resumed) from ``url`` and verified.

    Returns the path and a record (URL, attempts, the byte offsets resumed
    from, sha256). A verified file already in ``folder`` is reused; a
    ``.part`` file is continued with a Range request. Raises :class:`FetchError`
    when the file is wrong (the download is deleted) or the transfer stopped
    ``retries + 1`` times (the ``.part`` file is kept for the next run).
    """
    stream = stream if stream is not None else sys.stderr
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / file.name
    if dest.is_file():
        where = f"{dest} (downloaded before; delete it to download it again)"
        return dest, {"url": url, "reused": str(dest), "sha256": verify(file, dest, where)}
    part, state = folder / f"{file.name}.part", folder / f"{file.name}.part.json"
    record: dict[str, Any] = {"url": url, "attempts": 0, "resumed_from": []}
    while True:
        record["attempts"] += 1
        try:
            _transfer(file, url, part, state, timeout, stream, record)
            break
        except _Interrupted as why:
            done = part.stat().st_size if part.is_file() else 0
            if record["attempts"] > retries:
                raise FetchError(
                    f"{file.name}: the download from {url} stopped at {done:,} bytes ({why}), "
                    f"{record['attempts']} attempt(s); run the same command again to resume "
                    f"from {part}") from None
            print(f"{file.name}: {why}; resuming from byte {done:,} "
                  f"(retry {record['attempts']} of {retries})", file=stream, flush=True)
            time.sleep(min(backoff_s * 2 ** (record["attempts"] - 1), 30.0))
    try:
        record["sha256"] = verify(file, part, f"the download from {url}")
    except FetchError as error:
        part.unlink(missing_ok=True)
        state.unlink(missing_ok=True)
        raise FetchError(f"{error}; the download was deleted") from None
    os.replace(part, dest)
    state.unlink(missing_ok=True)
    return dest, record


def _transfer(file: PublishedFile, url: str, part: Path, state_path: Path, timeout: float,
              stream: IO[str], record: dict[str, Any]) -> None:
    """One HTTP request: the whole file, or the rest of ``part``; raises
    :class:`_Interrupted` when it ends early (``part`` keeps what arrived)."""
    offset = part.stat().st_size if part.is_file() else 0
    state = _read_state(state_path)
    if offset and state.get("url") != url:
        offset = 0  # bytes from another URL (or of unknown origin) are not continued
    headers = {"User-Agent": f"flowjax/{__version__} (tools/fetch_model.py)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state.get("validator"):
            headers["If-Range"] = state["validator"]  # changed file: the server sends it whole
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the range starts at or past the end
            total = _content_range(error.headers.get("Content-Range"), unsatisfied=True)[1]
            if total == offset and state.get("total") == total:
                return  # all of it arrived before (a run stopped before verifying it)
            part.unlink()
            raise _Interrupted("the server cannot continue the saved part (HTTP 416); "
                               "starting again") from None
        raise FetchError(f"{file.name}: HTTP {error.code} {error.reason} from {url}; "
                         f"{ELSEWHERE}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"{file.name}: cannot reach {url} ({reason}); {ELSEWHERE}") from None
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"the server resumed from byte {start}, not {offset}; "
                                   "starting again")
        else:  # 200: the whole file (no range support, or the file changed)
            if offset:
                print(f"{file.name}: the server sent the whole file, not the rest; starting "
                      "again", file=stream, flush=True)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and not file.min_bytes <= total <= file.max_bytes:
            part.unlink(missing_ok=True)
            state_path.unlink(missing_ok=True)
            raise FetchError(f"{file.name}: {url} has {total:,} bytes (as the server declares), "
                             f"expected {file.size_text()}; nothing was downloaded")
        if offset and state.get("total") not in (None, total):
            part.unlink()
            raise _Interrupted(f"the file is {total} bytes now, {state['total']} when the part "
                               "was saved; starting again")
        fio.atomic_write_json(state_path, {"url": url, "total": total,
                                           "validator": _validator(response.headers)},
                              overwrite=True)
        if offset:
            record["resumed_from"].append(offset)
        _receive(response, part, offset, total, file.name, stream)


def _receive(response, part: Path, offset: int, total: int | None, name: str,
             stream: IO[str]) -> None:
    received, shown = offset, offset // MB
    bar = fio.progress(None if total is None else math.ceil(total / MB), desc=name, unit="MB",
                       initial=shown, stream=stream)
    complete = False
    try:
        with open(part, "ab" if offset else "wb") as f:
            try:
                while block := response.read(CHUNK_BYTES):
                    f.write(block)
                    received += len(block)
                    bar.update(received // MB - shown)
                    shown = received // MB
            except (OSError, http.client.HTTPException) as error:  # reset, timeout, bad chunk
                raise _Interrupted(f"{type(error).__name__}: {error}") from None
            finally:
                f.flush()
                os.fsync(f.fileno())
        # http.client returns b"" when the connection closes early: count the bytes.
        if total is not None and received < total:
            raise _Interrupted(f"the connection closed after {received:,} of {total:,} bytes")
        complete = True
    finally:
        if complete:
            if total is not None:
                bar.update(math.ceil(total / MB) - shown)
            bar.close()
        elif not isinstance(bar, fio.LineProgress):
            bar.close()  # a terminal bar must end its line; a log line would say "done"


def _content_range(value: str | None, unsatisfied: bool = False) -> tuple[int | None, int | None]:
    """``(first byte, total)`` of ``bytes F-L/T``; of a 416's ``bytes */T``: ``(None, T)``."""
    text = (value or "").strip()
    if unsatisfied:
        match = re.fullmatch(r"bytes \*/(\d+)", text)
        return None, int(match[1]) if match else None
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", text)
    if not match:
        raise _Interrupted(f"unreadable Content-Range {value!r}")
    return int(match[1]), None if match[3] == "*" else int(match[3])


def _validator(headers) -> str | None:
    """What ``If-Range`` may send back: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def obtain(spec: ModelSpec, *, url: str | None = None, local: str | Path | None = None,
           download_dir: str | Path | None = None, retries: int = 5, timeout: float = 60.0,
           backoff_s: float = 1.0, stream: IO[str] | None = None
           ) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Every file of ``spec``, verified: ``{name: (path, record)}``, from ``local`` (a
    folder holding them by name), else downloaded from ``url`` (default the spec's)."""
    files: dict[str, tuple[Path, dict[str, Any]]] = {}
    if local is not None:
        local = Path(local)
        missing = [f.name for f in spec.files if not (local / f.name).is_file()]
        if missing:
            raise FileNotFoundError(f"--from={local} lacks {missing}; it must hold "
                                    f"{[f.name for f in spec.files]}")
        for file in spec.files:
            path = local / file.name
            files[file.name] = (path, {"path": str(path),
                                       "sha256": verify(file, path, f"the local copy {path}")})
        return files
    base = url or spec.base_url
    if not re.match(r"https?://", base):
        raise ValueError(f"--url must be an http:// or https:// base URL, got {base!r}")
    folder = Path(download_dir) if download_dir else DEFAULT_DOWNLOADS / spec.name
    for file in spec.files:
        files[file.name] = download(file, file_url(base, file), folder, retries=retries,
                                    timeout=timeout, backoff_s=backoff_s, stream=stream)
    return files


# ---------------------------------------------------------------------------
# Model, conversion and the check
# ---------------------------------------------------------------------------


def build_model(spec: ModelSpec):
    """The model the graph holds: ``spec.config``'s ``.model`` updated with ``spec.model``."""
    from flowjax import models
    from flowjax.runs import runtime

    path = Path(spec.config) if Path(spec.config).is_absolute() else REPO / spec.config
    config = runtime.config_module(path.stem, path).get_config().model.to_dict()
    return models.model_from_config({**config, **dict(spec.model)})


def check_prerequisites(spec: ModelSpec) -> None:
    """Fails before any download when the check could not run."""
    if importlib.util.find_spec("skimage") is None:
        raise ImportError("the model check encodes scikit-image's astronaut photo: "
                          "pip install scikit-image (or pip install -e '.[test]')")
    if spec.alignment == "dlib":
        from flowjax.faces import dlib_models

        reason = dlib_models.dlib_import_error()
        if reason is not None:
            raise ImportError(f"the model check aligns its photo with dlib: {reason}")


def check_photo(size: int, alignment: str):
    """``(uint8 [size, size, 3], description)``: scikit-image's astronaut at the model's size."""
    import numpy as np
    from PIL import Image
    from skimage import data

    photo = data.astronaut()
    record = {"photo": "skimage.data.astronaut() (NASA, public domain, 512x512)"}
    if alignment == "dlib":
        from flowjax.faces import align, dlib_models

        aligned, info = align.align_photo(photo, detector=dlib_models.dlib_detector(), size=size)
        return aligned, {**record, "alignment": "aligned with dlib (OpenAI's demo alignment)",
                         "alignment_detail": info.describe(), "alignment_info": info.to_dict()}
    resized = Image.fromarray(photo).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized), {**record, "alignment": f"not aligned: resized to {size}x{size}"}


def check_model(directory: Path, alignment: str) -> dict[str, Any]:
    """Loads the converted model and round-trips the check photo; raises :class:`FetchError`
    unless the decoded image equals the photo at the model's bits and bits/dim is finite."""
    import numpy as np

    from flowjax.models import checkpoints, glow

    model, variables = checkpoints.load_model(directory)
    photo, record = check_photo(model.image_size, alignment)
    encoding = glow.encode(model, variables, photo[None])
    decoded = np.asarray(glow.decode(model, variables, encoding.eps))[0]
    shift = 8 - model.n_bits
    expected = photo >> shift << shift
    differ = int(np.count_nonzero(decoded != expected))
    # At the mid-bin noise of the exact round trip: a sanity check of the weights, not
    # the published (uniform-noise) measure.
    bits_per_dim = float(np.asarray(encoding.bits_per_dim)[0])
    record.update(values=int(expected.size), values_differing=differ,
                  max_difference=int(np.abs(decoded.astype(int) - expected.astype(int)).max()),
                  exact=differ == 0, bits_per_dim_mid_bin=bits_per_dim, n_bits=model.n_bits)
    if differ:
        raise FetchError(
            f"the converted model does not reconstruct the astronaut exactly: {differ} of "
            f"{expected.size} values differ at {model.n_bits} bits (max by "
            f"{record['max_difference']}); the conversion is wrong, no model was written")
    if not math.isfinite(bits_per_dim):
        raise FetchError(f"the converted model gives the astronaut {bits_per_dim} bits/dim; "
                         "the weights are wrong, no model was written")
    return record


def _converter():
    """weights/convert_openai.py as a module (weights/ is not a package)."""
    if "convert_openai" in sys.modules:
        return sys.modules["convert_openai"]
    spec = importlib.util.spec_from_file_location("convert_openai",
                                                  REPO / "weights" / "convert_openai.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fetch(spec: ModelSpec, out: str | Path, *, url: str | None = None,
          local: str | Path | None = None, download_dir: str | Path | None = None,
          allow: Collection[str] = (), retries: int = 5, timeout: float = 60.0,
          backoff_s: float = 1.0, stream: IO[str] | None = None) -> dict[str, Any]:
    """Downloads (or takes from ``local``), verifies, converts and checks ``spec``'s model
    into the new directory ``out`` (see the module docstring); returns its manifest.

    ``allow`` adds converter refusals to downgrade to ``spec.allow``. On any
    error nothing is left under ``out``.
    """
    from flowjax.faces import openai_attributes
    from flowjax.models import checkpoints

    out = checkpoints.check_new_export_dir(out, "--out")
    if url is not None and local is not None:
        raise ValueError("--url and --from exclude each other: download from a mirror, or "
                         "use local copies")
    model = build_model(spec)
    check_prerequisites(spec)
    files = obtain(spec, url=url, local=local, download_dir=download_dir, retries=retries,
                   timeout=timeout, backoff_s=backoff_s, stream=stream)
    flat = model.image_size**2 * model.channels
    vectors = {f.name: openai_attributes.load_attribute_vectors(files[f.name][0], expected_dim=flat)
               for f in spec.files if f.role == "attributes"}
    convert = _converter()
    graph_path = files[spec.graph().name][0]
    with run_dirs.staging_dir(out) as stage:
        staged = stage / out.name
        conversion = convert.convert_file(graph_path, staged, model,
                                          allow=sorted({*spec.allow, *allow}))
        for name in vectors:
            shutil.copyfile(files[name][0], staged / name)
            if fio.sha256_file(staged / name) != files[name][1]["sha256"]:
                raise FetchError(f"{name}: the copy in {staged} differs from the verified file")
        with fio.stage("checking the converted model (astronaut round trip)", stream=stream):
            check = check_model(staged, spec.alignment)
        manifest = _manifest(spec, files, url, local, conversion, vectors, check)
        fio.atomic_write_json(staged / MANIFEST_NAME, manifest)
        if out.exists():
            raise FileExistsError(f"--out {out} appeared while fetching; not replacing it")
        os.rename(staged, out)
    return manifest


def _manifest(spec, files, url, local, conversion, vectors, check) -> dict[str, Any]:
    records = {}
    for file in spec.files:
        path, record = files[file.name]
        records[file.name] = {
            **record, "bytes": path.stat().st_size, "role": file.role,
            "expected": {"min_bytes": file.min_bytes, "max_bytes": file.max_bytes,
                         "sha256": file.sha256},
            "sha256_pinned": file.sha256 is not None}
    return {
        "tool": "tools/fetch_model.py", "flowjax_version": __version__, "model": spec.name,
        "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": {"from": str(local)} if local is not None else {
            "base_url": url or spec.base_url,
            "download_dir": str(Path(next(iter(files.values()))[0]).parent)},
        "files": records,
        "conversion": {k: conversion[k] for k in ("converter", "tensor_count", "total_parameters",
                                                  "allowed", "warnings", "model_config")},
        "attribute_vectors": {name: v.describe() for name, v in vectors.items()},
        "check": check,
    }


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _define_flags() -> None:
    """Defined only when run as a command: importing this module defines no flags."""
    from absl import flags

    flags.DEFINE_string("out", None, "New directory for the converted model, the attribute "
                        "vectors and fetch_manifest.json.", required=True)
    flags.DEFINE_string("url", None, "Base URL of a mirror holding the files at the table's "
                        "relative paths (default: the table's, OpenAI's).")
    flags.DEFINE_string("from", None, "Folder already holding the files, by name: nothing is "
                        "downloaded.")
    flags.DEFINE_string("download_dir", None, "Where downloads and their .part files go "
                        "(default ~/.cache/flowjax/downloads/<model>).")
    flags.DEFINE_string("spec", None, "JSON file describing another model "
                        "(ModelSpec.from_json); it cannot take a built-in model's name.")
    flags.DEFINE_bool("allow_downsampled_image", False, "Convert despite consumers of "
                      "input/downsampled_image (as weights/convert_openai.py's flag: only after "
                      "checking with weights/verify_tf.py).")
    flags.DEFINE_integer("retries", 5, "Resumes after a dropped connection, per file.",
                         lower_bound=0)
    flags.DEFINE_float("timeout", 60.0, "Seconds a connection may stay silent.", lower_bound=1)


def spec_for(name: str, spec_file: str | None) -> ModelSpec:
    """The built-in model ``name``, or the one ``spec_file`` describes."""
    known = dict(MODELS)
    if spec_file is not None:
        extra = ModelSpec.from_json(json.loads(Path(spec_file).read_text(encoding="utf-8")))
        if extra.name in MODELS:
            raise ValueError(f"--spec {spec_file} names the built-in model {extra.name!r}; give "
                             "it another name (the built-in table is not replaced)")
        known[extra.name] = extra
    if name not in known:
        raise ValueError(f"unknown model {name!r}; known: {sorted(known)}")
    return known[name]


def main(argv: list[str]) -> None:
    from absl import app, flags

    if len(argv) != 2:
        raise app.UsageError(f"give one model name ({sorted(MODELS)}), got {argv[1:]}")
    flags_ = flags.FLAGS
    spec = spec_for(argv[1], flags_.spec)
    allow = ["downsampled_image"] if flags_.allow_downsampled_image else []
    manifest = fetch(spec, flags_.out, url=flags_.url, local=flags_["from"].value,
                     download_dir=flags_.download_dir, allow=allow, retries=flags_.retries,
                     timeout=flags_.timeout)
    conversion, check = manifest["conversion"], manifest["check"]
    print(f"wrote {flags_.out}: {conversion['tensor_count']} tensors, "
          f"{conversion['total_parameters']:,} parameters; the astronaut, {check['alignment']}, "
          f"round-trips exactly at {check['bits_per_dim_mid_bin']:.4f} bits/dim (mid-bin)")
    for name, record in manifest["files"].items():
        pinned = "matches the table" if record["sha256_pinned"] else "not pinned: recorded"
        print(f"  {name}: {record['bytes']:,} bytes, sha256 {record['sha256']} ({pinned})")
    if "download_dir" in manifest["source"]:
        print(f"downloads kept in {manifest['source']['download_dir']} (a later run reuses them; "
              "delete them when no longer needed)")
    vectors = [name for name, r in manifest["files"].items() if r["role"] == "attributes"]
    if vectors:
        print(f"use: --config.checkpoint={flags_.out} --config.vectors="
              f"{Path(flags_.out) / vectors[0]}")
    for warning in conversion["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)


if __name__ == "__main__":
    from flowjax.runs import runtime

    _define_flags()
    runtime.run(main)
