"""Progress of long work, readable on a terminal and in a log file alike.

On a terminal, :func:`progress` is a tqdm bar redrawn in place. When stderr is
not a terminal (a SLURM log, CI, ``2> run.log``) tqdm would write every redraw
into the file (carriage returns, hundreds of KB for a benchmark), so the same
calls print one plain line at most every :data:`LOG_INTERVAL_S` seconds and one
when the work ends. :func:`stage` times one step of work that has no count
(reading a 700 MB graph) the same way: a line when it starts, one when it ends.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from tqdm.auto import tqdm

LOG_INTERVAL_S = 10.0


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class LineProgress:
    """tqdm's interface (``update``, ``set_postfix``, ``close``, context manager) as log lines."""

    def __init__(self, total: int | None, desc: str, unit: str, *, initial: int = 0,
                 stream: IO[str] | None = None, interval_s: float = LOG_INTERVAL_S,
                 clock=time.monotonic):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self._initial = initial
        self._stream = stream if stream is not None else sys.stderr
        self._interval_s = interval_s
        self._clock = clock
        self._start = self._last_line = clock()
        self._postfix = ""
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._clock() - self._last_line >= self._interval_s:
            self._write("")

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(" done")

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write(self, suffix: str) -> None:
        now = self._clock()
        self._last_line = now
        elapsed = now - self._start
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {count} {self.unit}{suffix}", f"{elapsed:.1f} s",
                 f"{rate:.2f} {self.unit}/s"]
        if self._postfix:
            parts.append(self._postfix)
        print(", ".join(parts), file=self._stream, flush=True)


def progress(total: int | None, desc: str, unit: str = "it", *, disable: bool = False,
             initial: int = 0, leave: bool = True, stream: IO[str] | None = None):
    """A progress counter: a tqdm bar on a terminal, a line every few seconds otherwise.

    ``disable`` gives a counter that prints nothing (tqdm's own disabled bar).
    """
    stream = stream if stream is not None else sys.stderr
    if disable or _is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                    disable=disable, file=stream)
    return LineProgress(total, desc, unit, initial=initial, stream=stream)


@contextlib.contextmanager
def stage(description: str, *, stream: IO[str] | None = None) -> Iterator[None]:
    """Prints ``description...`` now and ``description: done in T s`` when the block ends.

    Nothing more is printed when the block raises: the error says what happened.
    """
    stream = stream if stream is not None else sys.stderr
    print(f"{description}...", file=stream, flush=True)
    start = time.monotonic()
    yield
    print(f"{description}: done in {time.monotonic() - start:.1f} s", file=stream, flush=True)
