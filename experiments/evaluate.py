"""Evaluate a transfer run or any study: ``main(config, workdir)``; see configs/evaluate.py.

    python experiments/evaluate.py --config=configs/evaluate.py --workdir=RUN
        evaluates the transfer run RUN in place, into RUN/evaluation/;
    python run.py --config=configs/evaluate.py --config.run_dir=RUN --workdir=OUT
        evaluates RUN into OUT;
    python run.py --config=configs/evaluate.py:study --config.study=SPEC --workdir=OUT
        evaluates the study a spec file describes (docs/study_format.md) into OUT.

The scorers are built from the config (``flowjax.evaluation.scorers``), then
``flowjax.evaluation.pipeline.evaluate_study`` does the work (a transfer run is
read as a study by ``flowjax.evaluation.transfer_run``).
"""

from __future__ import annotations

import os
from typing import Any

from absl import app, flags, logging
from ml_collections import config_flags

from flowjax.evaluation import faces_found, metrics, pipeline, scorers


def _study(config: Any, workdir: str) -> tuple[pipeline.Study, str]:
    """The study to evaluate and the output directory, checked before any scorer loads."""
    if config.study:
        if config.run_dir:
            raise ValueError("give one of --config.study (a study spec) and --config.run_dir "
                             f"(a transfer run), not both; got {config.study!r} and "
                             f"{config.run_dir!r}")
        study = pipeline.load_study(config.study)
        out = pipeline.check_study_output(study, workdir)
    else:
        in_place = not config.run_dir
        run_dir = workdir if in_place else config.run_dir
        out = pipeline.resolve_output_dir(run_dir, None if in_place else workdir,
                                          config.out_subdir)
        study = pipeline.read_transfer_run(run_dir)
    pipeline.check_output_dir(out, config.overwrite)
    return study, os.fspath(out)


def main(config: Any, workdir: str) -> dict[str, Any]:
    """Evaluates ``config.study``, ``config.run_dir`` into ``workdir``, or ``workdir`` in place."""
    # Fail on a bad study, output or option before loading any scorer (facenet takes seconds).
    study, out = _study(config, workdir)
    synthetic = [f"{name}.backend" for name in scorers.synthetic_only_sections(config)]
    if synthetic and not study.synthetic_faces:
        raise ValueError(
            f"{', '.join(synthetic)} = 'synthetic' scores only flowjax.synthetic faces, but "
            f"{study.spec_path or study.path} holds other images (only a flowjax transfer run "
            "on the synthetic study qualifies). Pass --config.identity.backend=facenet, "
            "--config.action_units.backend=openface (or precomputed, with a study spec) and "
            "--config.detector.backend=none.")
    faces_found.check_fallback_policy(config.identity.get("fallback", "crop"))
    au_set = pipeline.parse_au_set(config.action_units.aus)
    threshold = config.action_units.threshold
    if au_set == metrics.ACTIVE:
        threshold = pipeline.check_threshold(threshold)
    identity = scorers.build_identity_embedder(config.identity)
    au_scorer = scorers.build_au_scorer(config.action_units)
    detector = scorers.build_detector(config.detector)
    summary = pipeline.evaluate_study(
        study, identity, au_scorer, out_dir=out, au_set=au_set, detector=detector,
        overwrite=config.overwrite, au_threshold=threshold,
        detection_threshold=config.detector.threshold, make_figures=config.figures,
        published_tables=config.get("published_tables", False),
        identity_fallback=config.identity.get("fallback", "crop"),
        backends={"identity": config.identity.backend,
                  "action_units": config.action_units.backend,
                  "detector": config.detector.backend},
        config=config)
    logging.info("wrote the evaluation of %s to %s", study.spec_path or study.path,
                 summary["output_dir"])
    return summary


if __name__ == "__main__":
    _CONFIG = config_flags.DEFINE_config_file("config", None, "configs/evaluate.py[:variant]")
    _WORKDIR = flags.DEFINE_string(
        "workdir", None, "The transfer run to evaluate in place (or, with --config.run_dir "
        "or --config.study, the output directory).")
    flags.mark_flags_as_required(["config", "workdir"])

    def _main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        main(_CONFIG.value, os.fspath(_WORKDIR.value))

    app.run(_main)
