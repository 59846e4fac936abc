"""Error bars of the benchmark's rows: means and standard errors over study pairs.

A study's (expression, target) pairs are not independent draws: the pairs of one
target share its face, those of one expression its source image. So a row's
standard error is clustered two ways (:func:`clustered_se`); every number of a row
is over one mask of valid pairs (:func:`flowjax.evaluation.ground_truth.valid_pairs`),
averaged by :func:`masked_mean`; :func:`standard_error` is the naive one, for
values that are independent.
"""

from __future__ import annotations

import numpy as np


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values`` (all of them, any shape); NaN for fewer
    than two."""
    values = np.asarray(values, np.float64).ravel()
    return float(np.std(values, ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")


def clustered_se(values: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Standard error of the mean of an ``[E, T]`` grid over its ``valid`` pairs,
    clustered two ways: by expression and by target.

    The pairs of a study are not independent: every pair of one target shares its face,
    every pair of one expression its source image, so the naive ``std / sqrt(n)`` over
    pairs understates the uncertainty whenever targets or expressions differ. This is
    the two-way cluster-robust variance of Cameron, Gelbach and Miller (2011),
    ``V = c_E V_E + c_T V_T - c_N V_ET`` from the residuals' sums per expression, per
    target and per pair (``c_G = G / (G - 1)``), never below the larger one-way term
    (the difference is noisy with few groups). Pairs drawn independently get about the
    naive value; a shared target effect gets the spread of the targets' means. With a
    single expression (or target) it is the one-way clustering on the other axis. NaN with fewer than two
    valid pairs; a 1-D input gets the naive standard error of its valid values.
    """
    values = np.asarray(values, np.float64)
    valid = np.isfinite(values) if valid is None else np.asarray(valid, bool) & np.isfinite(values)
    if values.ndim != 2:
        return standard_error(values[valid])
    n = int(valid.sum())
    if n < 2:
        return float("nan")
    residuals = np.where(valid, values - values[valid].mean(), 0.0)
    e_used, t_used = valid.any(axis=1), valid.any(axis=0)
    n_e, n_t = int(e_used.sum()), int(t_used.sum())

    def one_way(sums: np.ndarray, groups: int) -> float:
        return groups / (groups - 1) * float(np.sum(sums ** 2)) / n ** 2

    if n_e == 1:
        return float(np.sqrt(one_way(residuals.sum(axis=0)[t_used], n_t)))
    if n_t == 1:
        return float(np.sqrt(one_way(residuals.sum(axis=1)[e_used], n_e)))
    v_e = one_way(residuals.sum(axis=1)[e_used], n_e)
    v_t = one_way(residuals.sum(axis=0)[t_used], n_t)
    v_pairs = one_way(residuals[valid], n)
    # Never below either one-way clustering: the difference of sums is noisy for few groups.
    return float(np.sqrt(max(v_e + v_t - v_pairs, v_e, v_t)))


def masked_mean(values: np.ndarray, valid: np.ndarray) -> float:
    """The mean over the ``valid`` pairs (NaN if none, or if the field was not scored)."""
    values = np.asarray(values, np.float64)[np.asarray(valid, bool)]
    return float(values.mean()) if values.size and np.isfinite(values).all() else float("nan")
