"""The evaluation metrics, each defined once (NumPy, float64).

Notation: a sweep transfers the expression of source expression image ``e``
onto target identity ``t`` with strength ``alpha``, giving image ``x(e,t,a)``.
``f(.)`` is a face-recognition embedding, ``u(.)`` a vector of AU intensities
from an :class:`~flowjax.evaluation.action_units.ActionUnitScorer`.

* identity distance  ``d(x, m) = ||f(x) - f(m)||_2``, against the embedding of
  the decoded *mean face* of the target (and of the source) identity;
* AU mean error      ``E(x) = mean_{k in S} |u_k(x) - u_k(e)|`` over an AU set
  ``S`` (the thesis' eight AUs, or the AUs the source expression activates);
* best alpha         ``argmin_a E(x(e,t,a))`` per pair (ties: smallest alpha);
* general trend      the means over pairs of the best alpha, of its AU error
  and of its identity distance to the target mean;
* per alpha          the mean of a number over the images of one alpha (per
  expression, or over all), with its standard error
  ``sd / sqrt(n)`` (sample standard deviation, ``n`` the images that have
  the number);
* detection rate     the fraction of images a fake detector flags
  (probability >= 0.5), when a detector is configured.

Missing faces are NaN (the AU scorer returns NaN rows for images without a
face): an error involving them is NaN, and best-alpha selection ignores NaN
errors. An identity embedder that finds no face (facenet's MTCNN, dlib's HOG
detector) embeds a fixed box instead, recorded per image (``fallback`` in
column ``identity_face_box`` of ``tables/scores.csv``); with
``identity.fallback=nan`` its distances are NaN as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

# Valenzuela et al. (2021) score expression transfer on these eight AUs.
THESIS_AUS: tuple[str, ...] = (
    "AU06", "AU07", "AU10", "AU12", "AU14", "AU20", "AU25", "AU45",
)  # fmt: skip
ACTIVE = "active"
# OpenFace intensities run 0-5; 1.0 ("trace" on the FACS A-E scale) keeps the
# AUs a rater would call present and drops the ~0.1-0.5 noise OpenFace reports
# on neutral faces.
DEFAULT_ACTIVATION_THRESHOLD = 1.0
DEFAULT_DETECTION_THRESHOLD = 0.5

FakeDetector = Callable[[np.ndarray], np.ndarray]
"""uint8 images ``[N, H, W, 3]`` -> probability of being generated, ``[N]``."""


# --------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------


def identity_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance ``||a - b||_2`` over the last (embedding) axis.

    ``a`` and ``b`` broadcast against each other, e.g. ``[N, D]`` against ``[D]``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape[-1:] != b.shape[-1:]:
        raise ValueError(
            f"embedding sizes differ: {a.shape} vs {b.shape}; both must come "
            "from the same face-recognition model."
        )
    return np.linalg.norm(a - b, axis=-1)


@dataclasses.dataclass(frozen=True)
class IdentityDistances:
    """Distances of generated images to the target and source mean faces."""

    to_target: np.ndarray
    to_source: np.ndarray


def identity_distances(
    generated: np.ndarray, target_mean: np.ndarray, source_mean: np.ndarray
) -> IdentityDistances:
    """``d(x, target mean)`` and ``d(x, source mean)`` for every generated image.

    ``generated`` is ``[..., D]``; each mean is the embedding ``[..., D]`` of
    the decoded mean face of that identity (broadcast against ``generated``).
    A good transfer is close to the target and far from the source.
    """
    return IdentityDistances(
        identity_distance(generated, target_mean),
        identity_distance(generated, source_mean),
    )


# --------------------------------------------------------------------------
# Action Units
# --------------------------------------------------------------------------


def resolve_aus(aus: Sequence[str], au_names: Sequence[str]) -> np.ndarray:
    """Column indices of ``aus`` in a scorer's ``au_names``; ValueError if any
    is missing."""
    au_names = tuple(au_names)
    if not aus:
        raise ValueError("the AU set is empty; name at least one AU")
    missing = [a for a in aus if a not in au_names]
    if missing:
        raise ValueError(
            f"AU(s) {', '.join(missing)} not among the scorer's AUs "
            f"({', '.join(au_names)}); choose an AU set the scorer provides."
        )
    if len(set(aus)) != len(aus):
        raise ValueError(f"the AU set {tuple(aus)} names an AU twice")
    return np.array([au_names.index(a) for a in aus], dtype=np.int64)


def active_aus(
    source: np.ndarray,
    au_names: Sequence[str],
    threshold: float = DEFAULT_ACTIVATION_THRESHOLD,
) -> tuple[str, ...]:
    """The AUs a source expression activates: intensity strictly above ``threshold``."""
    source = np.asarray(source, np.float64)
    if source.shape != (len(au_names),):
        raise ValueError(f"expected one intensity per AU ({len(au_names)}), got {source.shape}")
    return tuple(n for n, v in zip(au_names, source) if v > threshold)


def au_mean_error(
    generated: np.ndarray,
    source: np.ndarray,
    au_names: Sequence[str],
    aus: Sequence[str] | str = THESIS_AUS,
    threshold: float = DEFAULT_ACTIVATION_THRESHOLD,
) -> np.ndarray:
    """AU mean error ``E(x) = (1/|S|) sum_{k in S} |u_k(x) - u_k(e)|``.

    Args:
      generated: intensities ``[..., n_aus]`` of generated images, columns in
        ``au_names`` order.
      source: intensities of the source expression image(s), broadcastable
        to ``generated`` (e.g. ``[n_aus]`` for one expression).
      au_names: the scorer's AU names.
      aus: the set ``S``: AU names (default the thesis' eight), or
        ``"active"`` for the AUs each source activates (intensity above
        ``threshold``; the set then differs per source).
      threshold: activation threshold for ``aus="active"``.

    Returns:
      ``[broadcast shape without the AU axis]``; NaN where a selected AU is
      NaN (no face in the generated or source image).

    Raises:
      ValueError: an AU not provided by the scorer, a shape mismatch, or a
        source (with a face) that activates no AU under ``"active"``.
    """
    generated = np.asarray(generated, np.float64)
    source = np.asarray(source, np.float64)
    n = len(au_names)
    if generated.shape[-1:] != (n,) or source.shape[-1:] != (n,):
        raise ValueError(
            f"expected intensities [..., {n}] (one per AU of {tuple(au_names)}), "
            f"got generated {generated.shape} and source {source.shape}"
        )
    if isinstance(aus, str):
        if aus != ACTIVE:
            raise ValueError(f"aus must be a sequence of AU names or {ACTIVE!r}, got {aus!r}")
        no_face = np.isnan(source).any(axis=-1, keepdims=True)
        mask = (source > threshold) | no_face  # no-face sources give NaN below
        if not mask.any(axis=-1).all():
            raise ValueError(
                f"a source expression activates no AU above {threshold} (its "
                f"largest intensity is {np.nanmax(source[~mask.any(-1)]):.2f}); "
                "lower the threshold or use a fixed AU set."
            )
    else:
        mask = np.zeros(n, dtype=bool)
        mask[resolve_aus(tuple(aus), au_names)] = True
    diff = np.abs(generated - source)
    mask = np.broadcast_to(mask, diff.shape)
    # where=, not a product: an unselected NaN AU must not poison the mean.
    total = np.sum(diff, axis=-1, where=mask)
    return total / mask.sum(axis=-1)


# --------------------------------------------------------------------------
# Best alpha and the general trend
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BestAlpha:
    """Per pair: the best alpha, its index in the grid (-1 if none) and its error."""

    alpha: np.ndarray
    index: np.ndarray
    error: np.ndarray


def best_alpha(alphas: Sequence[float] | np.ndarray, errors: np.ndarray) -> BestAlpha:
    """``argmin_a E(a)`` over the last axis of ``errors`` ``[..., A]``.

    NaN errors are ignored; a pair whose errors are all NaN gets alpha NaN,
    index -1, error NaN. Exact ties go to the smallest alpha (the weakest edit
    that reaches the best expression match); ties are common because OpenFace
    rounds intensities to two decimals.
    """
    alphas = np.asarray(alphas, np.float64)
    errors = np.asarray(errors, np.float64)
    if alphas.ndim != 1 or errors.shape[-1:] != alphas.shape:
        raise ValueError(
            f"errors must be [..., {alphas.size}] to match the alpha grid, got {errors.shape}"
        )
    if not np.isfinite(alphas).all() or np.unique(alphas).size != alphas.size:
        raise ValueError(f"alphas must be finite and distinct, got {alphas}")
    none = np.isnan(errors).all(axis=-1)
    best = np.where(np.isnan(errors), np.inf, errors).min(axis=-1)
    candidates = np.where(errors == best[..., None], alphas, np.inf)
    index = np.argmin(candidates, axis=-1)
    error = np.take_along_axis(errors, index[..., None], axis=-1)[..., 0]
    return BestAlpha(
        alpha=np.where(none, np.nan, alphas[index]),
        index=np.where(none, -1, index),
        error=np.where(none, np.nan, error),
    )


def mean_and_se(values: np.ndarray, axis: int | tuple[int, ...],
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error (``sd(ddof=1) / sqrt(n)``) and count ``n`` of the
    non-NaN ``values`` along ``axis``; the mean is NaN where ``n = 0``, the
    standard error where ``n < 2``."""
    values = np.asarray(values, np.float64)
    valid = ~np.isnan(values)
    n = valid.sum(axis=axis)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        centred = np.where(valid, values - np.expand_dims(mean, axis), 0.0)
        var = (centred ** 2).sum(axis=axis) / (n - 1)
        se = np.where(n > 1, np.sqrt(var / n), np.nan)
    return mean, se, n


@dataclasses.dataclass(frozen=True)
class Trend:
    """The general trend over (expression, target) pairs."""

    mean_best_alpha: float
    mean_au_error: float
    mean_identity_distance: float  # to the target mean, at each pair's best alpha
    n_pairs: int  # pairs averaged
    n_skipped: int  # pairs with no valid error at any alpha
    best: BestAlpha  # per pair


def general_trend(
    alphas: Sequence[float] | np.ndarray,
    au_errors: np.ndarray,
    identity_to_target: np.ndarray,
) -> Trend:
    """Means over pairs of the best alpha, its AU error and its identity distance.

    ``au_errors`` and ``identity_to_target`` are ``[..., A]`` (e.g. ``[E, T, A]``:
    expressions x targets x alphas); every leading index is one pair. Pairs
    with no valid AU error are skipped and counted in ``n_skipped``.
    """
    identity = np.asarray(identity_to_target, np.float64)
    au_errors = np.asarray(au_errors, np.float64)
    if identity.shape != au_errors.shape:
        raise ValueError(
            f"identity distances {identity.shape} and AU errors {au_errors.shape} "
            "must have the same [pairs..., alphas] shape"
        )
    best = best_alpha(alphas, au_errors)
    valid = best.index >= 0
    if not valid.any():
        raise ValueError("no pair has a valid AU error (no face found in any image?)")
    dist = np.take_along_axis(identity, np.maximum(best.index, 0)[..., None], axis=-1)[..., 0]
    return Trend(
        mean_best_alpha=float(best.alpha[valid].mean()),
        mean_au_error=float(best.error[valid].mean()),
        mean_identity_distance=float(dist[valid].mean()),
        n_pairs=int(valid.sum()),
        n_skipped=int((~valid).sum()),
        best=best,
    )


# --------------------------------------------------------------------------
# Fake detection
# --------------------------------------------------------------------------


def detection_rate(
    probabilities: np.ndarray, threshold: float = DEFAULT_DETECTION_THRESHOLD
) -> float:
    """Fraction of images with ``p(generated) >= threshold``."""
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"expected one probability per image [N], N > 0, got shape {p.shape}")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError(
            f"probabilities must lie in [0, 1], got min {p.min()} max {p.max()}; "
            "does the detector return logits?"
        )
    return float((p >= threshold).mean())


def fake_detection_rate(
    detector: FakeDetector | None,
    images: np.ndarray,
    threshold: float = DEFAULT_DETECTION_THRESHOLD,
) -> float | None:
    """The detector's detection rate on ``images``; None when none is configured."""
    if detector is None:
        return None
    p = np.asarray(detector(images))
    if p.shape != (len(images),):
        raise ValueError(
            f"the fake detector returned shape {p.shape} for {len(images)} images; "
            "it must return one probability per image"
        )
    return detection_rate(p, threshold)
