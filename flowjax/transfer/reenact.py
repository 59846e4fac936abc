"""Facial reenactment: an actor's latent trajectory moved onto targets, decoded in one sweep.

A clip of the actor, encoded frame by frame, is a trajectory ``s_1 .. s_F`` of flat
latents. Its expression at frame ``t`` is the displacement ``s_t - m`` from a
*reference* ``m``: the actor's neutral frame (``"neutral"``: the expression is
measured from rest, so a neutral frame reenacts as the target's own mean face) or
the clip's mean latent (``"mean"``: the paper's identity mean, estimated from the
clip itself). Each target's frame is then
``latents.transfer(method, s_t, (m, v), (m_t, v_t), alpha)``, for ``linear``
``m_t + alpha (s_t - m)``, where ``m_t`` (``v_t``) is the target's mean (variance)
latent over its photos and ``v`` the clip's variance.
:func:`flowjax.transfer.latents.anchor_stats` can anchor each target on one of its
own photos instead (``m_t`` that photo's latent): the actor then drives that photo,
in its own pose and light.

:func:`smooth` optionally low-passes the trajectory first with an exponential
moving average (EMA) of weight ``beta``: ``y_t = beta y_{t-1} + (1 - beta) s_t``
(``"causal"``: usable live, lags by about ``beta / (1 - beta)`` frames) or that filter
run forward then backward (``"zero_phase"``: offline, no lag). For the linear
methods smoothing the trajectory is smoothing the output latents.

:func:`reenact_sweep` decodes any number of trajectories (e.g. with and without
smoothing) for every target with :func:`flowjax.transfer.sweep.transfer_sweep`:
one compiled, chunked sweep whose grid is (trajectory frames + 1, targets, 1 alpha).
The extra row is the reference itself: no displacement, which ``linear``, ``half``
and ``std_rescale`` map onto the target's anchor (mean face or photo) at any alpha
(``variance`` onto its own zero-displacement image, ``m_t / (v_t + eps)``), so the
no-transfer baseline comes out of the same call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from flowjax.transfer import latents, sweep

REFERENCES = ("neutral", "mean")
SMOOTHING_MODES = ("causal", "zero_phase")


def check_options(reference: str, method: str, smoothing: float, mode: str,
                  prefix: str = "config.") -> None:
    """ValueErrors naming the option, for a reference, method, EMA weight or mode we cannot use."""
    if reference not in REFERENCES:
        raise ValueError(f"{prefix}reference must be one of {REFERENCES}, got {reference!r}")
    if method not in latents.TRANSFER_METHODS:
        hint = (f" ({method!r} rewrites the source against its identity mean: not yet for "
                "reenactment)" if method in latents.SOURCE_METHODS else "")
        raise ValueError(f"{prefix}method must be one of {latents.TRANSFER_METHODS}, got "
                         f"{method!r}{hint}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"{prefix}smoothing is the EMA weight of the previous frame, in [0, 1) "
                         f"(0: off); got {smoothing!r}")
    if mode not in SMOOTHING_MODES:
        raise ValueError(f"{prefix}smoothing_mode must be one of {SMOOTHING_MODES}, got {mode!r}")


def reference_latent(trajectory: np.ndarray, reference: str = "neutral",
                     neutral_frame: int = 0) -> np.ndarray:
    """``[D]``: the frame ``neutral_frame`` (``"neutral"``) or the mean over frames (``"mean"``)."""
    trajectory = _check_trajectory(trajectory)
    if reference == "mean":
        return trajectory.mean(axis=0)
    if reference != "neutral":
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if int(neutral_frame) != neutral_frame or not 0 <= neutral_frame < len(trajectory):
        raise ValueError(f"neutral_frame {neutral_frame!r} is not a frame of the clip "
                         f"(0..{len(trajectory) - 1})")
    return trajectory[int(neutral_frame)].copy()


def _check_trajectory(trajectory: Any) -> np.ndarray:
    trajectory = np.asarray(trajectory, np.float32)
    if trajectory.ndim != 2 or len(trajectory) == 0:
        raise ValueError(f"a latent trajectory is [F, D] flat latents, F >= 1; got shape "
                         f"{trajectory.shape}")
    return trajectory


def _ema(x: np.ndarray, beta: float) -> np.ndarray:
    out = np.empty_like(x)
    out[0] = x[0]
    for t in range(1, len(x)):
        out[t] = beta * out[t - 1] + (1.0 - beta) * x[t]
    return out


def smooth(trajectory: Any, beta: float, mode: str = "causal") -> np.ndarray:
    """The EMA of a ``[F, D]`` trajectory (``beta=0``: unchanged); see the module docstring.

    Both modes start from the first frame (no pull towards zero) and keep a constant
    trajectory constant.
    """
    trajectory = _check_trajectory(trajectory)
    check_options("neutral", "linear", beta, mode, prefix="")
    if beta == 0.0:
        return trajectory.copy()
    out = _ema(trajectory.astype(np.float64), float(beta))
    if mode == "zero_phase":
        out = _ema(out[::-1], float(beta))[::-1]
    return out.astype(np.float32)


class Reenactment(NamedTuple):
    """What :func:`reenact_sweep` decoded.

    ``frames``: ``{name: uint8 [T, F, S, S, C]}``, one per trajectory, targets first;
    ``baseline``: uint8 ``[T, S, S, C]``, each target's anchor (no transfer): its mean
    face, or its photo (``latents.anchor_stats``).
    """

    frames: dict[str, np.ndarray]
    baseline: np.ndarray


def reenact_sweep(model: Any, variables: Any, trajectories: Mapping[str, np.ndarray],
                  reference: np.ndarray, target_stats: latents.IdentityStats, alpha: float = 1.0,
                  *, source_var: np.ndarray | None = None, method: str = "linear",
                  space: str = "eps", var_eps: float = latents.DEFAULT_VARIANCE_EPS,
                  chunk_size: int = sweep.DEFAULT_CHUNK_SIZE, progress: bool | None = None,
                  target_names: Sequence[str] | None = None, devices: Any = None) -> Reenactment:
    """Every trajectory reenacted on every target, and the targets' anchors, in one sweep.

    ``trajectories`` ``{name: [F_k, D]}`` flat latents in ``space``; ``reference`` ``[D]``;
    ``target_stats`` ``[T, D]`` means and variances (``latents.anchor_stats``);
    ``source_var`` ``[D]`` the actor's variance (the variance methods; default zeros).
    """
    if not trajectories:
        raise ValueError("reenact_sweep needs at least one trajectory")
    rows = {name: _check_trajectory(t) for name, t in trajectories.items()}
    reference = np.asarray(reference, np.float32)
    sources = np.concatenate([*rows.values(), reference[None]])
    var = np.zeros_like(reference) if source_var is None else np.asarray(source_var, np.float32)
    source_stats = latents.IdentityStats(mean=np.broadcast_to(reference, sources.shape),
                                         var=np.broadcast_to(var, sources.shape), count=0)
    names = [f"{name} frame {f}" for name, t in rows.items() for f in range(len(t))]
    grid = sweep.transfer_sweep(
        model, variables, sources, source_stats, target_stats, (float(alpha),), method=method,
        space=space, var_eps=var_eps, chunk_size=chunk_size, progress=progress, devices=devices,
        expression_names=[*names, "reference (the target's anchor)"], target_names=target_names)
    grid = np.asarray(grid)[:, :, 0]  # [E, T, S, S, C]: the one alpha
    frames, start = {}, 0
    for name, t in rows.items():
        frames[name] = np.swapaxes(grid[start:start + len(t)], 0, 1)
        start += len(t)
    return Reenactment(frames=frames, baseline=grid[start])
