"""Ground-truth benchmark of expression transfer: ``main(config, workdir)``.

See configs/synthetic_benchmark.py for the commands. On the synthetic study
(the setting of configs/transfer.py's demo: known identities and Action
Units), every transfer method of ``config.methods`` is run in every space of
``config.spaces``:

* ``eps``: the Glow's standardized latents (the paper's and OpenAI's choice);
* ``z``: the Glow's raw latents;
* ``pixel``: the same arithmetic on pixels (what the flow buys over none).
  The level methods (``fine``, ``top``, ``levels``) weight latent levels and
  have no pixel form: their pixel rows are skipped (the summary says so);
  ``subspace`` in pixels is PCA of the actor's photos' pixels.

Methods (``flowjax.transfer.latents.METHODS``): the thesis' ``linear``, ``half``,
``variance``, ``std_rescale``, and two that carry only part of the expression
displacement ``s - m_s`` (``m_t + alpha * W (s - m_s)``): ``fine``/``top``/
``levels`` (per-level weights: only the finer levels, only the top, or
``config.level_weights``) and ``subspace`` (the top ``config.subspace_rank``
principal directions of the actor's photos' displacements).

**Held-out protocol.** The study is rendered with twice ``n_identities``
target identities in one draw (``make_study(seed, 2 * n_identities, ...)``,
so the source actor and its expressions are shared): the first
``n_identities`` are the *validation* targets, the last ``n_identities`` the
*test* targets. Per (space, method, expression) one alpha is chosen on the
validation targets only: among the alphas whose mean validation d(target) is
at most the identity cap (every method held to the same identity
level), the one of least mean validation AU error; the headline table reports
the test targets at that alpha. The same without the cap ("unconstrained")
and the old in-sample optimum (each test pair at its own best alpha, chosen on
the scores it reports) are secondary tables. Every method is compared pair by
pair with the thesis' ``eps/half`` on the test pairs (standard errors over
them). Outputs under the workdir::

    summary.md                       the tables (as printed) and the definitions
    tables/summary.csv               held-out, at the identity cap (the headline)
    tables/summary_unconstrained.csv held-out, alpha of least validation AU error
    tables/in_sample.csv             each test pair at its own best alpha
    tables/paired.csv                each row's test AU error minus eps/half's, pair by pair
    tables/realism_pixel_vs_eps.csv  per method, pixel's realism minus eps's, pair by pair
                                     (empty without a fake detector in the scorers folder)
    tables/chosen_alpha.csv          per space, method and expression: the chosen alphas
    tables/best_alpha.csv            in-sample best alpha per space, method, expression, target
    tables/curves.csv                means over pairs per space, method, split and alpha
    tables/scores.csv                tidy: every scored image
    figures/benchmark.png            AU error and identity distances against alpha
    examples/<expression>.png        first test target: none | each space at the held-out alpha | oracle
    manifest.json                    config, model, scorers, timings

Longer than 400 lines because one benchmark run renders its study, sweeps every method
in three spaces, scores and draws them; its tables are in
experiments/synthetic_benchmark_tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flowjax import runs, synthetic
from flowjax import io as fio
from flowjax.evaluation import alpha_choice, figures, ground_truth, synthetic_scorers
from flowjax.evaluation.ground_truth import Scores
from flowjax.models.errors import NonFiniteError
from flowjax.runs import names
from flowjax.transfer import latents, sweep

# The tables live beside the experiment (one responsibility each); re-exported here.
from experiments.synthetic_benchmark_tables import (  # noqa: F401  (public API)
    BASELINE, CAPPED, FREE, Benchmark, best_alpha_table, best_line, chosen_alpha_table, curves_table,
    held_out_table, in_sample_table, paired_table, score_header, scores_table, space_table)

SPACES = ("eps", "z", "pixel")
REFERENCES = ("none", "oracle")


def _check(methods: Sequence[str], spaces: Sequence[str], alphas: Sequence[float],
           identity_slack: float | None = None) -> None:
    unknown = [m for m in methods if m not in latents.METHODS]
    if unknown or not methods:
        raise ValueError(f"config.methods {list(methods)}: choose from {latents.METHODS}")
    unknown = [s for s in spaces if s not in SPACES]
    if unknown or not spaces:
        raise ValueError(f"config.spaces {list(spaces)}: choose from {SPACES}")
    if identity_slack is not None and not (np.isfinite(identity_slack)
                                           and 0.0 <= identity_slack <= 1.0):
        raise ValueError(f"config.identity_slack must lie in [0, 1] (the fraction of the way "
                         f"from the target's mean face to the source actor a transfer may "
                         f"drift), or None for no cap; got {identity_slack!r}")
    names.alpha_labels(alphas)


def run_benchmark(model: Any, variables: Any, study: synthetic.Study, au_scorer: Any,
                  embedder: Any, *, alphas: Sequence[float],
                  methods: Sequence[str] = latents.TRANSFER_METHODS,
                  spaces: Sequence[str] = SPACES, var_eps: float = latents.DEFAULT_VARIANCE_EPS,
                  au_threshold: float = 1.0, chunk_size: int = 32,
                  progress: bool | None = None, identity_slack: float | None = None,
                  level_weights: Sequence[float] | None = None,
                  subspace_rank: int = latents.DEFAULT_SUBSPACE_RANK,
                  detector: Any = None, anchor_photo: int | None = None) -> Benchmark:
    """Scores every (space, method) transfer of ``study`` and the references.

    ``study`` must put every expression on one source identity
    (``make_study(..., shared_source=True)``), as the seed study does, and have at
    least 2 targets: the first half (by identity id) are the validation targets,
    the rest the test targets (see the module docstring). ``detector`` (optional)
    adds the realism and fake scores. ``anchor_photo`` ``j``: the expression is moved
    onto each target's photo ``j`` (``z_photo + alpha (s - m_s)``) instead of its mean
    face; the oracle is that photo with the source's AUs, "none" the photo itself,
    identity is still measured to the target's identity (its photos' centroid), and
    the identity cap is still the mean face's (the same level in both modes).
    """
    _check(methods, spaces, alphas, identity_slack)
    for method in methods:  # bad level weights / rank fail before any compute
        if method in latents.LEVEL_METHODS:
            latents.method_level_weights(method, len(model.latent_shapes), level_weights)
    if latents.SUBSPACE_METHOD in methods:
        n_photos = len(study.source_photos.images)
        if not 0 <= subspace_rank <= n_photos:
            raise ValueError(f"config.subspace_rank {subspace_rank} must lie in [0, {n_photos}] "
                             f"(the actor's {n_photos} photos span at most {n_photos - 1} "
                             "directions)")
    source_ids = np.unique(study.sources.identity_ids)
    if len(source_ids) != 1:
        raise ValueError(f"the study's expressions are on identities {source_ids.tolist()}; the "
                         "benchmark needs one source actor (make_study(..., shared_source=True))")
    target_ids = np.unique(study.targets.identity_ids)
    if len(target_ids) < 2:
        raise ValueError(f"the study has {len(target_ids)} target; the held-out protocol needs "
                         "validation and test targets (at least 2)")
    photos_by_target = np.stack([study.targets.images[study.targets.identity_ids == t]
                                 for t in target_ids])
    embeddings = embedder.embed(np.concatenate([study.targets.images,
                                                study.source_photos.images]))
    centroids = ground_truth.identity_centroids(
        embeddings, np.concatenate([study.targets.identity_ids, study.source_photos.identity_ids]),
        [*target_ids, source_ids[0]])

    oracle = ground_truth.oracle_images(study, study.targets.images.shape[1], anchor_photo)

    def score(images: np.ndarray) -> Scores:
        return ground_truth.score_images(images, study.sources.aus, au_scorer, embedder,
                                         centroids[:-1], centroids[-1], oracle, au_threshold,
                                         detector)

    # One encode of every photo; rows: targets, source photos, source expressions.
    encoding = sweep.encode_images(
        model, variables, np.concatenate([study.targets.images, study.source_photos.images,
                                          study.sources.images]),
        chunk_size=chunk_size, progress=progress)
    images, scores, skipped, diverged = {}, {}, [], {}
    for space in spaces:
        operands = (None if space == "pixel" else
                    _operands(encoding, space, study, target_ids, anchor_photo))
        for method in methods:
            if operands is None:
                if method in latents.LEVEL_METHODS:
                    skipped.append((space, method))  # pixels have no latent levels
                    continue
                grid = ground_truth.pixel_transfer(method, study.sources.images,
                                                   study.source_photos.images, photos_by_target,
                                                   alphas, var_eps, subspace_rank, anchor_photo)
            else:
                sources, source_stats, target_stats, actor = operands
                sources, arithmetic = latents.prepare_sources(
                    method, sources, actor, shapes=model.latent_shapes,
                    level_weights=level_weights, subspace_rank=subspace_rank)
                try:
                    grid = sweep.transfer_sweep(model, variables, sources, source_stats,
                                                target_stats, alphas, method=arithmetic,
                                                space=space, var_eps=var_eps,
                                                chunk_size=chunk_size, progress=progress)
                except NonFiniteError as err:
                    # A method that blows the latent up (the thesis' variance formula at
                    # large alphas, any method past the alphas an affine Glow inverts) is a
                    # result, reported as such; its non-finite points are never scored.
                    total = len(sources) * len(target_stats.mean) * len(alphas)
                    diverged[space, method] = (len(err.points), total)
                    logging.warning("%s/%s diverged: %s", space, method, err)
                    decoded = np.ones(total, bool)
                    decoded[err.points] = False
                    decoded = decoded.reshape(len(sources), len(target_stats.mean), len(alphas))
                    if err.partial is None or not decoded.all(axis=1).any(axis=1).all():
                        continue  # an expression with no alpha that decodes for every target
                    grid, scored = ground_truth.scored_where_decoded(
                        err.partial, decoded, score)
                    images[space, method], scores[space, method] = grid, scored
                    continue
            images[space, method], scores[space, method] = grid, score(grid)
    n_e = len(study.sources.images)

    def decoded_anchors(photo: int | None) -> np.ndarray:
        anchors = _operands(encoding, "eps", study, target_ids, photo)[2].mean
        faces = sweep.decode_latents(model, variables, anchors, space="eps",
                                     chunk_size=chunk_size)
        return np.broadcast_to(faces[None], (n_e, *faces.shape))

    reference_images = {"none": decoded_anchors(anchor_photo), "oracle": oracle}
    references = {k: score(v) for k, v in reference_images.items()}
    validation = np.arange(len(target_ids)) < len(target_ids) // 2
    # The cap is the target's mean face's in either target mode, so a photo target is
    # held to the same identity level as a mean face (its own photo starts closer).
    mean_faces = references["none"] if anchor_photo is None else score(decoded_anchors(None))
    identity_cap = (None if identity_slack is None else alpha_choice.identity_cap_from_slack(
        mean_faces.targets(validation), identity_slack))
    return Benchmark(
        alphas=tuple(float(a) for a in alphas), expressions=tuple(study.expression_names),
        targets=tuple(f"id{t:02d}" for t in target_ids), transfers=scores,
        references=references, transfer_images=images, reference_images=reference_images,
        validation=validation, identity_cap=identity_cap, identity_slack=identity_slack,
        skipped=tuple(skipped), diverged=diverged,
        anchor="mean" if anchor_photo is None else f"photo {anchor_photo}")


def _operands(encoding: Any, space: str, study: synthetic.Study, target_ids: np.ndarray,
              anchor_photo: int | None = None
              ) -> tuple[np.ndarray, latents.IdentityStats, latents.IdentityStats, np.ndarray]:
    """``transfer_sweep``'s sources ``[E, D]``, per-source stats (the actor's, repeated)
    and per-target stats ``[T, D]`` (each target's mean, or its photo ``anchor_photo``),
    from the encoding's rows (targets, source photos, source expressions) in ``space``;
    and the actor's photos' latents ``[N, D]``."""
    flat = np.asarray(latents.flatten(list(latents.in_space(encoding, space))))
    n_t, n_s, n_e = (len(p.images) for p in (study.targets, study.source_photos, study.sources))
    actor = latents.identity_stats(flat[n_t:n_t + n_s])
    target_rows = [flat[:n_t][study.targets.identity_ids == t] for t in target_ids]
    targets = latents.anchor_stats(target_rows, anchor_photo)
    return (flat[n_t + n_s:], latents.stack_stats([actor] * n_e), targets,
            flat[n_t:n_t + n_s])


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
        if bench.identity_cap is not None:
            bottom.axhline(bench.identity_cap, color="r", lw=0.8, label="identity cap")
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


def example_strip(bench: Benchmark, expression: int, method: str | None = None
                  ) -> tuple[np.ndarray, list[str]]:
    """On the first test target: none | each space at the alpha chosen on the validation
    targets at the identity cap (``method``, default the first) | oracle."""
    method = method or next(m for _, m in bench.transfers)
    target = int(np.flatnonzero(~bench.validation)[0])
    cells, labels = [bench.reference_images["none"][expression, target]], ["none"]
    for (space, m), chosen in bench.held_out[CAPPED].items():
        if m != method:
            continue
        index = int(chosen.alpha_index[expression])
        cells.append(bench.transfer_images[space, m][expression, target, index])
        labels.append(f"{space} a={bench.alphas[index]:g}")
    cells.append(bench.reference_images["oracle"][expression, target])
    labels.append("oracle")
    return fio.make_strip(cells, labels), labels


# ---- the experiment ---------------------------------------------------------------------


def markdown(bench: Benchmark, header: str) -> str:
    """The held-out tables (at the cap: the headline; unconstrained), the paired
    comparison with eps/half and the best row, the in-sample table, and notes: skipped
    rows, rows that missed the cap, alphas chosen at the grid's end."""
    cap = ("none" if bench.identity_cap is None else
           f"{bench.identity_cap:.3f} (the target's mean face's validation d(target) plus "
           f"{bench.identity_slack:g} of the way to the source actor)")
    n_pairs = len(bench.expressions) * len(bench.test_targets)
    text = (f"{header}\n\nValidation targets {', '.join(t for t, v in zip(bench.targets, bench.validation) if v)}; "
            f"test targets {', '.join(bench.test_targets)} ({n_pairs} test pairs).\n\n"
            f"Held out, at equal identity preservation (per expression, the alpha of least "
            f"validation AU error among those with validation d(target) <= {cap}):\n\n"
            f"{held_out_table(bench, CAPPED).markdown(digits=3)}\n")
    paired = paired_table(bench)
    if paired.rows:
        text += (f"\nPaired against {'/'.join(BASELINE)} (test pairs, at the identity cap):"
                 f"\n\n{paired.markdown(digits=3)}\n")
    text += f"\n{best_line(bench)}\n"
    realism = space_table(bench)
    if realism.rows:
        text += ("\nRealism (the fake detector's log-odds of a clean render), pixel against eps "
                 "arithmetic, test pairs each at its held-out alpha at the cap:\n\n"
                 f"{realism.markdown(digits=3)}\n")
    text += ("\nHeld out, unconstrained (the alpha of least validation AU error):\n\n"
             f"{held_out_table(bench, FREE).markdown(digits=3)}\n"
             "\nIn sample (each test pair at the best alpha of its own scores: optimistic):\n\n"
             f"{in_sample_table(bench).markdown(digits=3)}\n")
    if bench.skipped:
        text += (f"\nNot run: {', '.join('/'.join(k) for k in bench.skipped)} (the level "
                 "methods weight latent levels; pixels have none).\n")
    if bench.diverged:
        text += ("\nDiverged (the sweep decoded non-finite images, which are never scored; the "
                 "rest of the row is, its alpha chosen among those that decoded for every "
                 "validation target; not scored where an expression decodes at no alpha): "
                 + ", ".join(f"{'/'.join(k)} at {n} of {total} grid points"
                             + ("" if k in bench.transfers else " (not scored)")
                             for k, (n, total) in bench.diverged.items()) + ".\n")
    missed = [f"{'/'.join(k)} {int((~h.meets_cap).sum())}" for k, h in bench.held_out[CAPPED].items()
              if not h.meets_cap.all()]
    if missed:
        text += (f"\nExpressions where no alpha met the cap (the alpha of least validation "
                 f"d(target) was used), of {len(bench.expressions)}: {', '.join(missed)}.\n")
    at_end = [f"{'/'.join(k)} {int(np.sum(h.alpha == bench.alphas[-1]))}"
              for k, h in bench.held_out[CAPPED].items() if np.any(h.alpha == bench.alphas[-1])]
    if at_end:
        text += (f"\nExpressions whose alpha at the cap is the grid's last ({bench.alphas[-1]:g}), "
                 f"of {len(bench.expressions)}: {', '.join(at_end)}.\n")
    at_edge = [f"{'/'.join(k)} {int(h.at_decoding_edge.sum())}"
               for k, h in bench.held_out[CAPPED].items() if h.at_decoding_edge.any()]
    if at_edge:
        text += ("\nExpressions whose alpha at the cap is the last before the model stopped "
                 "decoding (the next alpha failed for some validation target: the model's "
                 f"range ended the choice), of {len(bench.expressions)}: {', '.join(at_edge)}.\n")
    return text


DEFINITIONS = """\
Definitions (flowjax/evaluation/ground_truth.py, alpha_choice.py). AU error: mean |scored - true| over the AUs
the source expression activates in truth (> 1.0 on the 0-5 scale), synthetic AU scorer.
d(target), d(source): Euclidean distance of the synthetic identity embedding to the L2-normalised
mean embedding of the target's / the source's photos. Held-out rows: per (space, method,
expression) one alpha is chosen on the validation targets (least mean AU error; "at the cap":
among the alphas whose mean d(target) is within the identity cap, "cap met" counting the
expressions where one was) and the row averages the test pairs at it, with the AU error's
standard error over those pairs. In-sample rows: each test pair at its own best alpha.
"identity kept": fraction of pairs closer to the target than to the source. RMSE to oracle:
pixel RMSE (0-255) to the oracle image of the pair. none: the target's mean face (decoded eps
mean); oracle: the target rendered with the source expression (the exact answer; the scorers'
floor). Paired: a row's AU error minus eps/half's on the same test pairs; "separated" when the
mean difference is at least 2 standard errors.
"""


def _detector_if_present(scorers_dir: str | None) -> Any:
    """The synthetic fake detector when the scorers folder has one (realism and fake
    columns in the per-image tables), else None (those columns NaN)."""
    folder = Path(scorers_dir or synthetic_scorers.DEFAULT_WEIGHTS_DIR)
    return synthetic_scorers.build_fake_detector(folder) if (folder / "detector.npz").exists() else None


def _anchor_photo(config: Any) -> int | None:
    """``config.target``: ``"mean"`` (None) or ``"photo"`` (``config.target_photo``,
    checked against the study's photos per identity)."""
    return latents.anchor_photo(config.get("target", "mean"), config.get("target_photo", 0),
                                config.study.photos_per_identity)


def main(config: Any, workdir: str) -> dict[str, Any]:
    _check(config.methods, config.spaces, config.alphas, config.identity_slack)
    _anchor_photo(config)  # before any work
    exp = runs.Experiment(config, workdir)
    with exp.timed("load"):
        study_config = config.study
        # Twice the targets in one draw: the first half validate, the second half test.
        study = synthetic.make_study(study_config.seed, 2 * study_config.n_identities,
                                          study_config.photos_per_identity, study_config.n_expressions,
                                          exp.geometry.image_size, study_config.nuisance_strength,
                                          shared_source=True, setting=study_config.setting)
        au_scorer = synthetic_scorers.build_au_scorer(config.scorers_dir)
        embedder = synthetic_scorers.build_identity_embedder(config.scorers_dir)
        detector = _detector_if_present(config.scorers_dir)
    model, variables, _ = exp.load_model(study.targets.images)

    with exp.timed("benchmark"):
        bench = run_benchmark(model, variables, study, au_scorer, embedder, alphas=config.alphas,
                              methods=config.methods, spaces=config.spaces,
                              var_eps=config.var_eps, au_threshold=config.au_threshold,
                              chunk_size=config.chunk_size, progress=config.progress,
                              identity_slack=config.identity_slack,
                              level_weights=tuple(config.level_weights),
                              subspace_rank=config.subspace_rank,
                              detector=detector, anchor_photo=_anchor_photo(config))

    model_text = exp.model_label
    header = (f"Synthetic ground-truth benchmark: {len(bench.expressions)} expressions x "
              f"{len(bench.targets)} targets (half validation, half test) x "
              f"{len(bench.alphas)} alphas ({bench.alphas[0]:g}..{bench.alphas[-1]:g}), "
              f"study seed {study_config.seed}, expressions moved onto each target's "
              f"{'mean face' if bench.anchor == 'mean' else bench.anchor}, model {model_text}")
    summary = held_out_table(bench, CAPPED)
    text = markdown(bench, header)
    with exp.run_dir() as run:
        run.write_text("summary.md", f"{text}\n{DEFINITIONS}")
        for name, table in (("summary", summary),
                            ("summary_unconstrained", held_out_table(bench, FREE)),
                            ("in_sample", in_sample_table(bench)),
                            ("paired", paired_table(bench)),
                            ("realism_pixel_vs_eps", space_table(bench)),
                            ("chosen_alpha", chosen_alpha_table(bench)),
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
                "target": bench.test_targets[0], "layout": " | ".join(labels),
                "model": model_text})
        provenance = {"action_units": au_scorer.provenance(), "identity": embedder.provenance()}
        if detector is not None:
            provenance["detector"] = detector.provenance()
        run.manifest.set_extra("scorers", provenance)
        run.manifest.set_extra("anchor", bench.anchor)
    print(text)
    logging.info("wrote the synthetic benchmark to %s", workdir)
    return {"summary": summary, "benchmark": bench, "workdir": workdir}
