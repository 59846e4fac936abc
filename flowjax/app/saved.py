"""The editor's saved edits: ``saved/edit_0001.png``, ``edit_0002.png``, ... in its run directory.

Numbers are taken under a lock and each file is created only if absent
(``flowjax.io.atomic_open`` links it into place), so concurrent saves never
share a file, and the run's manifest records each file with its own sha256.
"""

from __future__ import annotations

import threading
from pathlib import Path

from flowjax.runs import run_dirs


class SavedEdits:
    """Writes each saved PNG under the next free number of ``run``'s ``saved/`` folder."""

    def __init__(self, run: run_dirs.RunDir) -> None:
        self.run, self._next, self._lock = run, 1, threading.Lock()

    def save(self, payload: bytes) -> Path:
        """Writes ``payload`` (the PNG as served) as the next ``saved/edit_NNNN.png``."""
        with self._lock:
            while True:
                rel = f"saved/edit_{self._next:04d}.png"
                self._next += 1
                try:
                    return self.run.write_bytes(rel, payload)
                except FileExistsError:  # put there by someone else: take the next number
                    continue
