"""Evaluate a transfer run directory: ``main(config, workdir)``; see configs/evaluate.py.

    python experiments/evaluate.py --config=configs/evaluate.py --workdir=RUN
        evaluates the transfer run RUN in place, into RUN/evaluation/;
    python run.py --config=configs/evaluate.py --config.run_dir=RUN --workdir=OUT
        evaluates RUN into OUT.

The scorers are built from the config (``flowjax.evaluation.scorers``), then
``flowjax.evaluation.pipeline.evaluate_run`` does the work.
"""

from __future__ import annotations

import os
from typing import Any

from absl import app, flags, logging
from ml_collections import config_flags

from flowjax.evaluation import pipeline, scorers


def main(config: Any, workdir: str) -> dict[str, Any]:
    """Evaluates ``config.run_dir`` into ``workdir``, or ``workdir`` in place."""
    in_place = not config.run_dir
    run_dir = workdir if in_place else config.run_dir
    out_dir = None if in_place else workdir
    # Fail on a bad run directory or output before loading any scorer (facenet takes seconds).
    out = pipeline.resolve_output_dir(run_dir, out_dir, config.out_subdir)
    pipeline.check_output_dir(out, config.overwrite)
    pipeline.read_transfer_run(run_dir)
    au_set = pipeline.parse_au_set(config.action_units.aus)
    embedder = scorers.build_identity_embedder(config.identity)
    au_scorer = scorers.build_au_scorer(config.action_units)
    detector = scorers.build_detector(config.detector)
    summary = pipeline.evaluate_run(
        run_dir, embedder, au_scorer, au_set=au_set, out_subdir=config.out_subdir,
        detector=detector, out_dir=out_dir, overwrite=config.overwrite,
        au_threshold=config.action_units.threshold,
        detection_threshold=config.detector.threshold, make_figures=config.figures,
        backends={"identity": config.identity.backend,
                  "action_units": config.action_units.backend,
                  "detector": config.detector.backend},
        config=config)
    logging.info("wrote the evaluation of %s to %s", run_dir, summary["output_dir"])
    return summary


if __name__ == "__main__":
    _CONFIG = config_flags.DEFINE_config_file("config", None, "configs/evaluate.py[:variant]")
    _WORKDIR = flags.DEFINE_string(
        "workdir", None, "The transfer run to evaluate in place (or, with --config.run_dir, "
        "the output directory).")
    flags.mark_flags_as_required(["config", "workdir"])

    def _main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        main(_CONFIG.value, os.fspath(_WORKDIR.value))

    app.run(_main)
