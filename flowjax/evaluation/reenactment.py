"""Scoring a reenactment frame by frame and over time against the exact answer.

On a synthetic clip (:mod:`flowjax.synthetic.clips`) the answer for target ``t`` at
frame ``f`` is the target rendered with the actor's AUs of that frame. Every
reenacted frame ``x_f`` is scored against it (``u`` is the synthetic AU scorer,
``a_f`` the answer frame, ``e`` the AUs the renderer drew with):

* ``au_error``: ``mean_k |u_k(x_f) - u_k(a_f)|`` over all AUs (the scorer on both
  images, so its own bias cancels); ``au_error_truth`` the same against ``e_f``;
  ``au_error_active`` over the AUs active in truth at that frame (``e_fk >
  threshold``; NaN on frames with none, e.g. neutral ones);
* ``to_target`` / ``to_actor``: identity distance (synthetic embedder, Euclidean
  between L2-normalised embeddings) to the centroid of the target's photos / of
  the actor's; ``pixel_rmse``: RMS pixel difference to the answer (0-255 levels);
* over time, with ``d`` the change from the previous frame (NaN on the first):
  ``au_change`` ``mean_k |d u_k(x)|`` and ``pixel_change`` ``RMS(d x)``, the same for
  the answer (``answer_au_change``, ``answer_pixel_change``), and the **jitter**,
  the change the answer does not have: ``au_jitter`` ``mean_k |d u_k(x) - d u_k(a)|``
  and ``pixel_jitter`` ``RMS(d x - d a)``. A flicker raises them where the answer
  holds still; a lag or a missed motion where it moves.

The rows are the ``variant``s ``transfer`` (at each measured ``smoothing``),
``no_transfer`` (the target's anchor, its mean face or its photo, in every frame) and ``answer`` (its own
AU errors against the truth are the scorer's floor). :func:`segment_summary` means
them per clip segment; :func:`score_scene` scores a whole synthetic scene (every
image once, in one batch); :func:`au_curves_figure` draws the AU curves over time and
:func:`report_markdown` writes the run's ``report.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flowjax.evaluation import figures, ground_truth, metrics
from flowjax.synthetic import AU_NAMES, clips

METRICS = ("au_error", "au_error_truth", "au_error_active", "to_target", "to_actor",
           "pixel_rmse", "au_change", "answer_au_change", "au_jitter", "pixel_change",
           "answer_pixel_change", "pixel_jitter")
ALL_SEGMENTS = "all"


def change(x: np.ndarray) -> np.ndarray:
    """``x[f] - x[f-1]`` with NaN on the first frame, for ``[F, ...]``."""
    out = np.full(x.shape, np.nan)
    out[1:] = x[1:] - x[:-1]
    return out


def active_au_error(aus: np.ndarray, reference: np.ndarray, active: np.ndarray) -> np.ndarray:
    """``[F]``: mean ``|aus - reference|`` over each frame's ``active`` AUs (``[F, K]``
    masks); NaN on a frame with none."""
    n_active = active.sum(axis=-1)
    with np.errstate(invalid="ignore"):
        return np.where(n_active > 0, np.sum(np.abs(aus - reference), -1, where=active)
                        / np.maximum(n_active, 1), np.nan)


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x), axis=(-3, -2, -1)))


def frame_metrics(images: np.ndarray, aus: np.ndarray, embeddings: np.ndarray,
                  answer_images: np.ndarray, answer_aus: np.ndarray, truth_aus: np.ndarray,
                  target_centroid: np.ndarray, actor_centroid: np.ndarray,
                  threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD) -> dict[str, np.ndarray]:
    """:data:`METRICS` ``{name: [F]}`` of one target's frames ``[F, H, W, C]`` (uint8), their
    scored ``aus`` ``[F, K]`` and ``embeddings`` ``[F, D]``, against the answer frames, the
    answer's scored AUs and the true AUs ``[F, K]``."""
    images = np.asarray(images, np.float64)
    answer = np.asarray(answer_images, np.float64)
    aus, answer_aus = np.asarray(aus, np.float64), np.asarray(answer_aus, np.float64)
    truth = np.asarray(truth_aus, np.float64)
    if not (images.shape == answer.shape and aus.shape == answer_aus.shape == truth.shape
            and len(images) == len(aus) == len(embeddings)):
        raise ValueError(f"frames {images.shape}, answers {answer.shape}, scored AUs {aus.shape}, "
                         f"answer AUs {answer_aus.shape}, truth {truth.shape} and embeddings "
                         f"{np.shape(embeddings)} must describe the same frames")
    active_error = active_au_error(aus, answer_aus, truth > threshold)
    d_aus, d_answer_aus = change(aus), change(answer_aus)
    d_images, d_answer = change(images), change(answer)
    return {
        "au_error": np.mean(np.abs(aus - answer_aus), axis=-1),
        "au_error_truth": np.mean(np.abs(aus - truth), axis=-1),
        "au_error_active": active_error,
        "to_target": metrics.identity_distance(embeddings, target_centroid),
        "to_actor": metrics.identity_distance(embeddings, actor_centroid),
        "pixel_rmse": _rms(images - answer),
        "au_change": np.mean(np.abs(d_aus), axis=-1),
        "answer_au_change": np.mean(np.abs(d_answer_aus), axis=-1),
        "au_jitter": np.mean(np.abs(d_aus - d_answer_aus), axis=-1),
        "pixel_change": _rms(d_images),
        "answer_pixel_change": _rms(d_answer),
        "pixel_jitter": _rms(d_images - d_answer),
    }


def frame_rows(variant: str, smoothing: float | None, target: str, segments: Sequence[str],
               values: Mapping[str, np.ndarray],
               columns: Sequence[str] = METRICS) -> list[dict[str, Any]]:
    """One ``tables/per_frame.csv`` row per frame (``smoothing`` None: not a transfer)."""
    rows = []
    for f, segment in enumerate(segments):
        row = {"variant": variant, "smoothing": "" if smoothing is None else float(smoothing),
               "target": target, "frame": f, "segment": segment}
        row.update({name: _round(values[name][f]) for name in columns})
        rows.append(row)
    return rows


def _round(value: Any) -> float | str:
    value = float(value)
    return "" if np.isnan(value) else round(value, 5)


def _value(row: Mapping[str, Any], name: str) -> float:
    value = row[name]
    return float("nan") if value == "" else float(value)


def segment_summary(rows: Sequence[Mapping[str, Any]], segment_order: Sequence[str],
                    columns: Sequence[str] = METRICS) -> list[dict[str, Any]]:
    """Means over targets and frames per (variant, smoothing, segment), plus each
    (variant, smoothing) over the whole clip (segment ``"all"``); NaN values (first
    frames, frames without an active AU) are left out of the means."""
    groups: dict[tuple[str, Any], dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        by_segment = groups.setdefault((row["variant"], row["smoothing"]), {})
        by_segment.setdefault(row["segment"], []).append(row)
        by_segment.setdefault(ALL_SEGMENTS, []).append(row)
    out = []
    for (variant, smoothing), by_segment in groups.items():
        for segment in [*segment_order, ALL_SEGMENTS]:
            members = by_segment.get(segment, [])
            if not members:
                continue
            entry = {"variant": variant, "smoothing": smoothing, "segment": segment,
                     "frames": len({r["frame"] for r in members}),
                     "targets": len({r["target"] for r in members})}
            for name in columns:
                values = np.array([_value(r, name) for r in members])
                entry[name] = _round(np.nanmean(values)) if np.isfinite(values).any() else ""
            out.append(entry)
    return out


def summary_value(summary: Sequence[Mapping[str, Any]], variant: str, segment: str, metric: str,
                  smoothing: Any = None) -> float:
    """One number of :func:`segment_summary`'s table (NaN where it has none)."""
    for row in summary:
        if (row["variant"] == variant and row["segment"] == segment
                and (smoothing is None or row["smoothing"] == smoothing)):
            return _value(row, metric)
    return float("nan")


# ---- a synthetic scene, scored whole ---------------------------------------------------


def score_scene(scene: clips.Scene, results: Mapping[float, np.ndarray], baseline: np.ndarray,
                au_scorer: Any, embedder: Any,
                threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD) -> dict[str, Any]:
    """Every variant of a reenacted synthetic scene, scored against its answers.

    ``results`` ``{smoothing: uint8 [T, F, S, S, 3]}`` the reenacted frames, ``baseline``
    ``[T, S, S, 3]`` the targets' anchors (mean faces or photos); ``au_scorer`` and ``embedder`` as the
    synthetic scorers (every image is scored once, in one batch). Returns ``rows`` (one
    per variant, target and frame), ``summary`` (:func:`segment_summary`), ``curves``
    ``{target: {label: scored AUs [F, K]}}`` for :func:`au_curves_figure` and the
    scorers' ``provenance``.
    """
    n_t, n_f = scene.answers.shape[:2]
    flat = lambda x: x.reshape(-1, *x.shape[-3:])  # noqa: E731
    pieces = {"answer": flat(scene.answers), "actor": scene.actor, "no_transfer": baseline,
              **{f"transfer {b:g}": flat(frames) for b, frames in results.items()}}
    batch = np.concatenate([*pieces.values(), scene.targets.images, scene.actor_photos.images])
    aus_all, emb_all = au_scorer(batch), embedder.embed(batch)
    scored, start = {}, 0
    for name, images in pieces.items():
        scored[name] = (aus_all[start:start + len(images)], emb_all[start:start + len(images)])
        start += len(images)
    ids = np.concatenate([scene.targets.identity_ids,
                          np.full(len(scene.actor_photos.images), -1)])
    centroids = ground_truth.identity_centroids(emb_all[start:], ids, [*range(n_t), -1])
    per_target = lambda x: x.reshape(n_t, n_f, -1)  # noqa: E731
    answer_aus = per_target(scored["answer"][0])
    base_aus, base_emb = scored["no_transfer"]
    repeat = lambda x: np.repeat(x[:, None], n_f, axis=1)  # noqa: E731
    variants = [("answer", None, scene.answers, answer_aus, per_target(scored["answer"][1])),
                ("no_transfer", None, repeat(baseline), repeat(base_aus), repeat(base_emb))]
    variants += [("transfer", b, frames, per_target(scored[f"transfer {b:g}"][0]),
                  per_target(scored[f"transfer {b:g}"][1])) for b, frames in results.items()]
    rows = []
    for variant, smoothing, images, aus, emb in variants:
        for t, target in enumerate(scene.target_names):
            values = frame_metrics(images[t], aus[t], emb[t], scene.answers[t], answer_aus[t],
                                   scene.clip.aus, centroids[t], centroids[-1], threshold)
            rows += frame_rows(variant, smoothing, target, scene.clip.segments, values)
    order = list(dict.fromkeys(name for name, _, _ in scene.clip.bounds))
    curves = {target: {"actor": scored["actor"][0],
                       **{f"result (smoothing {b:g})": per_target(scored[f"transfer {b:g}"][0])[t]
                          for b in results},
                       "answer": answer_aus[t], "no transfer": repeat(base_aus)[t]}
              for t, target in enumerate(scene.target_names)}
    return {"rows": rows, "summary": segment_summary(rows, order), "curves": curves,
            "scorers": {"au": au_scorer.provenance(), "identity": embedder.provenance()}}


def curve_rows(scene: clips.Scene, curves: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """``tables/au_curves.csv``'s rows: per (target, frame, AU) the truth and each curve."""
    rows = []
    for target, by_label in curves.items():
        for f in range(scene.clip.n_frames):
            for k, au in enumerate(AU_NAMES):
                row = {"target": target, "frame": f, "segment": scene.clip.segments[f], "au": au,
                       "truth": round(float(scene.clip.aus[f, k]), 4)}
                row.update({label: round(float(values[f, k]), 4)
                            for label, values in by_label.items()})
                rows.append(row)
    return rows


def checks(summary: Sequence[Mapping[str, Any]], bounds: Sequence[tuple[str, int, int]],
           smoothings: Sequence[float]) -> list[str]:
    """The claims of issue #24, measured: per segment the AU error of each smoothing against the
    no-transfer baseline, and over the clip the jitter of each smoothing."""
    value = summary_value
    lines = []
    for name in dict.fromkeys(n for n, _, _ in bounds):
        none = value(summary, "no_transfer", name, "au_error")
        ours = []
        for b in smoothings:
            error = value(summary, "transfer", name, "au_error", b)
            verdict = "below" if error < none else ("equal" if error == none else "NOT below")
            ours.append(f"{error:.3f} with smoothing {b:g} ({verdict})")
        same = all(value(summary, "transfer", name, "au_error", b) == none for b in smoothings)
        note = (" [the neutral frames reenact as the target's anchor itself (reference 'neutral')]"
                if name == clips.NEUTRAL and same else "")
        lines.append(f"{name}: AU error {', '.join(ours)} vs {none:.3f} without transfer{note}")
    for b in smoothings:
        clip = {m: value(summary, "transfer", "all", m, b)
                for m in ("au_jitter", "pixel_jitter", "au_error")}
        lines.append(f"smoothing {b:g}: AU jitter {clip['au_jitter']:.4f}, pixel jitter "
                     f"{clip['pixel_jitter']:.3f}, AU error {clip['au_error']:.3f} over the clip "
                     f"(the answer's own AU change: "
                     f"{value(summary, 'answer', 'all', 'answer_au_change'):.4f} per frame)")
    return lines


# ---- the figure of AU curves ---------------------------------------------------------


def au_curves_figure(au_names: Sequence[str], truth: np.ndarray | None,
                     curves: Mapping[str, np.ndarray], bounds: Sequence[tuple[str, int, int]],
                     title: str) -> np.ndarray:
    """uint8 ``[H, W, 3]``: one panel per AU the clip moves (its true value ever above 0;
    without a ``truth``, a curve's above 1), intensity against frame: the truth (black
    dashed) and each of ``curves`` (``{label: [F, K]}`` scored AUs, e.g. actor, result,
    answer), segments shaded."""
    if truth is None:
        peaks = np.nanmax([np.nan_to_num(np.asarray(c, np.float64), nan=0.0)
                           for c in curves.values()], axis=(0, 1))
        shown = [k for k in range(len(au_names)) if peaks[k] > 1.0]
    else:
        truth = np.asarray(truth, np.float64)
        shown = [k for k in range(len(au_names)) if truth[:, k].max() > 0]
    shown = shown or list(range(len(au_names)))
    cols = 2
    rows = (len(shown) + cols - 1) // cols
    fig = Figure(figsize=(10.0, 1.9 * rows + 0.8), dpi=figures.DPI)
    FigureCanvasAgg(fig)
    frames = np.arange(len(next(iter(curves.values()))))
    styles = {0: dict(color="0.55", lw=1.2), 1: dict(color="tab:blue", lw=1.6),
              2: dict(color="tab:green", lw=1.2), 3: dict(color="tab:orange", lw=1.0),
              4: dict(color="tab:red", lw=1.0, ls=":")}
    for panel, k in enumerate(shown):
        ax = fig.add_subplot(rows, cols, panel + 1)
        for i, (_, start, stop) in enumerate(bounds):
            if i % 2:
                ax.axvspan(start - 0.5, stop - 0.5, color="0.93", lw=0)
        if truth is not None:
            ax.plot(frames, truth[:, k], color="black", ls="--", lw=1.0, label="truth")
        for i, (label, values) in enumerate(curves.items()):
            ax.plot(frames, np.asarray(values)[:, k], label=label, **styles.get(i, {}))
        ax.set_ylim(-0.2, 5.2)
        ax.set_title(au_names[k], fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        if panel == 0:
            ax.legend(fontsize=6, ncol=3, loc="upper right")
        if panel >= len(shown) - cols:
            ax.set_xlabel("frame", fontsize=8)
    segments = ", ".join(f"{name} {start}-{stop - 1}" for name, start, stop in bounds)
    fig.suptitle(f"{title}\nsegments (alternately shaded): {segments}", fontsize=9)
    # Fixed margins: tight_layout measures every text and costs seconds per figure.
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.6 / fig.get_figheight(),
                        top=1 - 0.75 / fig.get_figheight(), hspace=0.45, wspace=0.12)
    return figures.to_array(fig)


# ---- report.md ------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value == "" or value is None:
        return "-"
    value = float(value)
    return "-" if np.isnan(value) else f"{value:.{digits}f}"


def summary_markdown(summary: Sequence[Mapping[str, Any]],
                     columns: Sequence[str] = ("au_error", "au_error_active", "au_error_truth",
                                               "to_target", "pixel_rmse", "au_jitter",
                                               "pixel_jitter")) -> str:
    """:func:`segment_summary`'s table as markdown."""
    head = ["variant", "smoothing", "segment", "frames", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary:
        cells = [row["variant"], _fmt(row["smoothing"], 2) if row["smoothing"] != "" else "-",
                 row["segment"], str(row["frames"]), *(_fmt(row[c]) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(title: str, settings: Mapping[str, Any], summary: Sequence[Mapping[str, Any]],
                    checks: Sequence[str], speed: Mapping[str, Any],
                    files: Mapping[str, str]) -> str:
    """The run's ``report.md``: settings, the per-segment table, the checks, speed, files."""
    parts = [f"# {title}", "",
             "SYNTHETIC: every face in this run was rendered or generated by flowjax.", "",
             "## Settings", ""]
    parts += [f"- {key}: `{value}`" for key, value in settings.items()]
    parts += ["", "## Per segment (means over targets and frames)", "",
              "AU errors on the synthetic scorer's 0-5 scale: `au_error` against the scored "
              "answer, "
              "all AUs; `au_error_active` over the AUs active in truth; `au_error_truth` against "
              "the renderer's AUs. `to_target`: identity distance to the target's photos (0-2). "
              "`pixel_rmse`: to the answer (0-255). Jitter: the frame-to-frame change the answer "
              "does not have (AU scale / 0-255).", "", summary_markdown(summary), "",
              "## Checks", ""]
    parts += [f"- {line}" for line in checks]
    parts += ["", "## Speed", ""]
    parts += [f"- {key}: {value}" for key, value in speed.items()]
    parts += ["", "## Files", ""]
    parts += [f"- [{label}]({path})" for label, path in files.items()]
    return "\n".join(parts) + "\n"
