"""Score a finished reenactment run with real scorers: ``main(config, workdir)``;
see configs/score_reenactment.py.

A run of your own clip (``experiments/reenact.py`` with ``config.actor.video`` or
``config.targets``) has no exact answer, so it is scored against the actor
(``flowjax.evaluation.clip_scores``): the actor's clip and each target's result are
read back from the run's videos (``videos/actor.mp4``, ``videos/<target>.mp4``,
downscaled by the run's ``scale``), the AUs come from OpenFace's FeatureExtraction
CSVs of those videos (``config.action_units.csv_dir``: ``actor.csv``,
``<target>.csv``) or a pixel AU scorer, identity from the configured embedder (dlib,
facenet) against the target's photos (the run's ``inputs/<target>/``, or your photos
at the paths its manifest records, checked against their sha256).

Writes ``tables/per_frame.csv``, ``tables/segments.csv``, ``tables/au_curves.csv``
(actor and result per frame and AU), ``figures/au_curves_<target>.png``, ``index.html``
(the clip viewer: the run's videos beside these curves), ``scores.json``, ``report.md``
and ``manifest.json`` into ``RUN/scores/`` (in place) or ``--workdir``; nothing until
every frame is scored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from flowjax import io as fio
from flowjax.evaluation import (clip_scores, clip_viewer, openface_csv, pipeline, reenactment,
                                scorers)
from flowjax.io import video
from flowjax.runs import run_dirs

ACTOR = "actor"


def _read_run(run_dir: Path) -> dict[str, Any]:
    summary_path = run_dir / "reenact.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path} not found: --config.run_dir must be a finished "
                                "reenactment run (python run.py --config=configs/reenact.py)")
    manifest = json.loads((run_dir / run_dirs.MANIFEST_NAME).read_text())
    if manifest.get("status") != "complete":
        raise ValueError(f"{run_dir} is not a complete run (manifest status "
                         f"{manifest.get('status')!r}); run it again")
    return {"summary": json.loads(summary_path.read_text()), "manifest": manifest}


def _clip(run_dir: Path, name: str, scale: int) -> np.ndarray:
    """A video of the run, back at the model's size (the mean of each upscaled block)."""
    frames = video.read_video(run_dir / "videos" / f"{name}.mp4").frames.astype(np.float64)
    n, h, w, c = frames.shape
    blocks = frames.reshape(n, h // scale, scale, w // scale, scale, c).mean(axis=(2, 4))
    return np.clip(np.rint(blocks), 0, 255).astype(np.uint8)


def _target_photos(run_dir: Path, manifest: dict[str, Any], target: str) -> list[Path]:
    """The target's photos: rendered ones copied into ``inputs/<target>/``, else yours,
    at the paths the run recorded, each still as it was (sha256)."""
    rendered = run_dir / "inputs" / target
    if rendered.is_dir():
        return fio.image_files(rendered)
    entries = [e for e in manifest.get("inputs", []) if Path(e["path"]).parent.name == target]
    if not entries:
        raise ValueError(f"{run_dir}: the manifest records no photo of target {target!r}")
    for entry in entries:
        path = Path(entry["path"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: a photo of target {target!r} that the run read is "
                                    "gone; restore it to score its identity")
        if fio.sha256_file(path) != entry["sha256"]:
            raise ValueError(f"{path}: changed since the run read it (sha256); the identity "
                             "would be measured against other photos")
    return [Path(e["path"]) for e in entries]


def _au_scores(config: Any, run_dir: Path, clips: dict[str, np.ndarray]
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``{name: [F, K]}`` for the actor and every target, and the scorer's record."""
    section = config.action_units
    n_f = len(clips[ACTOR])
    if section.get("csv_dir"):
        folder = Path(section.csv_dir)
        paths = {name: folder / f"{name}.csv" for name in clips}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"no OpenFace CSV {', '.join(missing)}: run FeatureExtraction -f "
                f"{run_dir}/videos/<name>.mp4 -aus -out_dir {folder} for the actor and each target")
        names = _au_names(section) or openface_csv.read_openface_csv(
            paths[ACTOR]).intensity_names  # "all": every intensity the actor's file has
        scores = {name: clip_scores.sequence_aus(p, n_f, names) for name, p in paths.items()}
        record = {"backend": "openface FeatureExtraction CSVs", "au_names": list(names),
                  "files": [{"path": os.fspath(p.resolve()), "sha256": fio.sha256_file(p)}
                            for p in paths.values()]}
        return scores, record
    scorer = scorers.build_au_scorer(section)
    if scorer is None or not callable(scorer):
        raise ValueError(f"action_units backend {section.backend!r} does not score pixels; give "
                         "--config.action_units.csv_dir (OpenFace FeatureExtraction CSVs of the "
                         "run's videos) or a pixel backend (openface, synthetic)")
    names = _au_names(section) or tuple(scorer.au_names)
    unknown = [n for n in names if n not in scorer.au_names]
    if unknown:
        raise ValueError(f"config.action_units.aus names {unknown}, which the "
                         f"{section.backend!r} scorer does not give ({list(scorer.au_names)})")
    columns = [list(scorer.au_names).index(n) for n in names]
    record = {**scorers.describe(scorer, section.backend), "au_names": list(names)}
    return ({name: np.asarray(scorer(frames), np.float64)[:, columns]
             for name, frames in clips.items()}, record)


def _au_names(section: Any) -> tuple[str, ...]:
    """The AUs ``config.action_units.aus`` names; () for ``"all"``."""
    aus = str(section.get("aus") or "all")
    return () if aus == "all" else tuple(a.strip() for a in aus.split(",") if a.strip())


def main(config: Any, workdir: str) -> dict[str, Any]:
    started = time.perf_counter()
    run_dir = Path(config.run_dir or workdir)
    out = pipeline.resolve_output_dir(run_dir, None if not config.run_dir else workdir,
                                      config.out_subdir)
    pipeline.check_output_dir(out, config.overwrite)
    run = _read_run(run_dir)
    summary, manifest = run["summary"], run["manifest"]
    targets = list(summary["targets"])
    scale = int(summary["videos"][f"videos/{targets[0]}.mp4"]["scale"])
    clips = {name: _clip(run_dir, name, scale) for name in [ACTOR, *targets]}
    photos = {t: _target_photos(run_dir, manifest, t) for t in targets}
    au, au_record = _au_scores(config, run_dir, clips)
    embedder = scorers.build_identity_embedder(config.identity)
    embed = None if config.identity.backend == "none" else embedder.embed
    size = clips[ACTOR].shape[1]
    photo_images = {t: fio.load_images(paths, size=size).images for t, paths in photos.items()}
    n_f = len(clips[ACTOR])
    segments = [s["name"] for s in summary["segments"]]
    frame_segments = [next(s["name"] for s in summary["segments"]
                           if s["start"] <= f < s["stop"]) for f in range(n_f)]
    result = clip_scores.score_clip(clips[ACTOR], {t: clips[t] for t in targets}, photo_images,
                                    au, embed, frame_segments, segments,
                                    float(config.action_units.threshold))
    record = {"run": os.fspath(run_dir.resolve()), "targets": targets, "frames": n_f,
              "scorers": {"action_units": au_record,
                          "identity": scorers.describe(embedder, config.identity.backend)
                          if embed else None},
              "summary": result["summary"], "seconds": round(time.perf_counter() - started, 3)}
    au_names = record["scorers"]["action_units"].get("au_names") or []
    curves = _curve_rows(au, targets, frame_segments, au_names)
    bounds = [(s["name"], s["start"], s["stop"]) for s in summary["segments"]]
    with run_dirs.create_run_dir(out, overwrite=config.overwrite) as target:
        target.write_csv("tables/per_frame.csv", result["rows"])
        target.write_csv("tables/segments.csv", result["summary"])
        target.write_csv("tables/au_curves.csv", curves)
        for t in targets:
            target.write_png(f"figures/au_curves_{t}.png", reenactment.au_curves_figure(
                au_names, None, {"actor": au[ACTOR], "result": au[t]}, bounds,
                f"AU curves over time, target {t}, scored against the actor"),
                {"kind": "chart of metrics (not a face)", "target": t})
        videos = {t: os.path.relpath(run_dir / "videos" / f"{t}.mp4", out) for t in targets}
        clip_viewer.write_clip_viewer(target, "scored against its actor",
                                      float(summary["settings"]["fps"]), n_f, targets,
                                      videos, curves)
        target.write_json("scores.json", record)
        target.write_text("report.md", _report(record))
        target.manifest.set_config(config.to_dict())
        target.manifest.set_extra("scored_run", {
            "path": record["run"], "manifest_sha256": fio.sha256_file(
                run_dir / run_dirs.MANIFEST_NAME)})
        target.manifest.add_inputs(au_record.get("files", []))
    print(f"score_reenactment: {len(targets)} target(s) x {n_f} frames scored against the actor; "
          f"{out}/report.md")
    return record


def _curve_rows(au: dict[str, np.ndarray], targets: list[str], segments: list[str],
                au_names: list[str]) -> list[dict[str, Any]]:
    """``tables/au_curves.csv``: per (target, frame, AU) the actor's and the result's AUs."""
    return [{"target": t, "frame": f, "segment": segments[f], "au": name,
             "actor": round(float(au[ACTOR][f, k]), 4), "result": round(float(au[t][f, k]), 4)}
            for t in targets for f in range(len(segments)) for k, name in enumerate(au_names)]


def _report(record: dict[str, Any]) -> str:
    columns = ("au_error_actor", "au_error_active", "to_target", "to_actor", "au_jitter",
               "pixel_change", "face_found")
    return "\n".join([
        "# A reenactment scored against its actor", "",
        "The run has no exact answer (your own clip or photos): the expression reference is "
        "the actor's own frame, scored by the same AU scorer; identity is measured to the "
        "target's photos and to the actor's frames.", "",
        f"- run: `{record['run']}`", f"- targets: {', '.join(record['targets'])}",
        f"- frames: {record['frames']}",
        f"- AU scorer: {record['scorers']['action_units'].get('backend')}",
        f"- identity: {(record['scorers']['identity'] or {}).get('backend', 'none')}", "",
        reenactment.summary_markdown(record["summary"], columns), ""])
