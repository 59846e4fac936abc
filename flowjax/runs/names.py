"""Names and paths of a run's files: config paths and globs resolved, image and
alpha labels that are safe as file names (one path component each), and the
paths and model label shown to a person (:func:`display_path`, :func:`model_label`)."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowjax.transfer import latents

PathLike = str | os.PathLike

# The checkout that holds the flowjax package: the shipped weights (weights/demo/...) live
# here, so a checkpoint inside it is shown as the path a reader of the docs can type.
REPOSITORY = Path(__file__).resolve().parents[2]


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


# ---- what a person is shown --------------------------------------------------------------


def display_path(path: PathLike, run_dir: PathLike | None = None) -> str:
    """``path`` as pages, reports and image labels show it: never an absolute path.

    An absolute path would name the folders of the machine a run was made on in every
    screenshot and shared image; the manifests keep it. So ``path`` is shown

    * as given, when it is relative (the user typed it so);
    * relative to the repository (:data:`REPOSITORY`) when inside it: ``weights/demo/glow``;
    * relative to the folder that holds the run ``run_dir`` when inside that, so it starts
      with a run's name (the user chose it): ``explore-1/saved/edit_0001.png``,
      ``train-1/checkpoints/5000``;
    * else by its last two components: ``.../celeba/glow``.
    """
    if not Path(path).is_absolute():
        return Path(path).as_posix()
    path = Path(path).resolve()
    anchors = [REPOSITORY]
    if run_dir is not None:
        anchors.append(Path(run_dir).resolve().parent)
    for anchor in anchors:
        # Never the filesystem's root: relative to "/" would spell the absolute path.
        if anchor != anchor.parent and path.is_relative_to(anchor):
            return path.relative_to(anchor).as_posix()
    return "/".join(["...", *path.parts[1:][-2:]])


def model_label(record: dict[str, Any], run_dir: PathLike | None = None) -> str:
    """Short provenance text naming the model.

    A flowjax model record (``flowjax.runs.load_model``) as one line for people:
    the checkpoint by :func:`display_path` (``run_dir`` as there) and its sha256, or
    RANDOM INIT with its seed. The record itself, with the full path, is what the
    manifests keep.
    """
    if record.get("random_init"):
        return f"RANDOM INIT seed {record.get('seed')} (no checkpoint)"
    checkpoint = record.get("checkpoint")
    shown = "not recorded" if checkpoint is None else display_path(checkpoint, run_dir)
    return f"{shown} sha256:{record.get('sha256')}"
