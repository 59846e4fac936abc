"""Errors shared by several modules (a leaf: imports nothing of flowjax)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class NonFiniteError(FloatingPointError):
    """A computation produced NaN or inf where the result must be finite.

    Raised by encoding, decoding and sweeps (``points``: the indices of the
    affected images or grid points) and by training (the step, and the newest
    checkpoint that verifies). The message names the cause and what to do.
    ``partial``: where a sweep or ``sweep.decode_latents`` raises it, everything it
    decoded (a sweep's whole grid), for a caller that reports the ``points`` as failures
    and uses the rest (their images there are not images); None elsewhere.
    """

    def __init__(self, message: str, points: Sequence[Any] = (), partial: Any = None) -> None:
        super().__init__(message)
        self.points = list(points)
        self.partial = partial
