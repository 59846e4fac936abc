"""The live editor: ``main(config, workdir)`` loads the model and faces, then serves
``flowjax.app.explore``'s Flask app until interrupted; see configs/explore.py.

:func:`build_editor` does everything but serving (tests use it with their own
server thread).
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from flowjax import runs, synthetic
from flowjax import io as fio
from flowjax.app import align_choice, explore, guards, trained_on
from flowjax.runs import names


def _faces_root(config: Any, tmp: str, size: int) -> tuple[Any, dict[str, Any] | None]:
    """The identities' source (a root folder) and the study's ground truth, if rendered."""
    generated = runs.write_configured_faces(config, tmp, size)
    if generated is not None:
        return generated, None
    study = config.data.synthetic
    if study.enabled and not config.data.identities:
        root = Path(tmp) / "faces"
        truth = synthetic.write_synthetic_study(
            root, study.seed, study.n_identities, study.photos_per_identity, study.n_expressions,
            size, study.nuisance_strength, study.get("setting", "easy"))
        return root, truth
    if not config.data.identities:
        raise ValueError("no faces: give --config.data.identities=ROOT (root/<identity>/*.png) "
                         "or leave config.data.synthetic.enabled=True for the synthetic study")
    return config.data.identities, None


def _expressions(config: Any, source_set: fio.ImageSet, truth: dict | None) -> dict[str, int]:
    stems = {Path(p).stem: i for i, p in enumerate(source_set.paths)}
    wanted = list(config.expressions) or (truth["expressions"] if truth else list(stems))
    missing = [e for e in wanted if e not in stems]
    if missing:
        raise ValueError(f"config.expressions {missing} are not images of the source; its "
                         f"images are {sorted(stems)}")
    return {e: stems[e] for e in wanted}


def _default_attributes(config: Any, source: str, truth: dict | None) -> dict[str, dict]:
    if config.attributes:
        return config.attributes.to_dict()
    if truth is not None:  # the study: each expression of the actor against its mild photos
        return {e: {"positive": f"{source}/{e}.png", "negative": f"{source}/photo_*.png"}
                for e in truth["expressions"]}
    expressions = config.data.generated.expressions
    if config.data.generated.enabled and "neutral" in expressions:
        return {e: {"positive": f"*/{e}.png", "negative": "*/neutral.png"}
                for e in expressions if e != "neutral"}
    return {}


def build_editor(config: Any) -> tuple[explore.Editor, dict[str, Any], dict[str, Any]]:
    """The editor with the config's model, faces, expressions and attributes, and the face
    detector for uploads (``config.align_detector``, built now: flowjax.app.align_choice);
    the model's record; and the identities' image sets (their alignment records and the
    photos ``config.align_failures="skip"`` left out go into the manifest).

    With ``config.align`` the identities' photos are aligned on the way in, as in the
    transfer job, by the detector the page uses ("auto": the one that loads), and
    ``config.align_failures`` decides what a photo without a usable face does."""
    detector = align_choice.choose_detector(config.align_detector,
                                            config.get("align_detector_options", {}))
    if config.align:
        if detector.name is None:
            raise ValueError(f"config.align=True needs a face detector, and {detector.note}; "
                             "install one (pip install -e '.[faces]') or give aligned faces "
                             "without --config.align")
        config.align_detector = detector.name  # the one that loaded, recorded as run
        runs.check_alignment(config, synthetic_study=not config.data.identities)
    else:
        runs.check_alignment(config)  # align_failures without align is an error
    geometry = runs.model_geometry(config)
    size = geometry.image_size
    with tempfile.TemporaryDirectory(prefix="flowjax-explore-") as tmp:
        root, truth = _faces_root(config, tmp, size)
        identities = runs.load_identities(config, root, size)
        source = config.source or (truth["source"] if truth else None)
        if source not in identities:
            raise ValueError(f"config.source {source!r} is not one of the identities "
                             f"{sorted(identities)}; set --config.source")
        attributes = {}
        for name, spec in _default_attributes(config, source, truth).items():
            positive, negative = (runs.load_images(config, names.resolve_paths(
                spec[k], root, f"config.attributes.{name}.{k}"), size) for k in ("positive",
                                                                                "negative"))
            origin = f"{spec['positive']} - {spec['negative']}"
            attributes[name] = (positive.images, negative.images, origin)
    model, variables, record = runs.load_model(
        config, np.concatenate([s.images for s in identities.values()]))
    editor = explore.Editor(
        model, variables, runs.model_label(record), space=config.space,
        chunk_size=config.chunk_size,
        aligner=detector.aligner(size, config.align_multiple_faces),
        align_note=detector.note, model_note=trained_on.synthetic_note(record))
    editor.add_source(source, identities[source].images,
                      _expressions(config, identities[source], truth))
    for name, image_set in identities.items():
        if name != source:
            editor.add_identity(name, image_set.images)
    for name, (positive, negative, origin) in attributes.items():
        editor.add_attribute_from_images(name, positive, negative, f"labelled images: {origin}")
    if config.vectors:
        editor.add_openai_attributes(config.vectors, config.vector_names)
    return editor, record, identities


def limits(config: Any) -> explore.Limits:
    return explore.Limits(max_upload_bytes=int(config.limits.max_upload_mb * 2 ** 20),
                          max_pixels=int(config.limits.max_pixels),
                          requests_per_minute=int(config.limits.requests_per_minute),
                          max_uploads=int(config.limits.max_uploads))


def main(config: Any, workdir: str) -> None:
    guards.ensure_loopback(config.host, config.allow_remote)
    exp = runs.Experiment(config, workdir, check_inputs=False)
    with exp.timed("load"):
        editor, record, identities = build_editor(config)
        editor.warm_up()
    with exp.run_dir() as run:
        run.manifest.set_extra("model", record)
        runs.record_alignment(run.manifest, identities)
        app = explore.create_app(editor, limits(config), save_to=run, host=config.host,
                                 port=config.port)  # Host and Origin must name it
        logging.info("flowjax live editor on http://%s:%d/ (Ctrl-C stops it; saved edits go "
                     "to %s/saved/)", config.host, config.port, workdir)
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it like Ctrl-C: manifest written
        try:
            explore.serve(app, config.host, config.port)
        except KeyboardInterrupt:
            pass


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
