"""The training log: ``metrics.jsonl`` lines and, when installed, TensorBoard events.

``flowjax.training.train`` writes one JSON line per log interval (``step`` = updates
done, ``split`` = "train" or "eval", ``time``, then the interval's means) and a
``"resumed"`` line where a run continued; the same values go to TensorBoard
event files under ``tensorboard/`` when ``tensorboard`` is installed (its writer
needs no TensorFlow). Only the main process writes (``enabled``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

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
