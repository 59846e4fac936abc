"""The scaffold of an experiment run: what every ``main(config, workdir)`` shares.

:class:`Experiment` is the scaffold itself::

    exp = runs.Experiment(config, workdir)       # checks the workdir, before any work
    with exp.staging() as tmp:                   # a private folder, removed afterwards
        with exp.timed("load_images"):
            size = exp.geometry.image_size       # the model's size, weights not read
            root = exp.generated_faces(tmp)      # config.data.generated, or None
            images = runs.load_images(config, paths, size)
        model, variables, record = exp.load_model(images.images)   # timed "load_model"
        ...                                      # the experiment's own logic, exp.timed(...)
        with exp.run_dir({"images": images}) as run:   # manifest: config, model, inputs,
            run.write_png(...)                   # alignment, data options, timings
                                                 # ("write" is this block)

and the pieces it uses, for experiments that need only some:

* :func:`load_model` -- the model from ``config.checkpoint`` (any registered
  family, ``flowjax.models.checkpoints.load_model``) or, only when
  ``config.random_init.enabled``, a randomly initialised one from
  ``config.model`` (``flowjax.models.model_from_config``; logged loudly and
  recorded as such in the manifest); :func:`model_geometry` reads the model
  cheaply (no weights) to size the images;
* :func:`check_workdir` -- fails before any work when the run directory exists,
  is not writable, or would take an input with it (:func:`config_paths`);
* ``check_alignment``, ``load_images``, ``load_identities``,
  ``record_alignment``, ``skipped_photos`` (``flowjax.runs.inputs``) -- the
  configured images, aligned on the way in when ``config.align``
  (``flowjax.faces.align``); with ``config.align_failures="skip"`` a photo that
  cannot be aligned is left out and listed in the manifest;
* :func:`encode_sets` -- one batched encode of several image sets, flat
  latents per set; :func:`record_inputs` -- the manifest's input entries.

Experiments load and check *everything* (config, model, images) before they
create the run directory, so bad input leaves no output behind. Names of
files are in ``flowjax.runs.names``, the synthetic writers in
``flowjax.synthetic.files``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from absl import logging

from flowjax import models, synthetic
from flowjax import io as fio
from flowjax.models import checkpoints, execution, glow
from flowjax.runs import run_dirs
from flowjax.runs.inputs import record_alignment
from flowjax.runs.names import model_label  # flowjax.runs.model_label is this one
from flowjax.transfer import latents, sweep

PathLike = str | os.PathLike

RANDOM_MODEL_WARNING = (
    "NO CHECKPOINT: using a RANDOMLY INITIALISED model (config.checkpoint is None). "
    "Its images show the pipeline working, not expression transfer; use this "
    "only for smoke runs and tests."
)


class Experiment:
    """One run of an experiment: workdir check, staging, model, timings, manifest.

    Constructing it checks the workdir (:func:`check_workdir`; with
    ``check_inputs`` also that ``overwrite`` would not delete one of the
    config's input paths). :meth:`timed` blocks add to the manifest's
    ``timings``; :meth:`load_model` keeps the model's manifest record, which
    :meth:`run_dir` writes with the config, the inputs and their alignment.
    """

    def __init__(self, config: Any, workdir: PathLike, *, check_inputs: bool = True) -> None:
        check_workdir(workdir, config.overwrite, config if check_inputs else None)
        self.config = config
        self.workdir = workdir
        self.timings: dict[str, dict[str, float]] = {}
        self.model_record: dict[str, Any] | None = None
        self.generated_root: Path | None = None
        self.input_paths: dict[Path, str] = {}
        self._geometry: nn.Module | None = None

    def staging(self) -> contextlib.AbstractContextManager[Path]:
        """A private folder beside the workdir for inputs generated on the way
        (``flowjax.runs.run_dirs.staging_dir``), removed when the block ends."""
        return run_dirs.staging_dir(self.workdir)

    def timed(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Adds the block's wall time to ``timings[name]`` (also if it raises)."""
        return run_dirs.timed(self.timings, name)

    @property
    def geometry(self) -> nn.Module:
        """The model the run will use, without its weights (:func:`model_geometry`)."""
        if self._geometry is None:
            self._geometry = model_geometry(self.config)
        return self._geometry

    def generated_faces(self, tmp: PathLike) -> Path | None:
        """``config.data.generated``'s faces in ``tmp`` at the model's size, or None."""
        self.generated_root = write_configured_faces(self.config, tmp, self.geometry.image_size)
        return self.generated_root

    def load_model(self, images: np.ndarray) -> tuple[nn.Module, Any, dict[str, Any]]:
        """:func:`load_model` (timed ``load_model``); the record goes to the manifest."""
        with self.timed("load_model"):
            model, variables, self.model_record = load_model(self.config, images)
        return model, variables, self.model_record

    @property
    def model_label(self) -> str:
        """Short provenance text naming the model, for the images' metadata and pages
        (:func:`flowjax.runs.names.model_label`: no absolute path; the manifest has it)."""
        return model_label(self.model_record, run_dir=self.workdir)

    @contextlib.contextmanager
    def run_dir(self, inputs: Mapping[str, Any] | None = None) -> Iterator[run_dirs.RunDir]:
        """The run directory (``flowjax.runs.run_dirs.create_run_dir``), its manifest filled in.

        The manifest gets the config, the model record, ``inputs`` (image sets;
        generated ones copied into the run, see :func:`record_inputs`; where each
        path is recorded is then :attr:`input_paths`), their data options and
        alignment, and the timings, the block itself as ``write``.
        """
        start = time.perf_counter()
        with run_dirs.create_run_dir(self.workdir, overwrite=self.config.overwrite) as run:
            manifest = run.manifest
            manifest.set_config(self.config.to_dict())
            if self.model_record is not None:
                manifest.model = json.loads(fio.to_json(self.model_record))
            if inputs:
                entries, self.input_paths = record_inputs(run, inputs, self.generated_root)
                manifest.add_inputs(entries)
                manifest.set_extra("data_options",
                                   next(iter(inputs.values())).options.to_dict())
                record_alignment(manifest, inputs)
            yield run
            self.timings["write"] = {"seconds": time.perf_counter() - start, "calls": 1}
            for name, entry in self.timings.items():
                manifest.timings[name] = dict(entry)


# ---- the model --------------------------------------------------------------------


def model_geometry(config: Any) -> nn.Module:
    """The model the run will use, read cheaply (no weights) to size the images."""
    if _uses_checkpoint(config):
        return checkpoints.read_model_config(config.checkpoint)
    return models.model_from_config(config.model)


def _uses_checkpoint(config: Any) -> bool:
    """True for ``config.checkpoint``, False for an allowed random init; else an error."""
    if config.checkpoint and config.random_init.enabled:
        raise ValueError(
            f"config.checkpoint={config.checkpoint!r} and config.random_init.enabled=True are "
            "both set; pass --config.checkpoint=None for a random model, or drop random_init")
    if config.checkpoint:
        return True
    if not config.random_init.enabled:
        raise ValueError(
            "config.checkpoint is not set: give --config.checkpoint=DIR (a save_model export "
            "or a training workdir). A randomly initialised model is only for smoke runs and "
            "tests: --config.random_init.enabled=True")
    return False


def load_model(config: Any, images: np.ndarray) -> tuple[nn.Module, Any, dict[str, Any]]:
    """``(model, variables, record)``: the checkpoint, or a random init if allowed.

    A random init uses ``config.model``, ``config.random_init.seed`` and, with
    ``config.random_init.ddi`` (default), data-dependent ActNorm init on
    ``images`` (all the run's inputs); without it ``flowjax.models.random_variables``.
    ``record`` is the manifest's ``model`` entry: the checkpoint, what the model is
    (``model_config``) and how this run ran it (``execution``: a checkpoint runs at
    its family's default settings, ``flowjax.models.execution``).
    """
    if _uses_checkpoint(config):
        model, variables = checkpoints.load_model(config.checkpoint)
        sweep.check_finite_variables(variables, f"checkpoint {config.checkpoint}")
        # The full path: what the manifest records must not depend on where the run started.
        record = {"checkpoint": os.path.abspath(config.checkpoint),
                  "sha256": fio.sha256_path(config.checkpoint),
                  "model_config": models.model_config(model), "execution": _execution(model),
                  "random_init": False}
        return model, variables, record
    model = models.model_from_config(config.model)
    seed = int(config.random_init.seed)
    logging.warning("%s", RANDOM_MODEL_WARNING)
    logging.warning("random init: seed %d, %s", seed,
                    f"DDI on {len(images)} input images" if config.random_init.ddi
                    else "random weights (no DDI)")
    if config.random_init.ddi:
        variables = glow.init(model, jax.random.PRNGKey(seed), images)
    else:
        variables = models.random_variables(model, seed)
    record = {"checkpoint": None, "sha256": None, "random_init": True, "seed": seed,
              "ddi_on_inputs": bool(config.random_init.ddi),
              "model_config": models.model_config(model), "execution": _execution(model),
              "warning": RANDOM_MODEL_WARNING}
    return model, variables, record


def _execution(model: nn.Module) -> dict[str, Any]:
    """How the run's encodes and decodes ran (an "auto" precision as its policy runs it)."""
    return models.execution_config(execution.for_phase(model, "decode"))


def encode_sets(model: nn.Module, variables: Any, image_sets: dict[str, Any],
                config: Any) -> dict[str, np.ndarray]:
    """Flat latents ``[N_k, D]`` in ``config.space`` per image set, from one batched encode."""
    images = np.concatenate([s.images for s in image_sets.values()])
    names = [str(path) for s in image_sets.values() for path in s.paths]
    encoding = sweep.encode_images(model, variables, images, chunk_size=config.chunk_size,
                                   progress=config.progress, names=names)
    flat = np.asarray(latents.flatten(list(latents.in_space(encoding, config.space))))
    ends = np.cumsum([len(s) for s in image_sets.values()])
    return dict(zip(image_sets, np.split(flat, ends[:-1])))


def check_workdir(workdir: PathLike, overwrite: bool = False, config: Any = None) -> None:
    """Fails early, before any loading, if the run directory could not be written
    (``flowjax.runs.run_dirs.check_workdir``): it exists (without ``overwrite``), is not flowjax's,
    is not writable, or, with ``overwrite``, holds one of ``config``'s input paths."""
    run_dirs.check_workdir(workdir, overwrite, config_paths(config) if config is not None else None)


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


def record_inputs(run: run_dirs.RunDir, image_sets: dict[str, Any],
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


def write_configured_faces(config: Any, tmp: PathLike, image_size: int) -> Path | None:
    """``config.data.generated``'s faces in ``tmp/faces`` (SYNTHETIC TEST DATA), or None."""
    generated = config.data.generated
    if not generated.enabled:
        return None
    root = Path(tmp) / "faces"
    synthetic.write_generated_faces(root, generated.n_identities, generated.expressions,
                                          image_size, generated.seed)
    return root


# ---- writing a swept grid -----------------------------------------------------------


def write_alpha_row(run: run_dirs.RunDir, folder: str, name: str, images: Any, alphas: Any,
                    labels: list[str], provenance: Mapping[str, Any]) -> dict[str, str]:
    """One row of a swept grid (one image per alpha) as ``folder/<label>/<name>_<label>.png``.

    Each PNG carries ``provenance`` plus its own ``alpha`` (and, like every
    flowjax image, says it is synthetic); ``labels`` are the alphas as file
    names (``flowjax.runs.names.alpha_labels``). Returns ``{label: relative path}``.
    Transfer and attribute manipulation both write their grids with it.
    """
    if len(images) != len(alphas) or len(labels) != len(alphas):
        raise ValueError(f"{folder}: {len(images)} images for {len(alphas)} alphas and "
                         f"{len(labels)} labels; they must match")
    written = {}
    for image, alpha, label in zip(images, alphas, labels):
        rel = f"{folder}/{label}/{name}_{label}.png"
        run.write_png(rel, image, {**provenance, "alpha": float(alpha)})
        written[label] = rel
    return written
