"""OpenAI's CelebA attribute directions, ``z_manipulate.npy``, for the CelebA-HQ Glow.

The file (``https://openaipublic.azureedge.net/glow-demo/z_manipulate.npy``,
formerly on ``storage.googleapis.com``) is float32 ``[40, 196608]``: one row per
CelebA attribute in the standard CelebA order (:data:`CELEBA_ATTRIBUTES`), each
row ``1.6 * (mean eps | attribute) - 1.6 * (mean eps | not attribute)`` in the
flat latent layout of :mod:`flowjax.transfer.latents` (levels 0..5, row-major H, W, C).

OpenAI's demo edits the rows when it loads them; ``demo_edits=True`` does the
same and records it in :attr:`AttributeVectors.edits`:

* ``No_Beard`` (24) is negated and renamed ``Beard``;
* ``Young`` (39) is negated and renamed ``Age``;
* ``Narrow_Eyes`` (23) is multiplied by 1.2 (name unchanged).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any

import numpy as np

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes",
    "Bald", "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair",
    "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie",
    "Young",
)  # fmt: skip

OPENAI_FLAT_DIM = 196_608  # 256 * 256 * 3, the CelebA-HQ model's flat eps
DEMO_SLIDERS = ("Smiling", "Age", "Narrow_Eyes", "Blond_Hair", "Beard")
DEMO_DEFAULT_ALPHA = 0.66


@dataclasses.dataclass(frozen=True)
class AttributeEdit:
    """One change applied at load time: row ``index`` was ``original_name``,
    is now ``name`` and was multiplied by ``factor``."""

    index: int
    original_name: str
    name: str
    factor: float


# The demo's edits (demo/model.py), in the order it applies them.
DEMO_EDITS: tuple[AttributeEdit, ...] = (
    AttributeEdit(24, "No_Beard", "Beard", -1.0),
    AttributeEdit(39, "Young", "Age", -1.0),
    AttributeEdit(23, "Narrow_Eyes", "Narrow_Eyes", 1.2),
)


@dataclasses.dataclass(frozen=True, eq=False)
class AttributeVectors:
    """Named attribute directions: ``vectors[i]`` is the flat direction ``names[i]``.

    ``vectors`` is float32 ``[n, D]`` and read-only.
    """

    names: tuple[str, ...]
    vectors: np.ndarray
    source: str = "<memory>"
    edits: tuple[AttributeEdit, ...] = ()

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.names):
            raise ValueError(
                f"{self.source}: {len(self.names)} names need vectors of shape "
                f"[{len(self.names)}, D], got {self.vectors.shape}"
            )

    def index(self, name: str) -> int:
        """Row of ``name``; case, spaces and hyphens are forgiven when unambiguous."""
        if name in self.names:
            return self.names.index(name)
        wanted = _normalise(name)
        matches = [i for i, n in enumerate(self.names) if _normalise(n) == wanted]
        if len(matches) == 1:
            return matches[0]
        hint = ""
        for edit in self.edits:
            if edit.original_name != edit.name and _normalise(edit.original_name) == wanted:
                hint = (
                    f" '{edit.original_name}' was renamed '{edit.name}' and multiplied "
                    f"by {edit.factor:g} (demo_edits=True)."
                )
        close = difflib.get_close_matches(name, self.names, n=5, cutoff=0.5)
        raise KeyError(
            f"no attribute named {name!r} in {self.source}.{hint} "
            f"Close names: {close or 'none'}. All names: {list(self.names)}"
        )

    def get(self, name: str) -> np.ndarray:
        """The flat direction [D] of attribute ``name`` (a read-only view)."""
        return self.vectors[self.index(name)]

    def describe(self) -> dict[str, Any]:
        """JSON-ready record for a manifest (no vectors)."""
        return {
            "source": self.source,
            "shape": list(self.vectors.shape),
            "names": list(self.names),
            "edits": [dataclasses.asdict(e) for e in self.edits],
        }


def load_attribute_vectors(
    path: str | os.PathLike,
    demo_edits: bool = False,
    expected_dim: int | None = OPENAI_FLAT_DIM,
) -> AttributeVectors:
    """Load and validate ``z_manipulate.npy`` (float32 [40, expected_dim], finite).

    ``expected_dim=None`` accepts any width (e.g. vectors for another model
    size). ``demo_edits`` applies :data:`DEMO_EDITS` as OpenAI's demo does.
    """
    path = os.fspath(path)
    what_to_do = (
        "use OpenAI's file from https://openaipublic.azureedge.net/glow-demo/"
        "z_manipulate.npy or save float32 [40, D] rows with np.save"
    )
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file; {what_to_do}") from None
    except ValueError as error:  # pickled content, including object arrays
        raise ValueError(
            f"{path}: not a plain numeric .npy array ({error}); pickled data is never "
            f"loaded for safety; {what_to_do}"
        ) from error
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise ValueError(
            f"{path}: expected a single .npy array, got an .npz archive; {what_to_do}"
        )
    expected_shape = (len(CELEBA_ATTRIBUTES), "D" if expected_dim is None else expected_dim)
    if loaded.ndim != 2 or loaded.shape[0] != len(CELEBA_ATTRIBUTES) or (
        expected_dim is not None and loaded.shape[1] != expected_dim
    ):
        raise ValueError(
            f"{path}: expected shape {expected_shape} (one row per CelebA attribute, "
            f"flat OpenAI latent layout), got {loaded.shape}; {what_to_do}"
        )
    if loaded.dtype != np.float32:
        raise ValueError(
            f"{path}: expected dtype float32, got {loaded.dtype}; convert with "
            "np.save(path, array.astype(np.float32)) if the values are right"
        )
    finite = np.isfinite(loaded)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(
            f"{path}: {int((~finite).sum())} non-finite values (NaN or inf), in rows "
            f"{[CELEBA_ATTRIBUTES[i] for i in bad_rows]}; the file is corrupt, {what_to_do}"
        )
    vectors = np.array(loaded, dtype=np.float32)
    names = list(CELEBA_ATTRIBUTES)
    edits: tuple[AttributeEdit, ...] = ()
    if demo_edits:
        for edit in DEMO_EDITS:
            # float32 factor, as numpy does for `1.2 * z_manipulate[i]` in the demo.
            vectors[edit.index] *= np.float32(edit.factor)
            names[edit.index] = edit.name
        edits = DEMO_EDITS
    vectors.flags.writeable = False
    return AttributeVectors(names=tuple(names), vectors=vectors, source=path, edits=edits)


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")
