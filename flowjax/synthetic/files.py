"""SYNTHETIC TEST DATA on disk: ``flowjax.synthetic``'s faces written as PNG files.

* :func:`write_generated_faces` -- clean renders of identities x expressions,
  ``root/id<k>/<expression>.png``, for smoke runs and tests;
* :func:`write_synthetic_study` -- the seed study's setting rendered with known
  identities and Action Units (the demo data of ``configs/transfer.py``).

Every file carries provenance saying it is synthetic (``flowjax.io.write_png``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from flowjax import io as fio
from flowjax.synthetic import datasets, factors, renderer

PathLike = str | os.PathLike

GENERATED_EXPRESSIONS = ("neutral", *factors.PROTOTYPES)


def _expression_aus(expression: str) -> np.ndarray:
    if expression == "neutral":
        return np.zeros(len(factors.AU_NAMES), np.float32)
    return factors.prototype_aus(expression)


def _write_faces(paths: Sequence[Path], images: np.ndarray, infos: Sequence[dict]) -> None:
    for path, image, info in zip(paths, images, infos):
        path.parent.mkdir(parents=True, exist_ok=True)
        fio.write_png(path, image, {"kind": "synthetic input face (flowjax.synthetic)", **info})


def write_generated_faces(root: PathLike, n_identities: int = 3,
                          expressions: Sequence[str] = GENERATED_EXPRESSIONS, size: int = 32,
                          seed: int = 0) -> dict[str, list[Path]]:
    """SYNTHETIC TEST DATA: ``root/id<k>/<expression>.png``, one clean render
    (no nuisance) of every identity with every expression (``neutral`` or a
    ``flowjax.synthetic.PROTOTYPES`` name). Returns ``{identity: [paths]}``.
    """
    unknown = sorted(set(expressions) - set(GENERATED_EXPRESSIONS))
    if unknown:
        raise ValueError(f"unknown generated expressions {unknown}; choose from "
                         f"{GENERATED_EXPRESSIONS}")
    root = Path(root)
    identities = renderer.sample_identities(jax.random.key(seed), n_identities)
    rows = np.repeat(np.arange(n_identities), len(expressions))
    aus = np.tile(np.stack([_expression_aus(e) for e in expressions]), (n_identities, 1))
    images = np.asarray(renderer.render(jax.tree.map(lambda a: a[rows], identities), aus,
                                         size=size))
    names = [f"id{k:02d}" for k in range(n_identities)]
    paths = [root / names[k] / f"{e}.png" for k in range(n_identities) for e in expressions]
    _write_faces(paths, images, [{"identity": names[k], "expression": e, "seed": seed}
                                 for k in range(n_identities) for e in expressions])
    return {name: paths[k * len(expressions):(k + 1) * len(expressions)]
            for k, name in enumerate(names)}


SOURCE_IDENTITY = "source"


def write_synthetic_study(root: PathLike, seed: int, n_identities: int, photos_per_identity: int,
                          n_expressions: int, size: int,
                          nuisance_strength: float = 1.0, setting: str = "easy") -> dict[str, Any]:
    """The seed study's layout, rendered (``flowjax.synthetic.datasets.make_study``):

    ``root/id<k>/photo_<j>.png``: the targets' mild photos;
    ``root/source/photo_<j>.png``: the source actor's mild photos (its mean);
    ``root/source/<expression>.png``: the actor's strong source expressions.

    Returns the ground truth (expression names and their AU vectors, the AU
    names, every file's identity and AUs) for the run's records and scoring.
    """
    root = Path(root)
    study = datasets.make_study(seed, n_identities, photos_per_identity, n_expressions, size,
                                      nuisance_strength, shared_source=True, setting=setting)
    names = [f"id{k:02d}" for k in range(n_identities)]
    files: dict[str, dict[str, Any]] = {}

    def write(photos: datasets.Photos, rels: list[str]) -> None:
        identity_names = [names[i] if i < n_identities else SOURCE_IDENTITY
                          for i in photos.identity_ids]
        infos = [{"identity": who, "aus": [round(float(a), 4) for a in au], "seed": seed}
                 for who, au in zip(identity_names, photos.aus)]
        _write_faces([root / r for r in rels], photos.images, infos)
        files.update({r: info for r, info in zip(rels, infos)})

    per = photos_per_identity
    write(study.targets, [f"{names[i // per]}/photo_{i % per:02d}.png"
                          for i in range(len(study.targets.images))])
    write(study.source_photos, [f"{SOURCE_IDENTITY}/photo_{j:02d}.png"
                                for j in range(len(study.source_photos.images))])
    write(study.sources, [f"{SOURCE_IDENTITY}/{e}.png" for e in study.expression_names])
    return {"au_names": list(factors.AU_NAMES), "expressions": list(study.expression_names),
            "source": SOURCE_IDENTITY, "targets": names, "files": files}
