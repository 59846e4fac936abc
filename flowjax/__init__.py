"""flowjax: Glow in JAX/Flax for expression transfer and attribute manipulation.

The distribution is named ``flowjax-glow``; the import package is ``flowjax``.
Its own names are the few a researcher uses first: load a model
(``load_model``, ``Glow``, ``init``), move images in and out of its latent
space (``load_images``, ``encode``, ``decode``, ``encode_images``), build and
sweep transfers (``identity_stats``, ``expression_vector``,
``attribute_vector``, ``alpha_grid``, ``transfer_sweep``, ``attribute_sweep``),
evaluate (``evaluate_run``, ``evaluate_study``) and read what an image is
(``read_png_provenance``). Each sub-package lists its own; ``docs/api.md``
has them all, and the README's "Quick API example" uses them.

The packages, lowest first (each may import only those below it; a test holds
them to it): ``io`` and ``flows``; ``models``; ``synthetic``, ``faces`` and
``convert``; ``transfer`` and ``training``; ``runs``; ``evaluation``; ``app``.

Names load on first use, so ``import flowjax`` stays cheap (no JAX, Flax,
orbax or torch until a name that needs them is touched).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__version__ = "0.1.0"


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose names load on first use.

    ``exports`` maps each public name to the module that defines it
    (``{"Experiment": "flowjax.runs.experiment"}``). A package uses this where
    importing its modules up front would cost a caller that needs none of them.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__


_PUBLIC = {
    "load_model": "flowjax.models.checkpoints",
    "save_model": "flowjax.models.checkpoints",
    "Glow": "flowjax.models.glow",
    "init": "flowjax.models.glow",
    "encode": "flowjax.models.glow",
    "decode": "flowjax.models.glow",
    "NonFiniteError": "flowjax.models.errors",
    "load_images": "flowjax.io.images",
    "write_png": "flowjax.io.png",
    "read_png_provenance": "flowjax.io.png",
    "identity_stats": "flowjax.transfer.latents",
    "expression_vector": "flowjax.transfer.latents",
    "attribute_vector": "flowjax.transfer.latents",
    "alpha_grid": "flowjax.transfer.latents",
    "encode_images": "flowjax.transfer.sweep",
    "transfer_sweep": "flowjax.transfer.sweep",
    "attribute_sweep": "flowjax.transfer.sweep",
    "evaluate_run": "flowjax.evaluation.pipeline",
    "evaluate_study": "flowjax.evaluation.pipeline",
}
_SUBPACKAGES = ("io", "flows", "models", "synthetic", "faces", "convert", "transfer", "training", "runs",
                "evaluation", "app")
__all__ = [*_PUBLIC]
_getattr, _dir = lazy_exports(__name__, _PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    return _getattr(name)


def __dir__() -> list[str]:
    return sorted([*_dir(), *_SUBPACKAGES, "__version__", "lazy_exports"])
