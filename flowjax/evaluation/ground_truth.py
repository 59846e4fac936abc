"""Scoring expression transfer against the truth of a ``flowjax.synthetic`` study.

On a rendered study every face's identity and Action Units are known, so a
transferred image is scored against what it should show, not against a proxy:

* **AU error** of an image: ``mean_k |u_k(x) - a_k|`` over the AUs the source
  expression activates *in truth* (``a_k > threshold``, default 1.0), where
  ``u`` is the synthetic AU scorer and ``a`` the AU vector the renderer drew
  the source expression with (:func:`flowjax.evaluation.metrics.au_mean_error`).
* **Identity distances**: Euclidean distance of the image's identity embedding
  to the *centroid* of an identity, the L2-normalised mean embedding of that
  identity's photos (:func:`identity_centroids`). The reference is the photos
  themselves rather than a decoded mean face, so it is one and the same for
  every latent space and method being compared.
* **RMSE to the oracle**: root mean square pixel difference (0-255 levels)
  between the image and the oracle image of its pair (below): the exact
  picture a perfect transfer would give, so ghosting, blur and colour drift
  count here even where the two scorers do not see them.
* **Realism** and **fake** (when a fake detector is given,
  :class:`~flowjax.evaluation.synthetic_scorers.SyntheticFakeDetector`): the
  detector's log-odds that the image is a clean render, and 0/1 whether it
  flags the image as fake (so a mean of ``fake`` is a detection rate). They
  see what the other scores do not: ghosted double outlines, seams, a flow's
  off-manifold texture. Without a detector both are NaN.
* **Best alpha** of an (expression, target) pair: the alpha of least AU error
  (:func:`flowjax.evaluation.metrics.best_alpha`; ties go to the smaller alpha).

Two references bracket the transfers: **none** (no transfer: the target's mean
face, a fixed image per target) and **oracle** (:func:`oracle_images`: the
target identity rendered with the source expression's AUs, which is what a
perfect transfer would produce; its errors are the scorers' own floor).

:func:`pixel_transfer` applies the latent arithmetic of
:mod:`flowjax.transfer.latents` to pixels instead, to show what the flow buys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from flowjax import synthetic
from flowjax.evaluation import metrics
from flowjax.evaluation.error_bars import clustered_se, masked_mean
from flowjax.transfer import latents


@dataclasses.dataclass(frozen=True)
class Scores:
    """Scores of a batch of images, all of one leading shape (e.g. ``[E, T, A]``)."""

    au_error: np.ndarray
    to_target: np.ndarray
    to_source: np.ndarray
    oracle_rmse: np.ndarray
    realism: np.ndarray | None = None  # None: NaN (no detector)
    fake: np.ndarray | None = None  # 0/1 detected as fake; None: NaN (no detector)

    def __post_init__(self):
        for name in ("realism", "fake"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(np.shape(self.au_error), np.nan))

    def take(self, index: np.ndarray) -> Scores:
        """Each field at ``index`` along its last axis (e.g. the best alpha of each pair)."""
        pick = lambda a: np.take_along_axis(a, index[..., None], axis=-1)[..., 0]  # noqa: E731
        return self.map(pick)

    def map(self, fn: Any) -> Scores:
        """``fn`` applied to every field (whatever fields Scores has)."""
        return Scores(**{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def targets(self, mask: np.ndarray) -> Scores:
        """The targets (axis 1) where ``mask`` is True, e.g. the validation ones."""
        return self.map(lambda a: np.asarray(a)[:, np.asarray(mask, bool)])


def identity_centroids(embeddings: np.ndarray, identity_ids: np.ndarray,
                       identities: Sequence[int]) -> np.ndarray:
    """``[len(identities), D]``: per identity, the L2-normalised mean embedding of its photos."""
    embeddings = np.asarray(embeddings, np.float64)
    identity_ids = np.asarray(identity_ids)
    if embeddings.ndim != 2 or len(embeddings) != len(identity_ids):
        raise ValueError(f"need embeddings [N, D] and identity ids [N]; got {embeddings.shape} "
                         f"and {identity_ids.shape}")
    out = []
    for identity in identities:
        rows = embeddings[identity_ids == identity]
        if not len(rows):
            raise ValueError(f"identity {identity} has no photos among ids "
                             f"{sorted(set(identity_ids.tolist()))}")
        mean = rows.mean(axis=0)
        out.append(mean / np.linalg.norm(mean))
    return np.stack(out)


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-0.5, 0.5]: the range the flow's own inputs live in."""
    return np.asarray(images, np.float32) / 255.0 - 0.5


def from_unit(images: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_unit`, clipped to the valid range and rounded to uint8."""
    return np.round(np.clip((np.asarray(images) + 0.5) * 255.0, 0, 255)).astype(np.uint8)


def pixel_transfer(method: str, sources: np.ndarray, source_photos: np.ndarray,
                   target_photos: np.ndarray, alphas: Sequence[float],
                   var_eps: float = latents.DEFAULT_VARIANCE_EPS,
                   subspace_rank: int = latents.DEFAULT_SUBSPACE_RANK,
                   anchor_photo: int | None = None) -> np.ndarray:
    """``latents.transfer`` on pixels: uint8 ``[E, T, A, H, W, C]``.

    ``sources`` ``[E, H, W, C]`` are the source expressions, ``source_photos`` ``[N, H, W, C]``
    the source identity's photos (its mean and variance), ``target_photos``
    ``[T, P, H, W, C]`` each target's photos (their mean, or with ``anchor_photo`` ``j``
    each target's photo ``j``, receives the expression: ``latents.anchor_stats``). Pixels
    are scaled to [-0.5, 0.5] (:func:`to_unit`), so the variance methods see the same units
    as in the flow's input, and the result is clipped back to uint8. ``subspace`` is PCA of
    the source photos' pixels (``latents.prepare_sources``); the level methods
    (``latents.LEVEL_METHODS``) are refused: pixels have no levels.
    """
    if method in latents.LEVEL_METHODS:
        raise ValueError(f"method {method!r} weights the Glow's latent levels; pixels have no "
                         "levels: run it in eps or z only")
    sources, source_photos = np.asarray(sources), np.asarray(source_photos)
    target_photos = np.asarray(target_photos)
    if sources.ndim != 4 or source_photos.ndim != 4 or target_photos.ndim != 5:
        raise ValueError(f"need sources [E, H, W, C], source photos [N, H, W, C] and target "
                         f"photos [T, P, H, W, C]; got {sources.shape}, {source_photos.shape}, "
                         f"{target_photos.shape}")
    shape = sources.shape[1:]
    if source_photos.shape[1:] != shape or target_photos.shape[2:] != shape:
        raise ValueError(f"image shapes differ: sources {shape}, source photos "
                         f"{source_photos.shape[1:]}, target photos {target_photos.shape[2:]}")
    flat = lambda x, lead: to_unit(x).reshape(*x.shape[:lead], -1)  # noqa: E731
    source_stats = latents.identity_stats(flat(source_photos, 1))
    target = latents.anchor_stats(list(flat(target_photos, 2)), anchor_photo)
    # Axes [E, T, A, D]: everything broadcasts in one elementwise expression.
    source_stats = latents.IdentityStats(np.asarray(source_stats.mean)[None, None, None],
                                         np.asarray(source_stats.var)[None, None, None], 0)
    target_stats = latents.IdentityStats(np.asarray(target.mean)[None, :, None],
                                         np.asarray(target.var)[None, :, None], 0)
    alpha = np.asarray(alphas, np.float32)[None, None, :, None]
    moved_sources, method = latents.prepare_sources(
        method, flat(sources, 1), flat(source_photos, 1), subspace_rank=subspace_rank)
    moved = np.asarray(latents.transfer(method, moved_sources[:, None, None], source_stats,
                                        target_stats, alpha, var_eps))
    return from_unit(moved.reshape(*moved.shape[:3], *shape))


def oracle_images(study: synthetic.Study, size: int, anchor_photo: int | None = None
                  ) -> np.ndarray:
    """uint8 ``[E, T, S, S, 3]``: target ``t`` rendered with source expression ``e``'s AUs.

    No nuisance: the ideal transfer of the expression onto the identity itself, in the
    study's own ``setting``. In the hard setting that keeps the target's identity factors
    (skin texture, hair, glasses) and drops the per-image ones (canonical pose, frontal
    neutral light, the identity's plain background): one fixed, well-defined answer per
    pair rather than one random pose of it.
    With ``anchor_photo`` ``j`` (the expression moved onto each target's photo ``j``):
    that photo with the source's AUs, its pose, light and background kept.
    """
    targets = np.unique(study.targets.identity_ids)
    if anchor_photo is not None:
        rows = [study.targets.photo_of(int(t), anchor_photo) for t in targets]
        return np.stack([synthetic.datasets.render_photo_with(
            study.identities, study.targets, r, study.sources.aus, size, study.setting)
            for r in rows], axis=1)
    n_e, n_t = len(study.sources.aus), len(targets)
    rows = np.tile(targets, n_e)
    identity = jax.tree_util.tree_map(lambda a: np.asarray(a)[rows], study.identities)
    aus = np.repeat(study.sources.aus, n_t, axis=0)
    images = np.asarray(synthetic.render(identity, aus, size=size, setting=study.setting))
    return images.reshape(n_e, n_t, size, size, 3)


def score_images(images: np.ndarray, source_aus: np.ndarray, au_scorer: Any, embedder: Any,
                 target_centroids: np.ndarray, source_centroid: np.ndarray, oracle: np.ndarray,
                 threshold: float = metrics.DEFAULT_ACTIVATION_THRESHOLD,
                 detector: Any = None) -> Scores:
    """Scores uint8 images ``[E, T, ..., H, W, C]`` of sources ``[E, n_aus]`` on targets ``[T, D]``.

    ``au_scorer(images) -> [N, n_aus]`` (with ``au_names``) and
    ``embedder.embed(images) -> [N, D]`` L2-normalised, as the synthetic scorers;
    ``oracle`` ``[E, T, H, W, C]`` the pairs' oracle images (:func:`oracle_images`).
    ``detector`` (optional, as ``SyntheticFakeDetector``: ``realism`` and
    ``is_fake``) fills ``realism`` and ``fake``; None leaves them NaN.
    """
    images, source_aus = np.asarray(images), np.asarray(source_aus, np.float64)
    lead = images.shape[:-3]
    if len(lead) < 2 or lead[0] != len(source_aus) or lead[1] != len(target_centroids):
        raise ValueError(f"images {images.shape} must be [E={len(source_aus)}, "
                         f"T={len(target_centroids)}, ..., H, W, C]")
    flat = images.reshape(-1, *images.shape[-3:])
    aus = np.asarray(au_scorer(flat)).reshape(*lead, -1)
    embeddings = np.asarray(embedder.embed(flat)).reshape(*lead, -1)
    # Broadcast the per-expression truth and per-target centroids over the rest.
    extra = (1,) * (len(lead) - 2)
    truth = source_aus.reshape(len(source_aus), 1, *extra, -1)
    centroids = np.asarray(target_centroids).reshape(1, len(target_centroids), *extra, -1)
    oracle = np.asarray(oracle, np.float64)
    if oracle.shape != (*lead[:2], *images.shape[-3:]):
        raise ValueError(f"oracle images {oracle.shape} must be [E, T, H, W, C] = "
                         f"{(*lead[:2], *images.shape[-3:])}")
    realism = fake = None
    if detector is not None:
        realism = np.asarray(detector.realism(flat), np.float64).reshape(lead)
        fake = np.asarray(detector.is_fake(flat), np.float64).reshape(lead)
    diff = images.astype(np.float64) - oracle.reshape(*lead[:2], *extra, *images.shape[-3:])
    return Scores(
        au_error=metrics.au_mean_error(aus, truth, au_scorer.au_names, metrics.ACTIVE, threshold),
        to_target=metrics.identity_distance(embeddings, centroids),
        to_source=metrics.identity_distance(embeddings, source_centroid),
        oracle_rmse=np.sqrt(np.mean(np.square(diff), axis=(-3, -2, -1))),
        realism=realism, fake=fake,
    )


@dataclasses.dataclass(frozen=True)
class Summary:
    """Means over the (expression, target) pairs of one row of the benchmark.

    ``best_alpha`` is NaN for the references (they have no alpha);
    ``identity_kept`` is the fraction of pairs whose image is closer to the
    target's centroid than to the source's.
    """

    best_alpha: float
    au_error: float
    au_error_se: float  # standard error of au_error over the pairs (NaN for one pair)
    to_target: float
    to_source: float
    identity_kept: float
    oracle_rmse: float
    realism: float = float("nan")  # mean realism (NaN without a detector)
    realism_se: float = float("nan")
    fake_rate: float = float("nan")  # fraction of pairs detected as fake
    pairs: int = 0  # the pairs every number above is over (valid_pairs)


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """``other - reference`` of per-pair values: mean, standard error, pairs where the
    reference is lower (better, for an error)."""

    mean: float
    se: float
    reference_better: int
    pairs: int


def valid_pairs(scores: Scores) -> np.ndarray:
    """The pairs a row's numbers are over: AU error and both identity distances scored.

    One mask for the mean, its standard error, the count and "identity kept" alike (a
    pair with a NaN AU error must not count as "not kept" while the mean skips it)."""
    return (np.isfinite(np.asarray(scores.au_error, np.float64))
            & np.isfinite(np.asarray(scores.to_target, np.float64))
            & np.isfinite(np.asarray(scores.to_source, np.float64)))


def paired_difference(other: np.ndarray, reference: np.ndarray) -> PairedDifference:
    """Compares two rows pair by pair (e.g. AU errors at each pair's best alpha), over the
    pairs both scored; an ``[E, T]`` grid gets the clustered standard error
    (:func:`~flowjax.evaluation.error_bars.clustered_se`)."""
    diff = np.asarray(other, np.float64) - np.asarray(reference, np.float64)
    valid = np.isfinite(diff)
    if valid.sum() < 2:
        raise ValueError(f"a paired comparison needs at least 2 pairs both scored, got "
                         f"{int(valid.sum())}")
    return PairedDifference(mean=float(diff[valid].mean()), se=clustered_se(diff, valid),
                            reference_better=int(np.sum(diff[valid] > 0)),
                            pairs=int(valid.sum()))


def summarize(scores: Scores, alphas: Sequence[float] | None = None) -> tuple[Summary, Any]:
    """The row of a transfer (``[E, T, A]`` scores with ``alphas``: each pair at its
    best alpha) or of a reference (``[E, T]``, ``alphas=None``), and the per-pair
    ``metrics.BestAlpha`` (None for a reference)."""
    best = None
    if alphas is not None:
        best = metrics.best_alpha(alphas, scores.au_error)
        if (best.index < 0).any():
            raise ValueError("a pair has no valid AU error at any alpha")
        scores = scores.take(best.index)
    valid = valid_pairs(scores)
    mean = lambda a: masked_mean(a, valid)  # noqa: E731
    return Summary(
        best_alpha=float(np.mean(best.alpha)) if best is not None else float("nan"),
        au_error=mean(scores.au_error),
        au_error_se=clustered_se(scores.au_error, valid),
        to_target=mean(scores.to_target),
        to_source=mean(scores.to_source),
        identity_kept=mean(np.asarray(scores.to_target) < np.asarray(scores.to_source)),
        oracle_rmse=mean(scores.oracle_rmse),
        realism=mean(scores.realism),
        realism_se=clustered_se(scores.realism, valid),
        fake_rate=mean(scores.fake),
        pairs=int(valid.sum()),
    ), best


def scored_where_decoded(grid: np.ndarray, decoded: np.ndarray,
                         score: Callable[[np.ndarray], Scores]) -> tuple[np.ndarray, Scores]:
    """A sweep grid ``[E, T, A, ...]`` whose points ``decoded`` ``[E, T, A]`` marks: ``(images,
    scores)``, the other images black and all their scores NaN, never taken for images."""
    images = np.array(grid, copy=True)
    images[~decoded] = 0
    return images, score(images).map(lambda a: np.where(decoded, np.asarray(a, float), np.nan))
