"""Action Units with OpenFace 2.x: run ``FaceLandmarkImg``, parse its CSVs.

OpenFace (Baltrusaitis et al., FG 2018) estimates 17 AU intensities
(``AU*_r``, 0-5) and 18 AU presences (``AU*_c``, 0/1; AU28 has no intensity
model). Generated faces are scored one image at a time with
``FaceLandmarkImg``, which uses the *static* AU models. ``FeatureExtraction``
(video mode) subtracts a per-person neutral estimated over the sequence and so
gives different numbers for the same image; its CSVs are parsed too, but the
scorer never uses it.

The CSV parser and per-image results (``read_openface_csv``,
``collect_facelandmarkimg_outputs``, ...) live in
:mod:`flowjax.evaluation.openface_csv` and are importable from here too.
This module runs ``FaceLandmarkImg`` and wraps it as an AU scorer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from flowjax.evaluation.openface_csv import (  # noqa: F401  (re-exported)
    FACE_POLICY, INTENSITY_MAX, OPENFACE_INTENSITY_AUS, OPENFACE_PRESENCE_AUS, Face, FaceStatus,
    ImageAUResult, OpenFaceCSV, collect_facelandmarkimg_outputs, no_face_result,
    read_openface_csv, results_from_csv)

BINARY_ENV_VAR = "FLOWJAX_OPENFACE_BIN"
DEFAULT_TIMEOUT_S = 600.0


# --------------------------------------------------------------------------
# Running OpenFace
# --------------------------------------------------------------------------


def find_openface_binary(binary: str | os.PathLike | None = None) -> Path:
    """Resolves FaceLandmarkImg: ``binary`` if given, else ``$FLOWJAX_OPENFACE_BIN``,
    else ``FaceLandmarkImg`` on PATH; FileNotFoundError saying how to configure."""
    how = (
        "Build OpenFace 2.x (https://github.com/TadasBaltrusaitis/OpenFace/wiki), "
        f"then pass the path of its FaceLandmarkImg binary (binary=...) or set "
        f"{BINARY_ENV_VAR}=/path/to/OpenFace/build/bin/FaceLandmarkImg."
    )
    given = binary if binary is not None else os.environ.get(BINARY_ENV_VAR)
    if given is None:
        found = shutil.which("FaceLandmarkImg")
        if found is None:
            raise FileNotFoundError(f"OpenFace is not configured. {how}")
        return Path(found)
    path = Path(given)
    if path.is_dir():
        inside = path / "FaceLandmarkImg"
        hint = f" ({inside} exists: give that)" if inside.is_file() else (
            " (after building OpenFace it is build/bin/FaceLandmarkImg)")
        raise IsADirectoryError(
            f"OpenFace binary {str(given)!r} is a directory, not the FaceLandmarkImg "
            f"executable{hint}. Set action_units.openface.binary or {BINARY_ENV_VAR} to "
            "the binary itself.")
    if not path.is_file():
        found = shutil.which(str(given))
        if found is None:
            raise FileNotFoundError(f"OpenFace binary {str(given)!r} does not exist. {how}")
        path = Path(found)
    if not os.access(path, os.X_OK):
        raise PermissionError(f"OpenFace binary {path} is not executable (chmod +x it).")
    return path


def facelandmarkimg_command(
    binary: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    images: Sequence[str | os.PathLike] | None = None,
    image_dir: str | os.PathLike | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The FaceLandmarkImg command line, AUs only (``-aus``).

    Exactly one of ``images`` (each passed as ``-f <img>``) or ``image_dir``
    (``-fdir``; OpenFace reads its .jpg/.jpeg/.png/.bmp files) is given.
    ``-aus`` is the only output flag, so OpenFace writes the AU columns and no
    landmarks, HOG, aligned faces or tracked images.
    """
    if (images is None) == (image_dir is None):
        raise ValueError("give exactly one of images= or image_dir=")
    cmd = [str(binary)]
    if images is not None:
        if not images:
            raise ValueError("images= is empty: nothing for OpenFace to score")
        for image in images:
            cmd += ["-f", str(image)]
    else:
        cmd += ["-fdir", str(image_dir)]
    return cmd + ["-out_dir", str(out_dir), "-aus", *map(str, extra_args)]


def run_facelandmarkimg(
    binary: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    images: Sequence[str | os.PathLike] | None = None,
    image_dir: str | os.PathLike | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    extra_args: Sequence[str] = (),
) -> str:
    """Runs FaceLandmarkImg into ``out_dir`` (new or empty) and returns its log.

    Raises:
      ValueError: ``out_dir`` holds files (stale CSVs would be read as results).
      TimeoutError: the run exceeded ``timeout_s``; it is killed with its children.
      RuntimeError: non-zero exit, with the code and the end of its log.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"OpenFace output directory {out_dir} is not empty; give a new one.")
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = facelandmarkimg_command(
        binary, out_dir, images=images, image_dir=image_dir, extra_args=extra_args
    )
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # so a timeout can kill OpenFace's whole group
    )
    try:
        log, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.communicate()
        raise TimeoutError(
            f"OpenFace ran longer than {timeout_s} s and was killed: {' '.join(cmd)}. "
            "Raise timeout_s or score fewer images per call."
        ) from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"OpenFace exited with code {proc.returncode}: {' '.join(cmd)}\n"
            f"--- end of its output ---\n{log[-2000:]}"
        )
    return log


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------


@runtime_checkable
class ActionUnitScorer(Protocol):
    """Anything that scores AUs: OpenFace, or a learned (e.g. CNN) stand-in.

    ``au_names`` names the output columns (``"AU06"``, ...); calling it on uint8
    RGB images ``[N, H, W, 3]`` returns float intensities ``[N, len(au_names)]``
    on OpenFace's 0-5 scale, with a NaN row where no face was found.
    """

    au_names: tuple[str, ...]

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            "expected uint8 RGB images [N, H, W, 3], got "
            f"{images.dtype} {images.shape}; convert with flowjax.io.images first."
        )
    return images


class OpenFaceScorer:
    """ActionUnitScorer backed by OpenFace's FaceLandmarkImg (static AU models).

    Each call writes the images as PNGs to a temporary directory, runs
    FaceLandmarkImg once on the directory, parses the CSVs and deletes the
    directory. ``score`` gives the per-image results (status, every face);
    calling the scorer gives the chosen faces' intensities.
    """

    def __init__(
        self,
        binary: str | os.PathLike | None = None,
        *,
        au_names: Sequence[str] = OPENFACE_INTENSITY_AUS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        extra_args: Sequence[str] = (),
    ):
        self.binary = find_openface_binary(binary)
        self.au_names = tuple(au_names)
        self.timeout_s = timeout_s
        self.extra_args = tuple(extra_args)

    def score(self, images: np.ndarray) -> list[ImageAUResult]:
        """Per-image results, in input order (named ``img_000000``, ...)."""
        from PIL import Image  # only needed when OpenFace actually runs

        images = _check_images(images)
        with tempfile.TemporaryDirectory(prefix="flowjax_openface_") as tmp:
            in_dir, out_dir = Path(tmp, "images"), Path(tmp, "openface")
            in_dir.mkdir()
            paths = [in_dir / f"img_{i:06d}.png" for i in range(len(images))]
            for path, image in zip(paths, images):
                Image.fromarray(image).save(path)
            run_facelandmarkimg(
                self.binary,
                out_dir,
                image_dir=in_dir,
                timeout_s=self.timeout_s,
                extra_args=self.extra_args,
            )
            return collect_facelandmarkimg_outputs(out_dir, paths)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Intensities ``[N, len(au_names)]``; NaN rows for ``no_face`` images."""
        rows = [r.intensities(self.au_names) for r in self.score(images)]
        return np.stack(rows) if rows else np.zeros((0, len(self.au_names)))
