"""A static page that plays a reenactment run's clips beside their AU curves.

:func:`write_clip_viewer` writes ``index.html`` into the run directory of
``experiments/reenact.py``. Like the transfer viewer (:mod:`flowjax.evaluation.viewer`)
it works from the file system with no server and fetches nothing: its script,
style and numbers are inline (the numbers as embedded JSON), the videos are
referenced relative to the page. Per target it plays the reenacted clip (or the
side-by-side one) and draws the chosen Action Unit over time for every series
of ``tables/au_curves.csv`` (the truth, the actor, each result, the exact
answer, no transfer), with a cursor at the frame being shown; clicking the
chart seeks the video there. A run without scores (your own clip) gets the
videos alone. Nothing here imports JAX.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from flowjax.evaluation import viewer
from flowjax.runs import run_dirs

PAGE_NAME = "index.html"
# tables/au_curves.csv: these columns say where a value is; every other column is a series.
KEY_COLUMNS = ("target", "frame", "segment", "au")


def curves_data(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"series": [...], "aus": [...], "targets": {t: {au: {series: [value per
    frame]}}}, "segments": [per frame]}`` from the rows of ``tables/au_curves.csv``
    (None where a value is NaN: JSON has none)."""
    if not rows:
        return {"series": [], "aus": [], "targets": {}, "segments": []}
    series = [c for c in rows[0] if c not in KEY_COLUMNS]
    targets: dict[str, dict[str, dict[str, list[Any]]]] = {}
    aus: list[str] = []
    segments: dict[int, str] = {}
    for row in rows:
        au, frame = str(row["au"]), int(row["frame"])
        if au not in aus:
            aus.append(au)
        segments[frame] = str(row["segment"])
        per_au = targets.setdefault(str(row["target"]), {}).setdefault(au, {s: [] for s in series})
        for s in series:
            values = per_au[s]
            values.extend([None] * (frame + 1 - len(values)))
            value = float(row[s])
            values[frame] = None if value != value else round(value, 4)
    return {"series": series, "aus": aus, "targets": targets,
            "segments": [segments[f] for f in sorted(segments)]}


def render_page(data: Mapping[str, Any]) -> str:
    """The whole page inline (the transfer viewer's style); the videos may play from files."""
    return viewer.inline_page(f"flowjax reenactment: {data['title']}", "clip-data", data,
                              "clip_viewer.js", extra_sources="media-src 'self' file: blob:; ")


def write_clip_viewer(run: run_dirs.RunDir, title: str, fps: float, n_frames: int,
                      targets: Sequence[str], videos: Mapping[str, str],
                      curves: Sequence[Mapping[str, Any]]) -> str:
    """Writes ``index.html`` into ``run``; returns its relative path.

    ``videos`` maps each target (and ``"side by side"``) to its video's path in the run;
    ``curves`` are the rows of ``tables/au_curves.csv`` (empty: no scores)."""
    missing = [t for t in targets if t not in videos]
    if missing:
        raise ValueError(f"no video for target(s) {missing}; the page plays each target's clip")
    data = {"title": title, "fps": float(fps), "frames": int(n_frames), "targets": list(targets),
            "videos": {k: urllib.parse.quote(v) for k, v in videos.items()},
            "curves": curves_data(curves)}
    run.write_text(PAGE_NAME, render_page(data))
    return PAGE_NAME
