"""Facial reenactment: drive target faces with an actor's clip (issue #24, first slice).

Every frame of the actor's clip is encoded, turned into ``s_t - m`` (``m``: the
actor's neutral frame, or the clip's mean), moved onto each target's mean face
with alpha (``m_t + alpha (s_t - m)``, ``flowjax.transfer.reenact``) and the whole
clip is decoded for all targets in one compiled, chunked sweep. Scored frame by
frame and over time against the exact answer (each target rendered with the
actor's AUs), with and without temporal smoothing of the latent trajectory.

Commands::

    # the default: a 72-frame synthetic clip (neutral -> smile -> surprise -> blink)
    # reenacted on 3 synthetic targets with the shipped demo Glow, scored:
    python run.py --config=configs/reenact.py --workdir=runs/reenact-demo

    # seconds: 8 frames, 1 target, a tiny random-init 64x64 Glow
    python run.py --config=configs/reenact.py:smoke --workdir=/tmp/reenact-smoke

    # the hard synthetic setting, with its Glow and scorers (weights/demo/hard/)
    python run.py --config=configs/reenact.py:hard --workdir=runs/reenact-hard

    # your own actor video, aligned with dlib, onto the synthetic targets:
    python run.py --config=configs/reenact.py --config.actor.video=clip.mp4 \\
        --config.align=True --config.align_detector=dlib --config.evaluation.enabled=False \\
        --workdir=runs/reenact-mine

    # drive each target's first photo (its pose and light) instead of its mean face:
    python run.py --config=configs/reenact.py:photo --workdir=runs/reenact-photo

    # camera noise (4 uint8 levels per frame) on the actor's clip, smoothed:
    python run.py --config=configs/reenact.py:noisy --config.smoothing=0.5 \\
        --config.smoothing_mode=zero_phase --workdir=runs/reenact-noisy

Outputs (docs/reenact.md): ``videos/<target>.mp4``, ``videos/side_by_side.mp4``
(actor | each target), ``videos/answers.mp4`` (actor | each target's exact answer),
``videos/actor.mp4``, ``frames/<target>/frame_<f>.png``, ``tables/per_frame.csv``,
``tables/segments.csv``, ``tables/au_curves.csv``, ``figures/au_curves_<target>.png``,
``report.md``, ``reenact.json``, ``inputs/`` and ``manifest.json``. Every video says
SYNTHETIC in its container metadata and, unless ``--config.visible_mark=False``,
in a small mark burnt into its frames; every PNG in its text chunks.

Fields:
  synthetic      the clip and targets drawn by flowjax.synthetic: seed, n_frames,
                 segments, ramp (fraction of a segment rising / falling), n_targets,
                 photos_per_target (mild photos with nuisance: the target's mean),
                 nuisance_strength, setting ("easy" | "hard"), frame_noise (per-frame
                 pixel noise of the actor's clip, uint8 levels; 0: clean renders),
                 head_motion (degrees, 0-15: the actor turns, nods and tilts its head
                 over the clip; 3-D in the hard setting; the answers stay frontal).
  actor          video (mp4/mov/gif/...: its first max_frames frames) or frames (a folder
                 of frames, in name order): your own actor clip instead of the synthetic
                 one; aligned frame by frame with --config.align=True (e.g.
                 --config.align_detector=dlib; align_failures as in the transfer job).
                 neutral_frame: the frame ``reference="neutral"`` uses.
  targets        identities: root/<identity>/*.png, your own target photos instead of the
                 synthetic targets (aligned with --config.align=True). Your own data has
                 no exact answer: pass --config.evaluation.enabled=False.
  fps            of the videos written (None: the actor video's, else 24).
  reference      "neutral" (the actor's neutral frame) or "mean" (the clip's mean latent).
  target         what the actor drives: "mean" (each target's mean face, the thesis') or
                 "photo" (each target's photo ``target_photo``, an index in name order:
                 that photo in its own pose and light; its exact answer is that photo
                 rendered with the actor's AUs).
  method, alpha  flowjax.transfer.latents' arithmetic (linear, half, variance,
                 std_rescale) and its intensity.
  smoothing      EMA weight of the previous frame on the latent trajectory, [0, 1);
                 0 (default) is off. smoothing_mode: "causal" or "zero_phase".
  evaluation     enabled; compare_smoothing: the other smoothing measured beside
                 ``smoothing`` (with smoothing 0, this one; else 0), so every run
                 reports the jitter both ways; threshold (active AUs); weights_dir.
  video          scale (nearest-neighbour upscaling of the videos), crf (x264 quality).
  visible_mark   burn "SYNTHETIC" into the video frames (True); recorded either way.
  write_frames   the per-target frame PNGs.

Expected (default, the project's 2-core CPU shared with other jobs, load average
~3.5): 38 s wall with an empty compilation cache (95 s at load 7.3), 22 s warm;
3 MP4s of 72 frames (256x256) plus the side-by-side, 216 frame PNGs. AU error
against the exact answer (all 9 AUs, synthetic scorer), reenacted vs the target's
mean face: smile 0.639 vs 1.134, surprise 0.726 vs 1.532, blink 0.385 vs 0.404;
AU jitter 0.130 without smoothing, 0.139 with 0.5 (clean renders: smoothing only
adds lag; with camera noise, ``:noisy``, 0.49 falls to 0.30 causal, 0.22 zero-phase).
docs/reenact.md has the tables.
"""

import os

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = common.base_config()
    config.experiment = "reenact"
    config.checkpoint = common.DEMO_CHECKPOINT
    config.chunk_size = 16
    config.synthetic = ml_collections.ConfigDict(dict(
        seed=0, n_frames=72, segments=("neutral", "smile", "surprise", "blink"), ramp=0.3,
        n_targets=3, photos_per_target=20, nuisance_strength=1.0, setting="easy",
        frame_noise=0.0, head_motion=0.0))
    config.actor = ml_collections.ConfigDict(dict(
        video=config_dict.placeholder(str), frames=config_dict.placeholder(str),
        neutral_frame=0, max_frames=240))
    config.targets = ml_collections.ConfigDict(dict(identities=config_dict.placeholder(str)))
    config.fps = config_dict.placeholder(float)  # None: the actor video's, else 24
    config.reference = "neutral"
    config.target = "mean"
    config.target_photo = 0
    config.method = "linear"
    config.alpha = 1.0
    config.var_eps = 1e-3
    config.smoothing = 0.0
    config.smoothing_mode = "causal"
    config.visible_mark = True
    config.video = ml_collections.ConfigDict(dict(scale=4, crf=18))
    config.write_frames = True
    config.evaluation = ml_collections.ConfigDict(dict(
        enabled=True, compare_smoothing=0.5, threshold=1.0,
        weights_dir=config_dict.placeholder(str)))
    for name in common.parse_variants(arg, ["smoke", "hard", "noisy", "moving", "photo"]):
        if name == "noisy":  # camera noise on the actor's frames: what smoothing is for
            config.synthetic.frame_noise = 4.0
        elif name == "moving":  # the actor moves its head: it must not move the targets'
            config.synthetic.head_motion = 10.0
        elif name == "photo":  # drive each target's first photo, not its mean face
            config.target = "photo"
        elif name == "smoke":
            config.checkpoint = None
            config.random_init.enabled = True
            config.model = common.model_config(image_size=64, n_levels=2, depth=1, width=8)
            config.synthetic.n_frames = 8
            config.synthetic.n_targets = 1
            config.synthetic.photos_per_target = 3
            config.video.scale = 1
            config.progress = False
        elif name == "hard":
            # weights/demo/hard: a Glow and scorers trained on the hard setting
            hard = os.path.join(os.path.dirname(common.DEMO_CHECKPOINT), "hard")
            config.synthetic.setting = "hard"
            config.checkpoint = os.path.join(hard, "glow")
            config.evaluation.weights_dir = os.path.join(hard, "scorers")
    return config
