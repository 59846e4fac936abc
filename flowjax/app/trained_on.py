"""What the editor's model was trained on, read from its checkpoint's own record.

A ``save_model`` export made by ``tools.export_model`` records the training
config in ``metadata.json`` (``training_config``); a training workdir has it in
``config.json``, beside ``checkpoints/<step>/`` (``flowjax.training.train``).
Its ``data.source`` says what the model saw: ``"synthetic"`` or ``"generated"``
are ``flowjax.synthetic``'s procedural cartoon faces, ``"folder"`` images from
disk. A model that knows only cartoon faces moves a real photo badly (its
attribute and expression directions distort the face), so the page says so
near the model line (:func:`synthetic_note`). No record (a converted published
model, an older export) says nothing: the note is for what the checkpoint
itself states, never a guess from its path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowjax.runs.names import display_path

logger = logging.getLogger(__name__)

SYNTHETIC_SOURCES = ("synthetic", "generated")  # training's config.data.source values
EXPORT_RECORD, WORKDIR_RECORD = "metadata.json", "config.json"


def training_config(checkpoint: str | Path) -> tuple[dict[str, Any] | None, Path | None]:
    """``(training config, the file it was read from)``, or ``(None, None)`` unrecorded.

    Looks in an export's ``metadata.json``, a training workdir's ``config.json``,
    and, for one step of a workdir (``<workdir>/checkpoints/<step>``), the
    workdir's ``config.json``."""
    checkpoint = Path(checkpoint)
    places = [(checkpoint / EXPORT_RECORD, "training_config"),
              (checkpoint / WORKDIR_RECORD, None)]
    if checkpoint.parent.name == "checkpoints":
        places.append((checkpoint.parent.parent / WORKDIR_RECORD, None))
    for path, key in places:
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            logger.warning("cannot read the training record %s (%s); the page shows no note "
                           "on the model's training data", path, error)
            return None, None
        config = record.get(key) if key and isinstance(record, dict) else record
        if isinstance(config, dict):
            return config, path
    return None, None


def synthetic_note(model_record: Mapping[str, Any]) -> str | None:
    """The page's note when the record's checkpoint says it was trained on synthetic
    faces (``runs.load_model``'s record: ``checkpoint``, ``random_init``); else None."""
    checkpoint = model_record.get("checkpoint")
    if not checkpoint or model_record.get("random_init"):
        return None
    config, path = training_config(checkpoint)
    data = config.get("data") if config else None
    source = data.get("source") if isinstance(data, dict) else None
    if source not in SYNTHETIC_SOURCES:
        return None
    setting = data.get("synthetic_setting")
    what = f"data.source={source!r}" + (f", setting {setting!r}" if setting else "")
    return (f"This model was trained only on synthetic cartoon faces (flowjax.synthetic; "
            f"{what} in {display_path(path)}). On a real photo its attribute and expression "
            "directions distort the face badly: for photos, load a model trained on photos "
            "(--config.checkpoint).")
