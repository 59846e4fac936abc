"""Names and paths of a run's files: config paths and globs resolved, image and
alpha labels that are safe as file names (one path component each)."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

from flowjax.transfer import latents

PathLike = str | os.PathLike


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
