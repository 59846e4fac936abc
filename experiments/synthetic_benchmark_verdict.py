"""The ground-truth benchmark over several study seeds, and its verdict: ``main(config, workdir)``.

One benchmark (``experiments/synthetic_benchmark.py``) per seed of
``config.study_seeds`` and target mode of ``config.target_modes`` (``"mean"``: each
target's mean face receives the expression; ``"photo"``: its photo
``config.target_photo``), each a complete run in
``<workdir>/seeds/seed_<s>/<mode>/``; then every row (target mode, space, method, at
each expression's alpha chosen on that seed's validation targets under the identity
cap) is pooled over the seeds' test pairs:

* ``au_error``, ``identity_kept``, ``realism``: means over the valid pairs of every
  seed (``ground_truth.valid_pairs``), with the per-seed means beside them;
* ``au_error_se`` (and ``identity_kept_se``, ``realism_se``): clustered by
  expression and by target within each seed
  (:func:`flowjax.evaluation.error_bars.clustered_se` on the seeds' pairs laid out
  block-diagonally: pairs of different seeds share neither), so the error bar
  counts what was drawn, not the pairs;
* ``minus_baseline`` (and its s.e.): the paired AU error difference against
  eps/half with the same target mode, the thesis' best published setting, on the
  same pairs; ``separated``
  when it is at least 2 s.e. from 0 **and** has the same sign in every seed.

Writes ``summary.json`` (``rows``: one per row with the fields above and ``seeds``;
``best``: per target mode its row of least AU error, with its identity kept;
``not_decoded`` per row: test pairs whose image at the chosen alpha decoded non-finite,
outside the row's ``pairs``; ``cap_missed`` and ``at_decoding_edge`` per row: of its
``choices`` (expression, seed), those where no alpha met the identity cap and those
ended at the last alpha the model decoded, ``flowjax.evaluation.alpha_choice.HeldOut``;
``not_pooled``: rows whose sweep diverged at some seed, with where, left out rather
than stopping the run) and ``verdict.md`` (the table, best row first, a line per mode
naming its best row, lines for the rows with undecoded pairs or bounded alphas,
and a line per row not pooled).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from experiments import synthetic_benchmark
from experiments.synthetic_benchmark_tables import BASELINE, CAPPED
from flowjax.evaluation import error_bars, ground_truth
from flowjax.runs import run_dirs
from flowjax.transfer import latents


def block_diagonal(grids: list[np.ndarray]) -> np.ndarray:
    """The seeds' ``[E_s, T_s]`` grids on one ``[sum E, sum T]`` grid, NaN between
    seeds: each seed's expressions and targets are clusters of their own."""
    out = np.full((sum(g.shape[0] for g in grids), sum(g.shape[1] for g in grids)), np.nan)
    e = t = 0
    for g in grids:
        out[e:e + g.shape[0], t:t + g.shape[1]] = g
        e, t = e + g.shape[0], t + g.shape[1]
    return out


def pooled_row(per_seed: list[ground_truth.Scores],
               baseline: list[ground_truth.Scores] | None) -> dict[str, Any]:
    """One row of the verdict from each seed's test scores ``[E, T_test]`` at the chosen
    alphas (and the baseline row's, for the paired difference)."""
    valid = [ground_truth.valid_pairs(s) for s in per_seed]
    au = block_diagonal([np.where(v, s.au_error, np.nan) for s, v in zip(per_seed, valid)])
    kept = block_diagonal([np.where(v, np.asarray(s.to_target) < np.asarray(s.to_source),
                                    np.nan) for s, v in zip(per_seed, valid)])
    realism = block_diagonal([np.where(v, s.realism, np.nan) for s, v in zip(per_seed, valid)])
    mask = np.isfinite(au)
    row = {"au_error": error_bars.masked_mean(au, mask),
           "au_error_se": error_bars.clustered_se(au, mask),
           "identity_kept": error_bars.masked_mean(kept, mask),
           "identity_kept_se": error_bars.clustered_se(kept, mask),
           "realism": error_bars.masked_mean(realism, mask),
           "realism_se": error_bars.clustered_se(realism, mask),
           "pairs": int(mask.sum()),
           # test pairs whose image at the chosen alpha did not decode (a diverged sweep
           # point): never scored, so outside every mean above, and counted here
           "not_decoded": int(sum(np.sum(~np.isfinite(np.asarray(s.to_target, np.float64)))
                                  for s in per_seed)),
           "au_error_per_seed": [error_bars.masked_mean(s.au_error, v)
                                 for s, v in zip(per_seed, valid)]}
    if baseline is not None:
        diffs = [np.asarray(s.au_error, np.float64) - np.asarray(b.au_error, np.float64)
                 for s, b in zip(per_seed, baseline)]
        d = block_diagonal(diffs)
        both = np.isfinite(d)
        mean, se = error_bars.masked_mean(d, both), error_bars.clustered_se(d, both)
        signs = {np.sign(np.nanmean(x)) for x in diffs if np.isfinite(x).any()}
        row.update(minus_baseline=mean, minus_baseline_se=se,
                   separated=bool(mean != 0 and abs(mean) >= 2 * se and len(signs) == 1))
    return row


def _check(config: Any) -> tuple[list[int], list[str]]:
    seeds = [int(s) for s in config.study_seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"config.study_seeds must name distinct seeds, got {seeds}")
    modes = list(config.get("target_modes", ("mean",)))
    if not modes or len(set(modes)) != len(modes) or set(modes) - set(latents.ANCHORS):
        raise ValueError(f"config.target_modes must name distinct modes of {latents.ANCHORS}, "
                         f"got {modes}")
    for mode in modes:  # a bad target_photo fails now, not after the mean mode's seeds
        latents.anchor_photo(mode, config.get("target_photo", 0),
                             config.study.photos_per_identity)
    return seeds, modes


def _pooled_rows(benches: dict[int, Any], seeds: list[int],
                 mode: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The verdict's rows of one target mode, from its benchmark at every seed, and the
    rows it cannot pool: scored at some seeds only (a sweep that diverged at the others),
    each with the seeds where it diverged, so one diverged sweep costs its own row, not
    the hours the other rows took."""
    held = {seed: b.held_out[CAPPED] for seed, b in benches.items()}  # computed once
    keys = list(dict.fromkeys([*(k for rows in held.values() for k in rows),
                               *(k for b in benches.values() for k in b.diverged)]))
    pooled = [k for k in keys if all(k in rows for rows in held.values())]
    not_pooled = [{"target": mode, "space": space, "method": method,
                   "not_scored_at": [seed for seed, rows in held.items()
                                     if (space, method) not in rows],
                   "diverged": {str(seed): list(b.diverged[space, method])
                                for seed, b in benches.items()
                                if (space, method) in b.diverged}}
                  for space, method in keys if (space, method) not in pooled]
    for row in not_pooled:
        logging.warning("%s/%s (target %s) was not scored at seeds %s: left out of the verdict",
                        row["space"], row["method"], mode, row["not_scored_at"])
    test = {k: [rows[k].test for rows in held.values()] for k in pooled}
    baseline = test.get(BASELINE)
    # how each row's alphas were bounded, counted over expressions and seeds
    bounds = {k: {"cap_missed": sum(int((~rows[k].meets_cap).sum()) for rows in held.values()),
                  "at_decoding_edge": sum(int(rows[k].at_decoding_edge.sum())
                                          for rows in held.values()),
                  "choices": sum(len(rows[k].alpha) for rows in held.values())}
              for k in pooled}
    return [{"target": mode, "space": space, "method": method, "seeds": seeds,
             **pooled_row(test[(space, method)], baseline), **bounds[space, method]}
            for space, method in pooled], not_pooled


def main(config: Any, workdir: str) -> dict[str, Any]:
    seeds, modes = _check(config)
    with run_dirs.create_run_dir(workdir, overwrite=config.overwrite) as run:
        run.manifest.set_config(config.to_dict())
        rows, not_pooled = [], []
        for mode in modes:
            benches = {}
            for seed in seeds:
                one = config.copy_and_resolve_references()
                with one.unlocked():
                    one.study.seed = seed
                    one.target = mode
                    one.experiment = "synthetic_benchmark"
                    del one["study_seeds"]
                    if "target_modes" in one:
                        del one["target_modes"]
                logging.info("target %s, study seed %d of %s", mode, seed, seeds)
                result = synthetic_benchmark.main(
                    one, str(Path(run.path) / "seeds" / f"seed_{seed}" / mode))
                benches[seed] = result["benchmark"]
            mode_rows, mode_not_pooled = _pooled_rows(benches, seeds, mode)
            rows += mode_rows
            not_pooled += mode_not_pooled
        rows.sort(key=lambda r: (math.isnan(r["au_error"]), r["au_error"]))
        summary = {"seeds": seeds, "target_modes": modes,
                   "target_photo": int(config.get("target_photo", 0)),
                   "selection": "alpha per expression on the validation targets, at the "
                   "identity cap", "baseline": list(BASELINE), "rows": rows,
                   "best": best_rows(rows), "not_pooled": not_pooled}
        run.write_json("summary.json", summary)
        run.write_text("verdict.md", verdict_markdown(rows, seeds, not_pooled))
    return summary


def best_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target mode, its row of least AU error (every row is at the identity cap;
    rows with no finite AU error never win), or no entry when the mode has none."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if math.isfinite(r["au_error"]) and (
                r["target"] not in best or r["au_error"] < best[r["target"]]["au_error"]):
            best[r["target"]] = r
    return best


def verdict_markdown(rows: list[dict[str, Any]], seeds: list[int],
                     not_pooled: list[dict[str, Any]] = ()) -> str:
    lines = [f"# The benchmark over study seeds {', '.join(map(str, seeds))}", "",
             "Test pairs of every seed pooled; s.e. clustered by expression and target "
             "within each seed; minus eps/half: paired AU error difference, separated when "
             "2 s.e. from 0 with the same sign at every seed.", "",
             "| target | space | method | AU error | s.e. | per seed | identity kept (s.e.) | "
             "realism (s.e.) | minus eps/half | s.e. | separated |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per_seed = " / ".join(f"{v:.3f}" for v in r["au_error_per_seed"])
        diff = (f"{r['minus_baseline']:+.3f} | {r['minus_baseline_se']:.3f} | "
                f"{'yes' if r['separated'] else 'no'}") if "minus_baseline" in r else "- | - | -"
        lines.append(f"| {r['target']} | {r['space']} | {r['method']} | {r['au_error']:.3f} | "
                     f"{r['au_error_se']:.3f} | {per_seed} | {r['identity_kept']:.2f} "
                     f"({r['identity_kept_se']:.2f}) | {r['realism']:.2f} ({r['realism_se']:.2f}) "
                     f"| {diff} |")
    lines.append("")
    best = best_rows(rows)
    for mode, r in best.items():
        lines.append(f"Best with target {mode}: {r['space']}/{r['method']}, AU error "
                     f"{r['au_error']:.3f} +- {r['au_error_se']:.3f}, identity kept in "
                     f"{100 * r['identity_kept']:.0f} % of pairs (+- "
                     f"{100 * r['identity_kept_se']:.0f})"
                     + (f"; {r['not_decoded']} more pairs did not decode at the chosen alpha."
                        if r.get("not_decoded") else "."))
    for r in rows:
        if r.get("not_decoded") and r is not best.get(r["target"]):  # said on its Best line
            lines.append(f"Not decoded, target {r['target']}: {r['space']}/{r['method']}, "
                         f"{r['not_decoded']} test pairs at their chosen alpha (outside the "
                         f"row's {r['pairs']} pairs).")
    for r in rows:
        if r.get("cap_missed") or r.get("at_decoding_edge"):
            lines.append(f"Alphas bounded, target {r['target']}: {r['space']}/{r['method']}, "
                         f"of {r['choices']} (expression, seed) choices {r['cap_missed']} met "
                         f"no alpha within the cap and {r['at_decoding_edge']} stopped at the "
                         "last alpha the model decoded.")
    for r in not_pooled:
        diverged = "; ".join(f"seed {seed}: {n} of {total} sweep points non-finite"
                             for seed, (n, total) in r["diverged"].items())
        lines.append(f"Not pooled, target {r['target']}: {r['space']}/{r['method']}, not "
                     f"scored at seeds {', '.join(map(str, r['not_scored_at']))} (diverged: "
                     f"{diverged or 'none recorded'}).")
    return "\n".join(lines) + "\n"
