"""Evaluate a study: scores, tables, figures and a report.

:func:`evaluate_run` scores a finished run of ``experiments/transfer.py``
(read and verified by :mod:`flowjax.evaluation.transfer_run`);
:func:`evaluate_study` scores any :class:`~flowjax.evaluation.datatypes.Study`,
including one described by a spec file (:mod:`flowjax.evaluation.study`,
``docs/study_format.md``). Both write a new run directory (its own
``manifest.json``) that never overwrites the study's files. For a transfer
run evaluated in place that is ``<run_dir>/evaluation/``::

    report.md                          definitions, trend, best alphas, links
    evaluation.json                    every summary number (NaN written as null)
    tables/scores.csv                  tidy: one row per generated image
    tables/best_alpha.csv              per (expression, target)
    tables/general_trend.csv           per expression and "all"
    tables/per_alpha.csv               per expression and alpha, and "all": mean, s.e., n
    tables/missing_faces.csv           every image a scorer found no face in (if any)
    tables/<expression>/identity_distances.csv   rows <target>_source / <target>_target,
                                                 columns the alphas, source, target
    tables/<expression>/action_units.csv         a row per image, a column per AU
    tables/published/...               with published_tables: the published study's layout
    figures/<expression>/identity_distance.png   distance to target/source mean vs alpha
    figures/<expression>/au_error.png            AU mean error vs alpha
    figures/<expression>/au_bars_<target>.png    AUs at the best alpha beside the source

References. Identity distances are to the embeddings of the mean faces (for a
transfer run, the decoded ``means/<identity>_mean.png``). The AU error of a
generated image is measured against the **source expression image** of its
expression: for a transfer run, the original input image the transfer
encoded, found through the transfer manifest's input list, checked against
its recorded sha256 and loaded with the transfer's data options (the decoded
source is not used); when the transfer aligned its photos
(``config.align``), the aligned copy it wrote and encoded. In the identity
tables, column ``source`` holds that source image and column ``target`` the
target's mean face. The metric definitions are those of
:mod:`flowjax.evaluation.metrics`.

Scoring (scorers on pixels or on files, precomputed scores) is
:mod:`flowjax.evaluation.scoring`.

Everything is verified (checksums), loaded and scored before the output
directory is created, so a bad study or a failing scorer leaves nothing behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowjax import io as fio
from flowjax.evaluation import figures, metrics, report, tables, viewer
from flowjax.evaluation.action_units import ActionUnitScorer
from flowjax.evaluation.datatypes import Scores, Study, TransferRun
from flowjax.evaluation.scorers import describe
from flowjax.runs import run_dirs
from flowjax.evaluation.scoring import (AU_SET_NAMES, StudyImages, check_scorers_fit,
                                        check_threshold, parse_au_set, score_run, score_study,
                                        verify_files)
from flowjax.evaluation.study import load_study
from flowjax.evaluation.transfer_run import _read_json, read_transfer_run

__all__ = ["AU_SET_NAMES", "Scores", "Study", "TransferRun", "load_study", "read_transfer_run",
           "parse_au_set", "check_threshold", "verify_files", "StudyImages", "score_study",
           "score_run", "resolve_output_dir", "check_output_dir", "check_scorers_fit",
           "check_study_output", "evaluate_study", "evaluate_run"]

DEFAULT_OUT_SUBDIR = "evaluation"


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
        manifest = run_dir / run_dirs.MANIFEST_NAME
        taken = {run_dirs.MANIFEST_NAME, run_dirs.RUN_MARKER}
        if manifest.is_file():
            outputs = _read_json(manifest, run_dirs.MANIFEST_NAME).get("outputs", [])
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
        if not (out / run_dirs.RUN_MARKER).is_file():
            raise FileExistsError(f"{out} is not empty and was not written by flowjax; refusing "
                                  "to replace it. Choose another output directory.")


# --------------------------------------------------------------------------
# The whole evaluation
# --------------------------------------------------------------------------


def evaluate_run(
    run_dir: fio.PathLike,
    identity_embedder: Any,
    au_scorer: ActionUnitScorer | None,
    *,
    out_subdir: str = DEFAULT_OUT_SUBDIR,
    out_dir: fio.PathLike | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Scores the transfer run ``run_dir`` (see :func:`evaluate_study` for the rest).

    Args:
      run_dir: a finished ``experiments/transfer.py`` workdir (call this after
        the transfer's run directory has committed its manifest).
      out_subdir: output folder inside ``run_dir`` (when ``out_dir`` is None).
      out_dir: write here instead (see :func:`resolve_output_dir`).
    """
    out = resolve_output_dir(run_dir, out_dir, out_subdir)
    check_output_dir(out, overwrite)
    study = read_transfer_run(run_dir)
    return evaluate_study(study, identity_embedder, au_scorer, out_dir=out,
                          overwrite=overwrite, **kwargs)


def check_study_output(study: Study, out: fio.PathLike) -> Path:
    """Refuses an output directory that holds the study (writing there could
    replace its files)."""
    out = Path(out)
    if study.path.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"output directory {out} contains the study {study.path}; writing "
                         "there could replace its files. Choose another directory.")
    return out


def evaluate_study(
    study: Study,
    identity: Any,
    au_scorer: ActionUnitScorer | None,
    *,
    out_dir: fio.PathLike,
    au_set: Sequence[str] | str | None = metrics.THESIS_AUS,
    detector: metrics.FakeDetector | None = None,
    overwrite: bool = False,
    au_threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD,
    detection_threshold: float = metrics.DEFAULT_DETECTION_THRESHOLD,
    make_figures: bool = True,
    published_tables: bool = False,
    backends: Mapping[str, str] | None = None,
    config: Any = None,
    identity_fallback: str = "crop",
) -> dict[str, Any]:
    """Scores ``study`` and writes tables, figures and ``report.md`` into ``out_dir``.

    Args:
      study: a transfer run (:func:`read_transfer_run`) or a spec's study
        (:func:`load_study`).
      identity: an identity embedder, a distance source (precomputed) or
        None / :data:`~flowjax.evaluation.precomputed.NO_IDENTITY` (not measured).
      au_scorer: scores AUs (pixels, or files via ``score_files``); None skips
        AU tables, AU error and best alpha.
      out_dir: the output directory (new, or an earlier flowjax evaluation
        with ``overwrite``).
      au_set: the AU set S of the AU mean error: names, ``"thesis"`` (the
        default eight), ``"active"`` (per source expression, intensity above
        ``au_threshold``) or ``"all"``/None (every AU the scorer has).
      detector: a fake detector; when given, its detection rate is reported.
      overwrite: replace an earlier evaluation written by flowjax.
      make_figures: False skips the matplotlib figures.
      published_tables: also write the published study's layout
        (``tables/published/``).
      backends: backend names for the manifest (e.g. ``{"identity": "facenet"}``).
      config: the evaluation config, recorded in the manifest.
      identity_fallback: an image in which the identity embedder finds no face
        gets the fixed box's embedding (``"crop"``) or NaN (``"nan"``); either
        way ``tables/scores.csv`` says so per image (``identity_face_box``).

    Returns:
      The summary that is also written to ``evaluation.json``.
    """
    t0 = time.perf_counter()
    out = check_study_output(study, out_dir)
    check_output_dir(out, overwrite)
    check_scorers_fit(study, identity, au_scorer, detector)
    if parse_au_set(au_set) == metrics.ACTIVE:
        au_threshold = check_threshold(au_threshold)
    verify_files(study)
    images = StudyImages(study)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score_study(study, images, identity, au_scorer, au_set=au_set,
                         au_threshold=au_threshold, detector=detector,
                         detection_threshold=detection_threshold,
                         identity_fallback=identity_fallback)
    t_score = time.perf_counter() - t0
    backends = dict(backends or {})
    scorers = {"identity": describe(identity, backends.get("identity")),
               "action_units": describe(au_scorer, backends.get("action_units")),
               "detector": describe(detector, backends.get("detector"))}
    t0 = time.perf_counter()
    rendered = figures.render_all(scores) if make_figures else {}
    t_figures = time.perf_counter() - t0
    with run_dirs.create_run_dir(out, overwrite=overwrite) as target:
        t0 = time.perf_counter()
        files = tables.write_all(target, scores)
        if published_tables:
            files["published"] = tables.write_published(target, scores)
        for rel, (image, title) in rendered.items():
            target.write_png(rel, image, figures.provenance(title, study))
        files["figures"] = list(rendered)
        files["viewer"] = viewer.write_viewer(target, study)  # index.html: reads the tables
        summary = _summary(scores, out, scorers, files)
        target.write_json("evaluation.json", summary)
        target.write_text("report.md", report.render(scores, scorers, files,
                                                     figure_titles={k: v[1] for k, v in
                                                                    rendered.items()}))
        _record(target.manifest, study, scorers, config,
                [*_inputs_read(identity), *_inputs_read(au_scorer)])
        for name, seconds in (("load", t_load), ("score", t_score), ("figures", t_figures),
                              ("write", time.perf_counter() - t0)):
            target.manifest.timings[name] = {"seconds": round(seconds, 6), "calls": 1}
    return summary


def _inputs_read(scorer: Any) -> list[dict[str, Any]]:
    """The files a scorer read instead of pixels (precomputed OpenFace CSVs, distance
    files), each with the sha256 it had when read."""
    return list(scorer.inputs_read()) if callable(getattr(scorer, "inputs_read", None)) else []


def _record(manifest: run_dirs.Manifest, study: Study, scorers: dict[str, Any],
            config: Any, inputs_read: Sequence[Mapping[str, Any]] = ()) -> None:
    """What was evaluated, with which scorers, against which references and inputs."""
    if config is not None:
        manifest.set_config(config.to_dict() if hasattr(config, "to_dict") else config)
    if study.is_transfer_run:
        manifest.set_extra("evaluated_run", {
            "path": os.fspath(study.path.resolve()),
            "transfer_json_sha256": fio.sha256_file(study.path / "transfer.json"),
            "manifest_sha256": fio.sha256_file(study.path / run_dirs.MANIFEST_NAME),
            "model": study.summary.get("model")})
    else:
        spec = study.spec_path
        manifest.set_extra("evaluated_study", {
            "spec": None if spec is None else os.fspath(spec.resolve()),
            "spec_sha256": None if spec is None else fio.sha256_file(spec),
            "root": os.fspath(study.path.resolve()),
            "verified_sha256": len(study.checksums),
            "openface_folders": [os.fspath(d) for d in study.openface_dirs],
            "distances": None if study.distances is None else {
                "layout": study.distances.layout,
                "files": [os.fspath(f) for f in study.distances.files]}})
    manifest.set_extra("scorers", scorers)
    manifest.set_extra("references", {
        "identity": report.identity_reference(study),
        "action_units": "the source input image the transfer encoded for each expression "
                        "(its aligned copy when the transfer aligned photos)"
                        if study.is_transfer_run else "the study's source expression images",
        "source_inputs": {e: os.fspath(p) for e, p in zip(study.expressions,
                                                            study.source_inputs)}})
    manifest.add_inputs(
        [{"path": os.fspath(p), "sha256": h, "role": "source input (AU reference)"}
         for p, h in zip(study.source_inputs, study.source_sha256) if h is not None])
    for path in [*study.mean_files(), *study.generated_files()]:
        manifest.add_input(path)
    manifest.add_inputs(inputs_read)


def _number(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _trend_dict(trend: metrics.Trend | None) -> dict[str, Any] | None:
    if trend is None:
        return None
    return {"mean_best_alpha": trend.mean_best_alpha, "mean_au_error": trend.mean_au_error,
            "mean_distance_to_target_mean": _number(trend.mean_identity_distance),
            "pairs": trend.n_pairs, "skipped": trend.n_skipped}


def _face_boxes(scores: Scores) -> dict[str, Any] | None:
    """Where the identity embedder found the faces: the fallback policy, the
    detector and per group the count of each face-box source."""
    boxes = scores.identity.face_boxes
    if boxes is None:
        return None
    return {"fallback": boxes.policy, "detector": boxes.detector, **boxes.counts()}


def _summary(scores: Scores, out: Path, scorers: dict[str, Any],
             files: dict[str, Any]) -> dict[str, Any]:
    run = scores.run
    summary: dict[str, Any] = {
        "run_dir": os.fspath(run.path), "kind": run.kind,
        "spec": None if run.spec_path is None else os.fspath(run.spec_path),
        "output_dir": os.fspath(out),
        "model": run.model_label, "method": run.summary.get("method"),
        "space": run.summary.get("space"), "source": run.source,
        "expressions": list(run.expressions), "targets": list(run.targets),
        "alphas": run.alphas.tolist(), "alpha_labels": list(run.labels),
        "scorers": {k: (v or {}).get("backend") for k, v in scorers.items()},
        "au_reference": report.au_reference(run),
        "identity_reference": report.identity_reference(run) if scores.has_identity else None,
        "files": files, "notes": list(scores.notes), "missing": scores.missing(),
        "missing_faces": len(scores.missing_faces),
        "identity_face_boxes": _face_boxes(scores),
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
