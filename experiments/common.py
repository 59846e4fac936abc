"""Shared pieces of the transfer, attributes and reconstruction experiments.

* :func:`load_model` -- the model from ``config.checkpoint`` or, only when
  ``config.random_init.enabled``, a randomly initialised one (logged loudly and
  recorded as such in the manifest);
* :func:`check_workdir` -- fails before any work when the run directory exists,
  is not writable, or would take an input with it (:func:`config_paths`);
* :func:`resolve_paths` -- config paths and globs, relative to a base folder;
* :func:`write_generated_faces` -- SYNTHETIC TEST DATA: clean renders of
  identities x expressions (``flowjax.synthetic``) for smoke runs and tests;
* :func:`write_synthetic_study` -- the seed study's setting rendered with
  known identities and Action Units: the demo data of ``configs/transfer.py``;
* :func:`check_alignment`, :func:`load_images`, :func:`load_identities`,
  :func:`record_alignment` -- the configured images, aligned on the way in
  when ``config.align`` (``flowjax.align``), else as ``flowjax.data`` loads them;
* :func:`encode_sets` -- one batched encode of several image sets, flat
  latents per set;
* :func:`random_variables` -- random weights without compiling ``init``;
* :func:`alpha_label` and :func:`safe_name` -- names of output files.

Experiments load and check *everything* (config, model, images) before they
create the run directory, so bad input leaves no output behind.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from flowjax import align, data, glow, latents, models, sweep, synthetic
from flowjax import io as fio
from flowjax.glow import Glow

PathLike = str | os.PathLike

RANDOM_MODEL_WARNING = (
    "NO CHECKPOINT: using a RANDOMLY INITIALISED Glow (config.checkpoint is None). "
    "Its images show the pipeline working, not expression transfer; use this "
    "only for smoke runs and tests."
)


# ---- the model --------------------------------------------------------------------


def random_variables(model: Glow, seed: int = 0, scale: float = 0.05) -> dict[str, Any]:
    """Random (not data-initialised) variables for ``model``, without compiling ``init``.

    For timing and tests: the tree comes from ``jax.eval_shape`` of the model's
    init (tracing only; compiling Glow's data-dependent init takes tens of
    seconds on a CPU even for tiny models); 1x1 convolutions get random
    orthogonal matrices, so they stay invertible, every other leaf is
    ``N(0, scale^2)``. Supports the ``invconv`` and ``reverse`` permutations.
    """
    if model.permutation not in ("invconv", "reverse"):
        raise ValueError(f"random_variables supports permutation 'invconv' or 'reverse', got "
                         f"{model.permutation!r}; use glow.init for the others")
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        names = [str(getattr(p, "key", p)) for p in path]
        if names[-2:] == ["invconv", "W"]:
            return np.linalg.qr(rng.standard_normal(leaf.shape))[0].astype(np.float32)
        return (scale * rng.standard_normal(leaf.shape)).astype(np.float32)

    images = jax.ShapeDtypeStruct((1, *model.image_shape), jnp.uint8)
    y = jax.ShapeDtypeStruct((1,), jnp.int32) if model.n_classes else None
    shapes = jax.eval_shape(lambda k, x, y: model.init(k, x, None, y), jax.random.key(0), images, y)
    return jax.tree_util.tree_map_with_path(fill, dict(shapes))


def model_geometry(config: Any) -> Glow:
    """The model the run will use, read cheaply (no weights) to size the images."""
    if config.checkpoint and config.random_init.enabled:
        raise ValueError(
            f"config.checkpoint={config.checkpoint!r} and config.random_init.enabled=True are "
            "both set; pass --config.checkpoint=None for a random model, or drop random_init")
    if config.checkpoint:
        from flowjax import checkpoints

        return checkpoints.read_model_config(config.checkpoint)
    _check_random_allowed(config)
    return glow.model_from_config(config.model)


def _check_random_allowed(config: Any) -> None:
    if not config.random_init.enabled:
        raise ValueError(
            "config.checkpoint is not set: give --config.checkpoint=DIR (a save_model export "
            "or a training workdir). A randomly initialised model is only for smoke runs and "
            "tests: --config.random_init.enabled=True")


def load_model(config: Any, images: np.ndarray) -> tuple[Glow, Any, dict[str, Any]]:
    """``(model, variables, record)``: the checkpoint, or a random init if allowed.

    A random init uses ``config.model``, ``config.random_init.seed`` and, with
    ``config.random_init.ddi`` (default), data-dependent ActNorm init on
    ``images`` (all the run's inputs); without it :func:`random_variables`.
    ``record`` is the manifest's ``model`` entry.
    """
    if config.checkpoint and config.random_init.enabled:
        raise ValueError(
            f"config.checkpoint={config.checkpoint!r} and config.random_init.enabled=True are "
            "both set; pass --config.checkpoint=None for a random model, or drop random_init")
    if config.checkpoint:
        from flowjax import checkpoints

        model, variables = checkpoints.load_model(config.checkpoint)
        sweep.check_finite_variables(variables, f"checkpoint {config.checkpoint}")
        record = {"checkpoint": os.fspath(config.checkpoint),
                  "sha256": fio.sha256_path(config.checkpoint),
                  "model_config": models.model_config(model), "random_init": False}
        return model, variables, record
    _check_random_allowed(config)
    model = glow.model_from_config(config.model)
    seed = int(config.random_init.seed)
    logging.warning("%s", RANDOM_MODEL_WARNING)
    logging.warning("random init: seed %d, %s", seed,
                    f"DDI on {len(images)} input images" if config.random_init.ddi
                    else "random weights (no DDI)")
    if config.random_init.ddi:
        variables = glow.init(model, jax.random.PRNGKey(seed), images)
    else:
        variables = random_variables(model, seed)
    record = {"checkpoint": None, "sha256": None, "random_init": True, "seed": seed,
              "ddi_on_inputs": bool(config.random_init.ddi),
              "model_config": glow.model_config(model), "warning": RANDOM_MODEL_WARNING}
    return model, variables, record


def encode_sets(model: Glow, variables: Any, image_sets: dict[str, Any],
                config: Any) -> dict[str, np.ndarray]:
    """Flat latents ``[N_k, D]`` in ``config.space`` per image set, from one batched encode."""
    images = np.concatenate([s.images for s in image_sets.values()])
    names = [str(path) for s in image_sets.values() for path in s.paths]
    encoding = sweep.encode_images(model, variables, images, chunk_size=config.chunk_size,
                                   progress=config.progress, names=names)
    flat = np.asarray(latents.flatten(list(latents.in_space(encoding, config.space))))
    ends = np.cumsum([len(s) for s in image_sets.values()])
    return dict(zip(image_sets, np.split(flat, ends[:-1])))


def model_label(record: dict[str, Any]) -> str:
    """Short provenance text naming the model."""
    if record["random_init"]:
        return f"RANDOM INIT seed {record['seed']} (no checkpoint)"
    return f"{record['checkpoint']} sha256:{record['sha256']}"


# ---- loading the configured images (aligned or not) ---------------------------------


def check_alignment(config: Any, synthetic_study: bool = False) -> None:
    """Refuses ``config.align=True`` where it cannot apply, before any work.

    Alignment is for the user's own photos: the generated faces and the
    synthetic study (``synthetic_study``) are already aligned renders, and
    ``config.data.resize`` would fight the alignment, which produces the
    model's size itself.
    """
    if not config.get("align", False):
        return
    if config.data.generated.enabled or synthetic_study:
        what = ("config.data.generated.enabled=True (generated faces)"
                if config.data.generated.enabled else "the synthetic study (no data given)")
        raise ValueError(
            f"config.align=True aligns your own photos, but this run uses {what}, which are "
            "already aligned renders: give your photos (config.data.identities / identity_map "
            "for transfer, config.data.images etc. otherwise) with generated data off, or "
            "drop --config.align")
    if config.data.resize:
        raise ValueError(
            f"config.data.resize={config.data.resize!r} with config.align=True: alignment "
            "already produces the model's image size; drop --config.data.resize (it is for "
            "pre-aligned faces of another size)")
    if config.align_multiple_faces not in align.MULTIPLE_FACES_POLICIES:
        raise ValueError(f"config.align_multiple_faces must be one of "
                         f"{align.MULTIPLE_FACES_POLICIES}, got {config.align_multiple_faces!r}")
    align.parse_detector_spec(config.align_detector, "config.align_detector")


def _align_options(config: Any) -> dict[str, Any]:
    options = {k: v for k, v in config.get("align_detector_options", {}).items() if v is not None}
    return {"detector": align.detector_from_spec(config.align_detector, "config.align_detector",
                                                 options),
            "multiple_faces": config.align_multiple_faces, "alpha": config.data.alpha}


def load_images(config: Any, source: Any, image_size: int) -> data.ImageSet:
    """``data.load_images(source)`` at the model's size, or aligned to it when ``config.align``."""
    if config.get("align", False):
        return align.load_aligned_images(source, size=image_size, **_align_options(config))
    return data.load_images(source, size=image_size, resize=config.data.resize,
                            alpha=config.data.alpha)


def load_identities(config: Any, source: Any, image_size: int) -> dict[str, data.ImageSet]:
    """``data.load_identities(source)`` at the model's size, or aligned when ``config.align``."""
    if config.get("align", False):
        return align.load_aligned_identities(source, size=image_size,
                                             base_dir=config.data.base_dir,
                                             **_align_options(config))
    return data.load_identities(source, base_dir=config.data.base_dir, size=image_size,
                                resize=config.data.resize, alpha=config.data.alpha)


def record_alignment(manifest: fio.Manifest, image_sets: dict[str, Any]) -> None:
    """The manifest's ``extra.alignment``: one ``AlignmentInfo`` per aligned input file."""
    entries, seen = [], set()
    for image_set in image_sets.values():
        for info in getattr(image_set, "alignment", ()):
            if info.source not in seen:  # one file in several roles
                seen.add(info.source)
                entries.append(info.to_dict())
    if entries:
        manifest.set_extra("alignment", entries)


# ---- run directory and inputs ------------------------------------------------------


def check_workdir(workdir: PathLike, overwrite: bool = False, config: Any = None) -> None:
    """Fails early, before any loading, if the run directory could not be written
    (``flowjax.io.check_workdir``): it exists (without ``overwrite``), is not flowjax's,
    is not writable, or, with ``overwrite``, holds one of ``config``'s input paths."""
    fio.check_workdir(workdir, overwrite, config_paths(config) if config is not None else None)


def config_paths(config: Any) -> dict[str, str]:
    """``{"config.<field>": path}`` for every string in ``config`` naming an existing path.

    Read from every field (relative strings also against ``config.data.base_dir``), so
    that inputs, checkpoints and references of any experiment are covered without a
    per-experiment list.
    """
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if hasattr(value, "items"):
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(f"{prefix}[{i}]", item)
        elif isinstance(value, (str, os.PathLike)) and os.fspath(value):
            flat[prefix] = os.fspath(value)

    walk("config", config.to_dict() if hasattr(config, "to_dict") else config)
    data_section = config.get("data") if hasattr(config, "get") else None
    base_dir = data_section.get("base_dir") if hasattr(data_section, "get") else None
    found = {}
    for name, text in flat.items():
        candidates = [Path(text)]
        if base_dir and not Path(text).is_absolute():
            candidates.append(Path(base_dir) / text)
        for candidate in candidates:
            if glob.has_magic(str(candidate)):
                matches = sorted(glob.glob(str(candidate)))
                found.update({f"{name}[match {j}]": m for j, m in enumerate(matches)})
                if matches:
                    break
            elif candidate.exists():
                found[name] = str(candidate)
                break
    return found


def resolve_paths(items: str | Sequence[str], base_dir: PathLike | None, what: str) -> list[Path]:
    """Config paths -> paths; relative ones against ``base_dir``; globs expanded (sorted).

    A glob that matches nothing is an error naming it.
    """
    listed = [items] if isinstance(items, (str, os.PathLike)) else list(items)
    if not listed:
        raise ValueError(f"{what}: no paths given")
    out: list[Path] = []
    for item in listed:
        path = Path(item)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        if glob.has_magic(str(path)):
            matches = sorted(Path(p) for p in glob.glob(str(path)))
            if not matches:
                raise FileNotFoundError(f"{what}: pattern {path} matches no file; check the path")
            out.extend(matches)
        else:
            out.append(path)
    return out


def record_inputs(run: fio.RunDir, image_sets: dict[str, Any],
                  generated_root: Path | None) -> tuple[list[dict[str, Any]], dict[Path, str]]:
    """Manifest entries of the inputs, and where each input path is recorded.

    Generated data lives in a temporary folder, so its files are first copied
    byte for byte to ``inputs/<relative path>`` (same sha256) and the entries
    point there: the run stays self-contained.
    """
    entries, seen, where = [], set(), {}
    for image_set in image_sets.values():
        for path, entry in zip(image_set.paths, image_set.manifest_entries()):
            if path in seen:  # one file in several roles (e.g. negative and edited)
                continue
            seen.add(path)
            if generated_root is not None:
                rel = Path(path).relative_to(generated_root).as_posix()
                target = run.write_bytes(f"inputs/{rel}", Path(path).read_bytes())
                entry = {**entry, "path": str(target), "generated_test_data": True}
            entries.append(entry)
            where[path] = entry["path"]
    return entries, where


def image_names(paths: Sequence[Path]) -> list[str]:
    """Output names of images: file stems, or ``<folder>_<stem>`` when stems repeat
    (e.g. the glob ``*/neutral.png``); names that still repeat are an error."""
    stems = [Path(p).stem for p in paths]
    names = stems if len(set(stems)) == len(stems) else [
        f"{Path(p).parent.name}_{Path(p).stem}" for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"images have repeated names {names}; rename them")
    return [safe_name(n, "image name") for n in names]


def safe_name(name: str, what: str) -> str:
    """``name`` if it is usable as one path component, else a clear error."""
    if not name or name in (".", "..") or re.search(r"[/\\\x00]", name):
        raise ValueError(f"{what} {name!r} cannot be used as a folder or file name; rename it")
    return name


def alpha_label(alpha: float) -> str:
    """Alpha as written in file names: two decimals when exact (``0.30``), else ``%g``."""
    alpha = float(alpha)
    return f"{alpha:.2f}" if abs(alpha - round(alpha, 2)) < 1e-9 else f"{alpha:g}"


def alpha_labels(alphas: Sequence[float]) -> list[str]:
    """Labels of every alpha; out-of-range alphas (``latents.check_alphas``) and two
    alphas with one label are errors."""
    latents.check_alphas(alphas, "config.alphas")
    labels = [alpha_label(a) for a in alphas]
    if len(set(labels)) != len(labels):
        raise ValueError(f"config.alphas {list(alphas)} has repeated values (as file names: "
                         f"{labels}); give distinct alphas")
    return labels


# ---- SYNTHETIC DATA (flowjax.synthetic) ----------------------------------------------

GENERATED_EXPRESSIONS = ("neutral", *synthetic.PROTOTYPES)


def _expression_aus(expression: str) -> np.ndarray:
    if expression == "neutral":
        return np.zeros(len(synthetic.AU_NAMES), np.float32)
    return synthetic.prototype_aus(expression)


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
    identities = synthetic.sample_identities(jax.random.key(seed), n_identities)
    rows = np.repeat(np.arange(n_identities), len(expressions))
    aus = np.tile(np.stack([_expression_aus(e) for e in expressions]), (n_identities, 1))
    images = np.asarray(synthetic.render(jax.tree.map(lambda a: a[rows], identities), aus,
                                         size=size))
    names = [f"id{k:02d}" for k in range(n_identities)]
    paths = [root / names[k] / f"{e}.png" for k in range(n_identities) for e in expressions]
    _write_faces(paths, images, [{"identity": names[k], "expression": e, "seed": seed}
                                 for k in range(n_identities) for e in expressions])
    return {name: paths[k * len(expressions):(k + 1) * len(expressions)]
            for k, name in enumerate(names)}


def write_configured_faces(config: Any, tmp: PathLike, image_size: int) -> Path | None:
    """``config.data.generated``'s faces in ``tmp/faces`` (SYNTHETIC TEST DATA), or None."""
    generated = config.data.generated
    if not generated.enabled:
        return None
    root = Path(tmp) / "faces"
    write_generated_faces(root, generated.n_identities, generated.expressions, image_size,
                          generated.seed)
    return root


SOURCE_IDENTITY = "source"


def write_synthetic_study(root: PathLike, seed: int, n_identities: int, photos_per_identity: int,
                          n_expressions: int, size: int,
                          nuisance_strength: float = 1.0) -> dict[str, Any]:
    """The seed study's layout, rendered (``flowjax.synthetic.make_study``):

    ``root/id<k>/photo_<j>.png``: the targets' mild photos;
    ``root/source/photo_<j>.png``: the source actor's mild photos (its mean);
    ``root/source/<expression>.png``: the actor's strong source expressions.

    Returns the ground truth (expression names and their AU vectors, the AU
    names, every file's identity and AUs) for the run's records and scoring.
    """
    root = Path(root)
    study = synthetic.make_study(seed, n_identities, photos_per_identity, n_expressions, size,
                                 nuisance_strength, shared_source=True)
    names = [f"id{k:02d}" for k in range(n_identities)]
    files: dict[str, dict[str, Any]] = {}

    def write(photos: synthetic.Photos, rels: list[str]) -> None:
        identity_names = [names[i] if i < n_identities else SOURCE_IDENTITY
                          for i in photos.identity_ids]
        infos = [{"identity": who, "aus": [round(float(a), 4) for a in au], "seed": seed}
                 for who, au in zip(identity_names, photos.aus)]
        _write_faces([root / r for r in rels], photos.images, infos)
        files.update({r: info for r, info in zip(rels, infos)})

    write(study.targets, [f"{names[i // photos_per_identity]}/photo_{i % photos_per_identity:02d}.png"
                          for i in range(len(study.targets.images))])
    write(study.source_photos, [f"{SOURCE_IDENTITY}/photo_{j:02d}.png"
                                for j in range(len(study.source_photos.images))])
    write(study.sources, [f"{SOURCE_IDENTITY}/{e}.png" for e in study.expression_names])
    return {"au_names": list(synthetic.AU_NAMES), "expressions": list(study.expression_names),
            "source": SOURCE_IDENTITY, "targets": names, "files": files}
