"""Expression transfer: ``main(config, workdir)``; see configs/transfer.py.

Pipeline: load and check everything (config, model geometry, images, model),
encode all images in batched chunks, per-identity latent statistics in the
chosen space, one compiled sweep over expressions x targets x alphas, then
write the run directory::

    transfer/<expression>/<target>/<alpha>/<target>_<alpha>.png
    strips/<expression>/<target>.png   target mean | alphas... | source | source mean
    means/<identity>_mean.png          decoded identity means (source and targets)
    targets/<identity>/<photo>.png     config.target="photos": each target photo as the
                                       model reconstructs it (alpha 0)
    inputs/...                         the generated inputs (generated data only)
    transfer.json                      the grid and every image's path
    manifest.json                      config, versions, model + checksum, inputs, outputs, timings

With ``config.align`` the photos are aligned to the model's size as they load
(``flowjax.runs.load_identities``, ``flowjax.faces.align``), the manifest's
``extra.alignment`` records each alignment, and the aligned photos are written
to ``inputs/aligned/<identity>/`` (labelled not generated; ``transfer.json``
lists them, and its ``source_images`` are the evaluation's AU references).
With ``config.align_failures="skip"`` a photo in which no face is found (or
several, under ``config.align_multiple_faces="error"``) is left out: logged,
listed with its reason in the manifest's ``extra.alignment_skipped`` and in
``transfer.json``'s ``alignment_skipped``; an identity left with no photo stops
the run, naming it.

``config.target`` says where the expression goes: ``"mean"`` (the default) moves it
onto each target's mean latent, ``"photos"`` onto each of the target's own photos
(``z_photo + alpha (s - m_s)``, with the identity's variance for the variance
methods): every photo is then a target of the grid, named ``<identity>/<photo>``,
whose reference face (``transfer.json``'s ``means``, what the evaluation measures
identity to) is that photo as the model reconstructs it.

Nothing is written until all inputs have loaded and all images are decoded,
so bad input leaves no run directory behind. Every PNG says it is synthetic
and carries the method, alpha, source, target, space and model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from flowjax import runs, synthetic
from flowjax import io as fio
from flowjax.evaluation import scorers, synthetic_scorers
from flowjax.runs import names, run_dirs
from flowjax.transfer import latents, sweep

VARIANCE_METHODS = latents.VARIANCE_METHODS
TARGET_MODES = ("mean", "photos")


def _target_anchors(config: Any, targets: list[str], used: dict[str, fio.ImageSet],
                    flat: dict[str, np.ndarray],
                    stats: dict[str, latents.IdentityStats]) -> dict[str, tuple[str, Any]]:
    """The grid's targets: ``{name: (identity, anchor statistics)}``. ``"mean"``: one per
    identity, its own statistics; ``"photos"``: one per photo, ``<identity>/<photo>``,
    the photo's latent as the mean and the identity's variance."""
    if config.get("target", "mean") == "mean":
        return {t: (t, stats[t]) for t in targets}
    anchors = {}
    for t in targets:
        for i, stem in enumerate(names.image_names(used[t].paths)):
            anchors[f"{t}/{stem}"] = (t, latents.anchored_on_photo(stats[t], flat[t][i]))
    return anchors


def _check_config(config: Any) -> list[str]:
    if config.method not in latents.METHODS:
        raise ValueError(f"config.method {config.method!r} is not a transfer method; choose one "
                         f"of {latents.METHODS}")
    latents.check_space(config.space)
    if config.chunk_size < 1:
        raise ValueError(f"config.chunk_size must be >= 1, got {config.chunk_size}")
    latents.check_var_eps(config.var_eps, config.method, "config.var_eps")
    if config.get("target", "mean") not in TARGET_MODES:
        raise ValueError(f"config.target must be one of {TARGET_MODES}, got {config.target!r}")
    _check_evaluation(config)
    runs.check_alignment(config, synthetic_study=_uses_synthetic_study(config))
    return names.alpha_labels(config.alphas)


def _check_evaluation(config: Any) -> None:
    """The synthetic scorers only understand flowjax.synthetic faces: refuse to
    score anything else with them (the numbers would look fine and mean nothing)."""
    evaluation = config.get("evaluation")
    if evaluation is None or not evaluation.get("enabled", False):
        return
    sections = scorers.synthetic_only_sections(evaluation)
    synthetic = [f"evaluation.{section}.backend" for section in sections]
    if synthetic and _user_data(config):
        raise ValueError(
            f"{', '.join(synthetic)} = 'synthetic' scores only flowjax.synthetic faces, but "
            "config.data names your own images: pass --config.evaluation.enabled=False, or "
            "--config.evaluation.identity.backend=facenet "
            "--config.evaluation.action_units.backend=openface "
            "--config.evaluation.detector.backend=none (see configs/evaluate.py)")
    for section in sections:  # their weights: missing ones now, not after the transfer
        synthetic_scorers.check_weights_dir((evaluation[section].get("options") or {}).get(
            "weights_dir"))


def _user_data(config: Any) -> bool:
    return bool(config.data.identities or config.data.identity_map.to_dict())


def _uses_synthetic_study(config: Any) -> bool:
    study = config.data.get("synthetic")
    return bool(study is not None and study.enabled and not _user_data(config))


def _identity_source(config: Any, generated_root: Path | None) -> Any:
    if generated_root is not None:
        return generated_root
    root, mapping = config.data.identities, config.data.identity_map.to_dict()
    if bool(root) == bool(mapping):
        raise ValueError("give exactly one of config.data.identities (a root folder laid out "
                         "root/<identity>/*.png) and config.data.identity_map "
                         f"({{identity: paths}}); got identities={root!r}, "
                         f"identity_map={sorted(mapping)}")
    return root or mapping


def _select(config: Any,
            identities: dict[str, fio.ImageSet]) -> tuple[str, dict[str, int], list[str]]:
    """The source identity, its expressions ``{name: image index}``, the targets."""
    identity_names = list(identities)
    source = config.source
    if not source or source not in identities:
        raise ValueError(f"config.source {source!r} is not one of the identities "
                         f"{identity_names}; set --config.source=<identity>")
    stems: dict[str, int] = {}
    for i, path in enumerate(identities[source].paths):
        stem = names.safe_name(path.stem, "expression (source file name)")
        if stem in stems:
            raise ValueError(f"source identity {source!r} has two images named {stem!r} "
                             f"({identities[source].paths[stems[stem]]} and {path}); rename one")
        stems[stem] = i
    wanted = list(config.expressions) or list(stems)
    missing = [e for e in wanted if e not in stems]
    if missing:
        skipped = {Path(s["source"]).stem: s["reason"]
                   for s in getattr(identities[source], "skipped", ())}
        left_out = [f"{e} ({skipped[e]}: left out by config.align_failures='skip')"
                    for e in missing if e in skipped]
        raise ValueError(f"config.expressions {missing} are not images of source {source!r}; "
                         f"its images are {list(stems)}"
                         + (f"; not aligned: {', '.join(left_out)}" if left_out else ""))
    targets = list(config.targets) or [n for n in identity_names if n != source]
    unknown = [t for t in targets if t not in identities]
    if unknown or not targets:
        raise ValueError(f"config.targets {unknown or targets} are not identities other than "
                         f"the source; identities: {identity_names}")
    for name in [source, *targets]:
        names.safe_name(name, "identity")
    return source, {e: stems[e] for e in wanted}, targets


def main(config: Any, workdir: str) -> dict[str, Any]:
    labels = _check_config(config)
    exp = runs.Experiment(config, workdir)
    with exp.staging() as tmp:
        with exp.timed("load_images"):
            size = exp.geometry.image_size
            generated_root = exp.generated_faces(tmp)
            ground_truth = None
            if generated_root is None and _uses_synthetic_study(config):
                generated_root = exp.generated_root = Path(tmp) / "faces"
                study = config.data.synthetic
                ground_truth = synthetic.write_synthetic_study(
                    generated_root, study.seed, study.n_identities, study.photos_per_identity,
                    study.n_expressions, size, study.nuisance_strength, study.get("setting", "easy"))
                config = exp.config = _with_study_defaults(config, ground_truth)
            identities = runs.load_identities(config, _identity_source(config, generated_root),
                                              size)
            source, expressions, targets = _select(config, identities)
            used = {n: identities[n] for n in [source, *targets]}

        model, variables, _ = exp.load_model(np.concatenate([s.images for s in used.values()]))

        with exp.timed("encode"):
            flat = runs.encode_sets(model, variables, used, config)
            stats = {n: latents.identity_stats(z) for n, z in flat.items()}
        if config.method in VARIANCE_METHODS:
            for name in [source, *targets]:
                if stats[name].count < 2:
                    logging.warning("identity %r has one image: its variance is 0, so method %r "
                                    "divides by var_eps=%g alone", name, config.method,
                                    config.var_eps)

        with exp.timed("sweep"):
            e_idx = list(expressions.values())
            # The source methods (fine, top, levels, subspace) rewrite the sources and
            # sweep them with linear arithmetic: one compiled sweep for every method.
            sources, arithmetic = latents.prepare_sources(
                config.method, flat[source][e_idx], flat[source], shapes=model.latent_shapes,
                level_weights=tuple(config.get("level_weights", ())),
                subspace_rank=config.get("subspace_rank", latents.DEFAULT_SUBSPACE_RANK))
            source_stats = latents.stack_stats([stats[source]] * len(e_idx))
            anchors = _target_anchors(config, targets, used, flat, stats)
            target_stats = latents.stack_stats([a for _, a in anchors.values()])
            grid = sweep.transfer_sweep(
                model, variables, sources, source_stats, target_stats, config.alphas,
                method=arithmetic, space=config.space, var_eps=config.var_eps,
                chunk_size=config.chunk_size, progress=config.progress,
                expression_names=list(expressions), target_names=list(anchors))

        with exp.timed("decode_means"):
            mean_names = [source, *targets]
            photos = [n for n in anchors if n not in stats]  # photo targets: their latents
            extra = np.concatenate([np.stack([np.asarray(stats[n].mean) for n in mean_names]
                                             + [np.asarray(anchors[n][1].mean) for n in photos]),
                                    flat[source][e_idx]])
            decoded = sweep.decode_latents(model, variables, extra, space=config.space,
                                           chunk_size=config.chunk_size, progress=config.progress,
                                           names=[f"mean of {n}" for n in mean_names]
                                           + [f"target photo {n}" for n in photos]
                                           + [f"source {source}/{e}" for e in expressions])
            n_faces = len(mean_names) + len(photos)
            means = dict(zip(mean_names + photos, decoded[:n_faces]))
            decoded_sources = decoded[n_faces:]

        summary = _write_run(exp, labels, source, expressions, anchors, used, stats, grid, means,
                             decoded_sources, ground_truth)
    if config.get("evaluation") is not None and config.evaluation.get("enabled", False):
        from experiments import evaluate  # the finished run is scored like any other

        summary["evaluation"] = evaluate.main(config.evaluation, workdir)["output_dir"]
    return summary


def _write_aligned_inputs(run: run_dirs.RunDir,
                          used: dict[str, fio.ImageSet]) -> dict[str, list[str]]:
    """``inputs/aligned/<identity>/<name>.png``: each aligned photo as the transfer encoded
    it (labelled not generated), for viewing and as the evaluation's reference; ``{}``
    when nothing was aligned."""
    written: dict[str, list[str]] = {}
    for identity, image_set in used.items():
        alignment = getattr(image_set, "alignment", ())
        if not alignment:
            continue
        image_names = names.image_names(image_set.paths)
        written[identity] = []
        for name, image, record, info in zip(image_names, image_set.images, image_set.records,
                                             alignment):
            rel = f"inputs/aligned/{identity}/{name}.png"
            run.write_png(rel, image, {
                "kind": "aligned input photo (flowjax.faces.align): the image the transfer encoded",
                "identity": identity, "source_file": record.path,
                "source_sha256": record.sha256, "alignment": info.describe()},
                generated=False)
            written[identity].append(rel)
    return written


def _with_study_defaults(config: Any, ground_truth: dict[str, Any]) -> Any:
    """The synthetic study's actor and expressions, unless the config names others."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.source = config.source or ground_truth["source"]
        config.expressions = tuple(config.expressions) or tuple(ground_truth["expressions"])
    return config


def _write_run(exp, labels, source, expressions, anchors, used, stats, grid, means,
               decoded_sources, ground_truth=None) -> dict[str, Any]:
    """Writes the run directory; ``anchors`` are the grid's targets (:func:`_target_anchors`)
    and ``means`` holds the identities' decoded means and the photo targets' decoded photos."""
    config = exp.config
    targets = list(anchors)
    on_photos = config.get("target", "mean") == "photos"
    base = {"method": config.method, "space": config.space, "model": exp.model_label}
    if config.method in VARIANCE_METHODS:
        base["var_eps"] = float(config.var_eps)
    if config.method == "levels":
        base["level_weights"] = [float(w) for w in config.level_weights]
    if config.method == latents.SUBSPACE_METHOD:
        base["subspace_rank"] = int(config.subspace_rank)
    with exp.run_dir(used) as run:
        if ground_truth is not None:
            run.write_json("inputs/ground_truth.json", ground_truth)
        aligned = _write_aligned_inputs(run, used)
        mean_paths = {}
        for name, image in means.items():
            if name in stats:
                rel = f"means/{name}_mean.png"
                run.write_png(rel, image, {"kind": "identity mean face (decoded mean latent)",
                                           "identity": name, "images": stats[name].count,
                                           "space": config.space, "model": exp.model_label})
            else:
                rel = f"targets/{name}.png"
                run.write_png(rel, image, {
                    "kind": "target photo as the model reconstructs it (its decoded latent: "
                            "the transfer at alpha 0)", "identity": anchors[name][0],
                    "target": name, "space": config.space, "model": exp.model_label})
            mean_paths[name] = rel
        images: dict[str, dict[str, dict[str, str]]] = {}
        strips: dict[str, dict[str, str]] = {}
        for e, (expression, index) in enumerate(expressions.items()):
            source_file = used[source].paths[index].name
            images[expression], strips[expression] = {}, {}
            for t, target in enumerate(targets):
                images[expression][target] = runs.write_alpha_row(  # file names: no "/"
                    run, f"transfer/{expression}/{target}", target.replace("/", "_"), grid[e, t],
                    config.alphas,
                    labels, {"kind": "expression transfer", **base,
                             "source": f"{source}/{expression}", "source_file": source_file,
                             "target": target})
                if config.strips:
                    strip = fio.make_strip(
                        [means[target], *grid[e, t], decoded_sources[e], means[source]],
                        ["target photo" if on_photos else "target mean",
                         *[f"a={x}" for x in labels], expression, "source mean"])
                    rel = f"strips/{expression}/{target}.png"
                    run.write_png(rel, strip, {
                        "kind": "expression transfer strip", **base,
                        "alphas": [float(x) for x in config.alphas],
                        "source": f"{source}/{expression}", "target": target,
                        "layout": f"target {'photo' if on_photos else 'mean'} | alphas | "
                                  "source (decoded) | source mean"})
                    strips[expression][target] = rel
        summary = {
            "method": config.method, "space": config.space,
            "alphas": [float(x) for x in config.alphas], "alpha_labels": labels,
            "source": source,
            "expressions": {e: used[source].paths[i].name for e, i in expressions.items()},
            "targets": targets, "identity_images": {n: stats[n].count for n in used},
            "images": images, "strips": strips, "means": mean_paths, "model": exp.model_record,
            "target_mode": config.get("target", "mean"),
        }
        if on_photos:  # each target of the grid is a photo of one identity
            summary["target_identities"] = {n: identity for n, (identity, _) in anchors.items()}
        if aligned:
            # The images the transfer encoded: the evaluation's AU reference.
            summary["aligned_inputs"] = aligned
            summary["source_images"] = {e: aligned[source][i] for e, i in expressions.items()}
        skipped = runs.skipped_photos(used)
        if skipped:
            summary["alignment_skipped"] = skipped
        run.write_json("transfer.json", summary)
    logging.info("wrote %d transfer images to %s", grid.shape[0] * grid.shape[1] * grid.shape[2],
                 exp.workdir)
    return summary
