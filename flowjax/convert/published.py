"""What every converter of published weights shares.

``weights/convert_openai.py`` and ``weights/convert_rosinality.py`` raise the
same :class:`ConversionError`, list names in their messages the same way
(:func:`listed`) and record the file they read the same way in the
checkpoint's metadata (:func:`source_record`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MAX_LISTED = 12  # names shown in one message; the rest are counted


class ConversionError(ValueError):
    """A published file is not what its converter expects; the message lists every problem."""


def listed(names: Iterable[str]) -> str:
    """``a, b, c, ... (N more)``: at most :data:`MAX_LISTED` names, then how many were left out."""
    names = list(names)
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f", ... ({len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def source_record(path: Path, data: bytes) -> dict[str, Any]:
    """What a conversion's metadata says of the file it read: its path, name, sha256 and size."""
    return {"path": str(path), "name": path.name, "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data)}
