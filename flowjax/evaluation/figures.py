"""The evaluation's figures, drawn with matplotlib's Agg canvas (no pyplot state).

Per expression:

* ``identity_distance.png``: distance to the target mean (solid) and to the
  source mean (dashed) against alpha, one colour per target;
* ``au_error.png``: AU mean error against alpha, one line per target, the
  best alpha marked;
* ``au_bars_<target>.png``: every AU's intensity at the pair's best alpha
  beside the source expression's (AUs of the error's set are starred).

And ``per_alpha.png``: ``tables/per_alpha.csv`` drawn (mean AU error and mean
distance to the target mean against alpha, +- one standard error, per
expression and over all).

Lines join the alphas in increasing order, whatever the grid's order.
Figures are returned as uint8 RGB arrays; the pipeline writes them through
``flowjax.io`` so each PNG carries flowjax's provenance chunks, plus
:func:`provenance` saying it is a chart of metrics, not a face. Each figure
is also footed "flowjax evaluation".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flowjax.evaluation import metrics
from flowjax.evaluation.datatypes import Scores, Study

FOOTER = "flowjax evaluation"
DPI = 100


def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def to_array(fig: Figure) -> np.ndarray:
    """The rendered figure as uint8 ``[H, W, 3]``."""
    fig.text(0.995, 0.005, FOOTER, ha="right", va="bottom", fontsize=7, color="0.5")
    fig.canvas.draw()
    return np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])


def _by_alpha(run: Study, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, values[..., alphas])`` in increasing alpha: a spec may list its
    grid in any order, and a line drawn in that order would zig-zag."""
    order = np.argsort(run.alphas, kind="stable")
    return run.alphas[order], np.asarray(values)[..., order]


def _alpha_axis(ax: Any, run: Study) -> None:
    ax.set_xlabel("alpha")
    ax.set_xticks(run.alphas, run.labels)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, alpha=0.3)


def identity_figure(scores: Scores, expression: int) -> tuple[np.ndarray, str]:
    """Distance to the target and the source mean against alpha."""
    run = scores.run
    title = f"identity distance, expression '{run.expressions[expression]}' of {run.source}"
    fig = _figure()
    ax = fig.add_subplot()
    for t, target in enumerate(run.targets):
        color = f"C{t % 10}"
        ax.plot(*_by_alpha(run, scores.identity.to_target[expression, t]), "-o", color=color,
                ms=3, label=f"{target}: to target mean")
        ax.plot(*_by_alpha(run, scores.identity.to_source[expression, t]), "--s", color=color,
                ms=3, label=f"{target}: to source mean")
    _alpha_axis(ax, run)
    ax.set_ylabel("embedding distance")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_array(fig), title


def au_error_figure(scores: Scores, expression: int) -> tuple[np.ndarray, str]:
    """AU mean error against alpha, best alpha marked."""
    run = scores.run
    title = f"AU mean error, expression '{run.expressions[expression]}' of {run.source}"
    fig = _figure()
    ax = fig.add_subplot()
    for t, target in enumerate(run.targets):
        color = f"C{t % 10}"
        ax.plot(*_by_alpha(run, scores.au_error[expression, t]), "-o", color=color, ms=3,
                label=target)
        if scores.best.index[expression, t] >= 0:
            ax.plot(scores.best.alpha[expression, t], scores.best.error[expression, t], "*",
                    color=color, ms=12)
    _alpha_axis(ax, run)
    ax.set_ylabel(f"mean |AU - AU(source)| over {len(scores.au_sets[expression])} AUs")
    ax.set_title(title + " (star: best alpha)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_array(fig), title


def au_bars_figure(scores: Scores, expression: int, target: int) -> tuple[np.ndarray, str] | None:
    """AU intensities at the best alpha beside the source's; None without a best alpha."""
    run, e, t = scores.run, expression, target
    index = int(scores.best.index[e, t])
    if index < 0:
        return None
    title = (f"AUs of '{run.expressions[e]}' on {run.targets[t]} at best alpha "
             f"{run.labels[index]} vs source")
    names = scores.au_names
    used = set(scores.au_sets[e])
    x = np.arange(len(names))
    fig = _figure(max(6.4, 0.4 * len(names)), 4.0)
    ax = fig.add_subplot()
    ax.bar(x - 0.2, np.nan_to_num(scores.au_source[e]), 0.4, label=f"source ({run.source})",
           color="0.55")
    ax.bar(x + 0.2, np.nan_to_num(scores.au_generated[e, t, index]), 0.4,
           label=f"{run.targets[t]}, alpha {run.labels[index]}", color="C0")
    ax.set_xticks(x, [f"{n}*" if n in used else n for n in names], rotation=60, fontsize=7)
    ax.set_ylabel("AU intensity")
    ax.set_title(title + " (*: AUs in the error)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return to_array(fig), title


def per_alpha_figure(scores: Scores) -> tuple[np.ndarray, str]:
    """``tables/per_alpha.csv`` drawn: per expression and over all, the mean AU
    error and mean distance to the target mean against alpha, +- one s.e."""
    run = scores.run
    title = (f"per alpha: mean +- s.e. over the images of each alpha, {run.source} onto "
             f"{len(run.targets)} target(s)")
    panels = [("distance to target mean", scores.identity.to_target)] \
        if scores.has_identity else []
    if scores.has_aus:
        panels.insert(0, ("AU mean error", scores.au_error))
    fig = _figure(6.4 if len(panels) < 2 else 9.6, 4.0)
    for i, (name, values) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        groups = [*((e, values[k]) for k, e in enumerate(run.expressions)),
                  ("all", values.reshape(-1, values.shape[-1]))]
        for g, (label, block) in enumerate(groups):
            mean, se, _ = metrics.mean_and_se(block, 0)
            alphas, (mean, se) = _by_alpha(run, np.stack([mean, se]))
            color = "k" if label == "all" else f"C{g % 10}"
            ax.errorbar(alphas, mean, yerr=np.nan_to_num(se), fmt="-o", ms=3, capsize=2,
                        color=color, lw=2 if label == "all" else 1, label=label)
        _alpha_axis(ax, run)
        ax.set_ylabel(name)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return to_array(fig), title


def render_all(scores: Scores) -> dict[str, tuple[np.ndarray, str]]:
    """Every figure: ``{relpath: (image, title)}``."""
    out: dict[str, tuple[np.ndarray, str]] = {}
    run = scores.run
    for e, expression in enumerate(run.expressions):
        if scores.has_identity:
            out[f"figures/{expression}/identity_distance.png"] = identity_figure(scores, e)
        if not scores.has_aus:
            continue
        out[f"figures/{expression}/au_error.png"] = au_error_figure(scores, e)
        for t, target in enumerate(run.targets):
            bars = au_bars_figure(scores, e, t)
            if bars is not None:
                out[f"figures/{expression}/au_bars_{target}.png"] = bars
    if scores.has_aus or scores.has_identity:
        out["figures/per_alpha.png"] = per_alpha_figure(scores)
    return out


def provenance(title: str, run: Study) -> dict[str, str]:
    """PNG text chunks of a figure (flowjax.io adds its own labels)."""
    return {"kind": "flowjax evaluation figure: a chart of metrics, it shows no face",
            "Title": title, "evaluated_run": str(run.path), "model": run.model_label}
