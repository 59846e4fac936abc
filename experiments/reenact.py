"""Facial reenactment from a clip: ``main(config, workdir)``; see configs/reenact.py.

Pipeline: check the config, gather the inputs -- the synthetic scene
(``flowjax.synthetic.clips``: the actor's clip, the targets' photos, the exact
answers), or your own actor clip (``config.actor.video``: a video file;
``config.actor.frames``: a folder of frames) and/or target photos
(``config.targets.identities``: ``root/<identity>/*.png``), aligned on the way in
with ``config.align`` (dlib or MTCNN, the transfer job's options and failure
policy) -- load the model, encode every frame and photo in one batched encode, form
the actor's latent trajectory and its reference, smooth it (each smoothing
measured), decode every trajectory on every target and the targets' anchors (mean
faces, or one photo each with ``config.target="photo"``) in one compiled sweep
(``flowjax.transfer.reenact``), score the frames against the answers (synthetic
scene only: ``flowjax.evaluation.reenactment``; your own clip afterwards with
``experiments/score_reenactment.py``), encode the videos in memory, then write the
run directory::

    videos/<target>.mp4            the reenacted clip of each target
    videos/side_by_side.mp4        actor | each target's result
    videos/answers.mp4             actor | each target's exact answer (synthetic scene)
    videos/actor.mp4               the actor's clip as encoded (aligned)
    frames/<target>/frame_<f>.png  every reenacted frame, with provenance
    tables/per_frame.csv           per (variant, smoothing, target, frame): AU error,
                                   identity distance, jitter (synthetic scene)
    tables/segments.csv            means per (variant, smoothing, segment)
    tables/au_curves.csv           per (target, frame, AU): truth, actor, result(s),
                                   answer, mean face
    figures/au_curves_<target>.png the AU curves over time
    report.md, reenact.json        the summary, the checks, the speed
    inputs/...                     the rendered inputs and ground_truth.json (synthetic)
    manifest.json                  config, model, inputs (your video or frames with their
                                   sha256, the alignment), outputs, timings, speed

Nothing is written until everything is decoded, scored and encoded. Every video
is labelled SYNTHETIC in its container metadata and (``config.visible_mark``) in a
mark burnt into its frames; every PNG in its text chunks.

Longer than 400 lines because the job has two sources for each of its inputs (the
rendered scene with its answers, or your own clip and photos, aligned and recorded
as the transfer job records photos) and writes one run from either.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from flowjax import io as fio
from flowjax import runs
from flowjax.evaluation import clip_viewer, reenactment, synthetic_scorers
from flowjax.io import video
from flowjax.runs import names
from flowjax.synthetic import AU_NAMES, clips
from flowjax.transfer import latents, reenact

ACTOR = "actor"
DEFAULT_FPS = 24.0


# ---- config ---------------------------------------------------------------------------


def _real(config: Any) -> tuple[bool, bool]:
    """(the actor is your clip, the targets are your photos)."""
    return (bool(config.actor.get("video") or config.actor.get("frames")),
            bool(config.targets.get("identities")))


def _target_photo(config: Any) -> int | None:
    """The photo each target is anchored on (None: its mean face); checked in full by
    :func:`_check_config`."""
    return latents.anchor_photo(config.get("target", "mean"), config.get("target_photo", 0))


def _smoothings(config: Any) -> list[float]:
    """The smoothings decoded: the configured one first, then the one it is compared with."""
    primary = float(config.smoothing)
    if not config.evaluation.enabled:
        return [primary]
    other = 0.0 if primary > 0 else float(config.evaluation.compare_smoothing)
    return [primary] if other == primary else [primary, other]


def _check_config(config: Any) -> clips.Clip:
    """Everything checkable before any work; returns the synthetic clip's AU trajectory."""
    real_actor, real_targets = _real(config)
    if config.actor.get("video") and config.actor.get("frames"):
        raise ValueError("give one of config.actor.video (a video file) and config.actor.frames "
                         "(a folder of frames), not both")
    if (real_actor or real_targets) and config.evaluation.enabled:
        mine = [f for f, on in (("config.actor", real_actor), ("config.targets", real_targets))
                if on]
        raise ValueError(f"{' and '.join(mine)} name your own data, which has no exact answer "
                         "to score against (the evaluation renders each target with the "
                         "synthetic actor's AUs): pass --config.evaluation.enabled=False")
    reenact.check_options(config.reference, config.method, float(config.smoothing),
                          config.smoothing_mode)
    latents.anchor_photo(config.get("target", "mean"), config.get("target_photo", 0),
                         None if real_targets else config.synthetic.photos_per_target)
    if not 0.0 <= float(config.evaluation.compare_smoothing) < 1.0:
        raise ValueError("config.evaluation.compare_smoothing must be in [0, 1), got "
                         f"{config.evaluation.compare_smoothing!r}")
    latents.check_alphas([config.alpha], "config.alpha")
    latents.check_var_eps(config.var_eps, config.method, "config.var_eps")
    latents.check_space(config.space)
    if config.chunk_size < 1:
        raise ValueError(f"config.chunk_size must be >= 1, got {config.chunk_size}")
    if config.fps is not None and not 0 < float(config.fps) <= 240:
        raise ValueError(f"config.fps must be in (0, 240], got {config.fps!r}")
    if int(config.actor.max_frames) < 2:
        raise ValueError(f"config.actor.max_frames must be >= 2, got {config.actor.max_frames}")
    scale = config.video.scale
    if int(scale) != scale or scale < 1:
        raise ValueError(f"config.video.scale must be a positive integer, got {scale!r}")
    runs.check_alignment(config, synthetic_study=not (real_actor or real_targets))
    video.check_backend()  # PyAV missing: say so now, not after the work
    study = config.synthetic
    if config.evaluation.enabled:
        synthetic_scorers.check_weights_dir(config.evaluation.weights_dir)
    clip = clips.expression_clip(study.n_frames, tuple(study.segments), study.ramp)
    if not real_actor and not 0 <= config.actor.neutral_frame < clip.n_frames:
        raise ValueError(f"config.actor.neutral_frame={config.actor.neutral_frame} is not a "
                         f"frame of the {clip.n_frames}-frame clip")
    if study.n_targets < 1 or study.photos_per_target < 1:
        raise ValueError("config.synthetic.n_targets and photos_per_target must be >= 1")
    return clip


# ---- inputs ---------------------------------------------------------------------------


@dataclasses.dataclass
class Inputs:
    """What the run encodes: ``sets`` (the actor's frames, then each target's photos), which
    of them were rendered here (``generated``: copied into ``inputs/``), the synthetic
    ``scene`` where one was rendered, the clip's ``segments``/``bounds``, its ``fps``
    and, for ``config.actor.video``, the video's manifest record."""

    sets: dict[str, fio.ImageSet]
    targets: list[str]
    generated: list[str]
    scene: clips.Scene | None
    segments: tuple[str, ...]
    bounds: tuple[tuple[str, int, int], ...]
    fps: float
    actor_video: dict[str, Any] | None = None

    @property
    def actor(self) -> np.ndarray:
        return self.sets[ACTOR].images

    @property
    def synthetic_actor(self) -> bool:
        return ACTOR in self.generated


def _write_scene(root: Path, scene: clips.Scene, seed: int) -> dict[str, Path]:
    """The scene as input files (SYNTHETIC TEST DATA): ``actor/frame_<f>.png``,
    ``<target>/photo_<j>.png``; returns each set's folder."""
    folders = {ACTOR: root / ACTOR, **{name: root / name for name in scene.target_names}}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for f, (image, aus) in enumerate(zip(scene.actor, scene.clip.aus)):
        fio.write_png(folders[ACTOR] / f"frame_{f:04d}.png", image, {
            "kind": "synthetic actor clip frame (flowjax.synthetic.clips)", "frame": f,
            "segment": scene.clip.segments[f], "aus": [round(float(a), 4) for a in aus],
            "seed": seed})
    per = len(scene.targets.images) // len(scene.target_names)
    for i, (image, who, aus) in enumerate(zip(scene.targets.images, scene.targets.identity_ids,
                                              scene.targets.aus)):
        name = scene.target_names[int(who)]
        fio.write_png(folders[name] / f"photo_{i % per:02d}.png", image, {
            "kind": "synthetic target photo (flowjax.synthetic)", "identity": name,
            "aus": [round(float(a), 4) for a in aus], "seed": seed})
    return folders


def _video_actor(config: Any, tmp: Path, size: int) -> tuple[fio.ImageSet, dict[str, Any]]:
    """``config.actor.video``'s frames (the first ``max_frames``), as PNG copies in the staging
    folder loaded (aligned with ``config.align``) like photos; and the video's record."""
    path = Path(config.actor.video)
    clip = video.read_video(path, max_frames=int(config.actor.max_frames))
    folder = tmp / "actor_video_frames"
    folder.mkdir()
    for f, frame in enumerate(clip.frames):
        fio.write_png(folder / f"frame_{f:04d}.png", frame, {
            "kind": "frame of the actor video", "video": path.name, "frame": f}, generated=False)
    frames = runs.load_images(config, folder, size, label=f"the frames of {path}")
    record = {"path": os.path.abspath(path), "sha256": fio.sha256_file(path),
              "kind": "actor video (config.actor.video)", "frames_read": len(clip.frames),
              "frame_size": list(clip.frames.shape[1:3]), "fps": clip.fps,
              "labelled_synthetic": clip.synthetic,
              "frames_used": [int(Path(p).stem.split("_")[-1]) for p in frames.paths]}
    return frames, record


def _gather_inputs(config: Any, exp: runs.Experiment, clip: clips.Clip, tmp: Path,
                   size: int) -> Inputs:
    real_actor, real_targets = _real(config)
    study = config.synthetic
    sets: dict[str, fio.ImageSet] = {}
    scene, generated, actor_video = None, [], None
    if not (real_actor and real_targets):
        with exp.timed("render_scene"):
            scene = clips.reenactment_scene(
                clip, seed=study.seed, n_targets=study.n_targets,
                photos_per_target=study.photos_per_target, size=size,
                nuisance_strength=study.nuisance_strength, setting=study.setting,
                frame_noise=study.frame_noise, head_motion=study.get("head_motion", 0.0),
                target_photo=_target_photo(config))
            exp.generated_root = tmp / "faces"
            folders = _write_scene(exp.generated_root, scene, study.seed)
    with exp.timed("load_images"):
        if config.actor.get("video"):
            sets[ACTOR], actor_video = _video_actor(config, tmp, size)
        elif config.actor.get("frames"):
            sets[ACTOR] = runs.load_images(config, config.actor.frames, size,
                                           label="config.actor.frames")
        else:
            sets[ACTOR] = fio.load_images(folders[ACTOR], size=size)
            generated.append(ACTOR)
        if len(sets[ACTOR]) > int(config.actor.max_frames):
            raise ValueError(f"the actor's clip has {len(sets[ACTOR])} frames, more than "
                             f"config.actor.max_frames={config.actor.max_frames}; raise it or "
                             "give fewer frames")
        if real_targets:
            targets = runs.load_identities(config, config.targets.identities, size)
            unsafe = [name for name in targets if name == ACTOR]
            if unsafe:
                raise ValueError(f"config.targets.identities has an identity named {ACTOR!r}; "
                                 "rename its folder (the name is the actor's)")
        else:
            targets = {n: fio.load_images(folders[n], size=size) for n in scene.target_names}
            generated += list(targets)
        sets.update(targets)
    n_frames = len(sets[ACTOR])
    if n_frames < 2:
        raise ValueError(f"the actor's clip has {n_frames} usable frame(s); reenactment needs 2")
    if generated and generated[0] == ACTOR:  # the synthetic clip: its segments and truth
        segments, bounds = clip.segments, clip.bounds
    else:
        segments, bounds = ("clip",) * n_frames, (("clip", 0, n_frames),)
    fps = config.fps or (actor_video["fps"] if actor_video and np.isfinite(actor_video["fps"])
                         else DEFAULT_FPS)
    return Inputs(sets=sets, targets=list(targets), generated=generated, scene=scene,
                  segments=segments, bounds=bounds, fps=float(fps), actor_video=actor_video)


# ---- the run --------------------------------------------------------------------------


def main(config: Any, workdir: str) -> dict[str, Any]:
    started = time.perf_counter()
    clip = _check_config(config)
    exp = runs.Experiment(config, workdir)
    size = exp.geometry.image_size
    if config.evaluation.enabled and size % synthetic_scorers.IMAGE_SIZE:
        raise ValueError(f"the synthetic scorers take {synthetic_scorers.IMAGE_SIZE}x"
                         f"{synthetic_scorers.IMAGE_SIZE} faces (or multiples); this model is "
                         f"{size}x{size}: use a 64x64 model or --config.evaluation.enabled=False")
    with exp.staging() as tmp:
        inputs = _gather_inputs(config, exp, clip, Path(tmp), size)
        model, variables, _ = exp.load_model(
            np.concatenate([s.images for s in inputs.sets.values()]))

        with exp.timed("encode"):
            flat = runs.encode_sets(model, variables, inputs.sets, config)
        trajectory = flat[ACTOR]
        neutral = config.actor.neutral_frame
        if config.reference == "neutral" and not 0 <= neutral < len(trajectory):
            raise ValueError(f"config.actor.neutral_frame={neutral} is not a frame of the "
                             f"actor's {len(trajectory)}-frame clip")
        reference = reenact.reference_latent(trajectory, config.reference, neutral)
        target_stats = latents.anchor_stats([flat[t] for t in inputs.targets],
                                            _target_photo(config), inputs.targets)
        smoothings = _smoothings(config)
        trajectories = {f"{b:g}": reenact.smooth(trajectory, b, config.smoothing_mode)
                        for b in smoothings}
        with exp.timed("sweep"):
            result = reenact.reenact_sweep(
                model, variables, trajectories, reference, target_stats, config.alpha,
                source_var=latents.identity_stats(trajectory).var, method=config.method,
                space=config.space, var_eps=config.var_eps, chunk_size=config.chunk_size,
                progress=config.progress, target_names=inputs.targets)
        frames = result.frames[f"{smoothings[0]:g}"]  # [T, F, S, S, 3]: the run's output

        evaluation = None
        if config.evaluation.enabled:
            with exp.timed("evaluate"):
                weights = config.evaluation.weights_dir
                evaluation = reenactment.score_scene(
                    inputs.scene, {b: result.frames[f"{b:g}"] for b in smoothings},
                    result.baseline, synthetic_scorers.build_au_scorer(weights),
                    synthetic_scorers.build_identity_embedder(weights),
                    float(config.evaluation.threshold))

        with exp.timed("encode_videos"):
            videos = _encode_videos(config, exp, inputs, frames)

        generated = {name: inputs.sets[name] for name in inputs.generated}
        with exp.run_dir(generated) as run:
            _record_real_inputs(run.manifest, inputs)
            summary = _write_run(run, exp, config, inputs, frames, videos, evaluation,
                                 smoothings, started)
    return summary


def _record_real_inputs(manifest: Any, inputs: Inputs) -> None:
    """Your own inputs in the manifest (the rendered ones the scaffold copies into
    ``inputs/``): target photos and actor frames with their sha256 and alignment, or
    the actor video with its sha256 and, per frame used, its alignment."""
    real = {n: s for n, s in inputs.sets.items() if n not in inputs.generated}
    if inputs.actor_video is not None:
        frames = real.pop(ACTOR)
        manifest.add_inputs([inputs.actor_video])
        manifest.set_extra("actor_video", inputs.actor_video)
        alignment = [{**info.to_dict(), "source": f"{inputs.actor_video['path']}#frame={f}"}
                     for info, f in zip(getattr(frames, "alignment", ()),
                                        inputs.actor_video["frames_used"])]
        if alignment:
            manifest.set_extra("actor_video_alignment", alignment)
        skipped = getattr(frames, "skipped", ())
        if skipped:
            manifest.set_extra("actor_video_frames_skipped", list(skipped))
    for image_set in real.values():
        manifest.add_inputs(image_set.manifest_entries())
    if real:
        runs.record_alignment(manifest, real)


def _anchors(config: Any, inputs: Inputs) -> dict[str, str]:
    """What each target's frames are anchored on, for the records: its mean face, or the
    name of its photo ``config.target_photo`` (name order)."""
    j = _target_photo(config)
    if j is None:
        return {t: f"mean face of {len(inputs.sets[t])} photos" for t in inputs.targets}
    return {t: f"photo {names.image_names(inputs.sets[t].paths)[j]}" for t in inputs.targets}


def _video_frames(config: Any, frames: np.ndarray) -> np.ndarray:
    frames = video.upscale(frames, int(config.video.scale))
    return video.burn_mark(frames) if config.visible_mark else frames


def _encode_videos(config: Any, exp: runs.Experiment, inputs: Inputs,
                   frames: np.ndarray) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """``{relative path: (mp4 bytes, provenance)}``, encoded in memory."""
    actor = ("synthetic actor clip (flowjax.synthetic.clips)" if inputs.synthetic_actor else
             os.path.basename(str(config.actor.get("video") or config.actor.get("frames"))))
    base = {"method": config.method, "alpha": float(config.alpha), "space": config.space,
            "reference": config.reference, "smoothing": float(config.smoothing),
            "smoothing_mode": config.smoothing_mode, "model": exp.model_label, "actor": actor,
            "visible_mark": bool(config.visible_mark), "scale": int(config.video.scale)}
    out = {}

    def add(rel: str, pixels: np.ndarray, provenance: dict[str, Any],
            generated: bool = True) -> None:
        provenance = {**provenance, "frames": len(pixels), "fps": inputs.fps}
        out[rel] = (video.encode_video(_video_frames(config, pixels), inputs.fps, provenance,
                                       generated=generated, crf=int(config.video.crf)),
                    provenance)

    anchors = _anchors(config, inputs)
    for t, target in enumerate(inputs.targets):
        add(f"videos/{target}.mp4", frames[t], {"kind": "facial reenactment", **base,
                                                "target": target, "anchor": anchors[target]})
    row = lambda faces: np.concatenate([inputs.actor, *faces], axis=2)  # noqa: E731
    layout = "actor | " + " | ".join(inputs.targets)
    add("videos/side_by_side.mp4", row(frames), {
        "kind": "facial reenactment, side by side", **base, "layout": layout})
    if inputs.synthetic_actor and set(inputs.targets) <= set(inputs.generated):  # the answers
        add("videos/answers.mp4", row(inputs.scene.answers), {
            "kind": "exact answers (each target rendered with the actor's AUs)",
            "layout": layout, "visible_mark": bool(config.visible_mark)})
    # Your own clip, aligned, is a copy of an input (labelled so); a rendered one is synthetic.
    add("videos/actor.mp4", inputs.actor, {"kind": "the actor's clip as encoded",
                                           "actor": actor,
                                           "visible_mark": bool(config.visible_mark)},
        generated=inputs.synthetic_actor)
    return out


# ---- writing ------------------------------------------------------------------------------


def _write_run(run, exp, config, inputs: Inputs, frames, videos, evaluation, smoothings,
               started) -> dict[str, Any]:
    n_t, n_f = frames.shape[:2]
    if inputs.synthetic_actor:
        run.write_json("inputs/ground_truth.json", {
            **inputs.scene.clip.to_dict(), "targets": inputs.targets,
            "setting": inputs.scene.setting})
    for rel, (data, _) in videos.items():
        run.write_bytes(rel, data)
    base = {"kind": "facial reenactment frame", "method": config.method,
            "alpha": float(config.alpha), "reference": config.reference,
            "smoothing": float(config.smoothing), "smoothing_mode": config.smoothing_mode,
            "space": config.space, "model": exp.model_label}
    frame_files: dict[str, str] = {}
    if config.write_frames:
        actor_paths = [exp.input_paths.get(p, str(p)) for p in inputs.sets[ACTOR].paths]
        for t, target in enumerate(inputs.targets):
            for f in range(n_f):
                actor_frame = (f"{inputs.actor_video['path']}#frame="
                               f"{inputs.actor_video['frames_used'][f]}"
                               if inputs.actor_video else actor_paths[f])
                run.write_png(f"frames/{target}/frame_{f:04d}.png", frames[t, f], {
                    **base, "target": target, "frame": f, "segment": inputs.segments[f],
                    "actor_frame": actor_frame})
            frame_files[target] = f"frames/{target}/"
    files = {"side by side (actor | results)": "videos/side_by_side.mp4",
             **({"exact answers (actor | answers)": "videos/answers.mp4"}
                if "videos/answers.mp4" in videos else {}),
             **{f"result {t}": f"videos/{t}.mp4" for t in inputs.targets}}
    checks: list[str] = []
    summary_rows: list[dict[str, Any]] = []
    curve_rows: list[dict[str, Any]] = []
    if evaluation is not None:
        summary_rows = evaluation["summary"]
        curve_rows = reenactment.curve_rows(inputs.scene, evaluation["curves"])
        run.write_csv("tables/per_frame.csv", evaluation["rows"])
        run.write_csv("tables/segments.csv", summary_rows)
        run.write_csv("tables/au_curves.csv", curve_rows)
        for target, curves in evaluation["curves"].items():
            image = reenactment.au_curves_figure(
                AU_NAMES, inputs.scene.clip.aus, curves, inputs.bounds,
                f"AU curves over time, target {target} (synthetic scorer; truth dashed)")
            rel = f"figures/au_curves_{target}.png"
            run.write_png(rel, image, {"kind": "chart of metrics (not a face)",
                                       "target": target})
            files[f"AU curves, {target}"] = rel
        files.update({"per-frame table": "tables/per_frame.csv",
                      "per-segment table": "tables/segments.csv"})
        checks = reenactment.checks(summary_rows, inputs.bounds, smoothings)
        run.manifest.set_extra("scorers", evaluation["scorers"])
    sweep_s = exp.timings["sweep"]["seconds"]
    elapsed = time.perf_counter() - started
    speed = {"frames": n_f, "targets": n_t, "output_frames": n_f * n_t,
             "decoded_frames": n_f * n_t * len(smoothings) + n_t,
             "sweep_seconds": round(sweep_s, 3),
             "sweep_fps": round(n_f * n_t * len(smoothings) / sweep_s, 2),
             "end_to_end_seconds": round(elapsed, 3),
             "end_to_end_fps": round(n_f * n_t / elapsed, 2),
             "note": "end to end: from main() to the last file, without the process start "
                     "and imports; sweep_fps: reenacted frames decoded per second (all "
                     "smoothings), the sweep alone, compilation included"}
    run.manifest.set_extra("speed", speed)
    run.manifest.set_extra("visible_mark", bool(config.visible_mark))
    actor = videos["videos/actor.mp4"][1]["actor"]
    photo = _target_photo(config)
    settings = {"actor": actor, "frames": n_f, "fps": inputs.fps,
                "targets": ", ".join(inputs.targets),
                "setting": inputs.scene.setting if inputs.scene is not None else "your data",
                "model": exp.model_label, "method": config.method, "alpha": float(config.alpha),
                "reference": config.reference,
                "target anchor": ("mean face" if photo is None
                                  else f"photo {photo} of each target"),
                "smoothing": f"{config.smoothing:g} ({config.smoothing_mode})",
                "smoothings measured": ", ".join(f"{b:g}" for b in smoothings),
                "visible mark": bool(config.visible_mark)}
    title = ("Facial reenactment (synthetic clip)" if inputs.synthetic_actor
             else f"Facial reenactment of {actor}")
    files["the viewer: each clip with its AU curves"] = clip_viewer.write_clip_viewer(
        run, title, inputs.fps, n_f, inputs.targets,
        {**{t: f"videos/{t}.mp4" for t in inputs.targets},
         "side by side": "videos/side_by_side.mp4"}, curve_rows)
    run.write_text("report.md", reenactment.report_markdown(
        title, settings, summary_rows, checks, speed, files))
    summary = {"settings": settings, "targets": inputs.targets, "anchors": _anchors(config, inputs),
               "segments": [{"name": n, "start": a, "stop": b} for n, a, b in inputs.bounds],
               "videos": {rel: prov for rel, (_, prov) in videos.items()},
               "frames": frame_files, "summary": summary_rows, "checks": checks, "speed": speed,
               "model": exp.model_record}
    run.write_json("reenact.json", summary)
    logging.info("reenact: %d frames x %d targets: %.1f fps end to end, %.1f fps in the sweep "
                 "(%.1f s)", n_f, n_t, speed["end_to_end_fps"], speed["sweep_fps"], sweep_s)
    print(f"reenact: {n_f} frames x {n_t} targets in {elapsed:.1f} s: "
          f"{speed['end_to_end_fps']} fps end to end, {speed['sweep_fps']} fps in the sweep; "
          f"{exp.workdir}/report.md")
    for line in checks:
        print(f"  {line}")
    return summary
