"""Image data: loading and validating folders of face images.

Every image crosses into flowjax as ``uint8`` RGB, NHWC. Whatever the file
held, the conversion to that form is explicit and recorded: each loaded image
yields an :class:`ImageRecord` (source path, sha256 of the file bytes, original
format/mode/size, the conversions applied) that the caller puts in the run's
manifest (``flowjax.runs.run_dirs.Manifest.add_inputs``).

Conversion rules (one rule per case, so a manifest can be read without code):

* **Formats.** PNG and JPEG only (extensions ``.png .jpg .jpeg``, any case).
  Files are decoded with only those two decoders enabled, so a file whose
  content is anything else is rejected even if its name says ``.png``.
  Animated (multi-frame) files are rejected.
* **Alpha** (RGBA, LA, PA, P with transparency). Default ``alpha="composite"``:
  composite over ``background`` (default white, ``(255, 255, 255)``), which is
  what a viewer shows; ``alpha="drop"`` discards alpha and keeps the stored
  colour under transparent pixels. The record says whether alpha was fully
  opaque (then both policies give the same pixels).
* **Grayscale** (``L``, ``LA``, ``1``, ``P``): expanded to RGB by repeating the
  channel (``1`` maps 0/1 to 0/255); palettes are looked up.
* **16-bit** (``I;16`` grayscale PNG, 16-bit RGB/RGBA/LA PNG, and ``I`` when
  all values lie in 0..65535): scaled to 8 bits by ``x >> 8`` (keep the high
  byte). This is what Pillow's own decoder does for 16-bit colour PNGs and
  libpng's ``strip_16``, so one rule holds for every 16-bit input; it inverts
  the usual 8->16 expansion ``x * 257`` exactly.
* **Unsupported modes** (``CMYK``, ``LAB``, ``HSV``, ``F``, ...): rejected.
  Converting CMYK without its colour profile gives wrong colours (inverted
  Adobe CMYK JPEGs in particular), so that conversion belongs in a
  colour-managed tool, not here.
* **EXIF orientation** (JPEG): applied (rotate/flip) and recorded.
* **Embedded ICC profiles**: not applied; pixel values are taken as sRGB and
  the record says a profile was ignored.
* **Size.** ``size=None`` requires all images to share one size. ``size=S``
  requires ``S x S`` (square); ``size=(H, W)`` requires that shape. A wrong
  size is an error unless ``resize`` names a filter (``"lanczos"``,
  ``"bicubic"``, ...), then the image is resized after conversion to 8-bit RGB
  and the record says from what size and with which filter. Resizing never
  changes the aspect ratio: a non-square image with a square ``size`` is an
  error either way (crop or align the faces first).

Order is deterministic: a folder's files are sorted by name (code-point
order, so ``B.png`` sorts before ``a.png``); hidden files (``.*``, e.g. macOS
``._x.png``) and files with other extensions are skipped; subfolders are not
searched. Explicit lists keep the caller's order. :func:`image_files` gives
this listing alone (``flowjax.faces.align`` loads unaligned photos by it);
:func:`list_image_files_recursive` lists a whole tree (training folders).
Images grouped by identity (``root/<identity>/*.png`` or a mapping) are
:mod:`flowjax.faces.identity_folders`.

Model preprocessing (``n_bits`` quantisation, float conversion) is not here;
training datasets that decode files by these rules are in
:mod:`flowjax.training.datasets`.

Longer than 400 lines because each conversion rule above is implemented beside its
check, so the rules are read and changed in one place; a ninth of it is this docstring.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
ALPHA_POLICIES = ("composite", "drop")
RESIZE_FILTERS: dict[str, Image.Resampling] = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
_DECODERS = ["PNG", "JPEG"]
_UNSUPPORTED_MODE_ADVICE = (
    "convert it to 8-bit sRGB with a colour-managed tool first "
    "(e.g. `magick in.jpg -colorspace sRGB out.png`)"
)


class ImageDataError(ValueError):
    """An image file or folder failed validation; the message names it."""


# --------------------------------------------------------------------------
# Records and return values
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """What was loaded and what was done to it, for the run's manifest."""

    path: str
    sha256: str
    format: str
    original_mode: str
    original_height: int
    original_width: int
    bit_depth: int
    conversions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``conversions`` as a list)."""
        d = dataclasses.asdict(self)
        d["conversions"] = list(self.conversions)
        return d


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """Validated loading options; see the module docstring for the rules."""

    size: tuple[int, int] | None = None  # (height, width)
    resize: str | None = None
    alpha: str = "composite"
    background: tuple[int, int, int] = (255, 255, 255)

    @classmethod
    def make(
        cls,
        size: int | Sequence[int] | None = None,
        resize: str | None = None,
        alpha: str = "composite",
        background: Sequence[int] = (255, 255, 255),
    ) -> LoadOptions:
        """Checks the options once, before any file is read."""
        hw: tuple[int, int] | None
        if size is None:
            hw = None
        elif isinstance(size, (int, np.integer)):
            hw = (int(size), int(size))
        else:
            hw = tuple(int(s) for s in size)  # type: ignore[assignment]
            if len(hw) != 2:
                raise ValueError(f"size must be an int or (height, width), got {size!r}")
        if hw is not None and min(hw) < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        if resize is not None and resize not in RESIZE_FILTERS:
            raise ValueError(
                f"resize must be None or one of {sorted(RESIZE_FILTERS)}, got {resize!r}"
            )
        if resize is not None and hw is None:
            raise ValueError(f"resize={resize!r} needs a target size; pass size=...")
        if alpha not in ALPHA_POLICIES:
            raise ValueError(f"alpha must be one of {ALPHA_POLICIES}, got {alpha!r}")
        bg = tuple(int(c) for c in background)
        if len(bg) != 3 or not all(0 <= c <= 255 for c in bg):
            raise ValueError(f"background must be 3 ints in 0..255, got {background!r}")
        return cls(size=hw, resize=resize, alpha=alpha, background=bg)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the manifest."""
        return {
            "size": list(self.size) if self.size else None,
            "resize": self.resize,
            "alpha": self.alpha,
            "background": list(self.background),
            "sixteen_bit": "x >> 8",
        }


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Images loaded together: ``images[i]`` came from ``paths[i]``."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    paths: tuple[Path, ...]
    records: tuple[ImageRecord, ...]
    options: LoadOptions

    def __len__(self) -> int:
        return len(self.paths)

    def manifest_entries(self) -> list[dict[str, Any]]:
        """One dict per image, for ``Manifest.add_inputs``."""
        return [r.to_dict() for r in self.records]


# --------------------------------------------------------------------------
# Listing files
# --------------------------------------------------------------------------


def is_image_name(path: Path) -> bool:
    """Whether a listing takes ``path``: an image extension, any case, and not hidden."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def refuse_broken_links(paths: Iterable[Path]) -> None:
    """A symlink whose target is gone would be silently skipped as "not a file": name it."""
    for path in paths:
        if path.is_symlink() and not path.exists() and not path.name.startswith("."):
            raise ImageDataError(
                f"{path} is a broken symbolic link (it points to {os.readlink(path)}, which "
                "does not exist); restore its target or remove the link"
            )


def list_image_files(folder: PathLike) -> list[Path]:
    """The PNG/JPEG files directly inside ``folder``, sorted by name.

    Raises FileNotFoundError / NotADirectoryError for a bad folder and
    ImageDataError when it holds no image or a broken symbolic link.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist; check the path")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder; expected a folder of images")
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
    refuse_broken_links(entries)
    files = [p for p in entries if p.is_file() and is_image_name(p)]
    if not files:
        others = [p.name for p in entries][:5]
        found = f"found only {others}" if others else "it is empty"
        raise ImageDataError(
            f"image folder {folder} has no images (extensions {IMAGE_EXTENSIONS}, "
            f"any case, not hidden); {found}. Add images or remove it from the input list."
        )
    return files


def list_image_files_recursive(folder: PathLike) -> list[Path]:
    """The PNG/JPEG files anywhere below ``folder``, sorted by relative path.

    Hidden files and hidden folders (``.*``) are skipped, as are files with
    other extensions. Raises like :func:`list_image_files`.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist; check the path")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder; expected a folder of images")
    files = []
    for root, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        refuse_broken_links(Path(root, name) for name in filenames)
        files.extend(Path(root, name) for name in filenames if is_image_name(Path(name)))
    if not files:
        raise ImageDataError(
            f"image folder {folder} has no images in it or its subfolders (extensions "
            f"{IMAGE_EXTENSIONS}, any case, not hidden). Check the path or add images."
        )
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _expand_sources(source: PathLike | Sequence[PathLike]) -> list[Path]:
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not items:
        raise ImageDataError("no image paths given; pass a folder or a non-empty list")
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(list_image_files(path))
        elif not path.exists():
            raise FileNotFoundError(f"image {path} does not exist; check the path")
        elif path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ImageDataError(
                f"{path}: unsupported extension {path.suffix!r}; "
                f"expected one of {IMAGE_EXTENSIONS}. Convert it to PNG."
            )
        else:
            files.append(path)
    return files


# --------------------------------------------------------------------------
# Decoding and conversion
# --------------------------------------------------------------------------


def _rawmode(im: Image.Image) -> str:
    """The decoder's raw sample layout, which reveals 16-bit PNGs before load."""
    if not im.tile:
        return ""
    args = im.tile[0].args
    if isinstance(args, str):
        return args
    return str(args[0]) if args else ""


def _alpha_to_rgb(im: Image.Image, options: LoadOptions, steps: list[str]) -> Image.Image:
    """RGBA in, RGB out, by the chosen policy."""
    opaque = im.getchannel("A").getextrema()[0] == 255
    note = "alpha fully opaque, pixels unchanged" if opaque else "alpha not opaque"
    if options.alpha == "drop":
        steps.append(f"alpha dropped ({note})")
        return im.convert("RGB")
    background = Image.new("RGBA", im.size, options.background + (255,))
    steps.append(f"alpha composited over background {options.background} ({note})")
    return Image.alpha_composite(background, im).convert("RGB")


def _to_rgb8(im: Image.Image, path: Path, options: LoadOptions, steps: list[str]) -> Image.Image:
    """Converts any supported mode to 8-bit RGB, appending one step per change."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise ImageDataError(
                f"{path}: 32-bit integer image with values {values.min()}..{values.max()}; "
                f"expected 0..65535 (16-bit). {_UNSUPPORTED_MODE_ADVICE}"
            )
        source = (
            f"16-bit grayscale {mode}" if mode != "I" else "32-bit integer I (values in 0..65535)"
        )
        steps.append(f"{source} scaled to 8-bit by x >> 8")
        im = Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8), mode="L")
        mode = "L"
    if mode == "1":
        steps.append("bilevel 1 expanded to RGB (0 -> 0, 1 -> 255)")
        return im.convert("RGB")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        target = "RGBA" if has_alpha else "RGB"
        steps.append(f"palette {mode} expanded to {target}")
        im, mode = im.convert(target), target
    if mode == "L":
        steps.append("grayscale L expanded to RGB")
        return im.convert("RGB")
    if mode == "LA":
        steps.append("grayscale LA expanded to RGBA")
        im, mode = im.convert("RGBA"), "RGBA"
    if mode == "RGBA":
        return _alpha_to_rgb(im, options, steps)
    if mode == "RGB":
        return im
    raise ImageDataError(
        f"{path}: unsupported image mode {mode!r}; expected RGB, RGBA, L, LA, 1, P, "
        f"I or I;16. {_UNSUPPORTED_MODE_ADVICE}"
    )


def _fit_size(im: Image.Image, path: Path, options: LoadOptions, steps: list[str]) -> Image.Image:
    if options.size is None:
        return im
    want_h, want_w = options.size
    w, h = im.size
    if (h, w) == (want_h, want_w):
        return im
    square = want_h == want_w
    shape = "square " if square else ""
    if w * want_h != h * want_w:
        raise ImageDataError(
            f"{path}: size {h}x{w} (HxW) does not match the required {shape}size "
            f"{want_h}x{want_w}, and resizing would change the aspect ratio; "
            f"crop or align the face to a {want_h}:{want_w} image first."
        )
    if options.resize is None:
        raise ImageDataError(
            f"{path}: size {h}x{w} (HxW), expected {want_h}x{want_w}; resize the "
            f"inputs or pass resize='lanczos' (or another filter: {sorted(RESIZE_FILTERS)})."
        )
    steps.append(f"resized {h}x{w} -> {want_h}x{want_w} (HxW) with {options.resize}")
    return im.resize((want_w, want_h), RESIZE_FILTERS[options.resize])


def _decode(data: bytes, path: Path, options: LoadOptions) -> tuple[np.ndarray, ImageRecord]:
    try:
        im = Image.open(io.BytesIO(data), formats=_DECODERS)
        rawmode = _rawmode(im)
        im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # UnidentifiedImageError is an OSError; truncated data raises OSError on load.
        raise ImageDataError(
            f"{path}: cannot decode as PNG or JPEG ({type(e).__name__}: {e}); the file "
            "is corrupt, truncated or not an image. Replace or remove it."
        ) from e
    if getattr(im, "n_frames", 1) > 1:
        raise ImageDataError(
            f"{path}: animated image with {im.n_frames} frames; expected a single "
            "still image. Export one frame."
        )
    steps: list[str] = []
    fmt, mode, (width, height) = str(im.format), im.mode, im.size
    bit_depth = 32 if mode == "I" else 16 if (";16" in rawmode or mode.startswith("I;16")) else 8
    if bit_depth == 16 and not mode.startswith("I;16"):
        steps.append(f"16-bit {rawmode} samples scaled to 8-bit by x >> 8 (decoded as {mode})")
    orientation = im.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
        steps.append(f"rotated/flipped per EXIF Orientation={orientation}")
    if im.info.get("icc_profile"):
        steps.append("embedded ICC profile ignored (pixel values taken as sRGB)")
    im = _to_rgb8(im, path, options, steps)
    im = _fit_size(im, path, options, steps)
    record = ImageRecord(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        original_mode=mode,
        original_height=height,
        original_width=width,
        bit_depth=bit_depth,
        conversions=tuple(steps),
    )
    return np.asarray(im, dtype=np.uint8), record


# --------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------


def load_image(
    path: PathLike,
    *,
    size: int | Sequence[int] | None = None,
    resize: str | None = None,
    alpha: str = "composite",
    background: Sequence[int] = (255, 255, 255),
) -> tuple[np.ndarray, ImageRecord]:
    """One image as uint8 ``[H, W, 3]`` and its record (options: module docstring)."""
    return load_image_with_options(path, LoadOptions.make(size, resize, alpha, background))


def load_image_with_options(
    path: PathLike, options: LoadOptions
) -> tuple[np.ndarray, ImageRecord]:
    """:func:`load_image` with options already checked by :meth:`LoadOptions.make`
    (for loaders that check them once for many files)."""
    path = Path(path)
    return _decode(_read_bytes(path), path, options)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist; check the path") from None
    except OSError as e:
        raise ImageDataError(f"{path}: cannot read the file ({e}); check permissions") from e


def load_files_with_options(files: Sequence[Path], options: LoadOptions) -> ImageSet:
    """``files`` (already listed) as one ImageSet of one size, with options already checked."""
    images, records = [], []
    for path in files:
        image, record = load_image_with_options(path, options)
        if images and image.shape != images[0].shape:
            raise ImageDataError(
                f"{path}: size {image.shape[0]}x{image.shape[1]} (HxW) differs from "
                f"{files[0]} ({images[0].shape[0]}x{images[0].shape[1]}); images loaded "
                "together must share one size. Pass size=... and resize='lanczos'."
            )
        images.append(image)
        records.append(record)
    return ImageSet(np.stack(images), tuple(files), tuple(records), options)


def load_images(
    source: PathLike | Sequence[PathLike],
    *,
    size: int | Sequence[int] | None = None,
    resize: str | None = None,
    alpha: str = "composite",
    background: Sequence[int] = (255, 255, 255),
) -> ImageSet:
    """Loads a folder, a file, or a list of files/folders into one ImageSet.

    Folders contribute their images sorted by name; a list keeps its order.
    The options are described in the module docstring.
    """
    options = LoadOptions.make(size, resize, alpha, background)
    return load_files_with_options(image_files(source), options)


def image_files(source: PathLike | Sequence[PathLike]) -> list[Path]:
    """The files :func:`load_images` reads from ``source``, in its order.

    For loaders that decode the files their own way (``flowjax.faces.align``) but
    must list them by the same rules.
    """
    return _expand_sources(source)
