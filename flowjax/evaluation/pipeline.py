"""Evaluate a transfer run directory: scores, tables, figures and a report.

:func:`evaluate_run` reads a finished run of ``experiments/transfer.py``
(``transfer.json``, ``manifest.json``, the PNGs), scores it and writes a new
run directory (its own ``manifest.json``) that never overwrites the transfer
outputs. By default that is ``<run_dir>/evaluation/``::

    report.md                          definitions, trend, best alphas, links
    evaluation.json                    every summary number (NaN written as null)
    tables/scores.csv                  tidy: one row per generated image
    tables/best_alpha.csv              per (expression, target)
    tables/general_trend.csv           per expression and "all"
    tables/<expression>/identity_distances.csv   rows <target>_source / <target>_target,
                                                 columns the alphas, source, target
    tables/<expression>/action_units.csv         a row per image, a column per AU
    figures/<expression>/identity_distance.png   distance to target/source mean vs alpha
    figures/<expression>/au_error.png            AU mean error vs alpha
    figures/<expression>/au_bars_<target>.png    AUs at the best alpha beside the source

References. Identity distances are to the embeddings of the decoded mean faces
``means/<identity>_mean.png`` that the transfer wrote. The AU error of a
generated image is measured against the **original source input image** of
its expression: the file the transfer encoded, found through the transfer
manifest's input list, checked against its recorded sha256 and loaded with
the transfer's data options (the decoded source is not used); when the
transfer aligned its photos (``config.align``), that is the aligned copy it
wrote and encoded (``transfer.json``'s ``source_images``, checked against the
run's recorded outputs), since the raw photo is not what it encoded. In the identity
tables, column ``source`` holds that source image and column ``target`` the
target's decoded mean face. The metric definitions are those of
:mod:`flowjax.evaluation.metrics`.

Everything is loaded and scored before the output directory is created, so a
bad run directory or a failing scorer leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowjax import data
from flowjax import io as fio
from flowjax import viewer
from flowjax.evaluation import figures, metrics, report, tables
from flowjax.evaluation.action_units import ActionUnitScorer
from flowjax.evaluation.scorers import IdentityEmbedder, describe

DEFAULT_OUT_SUBDIR = "evaluation"
AU_SET_NAMES = {"thesis": metrics.THESIS_AUS, "all": None, "active": metrics.ACTIVE}


# --------------------------------------------------------------------------
# Reading a transfer run
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TransferRun:
    """What the evaluation needs from a transfer run directory.

    ``image_paths[e][t][a]`` are paths relative to ``path``;
    ``source_inputs[e]`` is the input image the transfer encoded for
    expression ``e``, with ``source_sha256[e]`` its recorded checksum.
    """

    path: Path
    summary: dict[str, Any]
    manifest: dict[str, Any]
    source: str
    expressions: tuple[str, ...]
    targets: tuple[str, ...]
    alphas: np.ndarray
    labels: tuple[str, ...]
    image_paths: tuple[tuple[tuple[str, ...], ...], ...]
    mean_paths: dict[str, str]
    source_inputs: tuple[Path, ...]
    source_sha256: tuple[str, ...]

    @property
    def model_label(self) -> str:
        model = self.summary.get("model") or {}
        if model.get("random_init"):
            return f"RANDOM INIT seed {model.get('seed')} (no checkpoint)"
        return f"{model.get('checkpoint')} sha256:{model.get('sha256')}"


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {path.parent} is not a finished transfer run directory "
            f"(no {what}). Give the workdir of experiments/transfer.py.")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}); the {what} is corrupt") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _require(mapping: Mapping[str, Any], key: str, path: Path, kind: type) -> Any:
    if key not in mapping or not isinstance(mapping[key], kind):
        got = type(mapping[key]).__name__ if key in mapping else "nothing"
        raise ValueError(f"{path}: expected key {key!r} ({kind.__name__}), got {got}; this file "
                         "was not written by experiments/transfer.py (or an older version)")
    return mapping[key]


def _locate_input(run_dir: Path, entry: Mapping[str, Any]) -> Path:
    recorded = Path(entry["path"])
    if recorded.is_file():
        return recorded
    # Generated test data is copied into <run>/inputs/; the recorded path may be
    # relative to another working directory, or the run may have moved since.
    parts = recorded.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "inputs" and (run_dir.joinpath(*parts[i:])).is_file():
            return run_dir.joinpath(*parts[i:])
    raise FileNotFoundError(
        f"the source input image {recorded} recorded in {run_dir / fio.MANIFEST_NAME} does not "
        "exist any more; the AU error is measured against it. Put the file back (it must have "
        f"sha256 {entry['sha256']}).")


def read_transfer_run(run_dir: fio.PathLike) -> TransferRun:
    """Reads and checks ``transfer.json`` and ``manifest.json`` of a transfer run.

    Raises:
      FileNotFoundError / ValueError naming the file, for a missing or
      unfinished run, a missing key, an image or source input that is gone.
    """
    run_dir = Path(run_dir)
    summary_path, manifest_path = run_dir / "transfer.json", run_dir / fio.MANIFEST_NAME
    summary = _read_json(summary_path, "transfer.json")
    manifest = _read_json(manifest_path, fio.MANIFEST_NAME)
    if manifest.get("status") != "complete":
        raise ValueError(f"{manifest_path}: status is {manifest.get('status')!r}, not 'complete': "
                         "the transfer run did not finish; re-run it before evaluating")
    source = _require(summary, "source", summary_path, str)
    expressions = _require(summary, "expressions", summary_path, dict)
    targets = _require(summary, "targets", summary_path, list)
    alphas = _require(summary, "alphas", summary_path, list)
    labels = _require(summary, "alpha_labels", summary_path, list)
    images = _require(summary, "images", summary_path, dict)
    means = _require(summary, "means", summary_path, dict)
    counts = _require(summary, "identity_images", summary_path, dict)
    if len(alphas) != len(labels) or not alphas:
        raise ValueError(f"{summary_path}: {len(alphas)} alphas but {len(labels)} alpha_labels")
    paths = []
    for e in expressions:
        per_target = []
        for t in targets:
            try:
                row = tuple(images[e][t][label] for label in labels)
            except (KeyError, TypeError):
                raise ValueError(f"{summary_path}: 'images' has no entry for expression {e!r}, "
                                 f"target {t!r} and every alpha label {labels}") from None
            per_target.append(row)
        paths.append(tuple(per_target))
    for name in [source, *targets]:
        if name not in means:
            raise ValueError(f"{summary_path}: 'means' has no mean face of identity {name!r}")
    if "source_images" in summary:  # aligned photos: the aligned copies the transfer wrote
        inputs, digests = _written_sources(run_dir, summary_path, manifest, expressions,
                                           _require(summary, "source_images", summary_path, dict))
    else:
        inputs, digests = _recorded_sources(run_dir, manifest_path, manifest, expressions,
                                            int(counts.get(source, 0)))
    return TransferRun(
        path=run_dir, summary=summary, manifest=manifest, source=source,
        expressions=tuple(expressions), targets=tuple(targets),
        alphas=np.asarray(alphas, np.float64), labels=tuple(labels), image_paths=tuple(paths),
        mean_paths={n: means[n] for n in [source, *targets]}, source_inputs=tuple(inputs),
        source_sha256=tuple(digests))


def _recorded_sources(run_dir: Path, manifest_path: Path, manifest: Mapping[str, Any],
                      expressions: Mapping[str, str], n_source: int) -> tuple[list, list]:
    """The source expressions' input files (and sha256) from the manifest's input list."""
    # The transfer records the source identity's images first, in load order.
    entries = manifest.get("inputs", [])[:n_source]
    inputs, digests = [], []
    for e, file_name in expressions.items():
        match = [x for x in entries if Path(x.get("path", "")).name == file_name]
        if len(match) != 1:
            raise ValueError(
                f"{manifest_path}: expected one input entry for source image {file_name!r} of "
                f"expression {e!r} among the source's {n_source} inputs, found {len(match)}")
        inputs.append(_locate_input(run_dir, match[0]))
        digests.append(match[0]["sha256"])
    return inputs, digests


def _written_sources(run_dir: Path, summary_path: Path, manifest: Mapping[str, Any],
                     expressions: Mapping[str, str],
                     source_images: Mapping[str, str]) -> tuple[list, list]:
    """The aligned source images inside the run (and their sha256 from its outputs)."""
    outputs = {o.get("path"): o.get("sha256") for o in manifest.get("outputs", [])}
    inputs, digests = [], []
    for e in expressions:
        rel = source_images.get(e)
        if rel is None or rel not in outputs:
            raise ValueError(f"{summary_path}: 'source_images' has no image of expression {e!r} "
                             "among the run's recorded outputs; re-run the transfer")
        path = run_dir / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the aligned source image of expression {e!r} is "
                                    "gone; the AU error is measured against it. Re-run the "
                                    "transfer or restore the file.")
        inputs.append(path)
        digests.append(outputs[rel])
    return inputs, digests


@dataclasses.dataclass(frozen=True)
class RunImages:
    """uint8 images of a transfer run: ``generated [E, T, A, H, W, 3]``,
    ``means [1 + T, H, W, 3]`` (source first, then the targets), ``sources [E, H, W, 3]``."""

    generated: np.ndarray
    means: np.ndarray
    sources: np.ndarray


def load_run_images(run: TransferRun) -> RunImages:
    """Loads every image the evaluation scores (checking sizes and source checksums)."""
    e, t, a = len(run.expressions), len(run.targets), len(run.labels)
    flat = [run.path / p for row in run.image_paths for cell in row for p in cell]
    generated = data.load_images(flat).images
    means = data.load_images([run.path / run.mean_paths[n]
                              for n in [run.source, *run.targets]]).images
    opts = (run.manifest.get("extra") or {}).get("data_options") or {}
    sources = []
    for path, digest in zip(run.source_inputs, run.source_sha256):
        actual = fio.sha256_file(path)
        if actual != digest:
            raise ValueError(
                f"source input {path} changed since the transfer run: sha256 {actual}, the run "
                f"recorded {digest}. The AU reference must be the image the transfer encoded; "
                "restore it or re-run the transfer.")
        image, _ = data.load_image(path, size=opts.get("size"), resize=opts.get("resize"),
                                   alpha=opts.get("alpha", "composite"),
                                   background=opts.get("background", (255, 255, 255)))
        sources.append(image)
    sources = np.stack(sources)
    shape = generated.shape[1:]
    for name, images, files in (("mean face", means, run.mean_paths.values()),
                                ("source input", sources, run.source_inputs)):
        if images.shape[1:] != shape:
            raise ValueError(f"{name} images ({list(files)[0]}, ...) are {images.shape[1:3]}, the "
                             f"generated images {shape[:2]}; they must share one size")
    return RunImages(generated.reshape(e, t, a, *shape), means, sources)


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


def parse_au_set(au_set: Sequence[str] | str | None) -> tuple[str, ...] | str | None:
    """``"thesis"`` -> THESIS_AUS, ``"active"``, ``"all"``/None -> None (every AU
    the scorer has), ``"AU06,AU12"`` or a sequence -> a tuple of names."""
    if au_set is None:
        return None
    if isinstance(au_set, str):
        if au_set in AU_SET_NAMES:
            return AU_SET_NAMES[au_set]
        names = tuple(a.strip() for a in au_set.split(",") if a.strip())
    else:
        names = tuple(au_set)
    if not names:
        raise ValueError(f"the AU set {au_set!r} is empty; give AU names or one of "
                         f"{sorted(AU_SET_NAMES)}")
    return names


@dataclasses.dataclass(frozen=True)
class Scores:
    """Every number of an evaluation; E expressions, T targets, A alphas, K AUs.

    Identity: ``to_target``/``to_source`` ``[E, T, A]`` (generated image to the
    target/source mean face), ``source_to_source_mean [E]`` and
    ``source_to_target_mean [E, T]`` (the source input image),
    ``target_mean_to_source_mean``/``target_mean_to_target_mean [T]``.
    AUs (None without an AU scorer): ``au_generated [E, T, A, K]``,
    ``au_source [E, K]``, ``au_target_means [T, K]``, ``au_sets`` (the set S
    per expression), ``au_error [E, T, A]``, ``best`` (``[E, T]``) and
    ``trends`` (``"all"`` and per expression; None where no pair had a valid
    error). Detector: ``p_generated [E, T, A]`` and ``detection_rate``.
    """

    run: TransferRun
    to_target: np.ndarray
    to_source: np.ndarray
    source_to_source_mean: np.ndarray
    source_to_target_mean: np.ndarray
    target_mean_to_source_mean: np.ndarray
    target_mean_to_target_mean: np.ndarray
    au_names: tuple[str, ...] | None = None
    au_generated: np.ndarray | None = None
    au_source: np.ndarray | None = None
    au_target_means: np.ndarray | None = None
    au_set: tuple[str, ...] | str | None = None
    au_sets: tuple[tuple[str, ...], ...] | None = None
    au_error: np.ndarray | None = None
    best: metrics.BestAlpha | None = None
    trends: dict[str, metrics.Trend | None] | None = None
    notes: tuple[str, ...] = ()
    p_generated: np.ndarray | None = None
    detection_rate: float | None = None
    detection_threshold: float = metrics.DEFAULT_DETECTION_THRESHOLD

    @property
    def has_aus(self) -> bool:
        return self.au_error is not None

    def best_distances(self) -> tuple[np.ndarray, np.ndarray]:
        """Distances to the target and source means at each pair's best alpha ``[E, T]``
        (NaN where the pair has none)."""
        assert self.best is not None
        index = np.maximum(self.best.index, 0)[..., None]
        valid = self.best.index >= 0

        def pick(x: np.ndarray) -> np.ndarray:
            return np.where(valid, np.take_along_axis(x, index, -1)[..., 0], np.nan)

        return pick(self.to_target), pick(self.to_source)


def _embed(embedder: IdentityEmbedder, images: np.ndarray) -> np.ndarray:
    out = np.asarray(embedder.embed(images), np.float64)
    if out.ndim != 2 or out.shape[0] != len(images):
        raise ValueError(f"the identity embedder returned shape {out.shape} for {len(images)} "
                         "images; it must return [N, D]")
    return out


def _score_aus(scorer: ActionUnitScorer, images: np.ndarray) -> np.ndarray:
    out = np.asarray(scorer(images), np.float64)
    if out.shape != (len(images), len(scorer.au_names)):
        raise ValueError(f"the AU scorer returned shape {out.shape} for {len(images)} images; it "
                         f"must return [N, {len(scorer.au_names)}] (one column per au_names)")
    return out


def _trend(alphas: np.ndarray, errors: np.ndarray, identity: np.ndarray) -> metrics.Trend | None:
    if np.isnan(errors).all():
        return None
    return metrics.general_trend(alphas, errors, identity)


def score_run(
    run: TransferRun,
    images: RunImages,
    identity_embedder: IdentityEmbedder,
    au_scorer: ActionUnitScorer | None,
    *,
    au_set: Sequence[str] | str | None = metrics.THESIS_AUS,
    au_threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD,
    detector: metrics.FakeDetector | None = None,
    detection_threshold: float = metrics.DEFAULT_DETECTION_THRESHOLD,
) -> Scores:
    """All scores of a run: one embedder call and one AU-scorer call on every image."""
    n_e, n_t, n_a = images.generated.shape[:3]
    shape = images.generated.shape[3:]
    flat = images.generated.reshape(-1, *shape)
    emb = _embed(identity_embedder, np.concatenate([flat, images.means, images.sources]))
    gen = emb[: len(flat)].reshape(n_e, n_t, n_a, -1)
    means = emb[len(flat): len(flat) + len(images.means)]
    src = emb[len(flat) + len(images.means):]
    source_mean, target_means = means[0], means[1:]
    d = metrics.identity_distances(gen, target_means[None, :, None], source_mean)
    fields: dict[str, Any] = dict(
        run=run, to_target=d.to_target, to_source=d.to_source,
        source_to_source_mean=metrics.identity_distance(src, source_mean),
        source_to_target_mean=metrics.identity_distance(src[:, None], target_means[None]),
        target_mean_to_source_mean=metrics.identity_distance(target_means, source_mean),
        target_mean_to_target_mean=metrics.identity_distance(target_means, target_means),
        detection_threshold=detection_threshold)
    notes: list[str] = []
    if au_scorer is not None:
        names = tuple(au_scorer.au_names)
        au = _score_aus(au_scorer, np.concatenate([flat, images.sources, images.means[1:]]))
        au_gen = au[: len(flat)].reshape(n_e, n_t, n_a, -1)
        au_src, au_means = au[len(flat): len(flat) + n_e], au[len(flat) + n_e:]
        chosen = parse_au_set(au_set)
        errors, sets = np.full((n_e, n_t, n_a), np.nan), []
        for e, expression in enumerate(run.expressions):
            if chosen == metrics.ACTIVE:
                aus = metrics.active_aus(au_src[e], names, au_threshold)
                if not aus:
                    why = ("no face was found in it" if np.isnan(au_src[e]).any()
                           else f"it activates no AU above {au_threshold}")
                    notes.append(f"expression {expression!r}: the AU error is undefined (NaN) "
                                 f"because {why}.")
            else:
                aus = names if chosen is None else chosen
            sets.append(tuple(aus))
            if aus:
                errors[e] = metrics.au_mean_error(au_gen[e], au_src[e], names, aus=aus)
        best = metrics.best_alpha(run.alphas, errors)
        trends = {"all": _trend(run.alphas, errors, d.to_target)}
        for e, expression in enumerate(run.expressions):
            trends[expression] = _trend(run.alphas, errors[e], d.to_target[e])
        fields.update(au_names=names, au_generated=au_gen, au_source=au_src,
                      au_target_means=au_means, au_set=chosen, au_sets=tuple(sets),
                      au_error=errors, best=best, trends=trends)
    if detector is not None:
        p = np.asarray(detector(flat), np.float64)
        if p.shape != (len(flat),):
            raise ValueError(f"the fake detector returned shape {p.shape} for {len(flat)} images; "
                             "it must return one probability per image")
        fields.update(p_generated=p.reshape(n_e, n_t, n_a),
                      detection_rate=metrics.detection_rate(p, detection_threshold))
    return Scores(**fields, notes=tuple(notes))


# --------------------------------------------------------------------------
# Output directory
# --------------------------------------------------------------------------


def resolve_output_dir(run_dir: fio.PathLike, out_dir: fio.PathLike | None = None,
                       out_subdir: str = DEFAULT_OUT_SUBDIR) -> Path:
    """Where the evaluation of ``run_dir`` goes: ``out_dir``, or ``run_dir/out_subdir``.

    ``out_dir`` equal to ``run_dir`` means "in place" (``run_dir/out_subdir``).
    Refused: an ``out_subdir`` that is absolute or has ``..``; an output that
    holds the run (an ancestor); an output inside the run that would mix with
    the transfer's own outputs (``transfer/``, ``means/``, ``transfer.json``...).
    """
    run_dir = Path(run_dir)
    sub = Path(out_subdir)
    if not out_subdir or sub.is_absolute() or ".." in sub.parts:
        raise ValueError(f"out_subdir {out_subdir!r} must be a relative folder name inside the "
                         "run directory, e.g. 'evaluation'")
    run_abs = run_dir.resolve()
    out = run_dir / sub if out_dir is None else Path(out_dir)
    if out.resolve() == run_abs:
        out = run_dir / sub
    out_abs = out.resolve()
    if run_abs.is_relative_to(out_abs):
        raise ValueError(f"output directory {out} contains the transfer run {run_dir}; writing "
                         "there could replace the transfer outputs. Choose another directory.")
    if out_abs.is_relative_to(run_abs):
        top = out_abs.relative_to(run_abs).parts[0]
        manifest = run_dir / fio.MANIFEST_NAME
        taken = {fio.MANIFEST_NAME, fio.RUN_MARKER}
        if manifest.is_file():
            outputs = _read_json(manifest, fio.MANIFEST_NAME).get("outputs", [])
            taken |= {Path(o["path"]).parts[0] for o in outputs if o.get("path")}
        if top in taken:
            raise ValueError(f"output directory {out} lies in {top!r}, one of the transfer run's "
                             f"own outputs; choose a new folder such as {run_dir / 'evaluation'}")
    return out


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Fails before any scoring when ``create_run_dir`` would refuse ``out``."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output {out} exists and is a file; choose another directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"evaluation directory {out} already exists and is not empty; pass "
                "overwrite=True (--config.overwrite=True) to replace it, or choose another one")
        if not (out / fio.RUN_MARKER).is_file():
            raise FileExistsError(f"{out} is not empty and was not written by flowjax; refusing "
                                  "to replace it. Choose another output directory.")


# --------------------------------------------------------------------------
# The whole evaluation
# --------------------------------------------------------------------------


def evaluate_run(
    run_dir: fio.PathLike,
    identity_embedder: IdentityEmbedder,
    au_scorer: ActionUnitScorer | None,
    *,
    au_set: Sequence[str] | str | None = metrics.THESIS_AUS,
    out_subdir: str = DEFAULT_OUT_SUBDIR,
    detector: metrics.FakeDetector | None = None,
    out_dir: fio.PathLike | None = None,
    overwrite: bool = False,
    au_threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD,
    detection_threshold: float = metrics.DEFAULT_DETECTION_THRESHOLD,
    make_figures: bool = True,
    backends: Mapping[str, str] | None = None,
    config: Any = None,
) -> dict[str, Any]:
    """Scores the transfer run ``run_dir`` and writes tables, figures and ``report.md``.

    Args:
      run_dir: a finished ``experiments/transfer.py`` workdir (call this after
        the transfer's run directory has committed its manifest).
      identity_embedder: embeds every generated image, mean face and source.
      au_scorer: scores AUs; None skips AU tables, AU error and best alpha.
      au_set: the AU set S of the AU mean error: names, ``"thesis"`` (the
        default eight), ``"active"`` (per source expression, intensity above
        ``au_threshold``) or ``"all"``/None (every AU the scorer has).
      out_subdir: output folder inside ``run_dir`` (when ``out_dir`` is None).
      detector: a fake detector; when given, its detection rate is reported.
      out_dir: write here instead (see :func:`resolve_output_dir`).
      overwrite: replace an earlier evaluation written by flowjax.
      make_figures: False skips the matplotlib figures.
      backends: backend names for the manifest (e.g. ``{"identity": "facenet"}``).
      config: the evaluation config, recorded in the manifest.

    Returns:
      The summary that is also written to ``evaluation.json``.
    """
    t0 = time.perf_counter()
    out = resolve_output_dir(run_dir, out_dir, out_subdir)
    check_output_dir(out, overwrite)
    run = read_transfer_run(run_dir)
    images = load_run_images(run)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score_run(run, images, identity_embedder, au_scorer, au_set=au_set,
                       au_threshold=au_threshold, detector=detector,
                       detection_threshold=detection_threshold)
    t_score = time.perf_counter() - t0
    backends = dict(backends or {})
    scorers = {"identity": describe(identity_embedder, backends.get("identity")),
               "action_units": describe(au_scorer, backends.get("action_units")),
               "detector": describe(detector, backends.get("detector"))}
    t0 = time.perf_counter()
    rendered = figures.render_all(scores) if make_figures else {}
    t_figures = time.perf_counter() - t0
    with fio.create_run_dir(out, overwrite=overwrite) as target:
        t0 = time.perf_counter()
        files = tables.write_all(target, scores)
        for rel, (image, title) in rendered.items():
            target.write_png(rel, image, figures.provenance(title, run))
        files["figures"] = list(rendered)
        files["viewer"] = viewer.write_viewer(target, run)  # index.html: reads the tables
        summary = _summary(scores, out, scorers, files)
        target.write_json("evaluation.json", summary)
        target.write_text("report.md", report.render(scores, scorers, files,
                                                     figure_titles={k: v[1] for k, v in
                                                                    rendered.items()}))
        manifest = target.manifest
        if config is not None:
            manifest.set_config(config.to_dict() if hasattr(config, "to_dict") else config)
        manifest.set_extra("evaluated_run", {
            "path": os.fspath(run.path.resolve()),
            "transfer_json_sha256": fio.sha256_file(run.path / "transfer.json"),
            "manifest_sha256": fio.sha256_file(run.path / fio.MANIFEST_NAME),
            "model": run.summary.get("model")})
        manifest.set_extra("scorers", scorers)
        manifest.set_extra("references", {
            "identity": "embeddings of the decoded mean faces means/<identity>_mean.png",
            "action_units": "the source input image the transfer encoded for each expression "
                            "(its aligned copy when the transfer aligned photos)",
            "source_inputs": {e: os.fspath(p) for e, p in zip(run.expressions,
                                                                run.source_inputs)}})
        manifest.add_inputs(
            [{"path": os.fspath(p), "sha256": h, "role": "source input (AU reference)"}
             for p, h in zip(run.source_inputs, run.source_sha256)])
        for rel in [*run.mean_paths.values(),
                    *(p for row in run.image_paths for cell in row for p in cell)]:
            manifest.add_input(run.path / rel)
        for name, seconds in (("load", t_load), ("score", t_score), ("figures", t_figures),
                              ("write", time.perf_counter() - t0)):
            manifest.timings[name] = {"seconds": round(seconds, 6), "calls": 1}
    return summary


def _number(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _trend_dict(trend: metrics.Trend | None) -> dict[str, Any] | None:
    if trend is None:
        return None
    return {"mean_best_alpha": trend.mean_best_alpha, "mean_au_error": trend.mean_au_error,
            "mean_distance_to_target_mean": trend.mean_identity_distance,
            "pairs": trend.n_pairs, "skipped": trend.n_skipped}


def _summary(scores: Scores, out: Path, scorers: dict[str, Any],
             files: dict[str, Any]) -> dict[str, Any]:
    run = scores.run
    summary: dict[str, Any] = {
        "run_dir": os.fspath(run.path), "output_dir": os.fspath(out),
        "model": run.model_label, "method": run.summary.get("method"),
        "space": run.summary.get("space"), "source": run.source,
        "expressions": list(run.expressions), "targets": list(run.targets),
        "alphas": run.alphas.tolist(), "alpha_labels": list(run.labels),
        "scorers": {k: (v or {}).get("backend") for k, v in scorers.items()},
        "au_reference": ("aligned source input image (inputs/aligned/)" if "source_images"
                         in run.summary else "original source input image"),
        "identity_reference": "decoded mean faces (means/<identity>_mean.png)",
        "files": files, "notes": list(scores.notes),
    }
    if scores.has_aus:
        to_t, to_s = scores.best_distances()
        au_set = scores.au_set
        summary["au_set"] = "all" if au_set is None else au_set if isinstance(au_set, str) \
            else list(au_set)
        summary["au_sets"] = {e: list(s) for e, s in zip(run.expressions, scores.au_sets)}
        summary["best_alpha"] = {
            e: {t: {"alpha": _number(scores.best.alpha[i, j]),
                    "au_error": _number(scores.best.error[i, j]),
                    "distance_to_target_mean": _number(to_t[i, j]),
                    "distance_to_source_mean": _number(to_s[i, j])}
                for j, t in enumerate(run.targets)}
            for i, e in enumerate(run.expressions)}
        summary["general_trend"] = {k: _trend_dict(v) for k, v in scores.trends.items()}
    summary["detection_rate"] = scores.detection_rate
    detected = scores.p_generated is not None
    summary["detection_threshold"] = scores.detection_threshold if detected else None
    return summary
