"""Choosing a transfer's alpha on held-out targets, for the ground-truth benchmark.

A sweep scores every (expression, target, alpha) of a row
(:mod:`flowjax.evaluation.ground_truth`). Reporting each pair at its own best alpha
would fit the alpha to the very scores reported, so the benchmark splits the targets:
per expression one alpha is chosen on the *validation* targets (:func:`choose_alphas`:
the least mean AU error among the alphas within the identity cap,
:func:`identity_cap_from_slack`, at which every validation target decoded) and the
*test* targets are reported at it (:func:`held_out`). :class:`HeldOut` also records
what bounded each choice: whether any alpha met the cap, and whether the alpha chosen
is the last before the model stopped decoding (an affine Glow overflows on latents far
from its data), where the expression might have gone further had the model decoded it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from flowjax.evaluation.ground_truth import Scores


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """One alpha per expression, chosen on the validation targets; the test targets'
    scores at it.

    ``meets_cap[e]``: some alpha kept expression ``e``'s validation mean d(target) within
    the identity cap (always True without a cap). Where none did, the alpha of least
    validation d(target) was taken (the nearest to the cap), never a silent pass.
    ``at_decoding_edge[e]``: the next alpha of the grid did not decode for some
    validation target, so the model's range, not the scores, ended the choice there.
    """

    alpha_index: np.ndarray  # [E]
    alpha: np.ndarray  # [E]
    meets_cap: np.ndarray  # [E] bool
    at_decoding_edge: np.ndarray  # [E] bool
    test: Scores  # [E, T_test]


def identity_cap_from_slack(none_validation: Scores, slack: float) -> float:
    """The d(target) a transfer may reach: ``d_t + slack * (d_s - d_t)``, where ``d_t``,
    ``d_s`` are the mean distances of the target's own mean face (the ``none`` reference,
    on the validation targets) to the target's and to the source actor's centroid.

    So ``slack`` is the fraction of the way from the target's mean face towards the source
    actor that a transfer may drift; it does not depend on the embedder's scale, which
    differs between scorers (e.g. the easy and the hard setting's).
    """
    if not 0.0 <= slack <= 1.0:
        raise ValueError(f"identity slack must lie in [0, 1] (a fraction of the way from the "
                         f"target's mean face to the source actor), got {slack!r}")
    d_t = float(np.mean(np.asarray(none_validation.to_target, np.float64)))
    d_s = float(np.mean(np.asarray(none_validation.to_source, np.float64)))
    return d_t + slack * (d_s - d_t)


def decoded_everywhere(validation: Scores) -> np.ndarray:
    """``[E, A]`` bool from ``[E, T_val, A]`` scores: every validation target decoded at
    that alpha (a diverged sweep point has no scores at all, so its d(target) is NaN)."""
    return np.all(np.isfinite(np.asarray(validation.to_target, np.float64)), axis=1)


def choose_alphas(validation: Scores, identity_cap: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per expression, from ``[E, T_val, A]`` validation scores: among the alphas whose mean
    d(target) over the validation targets is ``<= identity_cap`` (every alpha with None)
    and at which every one of them decoded, the one of least mean validation AU error
    (ties: the smaller index). Returns the alpha indices ``[E]`` and whether any alpha met
    the cap ``[E]``."""
    au = np.asarray(validation.au_error, np.float64)
    valid = np.isfinite(au)  # the mean is over the targets scored (NaN: no face scored)
    counts = valid.sum(axis=1)
    au = np.where(counts > 0, np.where(valid, au, 0.0).sum(axis=1) / np.maximum(counts, 1),
                  np.inf)
    decoded = decoded_everywhere(validation)
    if not decoded.any(axis=1).all():
        raise ValueError("an expression has no alpha at which every validation target decoded")
    to_target = np.asarray(validation.to_target, np.float64)
    distance = np.where(decoded, to_target.mean(axis=1), np.inf)
    allowed = decoded & (True if identity_cap is None else distance <= float(identity_cap))
    meets = allowed.any(axis=1)
    au = np.where(allowed, au, np.inf)
    if np.any(meets & np.all(np.isinf(au), axis=1)):
        raise ValueError("an expression has no valid validation AU error at any allowed alpha")
    index = np.where(meets, np.argmin(au, axis=1), np.argmin(distance, axis=1))
    return index, meets


def held_out(scores: Scores, alphas: Sequence[float], validation: np.ndarray,
             identity_cap: float | None = None) -> HeldOut:
    """Chooses each expression's alpha on the targets where ``validation`` is True
    (:func:`choose_alphas`) and returns the other (test) targets' scores at it.

    ``scores`` ``[E, T, A]``; ``validation`` ``[T]`` bool with both sets non-empty. The
    choice reads only the validation targets' scores, so the test scores reported at it
    are not the ones it was fitted on.
    """
    validation = np.asarray(validation, bool)
    n_e, n_t, n_a = np.shape(scores.au_error)
    if validation.shape != (n_t,) or validation.all() or not validation.any():
        raise ValueError(f"validation must mark some but not all of the {n_t} targets; got "
                         f"{validation.tolist()}")
    if len(alphas) != n_a:
        raise ValueError(f"{len(alphas)} alphas for scores with {n_a} alphas")
    fitted_on = scores.targets(validation)
    index, meets = choose_alphas(fitted_on, identity_cap)
    # the grid's next alpha (none past the last) failed to decode for some target
    decoded_next = np.concatenate([decoded_everywhere(fitted_on)[:, 1:],
                                   np.ones((n_e, 1), bool)], axis=1)
    test = scores.targets(~validation)
    per_pair = np.broadcast_to(index[:, None], (n_e, int(np.sum(~validation))))
    return HeldOut(alpha_index=index, alpha=np.asarray(alphas, np.float64)[index],
                   meets_cap=meets,
                   at_decoding_edge=~decoded_next[np.arange(n_e), index],
                   test=test.take(per_pair))
