"""What the live editor accepts from a request; everything else is refused with a reason.

* **Where from** (:func:`check_host_and_origin`): the ``Host`` header must name
  the address the editor serves (the configured host, or ``localhost``,
  ``127.0.0.1``, ``[::1]``) with its port, and an ``Origin`` header, when
  the browser sends one, the same: a page on another site cannot drive a
  local editor (cross-site POSTs), nor read it through a name of its own
  that resolves to 127.0.0.1 (DNS rebinding). Refused: :class:`ForeignRequest`
  (403). Served on a wildcard address (``0.0.0.0``, ``--config.allow_remote``)
  the host's names are not known, so any ``Host`` is taken and the ``Origin``
  must match it. :func:`ensure_loopback` refuses to serve beyond this machine
  unless asked: the editor has no authentication.
* **JSON bodies** (:func:`json_object`): UTF-8, an object, nested at most
  :data:`MAX_JSON_DEPTH` deep, checked on the text before parsing (Python's
  parser recurses once per level: a body nested 100,000 deep would end in a
  RecursionError).
* **Fields by type**: names are strings (:func:`name_field`), numbers are
  JSON numbers, finite and within ``+-MAX_ALPHA`` (:func:`number`).
* **Upload file names** (:func:`upload_filename`): one file name, as browsers
  send it, of at most 255 bytes; the face is named by its sanitised stem,
  made unique (:func:`face_name`): ``neutral.png`` -> ``neutral``, then
  ``neutral-2``; safe as one path component.
* **Rate** (:class:`RateLimiter`) and sizes (:class:`Limits`).

Every refusal is an :class:`EditError` whose message is shown to the user as is.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import re
import threading
import time
import unicodedata
from collections.abc import Collection, Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np

MAX_ALPHA = 5.0  # |alpha| beyond this decodes to noise; refuse rather than serve it
MAX_JSON_DEPTH = 32  # an edit is 2 deep
MAX_FACE_NAME = 40
LOOPBACK = ("localhost", "127.0.0.1", "::1")
WILDCARD = ("", "0.0.0.0", "::")


class EditError(ValueError):
    """A request the editor refuses (400); its message is shown to the user as is."""

    status = 400


class ForeignRequest(EditError):
    """A request for another host name or from another site's page (403)."""

    status = 403


@dataclasses.dataclass(frozen=True)
class Limits:
    """Request limits of the server."""

    max_upload_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    requests_per_minute: int = 600
    max_uploads: int = 32


class RateLimiter:
    """At most ``limit`` requests per client in any ``window`` seconds (a sliding window)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = int(limit), float(window)
        self._seen: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            seen = self._seen[client]
            while seen and now - seen[0] >= self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                return False
            seen.append(now)
            return True


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message never echoes a whole body."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- where a request comes from ------------------------------------------------------


def _authority(text: str, default_port: int) -> tuple[str, int]:
    """``name[:port]`` (``[v6][:port]``) -> (lower-case name without brackets, port)."""
    parts = urlsplit("//" + text)
    if parts.hostname is None or parts.path or parts.query or parts.fragment or \
            parts.username is not None:
        raise ValueError(text)
    return parts.hostname.rstrip("."), parts.port or default_port  # .port raises ValueError


def check_host_and_origin(host: str | None, origin: str | None, served_host: str,
                          served_port: int) -> None:
    """Raises ForeignRequest unless ``Host`` (and ``Origin``, if sent) name the editor's
    address: ``served_host`` or a loopback name, with ``served_port`` (module docstring)."""
    served = served_host.strip("[]").lower()
    names = {*LOOPBACK, served}
    try:
        name, port = _authority(host or "", 80)
    except ValueError:
        raise ForeignRequest(f"the Host header {shown(host)} does not name this editor; open "
                             "it at the address it printed when it started") from None
    if (served not in WILDCARD and name not in names) or port != served_port:
        raise ForeignRequest(f"the editor serves {served_host}:{served_port} (and localhost), "
                             f"not {shown(host)}; open it at the address it printed when it "
                             "started")
    if origin is None:
        return
    parts = urlsplit(origin)
    try:
        origin_name, origin_port = _authority(parts.netloc, {"http": 80, "https": 443}.get(
            parts.scheme, -1))
    except ValueError:
        origin_name, origin_port = "", -1
    allowed = {name} if served in WILDCARD else names
    if origin_name not in allowed or origin_port != served_port or parts.path:
        raise ForeignRequest(f"a page from {shown(origin)} may not use this editor; only its "
                             f"own page at {served_host}:{served_port} may")


# ---- request bodies and their fields ----------------------------------------------------

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET_STEP = np.zeros(256, np.int8)
_BRACKET_STEP[[ord("["), ord("{")]] = 1
_BRACKET_STEP[[ord("]"), ord("}")]] = -1


def json_depth(text: str) -> int:
    """How deep JSON ``text``'s arrays and objects nest, without parsing it (brackets
    inside strings do not count)."""
    brackets = re.sub(r"[^\[\]{}]", "", _STRING.sub("", text))
    if not brackets:
        return 0
    steps = _BRACKET_STEP[np.frombuffer(brackets.encode("ascii"), np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max())


def json_object(body: bytes, example: str) -> dict[str, Any]:
    """A request body -> its JSON object, or an EditError saying what was wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise EditError(f"the request body is not UTF-8 text; send a JSON object, e.g. "
                        f"{example}") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise EditError(f"the JSON body nests {depth} levels deep, more than the "
                        f"{MAX_JSON_DEPTH} allowed; send a flat object, e.g. {example}")
    try:
        value = json.loads(text)
    except ValueError as error:
        raise EditError(f"the request body is not valid JSON ({error}); send an object, e.g. "
                        f"{example}") from None
    if not isinstance(value, dict):
        raise EditError(f"the edit must be a JSON object, e.g. {example}; got "
                        f"{type(value).__name__}")
    return value


def name_field(request: Mapping[str, Any], key: str, what: str) -> str:
    """``request[key]``, which must be a string (a name; whether it exists is the caller's)."""
    value = request.get(key)
    if not isinstance(value, str):
        raise EditError(f"{what} must be a name (a JSON string), got {shown(value)}")
    return value


def number(value: Any, what: str) -> float:
    """A JSON number, finite and within ``+-MAX_ALPHA``."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError
        result = float(value)  # OverflowError for an integer of 400 digits
    except (TypeError, OverflowError):
        result = math.nan
    if not math.isfinite(result) or abs(result) > MAX_ALPHA:
        raise EditError(f"{what} must be a finite number in [-{MAX_ALPHA}, {MAX_ALPHA}], "
                        f"got {shown(value)}")
    return result


# ---- uploads ------------------------------------------------------------------------


def upload_filename(filename: str | None) -> str:
    """The uploaded file's name as sent (its last component), or an EditError for one that
    is no file name: ``.``, ``..``, over 255 bytes, control characters."""
    name = re.split(r"[\\/]", filename or "")[-1] or "upload"
    if name in (".", "..") or len(name.encode("utf-8", "replace")) > 255 or \
            any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise EditError(f"the upload's file name {shown(filename)} is not a file name (at most "
                        "255 bytes, not '.' or '..', no control characters); rename the file "
                        "and upload it again")
    return name


def face_name(filename: str, taken: Collection[str]) -> str:
    """The face name of an upload: the file's stem with anything but letters, digits,
    ``_ . -`` made ``-``, at most MAX_FACE_NAME characters, ``-2``, ``-3``... if taken."""
    stem = re.sub(r"[^\w.-]+", "-", unicodedata.normalize("NFC", PurePosixPath(filename).stem))
    base = stem[:MAX_FACE_NAME].strip("-._") or "upload"
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}-{k}"
    return name


def ensure_loopback(host: str, allow_remote: bool) -> None:
    """Refuses a non-loopback address unless asked: the editor has no authentication."""
    if host not in ("127.0.0.1", "localhost", "::1") and not allow_remote:
        raise ValueError(f"host {host!r} would expose the editor beyond this machine; it has no "
                         "authentication. Keep host=127.0.0.1, or pass "
                         "--config.allow_remote=True if you really mean it")
