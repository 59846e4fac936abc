"""Errors shared by several modules (a leaf: imports nothing of flowjax)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class NonFiniteError(FloatingPointError):
    """A computation produced NaN or inf where the result must be finite.

    Raised by encoding, decoding and sweeps (``points``: the indices of the
    affected images or grid points) and by training (the step, and the newest
    checkpoint that verifies). The message names the cause and what to do.
    """

    def __init__(self, message: str, points: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.points = list(points)
