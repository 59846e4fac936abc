"""The training log: ``metrics.jsonl`` lines and, when installed, TensorBoard events.

``flowjax.training.train`` writes one JSON line per log interval (``step`` = updates
done, ``split`` = "train" or "eval", ``time``, then the interval's means) and a
``"resumed"`` line where a run continued; the same values go to TensorBoard
event files under ``tensorboard/`` when ``tensorboard`` is installed (its writer
needs no TensorFlow). Only the main process writes (``enabled``).

:class:`LaggedWindows` fetches each window's metrics from the device one window
late, so logging never waits for the step just dispatched.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax

METRICS_NAME = "metrics.jsonl"


class MetricWriter:
    """Appends JSON lines to ``metrics.jsonl``; TensorBoard events when available."""

    def __init__(self, workdir: Path, enabled: bool = True):
        self.enabled = enabled
        self._file = open(workdir / METRICS_NAME, "a", encoding="utf-8") if enabled else None
        self._tb = None
        if enabled:
            try:  # tensorboard is optional; its writer needs no TensorFlow
                from tensorboard.compat.proto import event_pb2, summary_pb2
                from tensorboard.summary.writer.event_file_writer import EventFileWriter
            except ImportError:
                pass
            else:
                self._tb = (EventFileWriter(str(workdir / "tensorboard")), event_pb2, summary_pb2)

    def write(self, step: int, split: str, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, "time": time.time(), **values}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None and values:
            writer, event_pb2, summary_pb2 = self._tb
            summary = summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag=f"{split}/{k}", simple_value=float(v))
                for k, v in values.items()])
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                             summary=summary))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb[0].close()


@dataclasses.dataclass
class Window:
    """A closed log window: its steps and their metrics (device arrays until fetched),
    and the wall-clock seconds it spans."""

    steps: list[int]
    metrics: list[Any]
    seconds: float


class LaggedWindows:
    """Training metrics collected per log window and fetched one window late.

    Fetching the metrics of the step just dispatched would make the host wait for
    the device to finish it: the queue of dispatched steps runs dry at every log
    interval. So at a plain log boundary the window that just closed is held and
    the one before it, long finished, is fetched and handed to ``write(window,
    values)``; at a boundary that needs every value now (a checkpoint, whose
    state must be known finite, an evaluation, the end) both are
    (``boundary(everything=True)``). Windows are written in order, each once.
    """

    def __init__(self, write: Callable[[Window, list[dict[str, Any]]], None]):
        self._write = write
        self._steps: list[int] = []
        self._metrics: list[Any] = []
        self._opened = time.perf_counter()
        self._held: Window | None = None

    def add(self, step: int, metrics: Any) -> None:
        self._steps.append(step)
        self._metrics.append(metrics)

    def restart_clock(self) -> None:
        """Starts the open window's time now (after a pause that is no training)."""
        self._opened = time.perf_counter()

    def boundary(self, everything: bool = False) -> None:
        """Closes the open window; writes the held one, and this one too if ``everything``."""
        closed = None
        if self._steps:
            now = time.perf_counter()
            closed = Window(self._steps, self._metrics, now - self._opened)
            self._steps, self._metrics, self._opened = [], [], now
        held, self._held = self._held, None
        if held is not None:
            self._write(held, jax.device_get(held.metrics))
        if closed is not None:
            if everything:
                self._write(closed, jax.device_get(closed.metrics))
            else:
                self._held = closed
