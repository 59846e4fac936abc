"""The results of the synthetic ground-truth benchmark (experiments/synthetic_benchmark.py) and their tables.

Every table reads a :class:`Benchmark` (the experiment builds it); the score
columns come from :class:`flowjax.evaluation.ground_truth.Scores`' fields, so a field
added there appears in every table without a change here.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from flowjax.evaluation import alpha_choice, error_bars, ground_truth, tables
from flowjax.evaluation.ground_truth import Scores

BASELINE = ("eps", "half")  # the thesis' best published setting: every row is paired with it
CAPPED, FREE = "capped", "unconstrained"

# Column names of the Scores fields; a field added to Scores without a label here is
# shown by its own name, so every table picks it up unchanged.
SCORE_LABELS = {"au_error": "AU error", "to_target": "d(target)", "to_source": "d(source)",
                "oracle_rmse": "RMSE to oracle"}


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """Scores and images of every row: ``transfers[(space, method)]`` are
    ``[E, T, A]`` scores, ``references[name]`` ``[E, T]``, over every target;
    ``validation[t]`` marks the validation targets (the rest are the test targets)."""

    alphas: tuple[float, ...]
    expressions: tuple[str, ...]
    targets: tuple[str, ...]
    transfers: dict[tuple[str, str], Scores]
    references: dict[str, Scores]
    transfer_images: dict[tuple[str, str], np.ndarray]
    reference_images: dict[str, np.ndarray]
    validation: np.ndarray
    identity_cap: float | None = None  # absolute d(target), from identity_slack
    identity_slack: float | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    # Rows whose sweep decoded non-finite images (NonFiniteError): (space, method) ->
    # (non-finite grid points, all grid points). They have no scores.
    diverged: dict[tuple[str, str], tuple[int, int]] = dataclasses.field(default_factory=dict)
    # What received the expression: "mean" (each target's mean face) or "photo <j>".
    anchor: str = "mean"

    @property
    def test_targets(self) -> tuple[str, ...]:
        return tuple(t for t, v in zip(self.targets, self.validation) if not v)

    @functools.cached_property
    def held_out(self) -> dict[str, dict[tuple[str, str], alpha_choice.HeldOut]]:
        """``{CAPPED | FREE: {(space, method): HeldOut}}``: alphas chosen on the
        validation targets with / without the identity cap, test targets' scores."""
        return {name: {key: alpha_choice.held_out(scores, self.alphas, self.validation, cap)
                       for key, scores in self.transfers.items()}
                for name, cap in ((CAPPED, self.identity_cap), (FREE, None))}

    @functools.cached_property
    def test_references(self) -> dict[str, Scores]:
        return {name: s.targets(~self.validation) for name, s in self.references.items()}

    @functools.cached_property
    def summaries(self) -> list[tuple[str, str, ground_truth.Summary, Any]]:
        """In-sample (space, method, summary, per-pair best) rows on the test targets:
        none, the transfers, oracle (each pair at the best alpha of its own scores)."""
        test = ~self.validation
        rows = [("none", "-", *ground_truth.summarize(self.test_references["none"]))]
        for (space, method), scores in self.transfers.items():
            rows.append((space, method, *ground_truth.summarize(scores.targets(test),
                                                                self.alphas)))
        rows.append(("oracle", "-", *ground_truth.summarize(self.test_references["oracle"])))
        return rows


def score_header() -> tuple[str, ...]:
    return tuple(SCORE_LABELS.get(f.name, f.name.replace("_", " "))
                 for f in dataclasses.fields(Scores))


def _means(scores: Scores) -> tuple[float, ...]:
    """Each field's mean over the row's valid pairs (``ground_truth.valid_pairs``)."""
    valid = ground_truth.valid_pairs(scores)
    return tuple(error_bars.masked_mean(getattr(scores, f.name), valid)
                 for f in dataclasses.fields(Scores))


def _row_stats(scores: Scores) -> tuple[float, float]:
    """AU error standard error (clustered by expression and target) and the fraction of
    pairs kept (closer to the target than to the source), over the same valid pairs."""
    valid = ground_truth.valid_pairs(scores)
    kept = np.asarray(scores.to_target) < np.asarray(scores.to_source)
    return (error_bars.clustered_se(scores.au_error, valid),
            error_bars.masked_mean(kept, valid))


def held_out_table(bench: Benchmark, selection: str = CAPPED) -> tables.Table:
    """Means over the test pairs, each at its expression's alpha chosen on the validation
    targets (``selection``: at the identity cap, or unconstrained); the references too."""
    n_e = len(bench.expressions)
    rows = []
    for name in ("none", *bench.held_out[selection], "oracle"):
        if isinstance(name, tuple):
            chosen = bench.held_out[selection][name]
            scores, label = chosen.test, name
            alpha, met = float(np.mean(chosen.alpha)), f"{int(chosen.meets_cap.sum())}/{n_e}"
        else:
            scores, label, alpha, met = bench.test_references[name], (name, "-"), "-", "-"
        se, kept = _row_stats(scores)
        means = _means(scores)
        rows.append((*label, alpha, met, means[0], se, *means[1:], kept))
    header = score_header()
    return tables.Table(("space", "method", "mean alpha", "cap met", header[0], "s.e.",
                         *header[1:], "identity kept"), tuple(rows))


def paired_table(bench: Benchmark, selection: str = CAPPED,
                 reference: tuple[str, str] = BASELINE) -> tables.Table:
    """Each row's test AU error minus ``reference``'s (eps/half), pair by pair at the
    held-out alphas; "separated" when the difference is at least 2 standard errors."""
    chosen = bench.held_out[selection]
    ref_name = "/".join(reference)
    header = ("space", "method", f"AU error minus {ref_name}", "s.e.",
              f"pairs where {ref_name} is better", "separated")
    if reference not in chosen:
        return tables.Table(header, ())
    base = chosen[reference].test.au_error
    rows = []
    for key, held in chosen.items():
        if key != reference:
            d = ground_truth.paired_difference(held.test.au_error, base)
            rows.append((*key, d.mean, d.se, f"{d.reference_better}/{d.pairs}",
                         "yes" if _separated(d) else "no"))
    return tables.Table(header, tuple(rows))


def space_table(bench: Benchmark, field: str = "realism", spaces: tuple[str, str] = ("pixel", "eps"),
                selection: str = CAPPED) -> tables.Table:
    """Per method run in both ``spaces``: the test pairs' ``field`` (a Scores field, e.g.
    the detector's realism) in the first space minus the second, pair by pair, each at
    its own held-out alpha; with both spaces' means and detection rates. Empty when the
    field was not scored (no detector)."""
    first, second = spaces
    header = ("method", f"{field} {first}", f"{field} {second}", f"{first} minus {second}",
              "s.e.", f"pairs where {second} is higher", "separated", f"fake rate {first}",
              f"fake rate {second}")
    chosen, rows = bench.held_out[selection], []
    for (space, method), held in chosen.items():
        other = chosen.get((second, method))
        if space != first or other is None:
            continue
        a, b = (np.asarray(getattr(h.test, field), np.float64) for h in (held, other))
        if np.isnan(a).all() or np.isnan(b).all():
            continue
        d = ground_truth.paired_difference(a, b)
        rows.append((method, float(np.mean(a)), float(np.mean(b)), d.mean, d.se,
                     f"{int(np.sum(b > a))}/{d.pairs}", "yes" if _separated(d) else "no",
                     float(np.mean(held.test.fake)), float(np.mean(other.test.fake))))
    return tables.Table(header, tuple(rows))


def _separated(d: ground_truth.PairedDifference) -> bool:
    """A difference of at least 2 standard errors (and not zero: identical rows)."""
    return d.mean != 0 and abs(d.mean) >= 2 * d.se


def best_line(bench: Benchmark, reference: tuple[str, str] = BASELINE) -> str:
    """The method of least test AU error at the identity cap (among the rows that met
    the cap for every expression), and its margin over ``reference`` pair by pair."""
    chosen = bench.held_out[CAPPED]
    eligible = {k: h for k, h in chosen.items() if h.meets_cap.all()}
    if not eligible:
        return "best: none (no row met the identity cap for every expression)"
    key = min(eligible, key=lambda k: float(np.nanmean(eligible[k].test.au_error)))
    error = float(np.nanmean(eligible[key].test.au_error))
    line = f"best: {'/'.join(key)}, AU error {error:.3f}"
    ref_name = "/".join(reference)
    if reference not in chosen:
        return f"{line} ({ref_name} was not run: no paired margin)"
    if key == reference:
        return f"{line} (the reference {ref_name} itself)"
    d = ground_truth.paired_difference(eligible[key].test.au_error,
                                       chosen[reference].test.au_error)
    separated = "" if _separated(d) else "; not separated (margin < 2 s.e.)"
    return (f"{line}, {-d.mean:.3f} +- {d.se:.3f} below {ref_name} "
            f"(s.e. over {d.pairs} pairs, clustered by expression and target){separated}")


def in_sample_table(bench: Benchmark) -> tables.Table:
    """The old optimistic row: each test pair at the best alpha of its own scores."""
    return tables.Table(
        ("space", "method", "mean best alpha", "AU error", "s.e.", "d(target)", "d(source)",
         "identity kept", "RMSE to oracle"),
        tuple((space, method, "-" if np.isnan(s.best_alpha) else s.best_alpha, s.au_error,
               s.au_error_se, s.to_target, s.to_source, s.identity_kept, s.oracle_rmse)
              for space, method, s, _ in bench.summaries))


def chosen_alpha_table(bench: Benchmark) -> tables.Table:
    """Per space, method and expression: the alpha chosen on the validation targets with
    and without the cap, whether the cap was met, and the validation means behind it."""
    rows = []
    val = bench.validation
    for key, capped in bench.held_out[CAPPED].items():
        free = bench.held_out[FREE][key]
        scores = bench.transfers[key].targets(val)
        for e, expression in enumerate(bench.expressions):
            a = capped.alpha_index[e]
            rows.append((*key, expression, float(capped.alpha[e]), bool(capped.meets_cap[e]),
                         float(np.nanmean(scores.au_error[e, :, a])),
                         float(np.mean(scores.to_target[e, :, a])), float(free.alpha[e])))
    return tables.Table(("space", "method", "expression", "alpha at cap", "cap met",
                         "validation AU error", "validation d(target)",
                         "alpha unconstrained"), tuple(rows))


def best_alpha_table(bench: Benchmark) -> tables.Table:
    rows = []
    test = ~bench.validation
    for space, method, _, best in bench.summaries:
        if best is None:
            continue
        at_best = bench.transfers[space, method].targets(test).take(best.index)
        for e, expression in enumerate(bench.expressions):
            for t, target in enumerate(bench.test_targets):
                rows.append((space, method, expression, target, float(best.alpha[e, t]),
                             *_fields(at_best, (e, t))))
    return tables.Table(("space", "method", "expression", "target", "best alpha",
                         *score_header()), tuple(rows))


def _split(bench: Benchmark, t: int) -> str:
    return "validation" if bench.validation[t] else "test"


def curves_table(bench: Benchmark) -> tables.Table:
    rows = []
    for (space, method), scores in bench.transfers.items():
        for split, mask in (("validation", bench.validation), ("test", ~bench.validation)):
            part = scores.targets(mask)
            for a, alpha in enumerate(bench.alphas):
                rows.append((space, method, split, alpha,
                             *_means(part.map(lambda x, a=a: x[..., a]))))
    return tables.Table(("space", "method", "split", "alpha", *score_header()), tuple(rows))


def scores_table(bench: Benchmark) -> tables.Table:
    rows = []
    for name, scores in bench.references.items():
        for e, t in np.ndindex(scores.au_error.shape):
            rows.append((name, "-", bench.expressions[e], bench.targets[t], _split(bench, t), "",
                         *_fields(scores, (e, t))))
    for (space, method), scores in bench.transfers.items():
        for e, t, a in np.ndindex(scores.au_error.shape):
            rows.append((space, method, bench.expressions[e], bench.targets[t], _split(bench, t),
                         bench.alphas[a], *_fields(scores, (e, t, a))))
    return tables.Table(("space", "method", "expression", "target", "split", "alpha",
                         *score_header()), tuple(rows))


def _fields(scores: Scores, index: tuple[int, ...]) -> tuple[float, ...]:
    return tuple(float(getattr(scores, f.name)[index]) for f in dataclasses.fields(Scores))
