"""The run's input images: at the model's size, or aligned to it on the way in.

* :func:`check_alignment` -- refuses ``config.align`` (and ``config.align_failures``)
  where it cannot apply, before any work;
* :func:`load_images`, :func:`load_identities` -- the configured images as
  ``flowjax.io.images`` and ``flowjax.faces.identity_folders`` load them, or, with
  ``config.align``, aligned by ``flowjax.faces.align`` with the configured detector;
* :func:`record_alignment`, :func:`skipped_photos` -- the manifest's record of
  every alignment, and of every photo ``config.align_failures="skip"`` left out
  (no face, or several under ``config.align_multiple_faces="error"``: its reason,
  checksum, size and the detector's settings; each also logged as a warning).

Under ``config.align_failures="error"`` (the default) such a photo stops the run
with an error naming it, what the detector searched, and the option that skips it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from absl import logging

from flowjax import io as fio
from flowjax.faces import align, detectors, identity_folders
from flowjax.runs import run_dirs


def check_alignment(config: Any, synthetic_study: bool = False) -> None:
    """Refuses ``config.align=True`` where it cannot apply, before any work.

    Alignment is for the user's own photos: the generated faces and the
    synthetic study (``synthetic_study``) are already aligned renders, and
    ``config.data.resize`` would fight the alignment, which produces the
    model's size itself.
    """
    if not config.get("align", False):
        _check_failures_policy(config)
        if config.get("align_failures", "error") != "error":
            raise ValueError(
                f"config.align_failures={config.align_failures!r} applies to photos aligned on "
                "the way in: add --config.align=True, or drop --config.align_failures")
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
    _check_failures_policy(config)
    detectors.parse_detector_spec(config.align_detector, "config.align_detector")


def _check_failures_policy(config: Any) -> None:
    failures = config.get("align_failures", "error")
    if failures not in align.ALIGN_FAILURE_POLICIES:
        raise ValueError(f"config.align_failures must be one of {align.ALIGN_FAILURE_POLICIES}, "
                         f"got {failures!r}")


def _align_options(config: Any) -> dict[str, Any]:
    options = {k: v for k, v in config.get("align_detector_options", {}).items() if v is not None}
    return {"detector": detectors.detector_from_spec(config.align_detector,
                                                          "config.align_detector", options),
            "multiple_faces": config.align_multiple_faces, "alpha": config.data.alpha,
            "failures": config.get("align_failures", "error")}


@contextlib.contextmanager
def _naming_the_skip_option() -> Iterator[None]:
    """A photo that cannot be aligned, under align_failures="error": the message names the
    config option that leaves such photos out."""
    try:
        yield
    except align.AlignmentError as error:
        raise align.AlignmentError(
            f"{error} (--config.align_failures=skip leaves such photos out and lists them in "
            "the manifest)", error.record) from None


def load_images(config: Any, source: Any, image_size: int,
                label: str = "the photos") -> fio.ImageSet:
    """``fio.load_images(source)`` at the model's size, or aligned to it when ``config.align``
    (``label`` names the set in the error when ``align_failures="skip"`` leaves it empty)."""
    if config.get("align", False):
        with _naming_the_skip_option():
            image_set = align.load_aligned_images(source, size=image_size, label=label,
                                                  **_align_options(config))
        _log_skipped({label: image_set})
        return image_set
    return fio.load_images(source, size=image_size, resize=config.data.resize,
                            alpha=config.data.alpha)


def load_identities(config: Any, source: Any, image_size: int) -> dict[str, fio.ImageSet]:
    """``identity_folders.load_identities(source)`` at the model's size, or aligned when ``config.align``."""
    if config.get("align", False):
        with _naming_the_skip_option():
            identities = align.load_aligned_identities(source, size=image_size,
                                                       base_dir=config.data.base_dir,
                                                       **_align_options(config))
        _log_skipped(identities)
        return identities
    return identity_folders.load_identities(source, base_dir=config.data.base_dir, size=image_size,
                                           resize=config.data.resize, alpha=config.data.alpha)


def _log_skipped(image_sets: dict[str, Any]) -> None:
    for name, image_set in image_sets.items():
        skipped = getattr(image_set, "skipped", ())
        if skipped:
            logging.warning("%s: %d of %d photos left out (config.align_failures='skip'): %s",
                            name, len(skipped), len(skipped) + len(image_set),
                            "; ".join(f"{s['source']} ({s['reason']})" for s in skipped))


def skipped_photos(image_sets: dict[str, Any]) -> list[dict[str, Any]]:
    """The photos ``config.align_failures="skip"`` left out of ``image_sets``, each once:
    source, reason, message, size, detector settings, sha256 (``[]`` if none)."""
    entries, seen = [], set()
    for image_set in image_sets.values():
        for entry in getattr(image_set, "skipped", ()):
            if entry["source"] not in seen:  # one file in several roles
                seen.add(entry["source"])
                entries.append(json.loads(fio.to_json(entry)))
    return entries


def record_alignment(manifest: run_dirs.Manifest, image_sets: dict[str, Any]) -> None:
    """The manifest's ``extra.alignment``: one ``AlignmentInfo`` per aligned input file;
    and ``extra.alignment_skipped``: the photos left out (:func:`skipped_photos`)."""
    entries, seen = [], set()
    for image_set in image_sets.values():
        for info in getattr(image_set, "alignment", ()):
            if info.source not in seen:  # one file in several roles
                seen.add(info.source)
                entries.append(info.to_dict())
    if entries:
        manifest.set_extra("alignment", entries)
    skipped = skipped_photos(image_sets)
    if skipped:
        manifest.set_extra("alignment_skipped", skipped)
