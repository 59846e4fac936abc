"""Images grouped by identity: a ``root/<identity>/*.png`` tree or an explicit mapping.

The identity layer of :mod:`flowjax.io.images`: the same listing and decoding
rules and the same per-image records (see its docstring), one
:class:`~flowjax.io.images.ImageSet` per identity, all of one size.
:func:`identity_files` gives the listing alone (``flowjax.faces.align`` loads
unaligned photos by it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

from flowjax import io as fio
from flowjax.io.images import ImageDataError, ImageSet, PathLike


IdentitySource = Union[PathLike, Mapping[str, Union[PathLike, Sequence[PathLike]]]]


def load_identities(
    source: IdentitySource,
    *,
    base_dir: PathLike | None = None,
    size: int | Sequence[int] | None = None,
    resize: str | None = None,
    alpha: str = "composite",
    background: Sequence[int] = (255, 255, 255),
) -> dict[str, ImageSet]:
    """Images grouped by identity, all of one size.

    ``source`` is either a root folder laid out ``root/<identity>/*.png``
    (identities sorted by folder name; hidden folders skipped; an image lying
    directly in the root is an error, since it belongs to no identity), or a
    mapping ``{identity: folder | file | [files or folders]}`` as a config would
    give it (mapping order kept; relative paths resolved against ``base_dir``).
    """
    options = fio.LoadOptions.make(size, resize, alpha, background)
    sets: dict[str, ImageSet] = {}
    first: tuple[str, ImageSet] | None = None
    for identity, files in identity_files(source, base_dir=base_dir).items():
        image_set = fio.load_files_with_options(files, options)
        if first is not None and image_set.images.shape[1:] != first[1].images.shape[1:]:
            h, w = image_set.images.shape[1:3]
            fh, fw = first[1].images.shape[1:3]
            raise ImageDataError(
                f"{image_set.paths[0]}: identity {identity!r} has images of size {h}x{w} "
                f"(HxW) but identity {first[0]!r} has {fh}x{fw}; all identities must "
                "share one size. Pass size=... and resize='lanczos'."
            )
        first = first or (identity, image_set)
        sets[identity] = image_set
    return sets


def identity_files(
    source: IdentitySource, *, base_dir: PathLike | None = None
) -> dict[str, list[Path]]:
    """The files :func:`load_identities` reads, per identity, in its order.

    Every folder is listed (and every listing error raised) before any file
    is decoded.
    """
    if isinstance(source, Mapping):
        groups = _identity_mapping(source, base_dir)
    else:
        groups = _identity_folders(Path(source))
    return {identity: fio.image_files(items) for identity, items in groups.items()}


def _identity_folders(root: Path) -> dict[str, list[Path]]:
    if not root.exists():
        raise FileNotFoundError(f"identity root folder {root} does not exist; check the path")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder; expected root/<identity>/*.png")
    entries = sorted(root.iterdir(), key=lambda p: p.name)
    fio.refuse_broken_links(entries)
    loose = [p for p in entries if p.is_file() and fio.is_image_name(p)]
    if loose:
        raise ImageDataError(
            f"{loose[0]} lies directly in the identity root {root}; expected "
            f"{root}/<identity>/{loose[0].name}. Move it into an identity folder "
            "or pass an explicit {identity: [paths]} mapping."
        )
    folders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        raise ImageDataError(
            f"identity root {root} has no identity folders; expected root/<identity>/*.png"
        )
    return {p.name: [p] for p in folders}


def _identity_mapping(
    mapping: Mapping[str, PathLike | Sequence[PathLike]], base_dir: PathLike | None
) -> dict[str, list[Path]]:
    base = Path(base_dir) if base_dir is not None else None
    if not mapping:
        raise ImageDataError("the identity mapping is empty; give at least one identity")

    def resolve(p: PathLike) -> Path:
        p = Path(p)
        return base / p if base is not None and not p.is_absolute() else p

    groups: dict[str, list[Path]] = {}
    for identity, items in mapping.items():
        listed = [items] if isinstance(items, (str, os.PathLike)) else list(items)
        if not listed:
            raise ImageDataError(f"identity {identity!r} lists no images; add paths or a folder")
        groups[str(identity)] = [resolve(p) for p in listed]
    return groups
