"""Synthetic video clips with known Action Units per frame: an actor to reenact, the exact answer.

* :func:`expression_clip` -- the AU trajectory of a clip: consecutive segments
  (``"neutral"`` or a :data:`~flowjax.synthetic.factors.PROTOTYPES` name), each
  expression rising from neutral to its prototype, held, and falling back, along
  smoothstep ramps (continuous AU values and speeds: no jump between frames);
* :func:`render_clip` -- one identity rendered with every frame's AUs;
* :func:`reenactment_scene` -- the whole synthetic set-up of facial reenactment:
  target identities with mild photos (their mean face), the actor's clip, and
  the *answers*: each target rendered with the actor's AUs frame by frame, which
  is exactly what a perfect reenactment would show.

Frames are rendered without nuisance (the canonical pose of the faces the
answers use) unless ``frame_noise`` adds per-frame camera noise to the actor's
clip (Gaussian, in uint8 levels, a different seed per frame), the flicker a
temporal smoothing of the latent trajectory is meant to remove, or
``head_motion`` moves the actor's head: a smooth turn, nod and tilt over the clip
(:func:`head_motion_path`; yaw and pitch in the hard setting, which draws 3-D
pose, roll and a small sway in both). The answers keep the canonical pose: a
reenactment should move the target's expression, not its head.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from flowjax.synthetic import datasets, renderer
from flowjax.synthetic.factors import AU_NAMES, PROTOTYPES, check_setting, prototype_aus

NEUTRAL = "neutral"
SEGMENTS = (NEUTRAL, "smile", "surprise", "blink")
DEFAULT_RAMP = 0.3


@dataclasses.dataclass(frozen=True)
class Clip:
    """The AU trajectory of a clip.

    ``aus`` float32 ``[F, len(AU_NAMES)]`` on the 0..5 scale; ``segments`` the
    segment name of every frame; ``bounds`` ``(name, start, stop)`` of each segment
    in order (``stop`` exclusive).
    """

    aus: np.ndarray
    segments: tuple[str, ...]
    bounds: tuple[tuple[str, int, int], ...]

    @property
    def n_frames(self) -> int:
        return len(self.aus)

    def to_dict(self) -> dict:
        """The clip's ground truth as JSON values (AUs rounded to 4 decimals)."""
        return {"au_names": list(AU_NAMES), "n_frames": self.n_frames,
                "segments": [{"name": n, "start": a, "stop": b} for n, a, b in self.bounds],
                "frame_segments": list(self.segments),
                "aus": [[round(float(v), 4) for v in row] for row in self.aus]}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def envelope(n: int, ramp: float = DEFAULT_RAMP) -> np.ndarray:
    """``[n]`` weights in [0, 1]: 0 at both ends, a smoothstep rise over the first ``ramp``
    of the segment, 1 in the middle, the mirror fall over the last ``ramp``."""
    if not 0.0 < ramp <= 0.5:
        raise ValueError(f"ramp must be in (0, 0.5] (a fraction of the segment), got {ramp}")
    # Frame centres in (0, 1): a segment of n frames starts and ends near 0, never at 1.
    t = (np.arange(n) + 0.5) / n
    return np.minimum(_smoothstep(t / ramp), _smoothstep((1.0 - t) / ramp)).astype(np.float32)


def expression_clip(n_frames: int = 72, segments: Sequence[str] = SEGMENTS,
                    ramp: float = DEFAULT_RAMP, scale: float = 1.0) -> Clip:
    """The AU trajectory of ``n_frames`` frames through ``segments`` in order.

    Frames are shared out evenly (the first segments get one more where they do not
    divide). A ``"neutral"`` segment has all AUs 0; an expression segment is its
    prototype (times ``scale``) weighted by :func:`envelope`.
    """
    segments = tuple(segments)
    unknown = [s for s in segments if s != NEUTRAL and s not in PROTOTYPES]
    if not segments or unknown:
        raise ValueError(f"clip segments must be {NEUTRAL!r} or expression prototypes "
                         f"{tuple(PROTOTYPES)}; got {list(segments)}")
    if int(n_frames) != n_frames or n_frames < 2 * len(segments):
        raise ValueError(f"a clip of {len(segments)} segments needs n_frames >= "
                         f"{2 * len(segments)} (two per segment), got {n_frames!r}")
    sizes = np.full(len(segments), n_frames // len(segments))
    sizes[: n_frames % len(segments)] += 1
    aus, names, bounds, start = [], [], [], 0
    for name, size in zip(segments, sizes):
        size = int(size)
        if name == NEUTRAL:
            aus.append(np.zeros((size, len(AU_NAMES)), np.float32))
        else:
            aus.append(envelope(size, ramp)[:, None] * prototype_aus(name, scale)[None])
        names += [name] * size
        bounds.append((name, start, start + size))
        start += size
    return Clip(aus=np.concatenate(aus).astype(np.float32), segments=tuple(names),
                bounds=tuple(bounds))


def head_motion_path(n: int, degrees: float) -> dict[str, np.ndarray]:
    """A head's smooth motion over ``n`` frames, peak angle ``degrees``: one full turn
    left and right (yaw), two nods (pitch, half the angle), a slow tilt (roll, half) and
    a sway of the head across the canvas that follows the turn. Radians and canvas
    units, float32 ``[n]`` each; frame 0 is the canonical pose."""
    if not 0 <= degrees <= 15:
        raise ValueError(f"head_motion must be in [0, 15] degrees (the hard setting's pose "
                         f"range), got {degrees}")
    phase = 2 * np.pi * np.arange(n) / max(n, 1)
    peak = np.radians(degrees)
    return {"yaw": (peak * np.sin(phase)).astype(np.float32),
            "pitch": (0.5 * peak * np.sin(2 * phase)).astype(np.float32),
            "roll": (0.5 * peak * np.sin(0.5 * phase)).astype(np.float32),
            "sway": (0.05 * np.sin(phase) * degrees / 15).astype(np.float32)}


def _nuisance(n: int, std: float, seed: int, setting: str, head_motion: float = 0.0):
    """No nuisance but Gaussian pixel noise of ``std`` levels (a different seed per
    frame) and, with ``head_motion`` degrees, the head's path (:func:`head_motion_path`)."""
    nuisance = renderer.no_nuisance(n, setting)
    hard = hasattr(nuisance, "base")
    base = nuisance.base if hard else nuisance
    if std > 0:
        base = dataclasses.replace(base, noise_std=np.full(n, std, np.float32),
                                   noise_seed=(np.arange(n, dtype=np.uint32)
                                               + np.uint32(seed) * 7919))
    pose = {}  # the hard setting's 3-D pose
    if head_motion > 0:
        path = head_motion_path(n, head_motion)
        base = dataclasses.replace(base, rotation=path["roll"], shift=np.stack(
            [path["sway"], np.zeros(n, np.float32)], axis=-1))
        pose = {"yaw": path["yaw"], "pitch": path["pitch"]} if hard else {}
    nuisance = dataclasses.replace(nuisance, base=base, **pose) if hard else base
    return jax.tree_util.tree_map(np.asarray, nuisance)


def render_clip(identities, index: int, aus: np.ndarray, size: int = 64, setting: str = "easy",
                frame_noise: float = 0.0, noise_seed: int = 0,
                head_motion: float = 0.0) -> np.ndarray:
    """uint8 ``[F, size, size, 3]``: identity row ``index`` of ``identities`` with each row of
    ``aus``; ``frame_noise`` adds Gaussian pixel noise of that std (uint8 levels) per frame,
    ``head_motion`` (degrees) moves the head (:func:`head_motion_path`)."""
    check_setting(setting)
    if frame_noise < 0:
        raise ValueError(f"frame_noise must be >= 0 (uint8 levels), got {frame_noise}")
    aus = np.asarray(aus, np.float32)
    identities = jax.tree_util.tree_map(np.asarray, identities)
    ids = np.full(len(aus), index, np.int32)
    nuisance = _nuisance(len(aus), float(frame_noise), int(noise_seed), setting,
                         float(head_motion))
    return datasets._render_chunked(identities, ids, aus, nuisance, size, setting)  # noqa: SLF001


@dataclasses.dataclass(frozen=True)
class Scene:
    """A synthetic reenactment set-up with its exact answers (host numpy arrays).

    ``clip``: the AU trajectory; ``actor``: uint8 ``[F, S, S, 3]`` the actor's frames;
    ``actor_photos``: the actor's own mild photos (its identity's centroid);
    ``targets``: the targets' mild photos (``identity_ids`` 0..T-1, their mean faces);
    ``answers``: uint8 ``[T, F, S, S, 3]``, target ``t`` with frame ``f``'s AUs: in the
    canonical pose (the target's mean face is the anchor), or, with ``target_photo``
    ``j``, in the pose, light and background of the target's photo ``j`` (that photo is
    the anchor).
    """

    clip: Clip
    actor: np.ndarray
    actor_photos: datasets.Photos
    targets: datasets.Photos
    answers: np.ndarray
    target_names: tuple[str, ...]
    setting: str
    target_photo: int | None = None


def reenactment_scene(clip: Clip, *, seed: int = 0, n_targets: int = 3,
                      photos_per_target: int = 20, size: int = 64,
                      nuisance_strength: float = 1.0, setting: str = "easy",
                      frame_noise: float = 0.0, head_motion: float = 0.0,
                      target_photo: int | None = None) -> Scene:
    """Targets and an actor drawn as in :func:`flowjax.synthetic.datasets.make_study` (seed
    ``seed``; mild photos with nuisance at ``nuisance_strength``), the actor's clip and every
    target's answer. Target ``t`` is named ``id<t:02d>``; the actor is the study's source.
    ``target_photo`` ``j``: the answers are each target's photo ``j`` with the actor's AUs
    (its mild expression replaced, its pose and light kept); None: the mean face's."""
    if target_photo is not None and not 0 <= target_photo < photos_per_target:
        raise ValueError(f"target_photo {target_photo!r} is not one of the "
                         f"{photos_per_target} photos per target (0..{photos_per_target - 1})")
    study = datasets.make_study(seed, n_targets, photos_per_target, 1, size, nuisance_strength,
                                shared_source=True, setting=setting)
    actor = render_clip(study.identities, n_targets, clip.aus, size, setting, frame_noise, seed,
                        head_motion)
    if target_photo is None:
        answers = [render_clip(study.identities, t, clip.aus, size, setting)
                   for t in range(n_targets)]
    else:
        answers = [datasets.render_photo_with(study.identities, study.targets,
                                              study.targets.photo_of(t, target_photo), clip.aus,
                                              size, setting) for t in range(n_targets)]
    return Scene(clip=clip, actor=actor, actor_photos=study.source_photos, targets=study.targets,
                 answers=np.stack(answers),
                 target_names=tuple(f"id{t:02d}" for t in range(n_targets)), setting=setting,
                 target_photo=target_photo)
