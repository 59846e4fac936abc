"""The face detector the live editor aligns uploads with, chosen once when it starts.

``config.align_detector`` (configs/explore.py):

* ``"auto"`` (the editor's default): dlib when it loads
  (:mod:`flowjax.faces.dlib_models`, the optional extra ``.[faces]``: OpenAI's
  demo alignment, ~2.5 s per photo on 2 CPU cores), else MTCNN when it loads
  (facenet-pytorch, which needs a torchvision built for the installed torch),
  else none;
* a detector name or ``"module:factory"``
  (:func:`flowjax.faces.detectors.detector_from_spec`): that one if it loads,
  else none (the one asked for, never another behind the user's back).

"Loads" means built: dlib's model files read and checksummed, MTCNN's network
loaded, a factory called. So the page knows before it is shown whether to offer
the "align" checkbox, and the first align does not pay the load. With none it
offers no align option and shows :attr:`DetectorChoice.note`, why not in one
line; the full errors go to the server's log. A malformed spec is still an
error at start (a typo in the config is not a missing detector).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from flowjax.faces import align, detectors, dlib_models

logger = logging.getLogger(__name__)

AUTO = "auto"
AUTO_ORDER = ("dlib", "mtcnn")  # what "auto" tries, first that loads wins
WHAT = "config.align_detector"
_SHOWN = {"dlib": "dlib (HOG + 68 landmarks, OpenAI's demo alignment)",
          "mtcnn": "MTCNN (facenet-pytorch)"}


def _known_cause(name: str) -> str | None:
    """Why a named detector cannot load, found without building it (whose message is long)."""
    if name == "dlib":
        return dlib_models.dlib_import_error()
    if name == "mtcnn":
        return detectors.mtcnn_import_error()
    return None


@dataclasses.dataclass(frozen=True)
class DetectorChoice:
    """The detector that loaded (None: none did), its name, and what the page says."""

    detector: detectors.Detector | None
    name: str | None
    note: str

    def aligner(self, size: int, multiple_faces: str = "largest"
                ) -> Callable[[np.ndarray], np.ndarray] | None:
        """``uint8 [H, W, 3] -> uint8 [size, size, 3]`` with this detector, or None."""
        if multiple_faces not in align.MULTIPLE_FACES_POLICIES:
            raise ValueError(f"config.align_multiple_faces must be one of "
                             f"{align.MULTIPLE_FACES_POLICIES}, got {multiple_faces!r}")
        detector = self.detector
        if detector is None:
            return None

        def aligned(image: np.ndarray) -> np.ndarray:
            return align.align_photo(image, detector, size, multiple_faces)[0]

        return aligned


def _load(spec: str, options: Mapping[str, Any]) -> tuple[detectors.Detector | None, str]:
    """``(detector, "")`` if ``spec`` builds, else ``(None, why not in one line)``."""
    reason = _known_cause(spec)
    if reason is not None:
        logger.warning("face detector %r does not load: %s", spec, reason)
        return None, reason
    try:
        return detectors.detector_from_spec(spec, WHAT, dict(options)), ""
    except (ImportError, OSError, RuntimeError, ValueError) as error:
        logger.warning("face detector %r does not load: %s", spec, error)
        text = f"{type(error).__name__}: {error}"
        return None, text if len(text) <= 300 else text[:297] + "..."


def choose_detector(spec: str = AUTO, options: Mapping[str, Any] | None = None
                    ) -> DetectorChoice:
    """The detector ``spec`` names (see the module docstring), built now.

    Raises:
      ValueError: ``spec`` is neither ``"auto"``, a detector name nor ``"module:factory"``.
    """
    options = {k: v for k, v in (options or {}).items() if v is not None}
    candidates = AUTO_ORDER if spec == AUTO else (spec,)
    if spec != AUTO:
        detectors.parse_detector_spec(spec, WHAT)  # a typo is an error, not "no detector"
    reasons = []
    for name in candidates:
        detector, reason = _load(name, options)
        if detector is not None:
            logger.info("uploads are aligned with the face detector %r", name)
            return DetectorChoice(detector, name, f"faces detected with {_SHOWN.get(name, name)}")
        reasons.append(f"{name}: {reason}")
    asked = "no face detector loads on this server" if spec == AUTO else \
        f"the face detector {spec!r} ({WHAT}) does not load"
    return DetectorChoice(None, None, f"{asked} ({'; '.join(reasons)})")
