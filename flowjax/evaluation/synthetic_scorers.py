"""Synthetic stand-ins for facenet (identity), OpenFace (Action Units) and a fake detector.

Small Flax CNNs trained on :mod:`flowjax.synthetic` renders (64x64, nuisance
on) by ``experiments/train_scorers.py``, which measures them on renders of
identities they never saw (numbers in ``configs/train_scorers.py``):

* :class:`SyntheticAUScorer` regresses the renderer's 9 AU intensities
  (``flowjax.synthetic.AU_NAMES``, 0-5 scale, clipped to [0, 5]); it follows
  :class:`~flowjax.evaluation.action_units.ActionUnitScorer`.
* :class:`SyntheticIdentityEmbedder` maps a face to an L2-normalised
  embedding; same-identity photos are close whatever their expression, pose
  and lighting. It follows :class:`~flowjax.evaluation.scorers.IdentityEmbedder`,
  and distances are Euclidean (``metrics.identity_distance``), in [0, 2].
* :class:`SyntheticFakeDetector` gives the probability that a face is *not*
  a clean render (trained on generic fakes, :mod:`flowjax.evaluation.fakes`),
  and the **realism** score, defined once in :func:`realism_from_logits`.

They know only the renderer's cartoon faces: on photographs their outputs mean
nothing. The renderer ties a background colour to each identity; the embedder
is trained with a random background per photo, so, like facenet on a face
crop, it judges the face (shape, skin, hair, eyes, lips), not the background.

Weights. Each scorer is two files in a weights folder (default: a clone's
``weights/demo/scorers/``, which a non-editable install lacks): ``<kind>.npz``,
the parameters as plain float32 arrays keyed by their path (``params/conv0/kernel``;
read with ``allow_pickle=False``), and ``<kind>.json``, the architecture, the npz's
sha256 and the training and evaluation record. Loading checks the sha256 and
every parameter's name and shape; anything missing or different raises an
error that says how to regenerate the files (``REGENERATE_COMMAND``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flowjax import io as fio
from flowjax.synthetic import AU_MAX, AU_NAMES

__all__ = [
    "ScorerCNN", "SyntheticAUScorer", "SyntheticIdentityEmbedder", "build_au_scorer",
    "build_identity_embedder", "SyntheticFakeDetector", "build_fake_detector",
    "realism_from_logits", "save_scorer", "load_scorer", "DEFAULT_WEIGHTS_DIR",
    "REGENERATE_COMMAND", "KINDS", "check_weights_dir",
]  # fmt: skip

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights" / "demo" / "scorers"
REGENERATE_COMMAND = ("python run.py --config=configs/train_scorers.py --workdir=runs/train_scorers "
                      "--config.install_dir=weights/demo/scorers")
KINDS = ("au", "identity", "detector")
FORMAT = "flowjax.synthetic_scorer"
FORMAT_VERSION = 1
IMAGE_SIZE = 64


class ScorerCNN(nn.Module):
    """A plain CNN on uint8 faces: 3x3 conv + ReLU layers, a hidden dense layer, a linear head.

    The flattened last feature map (not a global pool) feeds the dense layer,
    so the head knows *where* a feature is: faces are roughly aligned, and an
    AU is defined by what moves where. ``input_pool`` average-pools the input
    first (identity needs less detail than AUs); ``normalize`` L2-normalises
    the output (embeddings).
    """

    features: tuple[int, ...]
    strides: tuple[int, ...]
    hidden: int
    outputs: int
    input_pool: int = 1
    normalize: bool = False

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = images.astype(jnp.float32) / 127.5 - 1.0
        if self.input_pool > 1:
            x = nn.avg_pool(x, (self.input_pool,) * 2, strides=(self.input_pool,) * 2)
        for i, (width, stride) in enumerate(zip(self.features, self.strides, strict=True)):
            x = nn.relu(nn.Conv(width, (3, 3), strides=stride, name=f"conv{i}")(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.hidden, name="hidden")(x))
        x = nn.Dense(self.outputs, name="head")(x)
        if self.normalize:
            x = x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)
        return x


def architecture(model: ScorerCNN) -> dict[str, Any]:
    """The JSON-friendly fields of ``model`` (inverse: ``ScorerCNN(**arch)``)."""
    return {f.name: (list(v) if isinstance(v := getattr(model, f.name), tuple) else v)
            for f in dataclasses.fields(model) if f.name not in ("parent", "name")}


def _model_from_architecture(arch: dict[str, Any], path: Path) -> ScorerCNN:
    try:
        return ScorerCNN(**{k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()})
    except TypeError as error:
        raise ValueError(f"{path}: bad 'architecture' {arch} ({error}); {_regenerate()}") from error


def _regenerate() -> str:
    return f"regenerate the scorer weights with `{REGENERATE_COMMAND}` (from the repository root)"


# --------------------------------------------------------------------------
# Weights on disk
# --------------------------------------------------------------------------


def _by_path(tree: Any) -> dict[str, Any]:
    """``{"params/conv0/kernel": leaf, ...}``: the npz keys."""
    return {"/".join(str(getattr(p, "key", p)) for p in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def _expected_shapes(model: ScorerCNN) -> dict[str, tuple[int, ...]]:
    dummy = jax.ShapeDtypeStruct((1, IMAGE_SIZE, IMAGE_SIZE, 3), jnp.uint8)
    shapes = jax.eval_shape(model.init, jax.random.key(0), dummy)
    return {k: tuple(v.shape) for k, v in _by_path(shapes).items()}


def save_scorer(directory: str | os.PathLike, kind: str, model: ScorerCNN, variables: Any, *,
                record: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Writes ``<directory>/<kind>.npz`` then ``<kind>.json`` (atomically, each).

    Existing files are refused unless ``overwrite``.

    ``variables`` is ``model.init``'s tree (``{"params": ...}``); ``record``
    (training and evaluation numbers) goes into the JSON. Returns the JSON path.
    """
    _check_kind(kind)
    directory = Path(directory)
    targets = [directory / f"{kind}.npz", directory / f"{kind}.json"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass overwrite=True to replace")
    directory.mkdir(parents=True, exist_ok=True)
    flat = {k: np.asarray(v, np.float32) for k, v in _by_path(variables).items()}
    buffer = io.BytesIO()
    np.savez(buffer, **flat)
    data = buffer.getvalue()
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
        "image_size": IMAGE_SIZE, "architecture": architecture(model),
        "outputs": _describe_outputs(kind, model),
        "weights_file": f"{kind}.npz", "weights_sha256": fio.sha256_bytes(data),
        "n_parameters": int(sum(v.size for v in flat.values())),
        **(record or {}),
    }
    # The npz first: if the JSON write fails, the old JSON's sha256 no longer
    # matches and loading refuses the pair.
    fio.atomic_write_bytes(targets[0], data, overwrite=overwrite)
    fio.atomic_write_json(targets[1], meta, overwrite=overwrite)
    return targets[1]


def _describe_outputs(kind: str, model: ScorerCNN) -> Any:
    if kind == "au":
        return list(AU_NAMES)
    if kind == "detector":
        return "1 logit: log-odds that the face is not a clean render (sigmoid: p(fake))"
    return f"{model.outputs}-d L2-normalised embedding"


def load_scorer(directory: str | os.PathLike, kind: str) -> tuple[ScorerCNN, dict[str, Any], dict[str, Any]]:
    """``(model, variables, record)`` from ``save_scorer``'s files, checked.

    Raises FileNotFoundError for a missing file and ValueError for a wrong
    sha256, format, kind or parameter set; every message names the file and
    says how to regenerate it.
    """
    _check_kind(kind)
    directory = Path(directory)
    meta_path, npz_path = directory / f"{kind}.json", directory / f"{kind}.npz"
    for path in (meta_path, npz_path):
        if not path.is_file():
            raise FileNotFoundError(_missing_weights(f"synthetic {kind} scorer", directory, path))
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{meta_path} is not valid JSON ({error}); {_regenerate()}") from error
    expected = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                "image_size": IMAGE_SIZE}
    for key, value in expected.items():
        if not isinstance(meta, dict) or meta.get(key) != value:
            got = meta.get(key) if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{meta_path}: expected {key} = {value!r}, found {got!r}; {_regenerate()}")
    actual_sha = fio.sha256_file(npz_path)
    if actual_sha != meta.get("weights_sha256"):
        raise ValueError(f"{npz_path}: sha256 {actual_sha} does not match {meta.get('weights_sha256')!r} "
                         f"recorded in {meta_path.name} (the file changed or is corrupt); {_regenerate()}")
    model = _model_from_architecture(meta.get("architecture", {}), meta_path)
    with np.load(npz_path, allow_pickle=False) as npz:
        flat = {k: np.asarray(npz[k]) for k in npz.files}
    want = _expected_shapes(model)
    missing, unexpected = sorted(set(want) - set(flat)), sorted(set(flat) - set(want))
    wrong = [f"{k}: expected {want[k]}, found {flat[k].shape}"
             for k in sorted(set(want) & set(flat)) if tuple(flat[k].shape) != want[k]]
    if missing or unexpected or wrong:
        raise ValueError(f"{npz_path} does not fit the architecture in {meta_path.name}: missing "
                         f"{missing}, unexpected {unexpected}, wrong shapes {wrong}; {_regenerate()}")
    variables = jax.tree_util.tree_map(jnp.asarray, _unflatten(flat))
    return model, variables, meta


def check_weights_dir(weights_dir: str | os.PathLike | None = None) -> None:
    """Raises :func:`load_scorer`'s FileNotFoundError now if the folder (None: the default)
    is missing, so a run that scores itself at its end fails before its work."""
    directory = Path(DEFAULT_WEIGHTS_DIR if weights_dir is None else weights_dir)
    if not directory.is_dir():
        raise FileNotFoundError(_missing_weights("synthetic scorers", directory, directory))


def _missing_weights(what: str, directory: Path, path: Path) -> str:
    if directory.resolve() == DEFAULT_WEIGHTS_DIR and not DEFAULT_WEIGHTS_DIR.is_dir():
        return (f"{what}: the default weights folder {DEFAULT_WEIGHTS_DIR} does not exist: the "
                f"weights ship in a clone's weights/demo/scorers, and this flowjax "
                f"({Path(__file__).resolve().parents[1]}) was installed without them (pip install "
                ". installs the flowjax package only). Run the clone's run.py (python <clone>/"
                "run.py --config=<clone>/configs/...), or pass weights_dir=<clone>/weights/demo/"
                "scorers (config: --config.[evaluation.]<section>.options.weights_dir=...)")
    return f"{what}: {path} is missing; {_regenerate()}, or pass weights_dir= a folder that has it"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"scorer kind must be one of {KINDS}, got {kind!r}")


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _apply(model: ScorerCNN, variables: Any, images: jax.Array) -> jax.Array:
    return model.apply(variables, images)


def _prepare(images: np.ndarray) -> np.ndarray:
    """Checked uint8 ``[N, 64, 64, 3]``; larger square images are area-averaged down."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images [N, H, W, 3], got {images.dtype} {images.shape}; "
                         "convert with flowjax.io.images first")
    n, h, w, _ = images.shape
    if h == w == IMAGE_SIZE:
        return images
    if h != w or h % IMAGE_SIZE:
        raise ValueError(f"the synthetic scorers take square images of {IMAGE_SIZE}x{IMAGE_SIZE} (or a "
                         f"multiple, averaged down), got {h}x{w}; render at size={IMAGE_SIZE}")
    # The renderer's pixels are exact area coverages, so a box average of a
    # larger render is (up to rounding and noise) the 64x64 render.
    f = h // IMAGE_SIZE
    small = images.reshape(n, IMAGE_SIZE, f, IMAGE_SIZE, f, 3).astype(np.float32).mean(axis=(2, 4))
    return np.round(small).astype(np.uint8)


class _Scorer:
    """Runs a loaded ``ScorerCNN`` in fixed-size chunks (one compilation, padded last chunk)."""

    kind = ""

    def __init__(self, weights_dir: str | os.PathLike | None = None, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights_dir = Path(DEFAULT_WEIGHTS_DIR if weights_dir is None else weights_dir)
        self.model, self.variables, self.record = load_scorer(self.weights_dir, self.kind)
        self.batch_size = int(batch_size)

    def _run(self, images: np.ndarray) -> np.ndarray:
        images = _prepare(images)
        n, b = len(images), self.batch_size
        out = np.zeros((n, self.model.outputs), np.float64)
        for start in range(0, n, b):
            chunk = images[start:start + b]
            padded = np.concatenate([chunk, np.zeros((b - len(chunk), *chunk.shape[1:]), np.uint8)])
            scores = np.asarray(_apply(self.model, self.variables, padded))
            out[start:start + len(chunk)] = scores[:len(chunk)]
        return out

    def provenance(self) -> dict[str, Any]:
        """Which weights (path, sha256), architecture and held-out numbers, for a manifest."""
        return {
            "model": f"flowjax synthetic {self.kind} CNN (for flowjax.synthetic faces only; "
                     "not a face model for photographs)",
            "weights": str(self.weights_dir / self.record["weights_file"]),
            "weights_sha256": self.record["weights_sha256"],
            "architecture": self.record["architecture"],
            "evaluation": self.record.get("evaluation"),
        }


class SyntheticAUScorer(_Scorer):
    """AU intensities ``[N, 9]`` (``AU_NAMES`` order, 0-5, float64) of synthetic faces."""

    kind = "au"
    au_names: tuple[str, ...] = AU_NAMES

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.clip(self._run(images), 0.0, AU_MAX)


class SyntheticIdentityEmbedder(_Scorer):
    """L2-normalised identity embeddings ``[N, D]`` (float64) of synthetic faces."""

    kind = "identity"

    def embed(self, images: np.ndarray) -> np.ndarray:
        e = self._run(images)
        # Renormalised in float64 so that norms are 1 to double precision.
        return e / np.linalg.norm(e, axis=-1, keepdims=True)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "distance": "Euclidean between L2-normalised embeddings"}


def build_au_scorer(weights_dir: str | os.PathLike | None = None, batch_size: int = 64) -> SyntheticAUScorer:
    """The registry's ``"synthetic"`` AU backend; default weights: ``DEFAULT_WEIGHTS_DIR``."""
    return SyntheticAUScorer(weights_dir, batch_size)


def build_identity_embedder(weights_dir: str | os.PathLike | None = None,
                            batch_size: int = 64) -> SyntheticIdentityEmbedder:
    """The registry's ``"synthetic"`` identity backend; default weights: ``DEFAULT_WEIGHTS_DIR``."""
    return SyntheticIdentityEmbedder(weights_dir, batch_size)


def realism_from_logits(logits: np.ndarray) -> np.ndarray:
    """The realism score: the detector's log-odds that a face IS a clean render
    (``log p(real) / p(fake)``, i.e. minus its logit). 0 is a coin flip; higher is
    more real. Log-odds rather than ``1 - p(fake)``, so that a mean over images
    still ranks methods whose faces the detector is sure about."""
    return -np.asarray(logits, np.float64)


class SyntheticFakeDetector(_Scorer):
    """Is a synthetic face a clean render? ``probability_fake`` ``[N]``, ``realism`` ``[N]``.

    ``threshold`` (default: the one stored with the weights) makes ``is_fake``
    a 0/1 decision: ``p(fake) >= threshold``. Calling the detector returns
    ``probability_fake`` (the :data:`flowjax.evaluation.metrics.FakeDetector` protocol).
    """

    kind = "detector"

    def __init__(self, weights_dir: str | os.PathLike | None = None, batch_size: int = 64,
                 threshold: float | None = None):
        super().__init__(weights_dir, batch_size)
        if threshold is None:
            threshold = self.record.get("evaluation", {}).get("threshold", 0.5)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"detector threshold must be in (0, 1), got {threshold}")
        self.threshold = float(threshold)

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self._run(images)[:, 0]

    def probability_fake(self, images: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(images)))

    def realism(self, images: np.ndarray) -> np.ndarray:
        return realism_from_logits(self.logits(images))

    def is_fake(self, images: np.ndarray) -> np.ndarray:
        """0/1 float ``[N]``: ``p(fake) >= threshold`` (so its mean is the detection rate)."""
        return (self.probability_fake(images) >= self.threshold).astype(np.float64)

    __call__ = probability_fake

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "threshold": self.threshold,
                "realism": "log-odds of a clean render (minus the detector's logit)"}


def build_fake_detector(weights_dir: str | os.PathLike | None = None, batch_size: int = 64,
                        threshold: float | None = None) -> SyntheticFakeDetector:
    """The synthetic fake detector; default weights: ``DEFAULT_WEIGHTS_DIR``."""
    return SyntheticFakeDetector(weights_dir, batch_size, threshold)
