"""Attribute manipulation: ``main(config, workdir)``; see configs/attributes.py.

Every image of ``config.data.images`` is encoded, moved along the attribute
direction for every alpha (``flowjax.transfer.latents.manipulate``) and decoded in one
compiled sweep. Run directory::

    attributes/<attribute>/<image>/<alpha>/<image>_<alpha>.png
    strips/<attribute>/<image>.png      the alphas in order
    vectors/<attribute>.npy (+ .json)   the direction, when computed from images
    attributes.json, manifest.json

The direction comes from ``config.vectors`` (see :func:`load_vector`) or from
the labelled sets ``config.data.positive`` / ``negative``. As in
experiments/transfer.py, everything is loaded and decoded before the run
directory is created, so bad input leaves nothing behind. With
``config.align_failures="skip"``, photos that cannot be aligned are left out
and listed in ``attributes.json`` and the manifest (``alignment_skipped``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from flowjax import runs
from flowjax import io as fio
from flowjax.faces import openai_attributes
from flowjax.runs import names
from flowjax.transfer import latents, sweep


def load_vector(path: str, attribute: str, expected_dim: int, space: str,
                demo_edits: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """The flat direction ``[D]`` named ``attribute`` in a ``.npy`` file, and a record.

    ``[40, D]`` files are OpenAI's ``z_manipulate.npy`` layout, read by
    :mod:`flowjax.faces.openai_attributes` (rows by CelebA name; ``demo_edits``
    applies the demo's renames and scalings); their vectors live in eps space.
    ``[D]`` or ``[1, D]`` files are one direction, as this experiment saves
    them; a ``.json`` beside it, when present, must name the same space.
    """
    try:
        peek = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"vector file {path} does not exist; check config.vectors") from None
    except ValueError as e:
        raise ValueError(f"{path}: not a plain numeric .npy array ({e}); pickled data is "
                         "never loaded") from e
    if not isinstance(peek, np.ndarray):
        peek.close()
        raise ValueError(f"{path}: an .npz archive; expected one .npy array (OpenAI's [40, D] "
                         "z_manipulate.npy or one flat vector [D])")
    shape = peek.shape
    if len(shape) == 2 and shape[0] == len(openai_attributes.CELEBA_ATTRIBUTES):
        if space != "eps":
            raise ValueError(f"{path} holds OpenAI's attribute vectors, which are in eps space; "
                             f"set config.space='eps' (got {space!r})")
        vectors = openai_attributes.load_attribute_vectors(path, demo_edits, expected_dim)
        name = vectors.names[vectors.index(attribute)]
        return np.asarray(vectors.get(attribute)), {"vectors": vectors.describe(), "attribute": name}
    if demo_edits:
        raise ValueError(f"{path} holds one vector {shape}; config.demo_edits applies only to "
                         "OpenAI's 40-row z_manipulate.npy")
    vector = np.load(path, allow_pickle=False)
    vector = vector.reshape(-1) if vector.ndim == 2 and vector.shape[0] == 1 else vector
    if vector.ndim != 1 or vector.shape[0] != expected_dim:
        raise ValueError(f"{path}: expected one flat latent [{expected_dim}] (or [1, "
                         f"{expected_dim}], or OpenAI's [40, D]) for this model, got {shape}")
    if not np.issubdtype(vector.dtype, np.floating) or not np.isfinite(vector).all():
        raise ValueError(f"{path}: expected finite float values, got {vector.dtype} with "
                         "non-finite entries or a non-float type")
    sidecar = Path(path).with_suffix(".json")
    record: dict[str, Any] = {"vectors": {"source": str(path), "shape": list(shape)},
                              "attribute": attribute}
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        if meta.get("space") not in (None, space):
            raise ValueError(f"{path} was computed in {meta['space']!r} space ({sidecar}); set "
                             f"config.space={meta['space']!r} or recompute it (got {space!r})")
        record["vectors"]["metadata"] = meta
    return vector.astype(np.float32), record


def _load(config: Any, base_dir: Any, size: int, what: str) -> fio.ImageSet:
    value = config.data[what]
    if not value:
        raise ValueError(f"config.data.{what} is not set; give a folder, an image or a glob")
    return runs.load_images(config, names.resolve_paths(value, base_dir, f"config.data.{what}"),
                            size, label=f"config.data.{what}")


def main(config: Any, workdir: str) -> dict[str, Any]:
    labels = names.alpha_labels(config.alphas)
    latents.check_space(config.space)
    attribute = names.safe_name(config.attribute, "config.attribute")
    if bool(config.vectors) == bool(config.data.positive or config.data.negative):
        raise ValueError("give either config.vectors (a .npy file) or config.data.positive and "
                         "config.data.negative (labelled images), not both or neither")
    runs.check_alignment(config)
    exp = runs.Experiment(config, workdir)
    with exp.staging() as tmp:
        with exp.timed("load_inputs"):
            size = exp.geometry.image_size
            base_dir = exp.generated_faces(tmp) or config.data.base_dir
            sets = {"images": _load(config, base_dir, size, "images")}
            if not config.vectors:
                for what in ("positive", "negative"):
                    sets[what] = _load(config, base_dir, size, what)
            image_names = names.image_names(sets["images"].paths)
            d = latents.flat_size(exp.geometry.latent_shapes)
            vector_record: dict[str, Any] = {}
            if config.vectors:
                vector, vector_record = load_vector(config.vectors, config.attribute, d,
                                                    config.space, config.demo_edits)
                vector = config.vector_scale * vector

        model, variables, _ = exp.load_model(np.concatenate([s.images for s in sets.values()]))

        with exp.timed("encode"):
            parts = runs.encode_sets(model, variables, sets, config)
            if not config.vectors:
                vector = np.asarray(latents.attribute_vector(parts["positive"], parts["negative"],
                                                             config.vector_scale))
                vector_record = {"attribute": config.attribute, "space": config.space,
                                 "scale": float(config.vector_scale),
                                 "positive_images": len(sets["positive"]),
                                 "negative_images": len(sets["negative"])}

        with exp.timed("sweep"):
            grid = sweep.attribute_sweep(model, variables, parts["images"], vector[None],
                                         config.alphas, space=config.space,
                                         chunk_size=config.chunk_size, progress=config.progress,
                                         image_names=image_names, vector_names=[attribute])
        return _write_run(exp, attribute, labels, image_names, sets, grid[:, 0], vector,
                          vector_record)


def _write_run(exp, attribute, labels, image_names, sets, grid, vector,
               vector_record) -> dict[str, Any]:
    config = exp.config
    with exp.run_dir(sets) as run:
        images: dict[str, dict[str, str]] = {}
        strips: dict[str, str] = {}
        for i, name in enumerate(image_names):
            source_file = sets["images"].paths[i].name
            images[name] = runs.write_alpha_row(
                run, f"attributes/{attribute}/{name}", name, grid[i], config.alphas, labels,
                {"kind": "attribute manipulation", "attribute": config.attribute,
                 "source": source_file, "space": config.space,
                 "vector_scale": float(config.vector_scale), "model": exp.model_label})
            if config.strips:
                rel = f"strips/{attribute}/{name}.png"
                run.write_png(rel, fio.make_strip(grid[i], [f"a={x}" for x in labels]), {
                    "kind": "attribute manipulation strip", "attribute": config.attribute,
                    "alphas": [float(x) for x in config.alphas], "source": source_file,
                    "space": config.space, "model": exp.model_label})
                strips[name] = rel
        vector_file = None
        if not config.vectors:
            buffer = io.BytesIO()
            np.save(buffer, vector.astype(np.float32), allow_pickle=False)
            vector_file = f"vectors/{attribute}.npy"
            run.write_bytes(vector_file, buffer.getvalue())
            run.write_json(f"vectors/{attribute}.json", vector_record)
        summary = {"attribute": config.attribute, "space": config.space,
                   "alphas": [float(x) for x in config.alphas], "alpha_labels": labels,
                   "images": images, "strips": strips, "vector": vector_record,
                   "vector_file": vector_file, "vector_norm": float(np.linalg.norm(vector)),
                   "model": exp.model_record}
        skipped = runs.skipped_photos(sets)
        if skipped:  # config.align_failures="skip" left these photos out
            summary["alignment_skipped"] = skipped
        run.write_json("attributes.json", summary)
        if config.vectors:
            run.manifest.add_input(config.vectors, role="attribute vectors")
    logging.info("wrote %d attribute images to %s", grid.shape[0] * grid.shape[1], exp.workdir)
    return summary
