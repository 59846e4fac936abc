"""Ground-truth benchmark of expression transfer: ``main(config, workdir)``.

See configs/synthetic_benchmark.py for the commands. On the synthetic study
(the setting of configs/transfer.py's demo: known identities and Action
Units), every transfer method (``linear``, ``half``, ``variance``,
``std_rescale``) is run in every space of ``config.spaces``:

* ``eps``: the Glow's standardized latents (the paper's and OpenAI's choice);
* ``z``: the Glow's raw latents;
* ``pixel``: the same arithmetic on pixels (what the flow buys over none);

over one alpha grid, beside two references: ``none`` (no transfer: the
target's mean face, decoded from its eps mean) and ``oracle`` (the target
rendered with the source's expression: the scorers' floor). Every image is
scored against the truth (:mod:`flowjax.evaluation.ground_truth`: AU error
against the source expression's rendered AUs, identity distances to the
target's and the source's photo centroids) and every pair gets its best
alpha. Outputs under the workdir::

    summary.md                 the tables (as printed) and the definitions
    tables/summary.csv         one row per space and method (+ the references)
    tables/paired.csv          per method, each space's AU error minus eps's, pair by pair
    tables/best_alpha.csv      per space, method, expression and target
    tables/curves.csv          means over pairs per space, method and alpha
    tables/scores.csv          tidy: every scored image
    figures/benchmark.png      AU error and identity distances against alpha
    examples/<expression>.png  first target: none | each space at best alpha | oracle
    manifest.json              config, model, scorers, timings
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flowjax import latents, names, runs, sweep, synthetic
from flowjax import io as fio
from flowjax.evaluation import figures, ground_truth, metrics, synthetic_scorers, tables
from flowjax.evaluation.ground_truth import Scores

SPACES = ("eps", "z", "pixel")
REFERENCES = ("none", "oracle")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """Scores and images of every row: ``transfers[(space, method)]`` are
    ``[E, T, A]`` scores, ``references[name]`` ``[E, T]``."""

    alphas: tuple[float, ...]
    expressions: tuple[str, ...]
    targets: tuple[str, ...]
    transfers: dict[tuple[str, str], Scores]
    references: dict[str, Scores]
    transfer_images: dict[tuple[str, str], np.ndarray]
    reference_images: dict[str, np.ndarray]

    @functools.cached_property
    def summaries(self) -> list[tuple[str, str, ground_truth.Summary, Any]]:
        """(space, method, summary, per-pair best) rows: none, the transfers, oracle;
        computed once, every table reads them."""
        rows = [("none", "-", *ground_truth.summarize(self.references["none"]))]
        for (space, method), scores in self.transfers.items():
            rows.append((space, method, *ground_truth.summarize(scores, self.alphas)))
        rows.append(("oracle", "-", *ground_truth.summarize(self.references["oracle"])))
        return rows


def _check(methods: Sequence[str], spaces: Sequence[str], alphas: Sequence[float]) -> None:
    unknown = [m for m in methods if m not in latents.TRANSFER_METHODS]
    if unknown or not methods:
        raise ValueError(f"config.methods {list(methods)}: choose from {latents.TRANSFER_METHODS}")
    unknown = [s for s in spaces if s not in SPACES]
    if unknown or not spaces:
        raise ValueError(f"config.spaces {list(spaces)}: choose from {SPACES}")
    names.alpha_labels(alphas)


def run_benchmark(model: Any, variables: Any, study: synthetic.Study, au_scorer: Any,
                  embedder: Any, *, alphas: Sequence[float],
                  methods: Sequence[str] = latents.TRANSFER_METHODS,
                  spaces: Sequence[str] = SPACES, var_eps: float = latents.DEFAULT_VARIANCE_EPS,
                  au_threshold: float = 1.0, chunk_size: int = 32,
                  progress: bool | None = None, detector: Any = None) -> Benchmark:
    """Scores every (space, method) transfer of ``study`` and the references.

    ``study`` must put every expression on one source identity
    (``make_study(..., shared_source=True)``), as the seed study does.
    ``detector`` (optional) adds the realism and fake scores.
    """
    _check(methods, spaces, alphas)
    source_ids = np.unique(study.sources.identity_ids)
    if len(source_ids) != 1:
        raise ValueError(f"the study's expressions are on identities {source_ids.tolist()}; the "
                         "benchmark needs one source actor (make_study(..., shared_source=True))")
    target_ids = np.unique(study.targets.identity_ids)
    photos_by_target = np.stack([study.targets.images[study.targets.identity_ids == t]
                                 for t in target_ids])
    embeddings = embedder.embed(np.concatenate([study.targets.images,
                                                study.source_photos.images]))
    centroids = ground_truth.identity_centroids(
        embeddings, np.concatenate([study.targets.identity_ids, study.source_photos.identity_ids]),
        [*target_ids, source_ids[0]])

    oracle = ground_truth.oracle_images(study, study.targets.images.shape[1])

    def score(images: np.ndarray) -> Scores:
        return ground_truth.score_images(images, study.sources.aus, au_scorer, embedder,
                                         centroids[:-1], centroids[-1], oracle, au_threshold,
                                         detector)

    # One encode of every photo; rows: targets, source photos, source expressions.
    encoding = sweep.encode_images(
        model, variables, np.concatenate([study.targets.images, study.source_photos.images,
                                          study.sources.images]),
        chunk_size=chunk_size, progress=progress)
    images, scores = {}, {}
    for space in spaces:
        operands = None if space == "pixel" else _operands(encoding, space, study, target_ids)
        for method in methods:
            if operands is None:
                grid = ground_truth.pixel_transfer(method, study.sources.images,
                                                   study.source_photos.images, photos_by_target,
                                                   alphas, var_eps)
            else:
                grid = sweep.transfer_sweep(model, variables, *operands, alphas, method=method,
                                            space=space, var_eps=var_eps, chunk_size=chunk_size,
                                            progress=progress)
            images[space, method], scores[space, method] = grid, score(grid)
    eps_means = _operands(encoding, "eps", study, target_ids)[2].mean
    means = sweep.decode_latents(model, variables, eps_means, space="eps", chunk_size=chunk_size)
    n_e = len(study.sources.images)
    reference_images = {"none": np.broadcast_to(means[None], (n_e, *means.shape)),
                        "oracle": oracle}
    return Benchmark(
        alphas=tuple(float(a) for a in alphas), expressions=tuple(study.expression_names),
        targets=tuple(f"id{t:02d}" for t in target_ids), transfers=scores,
        references={k: score(v) for k, v in reference_images.items()},
        transfer_images=images, reference_images=reference_images)


def _operands(encoding: Any, space: str, study: synthetic.Study, target_ids: np.ndarray
              ) -> tuple[np.ndarray, latents.IdentityStats, latents.IdentityStats]:
    """``transfer_sweep``'s sources ``[E, D]``, per-source stats (the actor's, repeated)
    and per-target stats ``[T, D]``, from the encoding's rows (targets, source photos,
    source expressions) in ``space``."""
    flat = np.asarray(latents.flatten(list(latents.in_space(encoding, space))))
    n_t, n_s, n_e = (len(p.images) for p in (study.targets, study.source_photos, study.sources))
    actor = latents.identity_stats(flat[n_t:n_t + n_s])
    target_rows = [flat[:n_t][study.targets.identity_ids == t] for t in target_ids]
    targets = latents.stack_stats([latents.identity_stats(rows) for rows in target_rows])
    return flat[n_t + n_s:], latents.stack_stats([actor] * n_e), targets


# ---- tables --------------------------------------------------------------------------

SCORE_HEADER = ("AU error", "d(target)", "d(source)", "RMSE to oracle", "realism", "fake")
SUMMARY_HEADER = ("space", "method", "mean best alpha", "AU error", "s.e.", "d(target)",
                  "d(source)", "identity kept", "RMSE to oracle")


def summary_table(bench: Benchmark) -> tables.Table:
    """One row per reference and (space, method): means over pairs at each pair's best alpha."""
    return tables.Table(SUMMARY_HEADER, tuple(
        (space, method, "-" if np.isnan(s.best_alpha) else s.best_alpha, s.au_error,
         s.au_error_se, s.to_target, s.to_source, s.identity_kept, s.oracle_rmse)
        for space, method, s, _ in bench.summaries))


def paired_table(bench: Benchmark, reference: str = "eps") -> tables.Table:
    """Per method, each other space's AU error minus ``reference``'s, pair by pair at
    each pair's best alpha: is the difference larger than its standard error?"""
    best = {}
    for space, method, _, per_pair in bench.summaries:
        if per_pair is not None:
            best[space, method] = bench.transfers[space, method].take(per_pair.index).au_error
    rows = []
    for (space, method), errors in best.items():
        if space != reference and (reference, method) in best:
            d = ground_truth.paired_difference(errors, best[reference, method])
            rows.append((method, space, d.mean, d.se, f"{d.reference_better}/{d.pairs}"))
    return tables.Table(("method", "space", f"AU error minus {reference}", "s.e.",
                         f"pairs where {reference} is better"), tuple(rows))


def best_alpha_table(bench: Benchmark) -> tables.Table:
    rows = []
    for space, method, _, best in bench.summaries:
        if best is None:
            continue
        at_best = bench.transfers[space, method].take(best.index)
        for e, expression in enumerate(bench.expressions):
            for t, target in enumerate(bench.targets):
                rows.append((space, method, expression, target, float(best.alpha[e, t]),
                             *_fields(at_best, (e, t))))
    return tables.Table(("space", "method", "expression", "target", "best alpha", *SCORE_HEADER),
                        tuple(rows))


def curves_table(bench: Benchmark) -> tables.Table:
    rows = []
    for (space, method), scores in bench.transfers.items():
        for a, alpha in enumerate(bench.alphas):
            rows.append((space, method, alpha, *(float(np.mean(field[..., a]))
                                                 for field in dataclasses.astuple(scores))))
    return tables.Table(("space", "method", "alpha", *SCORE_HEADER), tuple(rows))


def scores_table(bench: Benchmark) -> tables.Table:
    rows = []
    for name, scores in bench.references.items():
        for e, t in np.ndindex(scores.au_error.shape):
            rows.append((name, "-", bench.expressions[e], bench.targets[t], "",
                         *_fields(scores, (e, t))))
    for (space, method), scores in bench.transfers.items():
        for e, t, a in np.ndindex(scores.au_error.shape):
            rows.append((space, method, bench.expressions[e], bench.targets[t], bench.alphas[a],
                         *_fields(scores, (e, t, a))))
    return tables.Table(("space", "method", "expression", "target", "alpha", *SCORE_HEADER),
                        tuple(rows))


def _fields(scores: Scores, index: tuple[int, ...]) -> tuple[float, ...]:
    return tuple(float(field[index]) for field in dataclasses.astuple(scores))


# ---- figure and examples ----------------------------------------------------------------


def benchmark_figure(bench: Benchmark) -> np.ndarray:
    """Per method (columns): AU error, identity distances and RMSE to the oracle (rows)
    against alpha, a line per space; the references as horizontal lines."""
    methods = list(dict.fromkeys(m for _, m in bench.transfers))
    fig = Figure(figsize=(3.6 * len(methods), 9.0), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, len(methods), squeeze=False, sharex="col")
    for col, method in enumerate(methods):
        top, bottom, pixels = axes[:, col]
        for i, space in enumerate(dict.fromkeys(s for s, _ in bench.transfers)):
            scores = bench.transfers.get((space, method))
            if scores is None:
                continue
            color = f"C{i}"
            top.plot(bench.alphas, scores.au_error.mean(axis=(0, 1)), color=color, label=space)
            bottom.plot(bench.alphas, scores.to_target.mean(axis=(0, 1)), color=color,
                        label=f"{space}: to target")
            bottom.plot(bench.alphas, scores.to_source.mean(axis=(0, 1)), color=color, ls="--",
                        label=f"{space}: to source")
            pixels.plot(bench.alphas, scores.oracle_rmse.mean(axis=(0, 1)), color=color)
        for name, style in (("none", ":"), ("oracle", "-.")):
            reference = bench.references[name]
            top.axhline(reference.au_error.mean(), color="0.4", ls=style, label=name)
            bottom.axhline(reference.to_target.mean(), color="0.4", ls=style, label=name)
            pixels.axhline(reference.oracle_rmse.mean(), color="0.4", ls=style)
        top.set_title(method)
        top.set_ylabel("AU error (truth)")
        bottom.set_ylabel("identity distance")
        pixels.set_ylabel("RMSE to oracle (0-255)")
        pixels.set_xlabel("alpha")
        for ax in (top, bottom, pixels):
            ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=6)
    fig.tight_layout()
    return figures.to_array(fig)


def example_strip(bench: Benchmark, expression: int, target: int = 0,
                  method: str | None = None) -> tuple[np.ndarray, list[str]]:
    """none | each space at the pair's best alpha (``method``, default the first) | oracle."""
    method = method or next(m for _, m in bench.transfers)
    cells, labels = [bench.reference_images["none"][expression, target]], ["none"]
    for (space, m), scores in bench.transfers.items():
        if m != method:
            continue
        best = metrics.best_alpha(bench.alphas, scores.au_error[expression, target])
        cells.append(bench.transfer_images[space, m][expression, target, int(best.index)])
        labels.append(f"{space} a={bench.alphas[int(best.index)]:g}")
    cells.append(bench.reference_images["oracle"][expression, target])
    labels.append("oracle")
    return fio.make_strip(cells, labels), labels


# ---- the experiment ---------------------------------------------------------------------


def markdown(bench: Benchmark, summary: tables.Table, paired: tables.Table, header: str) -> str:
    """The summary table, and which rows' best alphas hit the grid's end (so the
    grid, not the method, limited them)."""
    text = f"{header}\n\n{summary.markdown(digits=3)}\n"
    if paired.rows:
        text += ("\nPaired against eps (AU error at each pair's best alpha):\n\n"
                 f"{paired.markdown(digits=3)}\n")
    at_end = [f"{space}/{method} {int(np.sum(best.alpha == bench.alphas[-1]))}"
              for space, method, _, best in bench.summaries
              if best is not None and np.any(best.alpha == bench.alphas[-1])]
    if at_end:
        text += (f"\nPairs whose best alpha is the grid's last ({bench.alphas[-1]:g}), of "
                 f"{len(bench.expressions) * len(bench.targets)}: {', '.join(at_end)}.\n")
    return text


DEFINITIONS = """\
Definitions (flowjax/evaluation/ground_truth.py). AU error: mean |scored - true| over the AUs
the source expression activates in truth (> 1.0 on the 0-5 scale), synthetic AU scorer.
d(target), d(source): Euclidean distance of the synthetic identity embedding to the L2-normalised
mean embedding of the target's / the source's photos. Each transfer row is averaged over the
(expression, target) pairs at each pair's best alpha (least AU error); "identity kept" is the
fraction of those pairs closer to the target than to the source. RMSE to oracle: pixel RMSE
(0-255) to the oracle image of the pair. none: the target's mean face (decoded eps mean);
oracle: the target rendered with the source expression (the exact answer; the scorers' floor).
"""


def _detector_if_present(scorers_dir: str | None) -> Any:
    """The synthetic fake detector when the scorers folder has one (realism and fake
    columns in the per-image tables), else None (those columns NaN)."""
    folder = Path(scorers_dir or synthetic_scorers.DEFAULT_WEIGHTS_DIR)
    return synthetic_scorers.build_fake_detector(folder) if (folder / "detector.npz").exists() else None


def main(config: Any, workdir: str) -> dict[str, Any]:
    _check(config.methods, config.spaces, config.alphas)
    exp = runs.Experiment(config, workdir)
    with exp.timed("load"):
        study_config = config.study
        study = synthetic.make_study(study_config.seed, study_config.n_identities,
                                     study_config.photos_per_identity, study_config.n_expressions,
                                     exp.geometry.image_size, study_config.nuisance_strength,
                                     shared_source=True)
        au_scorer = synthetic_scorers.build_au_scorer(config.scorers_dir)
        embedder = synthetic_scorers.build_identity_embedder(config.scorers_dir)
        detector = _detector_if_present(config.scorers_dir)
    model, variables, _ = exp.load_model(study.targets.images)

    with exp.timed("benchmark"):
        bench = run_benchmark(model, variables, study, au_scorer, embedder, alphas=config.alphas,
                              methods=config.methods, spaces=config.spaces,
                              var_eps=config.var_eps, au_threshold=config.au_threshold,
                              chunk_size=config.chunk_size, progress=config.progress,
                              detector=detector)

    model_text = exp.model_label
    header = (f"Synthetic ground-truth benchmark: {len(bench.expressions)} expressions x "
              f"{len(bench.targets)} targets x {len(bench.alphas)} alphas "
              f"({bench.alphas[0]:g}..{bench.alphas[-1]:g}), study seed {study_config.seed}, "
              f"model {model_text}")
    summary, paired = summary_table(bench), paired_table(bench)
    text = markdown(bench, summary, paired, header)
    with exp.run_dir() as run:
        run.write_text("summary.md", f"{text}\n{DEFINITIONS}")
        for name, table in (("summary", summary), ("paired", paired),
                            ("best_alpha", best_alpha_table(bench)),
                            ("curves", curves_table(bench)), ("scores", scores_table(bench))):
            run.write_csv(f"tables/{name}.csv", table.csv_rows(), header=table.header)
        if config.figures:
            run.write_png("figures/benchmark.png", benchmark_figure(bench), {
                "kind": "flowjax benchmark figure: a chart of metrics, it shows no face",
                "model": model_text})
        for e, expression in enumerate(bench.expressions):
            strip, labels = example_strip(bench, e)
            run.write_png(f"examples/{expression}.png", strip, {
                "kind": "synthetic benchmark strip", "expression": expression,
                "target": bench.targets[0], "layout": " | ".join(labels), "model": model_text})
        provenance = {"action_units": au_scorer.provenance(), "identity": embedder.provenance()}
        if detector is not None:
            provenance["detector"] = detector.provenance()
        run.manifest.set_extra("scorers", provenance)
    print(text)
    logging.info("wrote the synthetic benchmark to %s", workdir)
    return {"summary": summary, "benchmark": bench, "workdir": workdir}
