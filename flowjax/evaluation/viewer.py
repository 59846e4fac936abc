"""A static, self-contained HTML viewer of an evaluated transfer run.

:func:`write_viewer` writes ``index.html`` into the evaluation directory. The
page works from the file system (``file://``) with no server and fetches
nothing: its script, its style and every number it shows are written into the
page (the numbers as embedded JSON), and the images are referenced by paths
relative to the page, so the page and the run directory move together.

What it shows:

* **Pair view**, per (expression, target): an alpha slider over the generated
  images, beside them the source expression image and the two mean faces; the
  AU error and the identity distances (to the target's and to the source's
  mean face) at the slider's alpha, read from the evaluation's tables
  (``tables/scores.csv``, ``tables/best_alpha.csv``); the best alpha marked on
  the slider and on the curves of both numbers over alpha.
* **Grid view**: every (expression, target) pair at one alpha.
* **Flags**: a checkbox per generated image (per cell of the grid, and in the
  pair view) marks it as bad; the flags persist in the browser
  (``localStorage``) and export as JSON (``flowjax-viewer-flags`` format: the
  run, and one entry per flagged image with expression, target, alpha, image).

The numbers come from the written CSV tables, not from the scorers, so the page
shows exactly what the tables say. Nothing here imports JAX.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowjax import io as fio
from flowjax.runs import run_dirs

if TYPE_CHECKING:
    from flowjax.evaluation.datatypes import TransferRun

PAGE_NAME = "index.html"
FLAGS_FORMAT = "flowjax-viewer-flags"
SCORES_TABLE = "tables/scores.csv"
BEST_ALPHA_TABLE = "tables/best_alpha.csv"
_ASSETS = ("viewer.css", "viewer.js")


def asset(name: str) -> str:
    return resources.files("flowjax.evaluation").joinpath("static", name).read_text(encoding="utf-8")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the viewer reads its numbers from the "
                                "evaluation's tables; write them first (tables.write_all)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty; expected a header row and one row per image")
    return rows[0], rows[1:]


def _column(header: Sequence[str], name: str, path: Path) -> int:
    if name not in header:
        raise ValueError(f"{path}: no column {name!r} (columns: {list(header)}); this table was "
                         "not written by flowjax.evaluation.tables")
    return header.index(name)


def _number(text: str, path: Path, what: str) -> float | None:
    """A CSV cell as a float, ``nan`` as None (JSON has no NaN)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}: {what} is {text!r}, not a number") from None
    return None if math.isnan(value) else value


def _link(path: Path, page_dir: Path) -> str:
    """``path`` relative to the page, as a URL path (percent-encoded, ``/``-separated)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(page_dir))
    return urllib.parse.quote(Path(rel).as_posix())


def _grid(run: TransferRun) -> list[list[list[Any]]]:
    return [[[None] * len(run.labels) for _ in run.targets] for _ in run.expressions]


def read_scores(run: TransferRun, eval_dir: Path) -> dict[str, Any]:
    """Per-image numbers ``[E][T][A]`` from ``tables/scores.csv`` (None where NaN or absent).

    Raises:
      ValueError naming the table when an image of the run has no row, or a
      row names an image that is not in the run.
    """
    path = eval_dir / SCORES_TABLE
    header, rows = _read_csv(path)
    col = {name: _column(header, name, path) for name in
           ("expression", "target", "image", "distance_to_target_mean",
            "distance_to_source_mean")}
    has_au = "au_error" in header
    where = {p: (e, t, a) for e, row in enumerate(run.image_paths)
             for t, cell in enumerate(row) for a, p in enumerate(cell)}
    numbers = {"to_target": _grid(run), "to_source": _grid(run), "au_error": _grid(run)}
    seen = set()
    for i, row in enumerate(rows, start=2):
        image = row[col["image"]]
        if image not in where:
            raise ValueError(f"{path} line {i}: image {image!r} is not one of the run's "
                             f"generated images ({run.path / 'transfer.json'})")
        e, t, a = where[image]
        seen.add(image)
        numbers["to_target"][e][t][a] = _number(row[col["distance_to_target_mean"]], path,
                                                f"line {i} distance_to_target_mean")
        numbers["to_source"][e][t][a] = _number(row[col["distance_to_source_mean"]], path,
                                                f"line {i} distance_to_source_mean")
        if has_au:
            numbers["au_error"][e][t][a] = _number(row[header.index("au_error")], path,
                                                   f"line {i} au_error")
    missing = sorted(set(where) - seen)
    if missing:
        raise ValueError(f"{path}: no row for {len(missing)} generated image(s), e.g. "
                         f"{missing[0]!r}; the table does not belong to this run")
    numbers["has_au"] = has_au
    return numbers


def read_best(run: TransferRun, eval_dir: Path) -> list[list[dict[str, Any] | None]] | None:
    """``[E][T]`` best alpha (index, alpha, AU error) from ``tables/best_alpha.csv``;
    None when the evaluation had no AU scorer (no such table)."""
    path = eval_dir / BEST_ALPHA_TABLE
    if not path.is_file():
        return None
    header, rows = _read_csv(path)
    c_e, c_t, c_a, c_err = (_column(header, n, path) for n in
                            ("expression", "target", "best_alpha", "au_error"))
    best: list[list[dict[str, Any] | None]] = [[None] * len(run.targets) for _ in run.expressions]
    for i, row in enumerate(rows, start=2):
        try:
            e, t = run.expressions.index(row[c_e]), run.targets.index(row[c_t])
        except ValueError:
            raise ValueError(f"{path} line {i}: ({row[c_e]!r}, {row[c_t]!r}) is not an "
                             "(expression, target) pair of the run") from None
        alpha = _number(row[c_a], path, f"line {i} best_alpha")
        if alpha is None:  # no valid AU error for this pair: nothing to mark
            continue
        index = min(range(len(run.alphas)), key=lambda a: abs(run.alphas[a] - alpha))
        if abs(run.alphas[index] - alpha) > 1e-9:
            raise ValueError(f"{path} line {i}: best_alpha {alpha} is not one of the run's "
                             f"alphas {list(run.alphas)}")
        best[e][t] = {"index": index, "alpha": alpha,
                      "au_error": _number(row[c_err], path, f"line {i} au_error")}
    return best


def page_data(run: TransferRun, eval_dir: fio.PathLike) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values; image paths relative to ``eval_dir``."""
    eval_dir = Path(eval_dir)
    numbers = read_scores(run, eval_dir)
    model = run.summary.get("model")  # a flowjax run's record, or a study's free text
    return {
        "format": "flowjax-viewer/1",
        "run": os.fspath(run.path.resolve()),
        "model": run.model_label,
        "random_init": isinstance(model, dict) and bool(model.get("random_init")),
        "method": run.summary.get("method"), "space": run.summary.get("space"),
        "source": run.source, "expressions": list(run.expressions),
        "targets": list(run.targets), "alphas": [float(a) for a in run.alphas],
        "labels": list(run.labels),
        "images": [[[_link(run.path / p, eval_dir) for p in cell] for cell in row]
                   for row in run.image_paths],
        "image_paths": [[list(cell) for cell in row] for row in run.image_paths],
        "means": {name: _link(run.path / rel, eval_dir) for name, rel in run.mean_paths.items()},
        "sources": [_link(p, eval_dir) for p in run.source_inputs],
        "has_au": numbers["has_au"], "au_error": numbers["au_error"],
        "to_target": numbers["to_target"], "to_source": numbers["to_source"],
        "best": read_best(run, eval_dir),
        "report": "report.md" if (eval_dir / "report.md").is_file() else None,
        "flags_format": FLAGS_FORMAT,
    }


def embed_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>``, no HTML comment openers."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def inline_page(title: str, data_id: str, data: Mapping[str, Any], script: str,
                extra_sources: str = "") -> str:
    """A page with style (``viewer.css``), ``script`` (a static asset) and ``data`` (JSON
    in ``<script id=data_id>``) inline; ``extra_sources`` adds CSP sources (e.g. media)."""
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Belt and braces for "no network": the browser refuses any fetch but
        # files next to the page and the page's own inline code.
        ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
         f"img-src 'self' file: blob: data:; {extra_sources}style-src 'unsafe-inline'; "
         "script-src 'unsafe-inline'\">"),
        f"<title>{html.escape(title)}</title>",
        f"<style>\n{asset('viewer.css')}</style>",
        "</head><body>",
        '<div id="app"><p id="noscript">This viewer needs JavaScript.</p></div>',
        f'<script type="application/json" id="{data_id}">{embed_json(data)}</script>',
        f"<script>\n{asset(script)}</script>",
        "</body></html>", ""])


def render_page(data: Mapping[str, Any]) -> str:
    """The whole page: style, script and data inline; nothing fetched over a network."""
    title = f"flowjax transfer viewer: {data['source']} onto {len(data['targets'])} target(s)"
    return inline_page(title, "viewer-data", data, "viewer.js")


def write_viewer(target: run_dirs.RunDir, run: TransferRun) -> str:
    """Writes ``index.html`` into the evaluation run directory ``target``; returns its
    relative path. Call after the tables are written (it reads them)."""
    page = render_page(page_data(run, target.path))
    target.write_text(PAGE_NAME, page)
    return PAGE_NAME
