"""Files in and out: atomic writes and checksums, PNGs with provenance, image loading.

The foundation every other package writes and reads through:

* ``files`` -- sha256 checksums, atomic writes (temp file, fsync, rename), JSON;
* ``png`` -- PNGs whose text chunks say they are synthetic and how they were
  made, and image strips;
* ``images`` -- folders of face images loaded and validated as ``uint8`` RGB,
  every conversion explicit and recorded;
* ``console`` -- progress of long work, as a bar on a terminal and as a line
  every few seconds in a log file;
* ``video`` -- MP4s labelled synthetic (container metadata and a visible mark),
  written atomically and read back checked, through PyAV (imported on first use).

Every public name of the first four is also this package's (``fio.write_png``,
``fio.load_images``, ...); ``video``'s are reached through its module.

May import: nothing of flowjax but its version (numpy, Pillow and tqdm only; PyAV
in ``video``, on first use).
"""

from flowjax.io.console import LineProgress, progress, stage
from flowjax.io.files import (PathLike, atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text,
                              sha256_bytes, sha256_dir, sha256_file, sha256_path, to_json)
from flowjax.io.images import (ALPHA_POLICIES, IMAGE_EXTENSIONS, RESIZE_FILTERS, ImageDataError, ImageRecord,
                               ImageSet, LoadOptions, image_files, is_image_name, list_image_files,
                               list_image_files_recursive, load_files_with_options, load_image,
                               load_image_with_options, load_images, refuse_broken_links)
from flowjax.io.png import (NOT_GENERATED_DESCRIPTION, RESERVED_PNG_KEYS, SOFTWARE, SYNTHETIC_COMMENT,
                            SYNTHETIC_DESCRIPTION, encode_png, make_strip, png_provenance, read_png_provenance,
                            write_png)

__all__ = [
    "PathLike", "sha256_bytes", "sha256_file", "sha256_dir", "sha256_path", "atomic_open",
    "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "to_json",
    "SOFTWARE", "SYNTHETIC_DESCRIPTION", "SYNTHETIC_COMMENT", "NOT_GENERATED_DESCRIPTION",
    "RESERVED_PNG_KEYS", "png_provenance", "encode_png", "write_png", "read_png_provenance", "make_strip",
    "IMAGE_EXTENSIONS", "ALPHA_POLICIES", "RESIZE_FILTERS", "ImageDataError", "ImageRecord", "LoadOptions",
    "ImageSet", "is_image_name", "refuse_broken_links", "list_image_files", "list_image_files_recursive",
    "load_image", "load_image_with_options", "load_files_with_options", "load_images", "image_files",
    "LineProgress", "progress", "stage",
]
