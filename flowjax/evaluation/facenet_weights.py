"""FaceNet's network and its pretrained weights, loaded safely.

This module answers one question for :mod:`flowjax.evaluation.identity`: how to
get facenet-pytorch's ``InceptionResnetV1`` with trusted weights, without
executing anything a weights file or a broken torchvision could bring in. It
holds the known releases (:data:`PRETRAINED`), where their files live
(:func:`default_weights_path`), checked loading (:func:`load_weights_file`) and
the record of what was loaded (:class:`WeightsProvenance`). Crops and the
embedder itself stay in ``identity``.

Why the network is loaded without ``import facenet_pytorch``: the package's
``__init__`` imports MTCNN, whose face-detection utilities import torchvision.
Where torchvision's compiled ops do not match the installed torch (a CPU build
of torch with a mismatched torchvision, as on the project's CI), that import
raises ``RuntimeError: operator torchvision::nms does not exist``.
``InceptionResnetV1`` needs only torch: its file imports ``os``, ``requests``,
``torch`` and the sibling ``utils/download.py`` (standard library + tqdm), no
torchvision. So the file is located with ``importlib.util.find_spec`` (which
does not execute the package) and executed as a submodule of a private,
synthetic package whose search path is facenet-pytorch's ``models/`` folder;
its relative import of ``.utils.download`` resolves there.

Weights are facenet-pytorch's releases (ports of David Sandberg's facenet
models): ``"vggface2"`` (20180402-114759, default) or ``"casia-webface"``
(20180408-102900). They are read from ``weights_path`` or from facenet-pytorch's
own cache (``$TORCH_HOME/checkpoints``, default ``~/.cache/torch/checkpoints``),
downloaded there with facenet-pytorch's downloader when missing and allowed,
checked against the known sha256 (:data:`PRETRAINED`), and loaded with
``torch.load(..., weights_only=True)``; facenet-pytorch's own ``pretrained=``
path is not used because it calls ``torch.load`` without ``weights_only``,
which unpickles arbitrary objects on torch < 2.6. The files also hold the
classifier layer (``logits``, one output per training identity), which an
embedder does not use: its shape is checked against the variant and it is
dropped; every other parameter must match exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
import types
from collections.abc import Mapping
from pathlib import Path

import torch

from flowjax import io as fio

logger = logging.getLogger(__name__)

# The network's output (and the width of the `logits` layer's input).
EMBEDDING_DIM = 512


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """One of facenet-pytorch's released state dicts."""

    name: str
    filename: str
    url: str
    num_classes: int  # rows of the `logits` layer: identities in the training set
    sha256: str | None  # None: no published checksum could be established


_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
# URLs and file names as in facenet-pytorch 2.5.3 `load_weights`. The VGGFace2
# checksum (111,898,327 bytes) is the one pinned independently by several public
# projects that download this file; no checksum for the CASIA-WebFace file could
# be found, so it is recorded (FaceEmbedder.provenance) but not verified.
PRETRAINED: dict[str, PretrainedWeights] = {
    "vggface2": PretrainedWeights(
        "vggface2",
        "20180402-114759-vggface2.pt",
        _RELEASE + "20180402-114759-vggface2.pt",
        8631,
        "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
    ),
    "casia-webface": PretrainedWeights(
        "casia-webface",
        "20180408-102900-casia-webface.pt",
        _RELEASE + "20180408-102900-casia-webface.pt",
        10575,
        None,
    ),
}

_SHA256 = re.compile(r"[0-9a-f]{64}")
# Private name under which facenet-pytorch's models/ folder is mounted (see the
# module docstring); it must not be "facenet_pytorch", whose __init__ is the
# part that fails.
_PRIVATE_PACKAGE = "_flowjax_facenet_pytorch_models"


@dataclasses.dataclass(frozen=True)
class WeightsProvenance:
    """Where an embedder's weights came from (JSON-friendly via ``dataclasses.asdict``).

    ``verified`` is True only when the file's sha256 was compared with a known
    checksum and matched; ``seed`` is set only for randomly initialised weights.
    """

    name: str
    path: str | None
    sha256: str | None
    expected_sha256: str | None
    verified: bool
    url: str | None
    seed: int | None = None


# --------------------------------------------------------------------------
# facenet-pytorch, without its package __init__

# --------------------------------------------------------------------------
# facenet-pytorch, without its package __init__
# --------------------------------------------------------------------------


@functools.cache
def _facenet_models() -> types.ModuleType:
    """facenet-pytorch's ``models/inception_resnet_v1.py``, executed without torchvision."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "facenet-pytorch is not installed; install it with "
            "`pip install facenet-pytorch==2.5.3` (see setup.cfg)."
        )
    models_dir = Path(list(spec.submodule_search_locations)[0]) / "models"
    source = models_dir / "inception_resnet_v1.py"
    if not source.is_file():
        raise ImportError(
            f"facenet-pytorch at {models_dir.parent} has no {source.name} in models/; "
            "expected facenet-pytorch 2.5.x: reinstall facenet-pytorch==2.5.3."
        )
    package = types.ModuleType(_PRIVATE_PACKAGE)
    package.__path__ = [str(models_dir)]
    package.__spec__ = importlib.machinery.ModuleSpec(
        _PRIVATE_PACKAGE, None, is_package=True
    )
    package.__spec__.submodule_search_locations = [str(models_dir)]
    sys.modules[_PRIVATE_PACKAGE] = package
    name = f"{_PRIVATE_PACKAGE}.inception_resnet_v1"
    module_spec = importlib.util.spec_from_file_location(name, source)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name], sys.modules[_PRIVATE_PACKAGE]
        raise
    return module


def facenet_pytorch_version() -> str | None:
    """The installed facenet-pytorch version (from its metadata), or None."""
    try:
        return importlib.metadata.version("facenet-pytorch")
    except importlib.metadata.PackageNotFoundError:
        return None


def default_weights_path(weights: str = "vggface2") -> Path:
    """Where facenet-pytorch caches ``weights``: ``$TORCH_HOME/checkpoints/<file>``."""
    spec = pretrained_weights(weights)
    torch_home = _facenet_models().get_torch_home()
    return Path(torch_home) / "checkpoints" / spec.filename


# --------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------


def pretrained_weights(weights: str) -> PretrainedWeights:
    """The release named ``weights``; ValueError naming the known ones otherwise."""
    if weights not in PRETRAINED:
        raise ValueError(
            f"weights must be one of {sorted(PRETRAINED)}, got {weights!r}"
        )
    return PRETRAINED[weights]


def _where_to_get(spec: PretrainedWeights, path: Path) -> str:
    return (
        f"Put facenet-pytorch's {spec.name} weights, the file {spec.filename!r} "
        f"from {spec.url}, at {path} (e.g. `curl -L -o '{path}' {spec.url}`), or "
        "pass weights_path=... to a copy elsewhere."
    )


def resolve_weights_file(
    spec: PretrainedWeights, weights_path: str | os.PathLike | None, download: bool
) -> Path:
    """The weights file to load: ``weights_path``, else the cache (downloading if allowed).

    FileNotFoundError / RuntimeError name the file and where to get it.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"FaceNet weights file not found: {path}. " + _where_to_get(spec, path)
            )
        return path
    path = default_weights_path(spec.name)
    if path.is_file():
        return path
    if not download:
        raise FileNotFoundError(
            f"FaceNet weights not found in facenet-pytorch's cache: {path} "
            "(download=False). " + _where_to_get(spec, path)
        )
    logger.info("downloading %s to %s", spec.url, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Downloads to a temporary file and moves it into place only once the
        # sha256 matches, so no partial or wrong file is left in the cache.
        _facenet_models().download_url_to_file(spec.url, str(path), hash_prefix=spec.sha256)
    except Exception as error:
        raise RuntimeError(
            f"could not download FaceNet weights from {spec.url} to {path} "
            f"({type(error).__name__}: {error}). " + _where_to_get(spec, path)
        ) from error
    return path


def load_weights_file(
    path: str | os.PathLike,
    weights: str = "vggface2",
    expected_sha256: str | None = None,
) -> tuple[dict[str, torch.Tensor], WeightsProvenance]:
    """Checksum and load a facenet-pytorch state dict, without the ``logits`` layer.

    ``expected_sha256`` overrides the known checksum of ``weights`` (for your own
    copy of other weights); with neither, the actual sha256 is computed and
    recorded but not verified. Raises ValueError on a checksum mismatch, a file
    that is not a state dict, or a ``logits`` layer of another variant.
    """
    spec = pretrained_weights(weights)
    path = Path(path)
    if expected_sha256 is not None and not _SHA256.fullmatch(expected_sha256):
        raise ValueError(
            f"expected_sha256 must be 64 lowercase hex digits, got {expected_sha256!r}"
        )
    expected = expected_sha256 if expected_sha256 is not None else spec.sha256
    actual = fio.sha256_file(path)
    if expected is not None and actual != expected:
        raise ValueError(
            f"checksum mismatch for FaceNet {spec.name} weights {path}: expected "
            f"sha256 {expected}, got {actual}. The file is corrupt, truncated or a "
            f"different model: re-download {spec.url}, or pass weights= matching "
            "the file, or expected_sha256= if you deliberately use other weights."
        )
    if expected is None:
        logger.warning(
            "no known sha256 for FaceNet %s weights; %s has sha256 %s (recorded, "
            "not verified)",
            spec.name,
            path,
            actual,
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{path} could not be loaded as a torch state dict "
            f"({type(error).__name__}: {error}); expected facenet-pytorch's "
            f"{spec.filename} from {spec.url}."
        ) from error
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a state dict of tensors; "
            f"expected facenet-pytorch's {spec.filename} from {spec.url}."
        )
    logits = state.get("logits.weight")
    if logits is not None and tuple(logits.shape) != (spec.num_classes, EMBEDDING_DIM):
        raise ValueError(
            f"{path}: logits.weight has shape {tuple(logits.shape)}, but {spec.name} "
            f"weights classify {spec.num_classes} identities, shape "
            f"({spec.num_classes}, {EMBEDDING_DIM}) (vggface2: 8631, casia-webface: "
            "10575); pass the weights= name that matches the file."
        )
    # The classifier over training identities is not part of the embedding.
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    provenance = WeightsProvenance(
        name=spec.name,
        path=str(path),
        sha256=actual,
        expected_sha256=expected,
        verified=expected is not None,
        url=spec.url,
    )
    return state, provenance


def build_network(state: Mapping[str, torch.Tensor] | None, path: str | None) -> torch.nn.Module:
    """InceptionResnetV1 (embedding only) with ``state`` loaded strictly; None: random init.

    ``path`` names the source of ``state`` in the ValueError for mismatched parameters.
    """
    network = _facenet_models().InceptionResnetV1(pretrained=None, classify=False)
    if state is None:
        return network
    want = set(network.state_dict())
    missing, unexpected = sorted(want - set(state)), sorted(set(state) - want)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match InceptionResnetV1: {len(missing)} missing "
            f"parameters {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"{len(unexpected)} unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}; expected a facenet-pytorch "
            "release state dict (vggface2 or casia-webface)."
        )
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:  # shape mismatches
        raise ValueError(f"{path} does not match InceptionResnetV1: {error}") from error
    return network


