"""Training datasets: seeded, shuffled, batched images, and a prefetching thread.

:class:`ArrayDataset` (in memory) and :class:`ImageFolderDataset` (files below
a folder, searched recursively, decoded per batch by ``flowjax.io.images``'s rules);
shuffled per epoch from a seed, batched, the remainder of each epoch dropped;
:func:`prefetch` overlaps loading with training. :func:`hold_out` splits
off an evaluation set; :func:`generated_images` makes simple test images;
:func:`make_datasets` builds the (train, eval) pair ``config.data`` describes, after
``flowjax.training.config_checks`` has checked it against the data and fitted the
sizes the config leaves unset.

Two datasets with one contract: ``batch(step)`` is the global batch of
training step ``step`` (uint8 [B, H, W, 3]), a pure function of (seed,
step). Epoch e visits the images in the order of a permutation seeded by
(seed, e); an epoch is ``len(dataset) // batch_size`` steps and the last
``len(dataset) % batch_size`` images of each permutation are dropped (a
different remainder every epoch, so no image is left out for good). Since a
batch depends only on the step, training resumed at step s sees exactly the
batches it would have seen without stopping. ``process_index`` /
``process_count`` give a host its contiguous slice of the global batch (the
rows its devices hold on a mesh in process order).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from flowjax.io.images import (
    ImageDataError,
    LoadOptions,
    list_image_files_recursive,
    load_image_with_options,
)
from flowjax.training import config_checks

PathLike = Union[str, "os.PathLike[str]"]


def hold_out(n: int, n_held: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``range(n)`` into (kept, held-out) sorted index arrays."""
    if not 0 <= n_held < n:
        raise ValueError(f"cannot hold out {n_held} of {n} images; need 0 <= n_held < n")
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def generated_images(seed: int, n: int, size: int) -> np.ndarray:
    """Simple deterministic test images, uint8 [n, size, size, 3].

    A colour gradient with a disc of another colour: enough structure for a
    flow's bits/dim to fall quickly, for smoke tests and CPU benchmarks (not
    faces; ``flowjax.synthetic`` renders those).
    """
    if n < 1 or size < 1:
        raise ValueError(f"n and size must be >= 1, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    t = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(t, t, indexing="ij")
    low, high, disc = (rng.uniform(0, 255, (n, 1, 1, 3)) for _ in range(3))
    angle = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) + 0.5).clip(0, 1)[..., None]
    images = low + (high - low) * ramp
    cy, cx = rng.uniform(0.25, 0.75, (2, n, 1, 1))
    radius = rng.uniform(0.1, 0.3, (n, 1, 1))
    inside = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2)[..., None]
    return np.where(inside, disc, images).round().clip(0, 255).astype(np.uint8)


class _ShuffledBatches:
    """Per-epoch seeded shuffling and batching over ``self._n`` items."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool, what: str):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if n < batch_size:
            raise ImageDataError(
                f"{what} has {n} images, fewer than one batch of {batch_size}; "
                "add images or lower the batch size")
        self._n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle

    def __len__(self) -> int:
        return self._n

    @property
    def steps_per_epoch(self) -> int:
        """Full batches per epoch (the remainder is dropped)."""
        return self._n // self.batch_size

    def indices(self, step: int, process_index: int = 0, process_count: int = 1) -> np.ndarray:
        """Dataset indices of this process's part of step ``step``'s batch."""
        if self.batch_size % process_count:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by the "
                             f"{process_count} processes; choose a multiple")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        epoch, position = divmod(int(step), self.steps_per_epoch)
        order = (np.random.default_rng([self.seed, epoch]).permutation(self._n)
                 if self.shuffle else np.arange(self._n))
        batch = order[position * self.batch_size:(position + 1) * self.batch_size]
        local = self.batch_size // process_count
        return batch[process_index * local:(process_index + 1) * local]

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> np.ndarray:
        """uint8 ``[batch_size / process_count, H, W, 3]``: this process's batch."""
        return self._load(self.indices(step, process_index, process_count))

    def init_batch(self, n: int, seed: int) -> np.ndarray:
        """``n`` distinct images drawn with ``seed``, the same on every process
        (the data-dependent initialisation batch)."""
        if not 1 <= n <= self._n:
            raise ValueError(
                f"init batch of {n} images needs 1 <= n <= {self._n} (the dataset size)")
        chosen = np.random.default_rng([seed, 0x1417]).choice(self._n, n, replace=False)
        return self._load(np.sort(chosen))

    def iterate(self, start_step: int = 0, stop_step: int | None = None,
                process_index: int = 0, process_count: int = 1) -> Iterator[np.ndarray]:
        """Batches of steps ``start_step, start_step + 1, ...`` (up to ``stop_step``)."""
        step = start_step
        while stop_step is None or step < stop_step:
            yield self.batch(step, process_index, process_count)
            step += 1

    def _load(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ArrayDataset(_ShuffledBatches):
    """Training batches from an in-memory uint8 ``[N, H, W, 3]`` array."""

    def __init__(self, images: np.ndarray, batch_size: int, *, seed: int = 0, shuffle: bool = True):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ImageDataError(f"images must be uint8 [N, H, W, 3]; got {images.dtype} "
                                 f"{list(images.shape)}")
        super().__init__(len(images), batch_size, seed, shuffle, "the image array")
        self.images = images

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def _load(self, indices: np.ndarray) -> np.ndarray:
        return self.images[indices]

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for the run's records."""
        return {"kind": "array", "n_images": len(self), "image_shape": list(self.image_shape),
                "sha256": hashlib.sha256(np.ascontiguousarray(self.images).tobytes()).hexdigest()}


class ImageFolderDataset(_ShuffledBatches):
    """Training batches decoded from image files as they are needed.

    Every file goes through the same decoding, conversion and validation as
    :func:`load_images` (so an error names the file); ``size`` is required so
    that every batch has one shape. ``validate="all"`` decodes every file
    once up front (slow for big folders, but no surprise mid-training);
    ``"first"`` (the default) only the first.
    """

    def __init__(self, files: Sequence[PathLike], batch_size: int, *, size: int | Sequence[int],
                 resize: str | None = None, alpha: str = "composite",
                 background: Sequence[int] = (255, 255, 255), seed: int = 0,
                 shuffle: bool = True, validate: str = "first"):
        if validate not in ("first", "all"):
            raise ValueError(f"validate must be 'first' or 'all', got {validate!r}")
        self.files = tuple(Path(f) for f in files)
        super().__init__(len(self.files), batch_size, seed, shuffle, "the image list")
        self.options = LoadOptions.make(size, resize, alpha, background)
        for path in self.files if validate == "all" else self.files[:1]:
            self._load_one(path)

    @classmethod
    def from_folder(cls, folder: PathLike, batch_size: int, **kwargs: Any) -> ImageFolderDataset:
        """All images below ``folder`` (recursive; see :func:`list_image_files_recursive`)."""
        return cls(list_image_files_recursive(folder), batch_size, **kwargs)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (*self.options.size, 3)  # type: ignore[return-value]

    def _load_one(self, path: Path) -> np.ndarray:
        return load_image_with_options(path, self.options)[0]

    def _load(self, indices: np.ndarray) -> np.ndarray:
        return np.stack([self._load_one(self.files[i]) for i in indices])

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: file count, a checksum of the file list, options."""
        listing = hashlib.sha256()
        for path in self.files:
            listing.update(f"{path.as_posix()}\0{path.stat().st_size}\n".encode())
        return {"kind": "image_folder", "n_images": len(self), "first_file": str(self.files[0]),
                "listing_sha256": listing.hexdigest(), "options": self.options.to_dict()}


def prefetch(iterator: Iterable[Any], buffer_size: int = 2,
             transform: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """Runs ``iterator`` (and ``transform``, e.g. a device transfer) in a thread.

    Keeps up to ``buffer_size`` items ready, so decoding and host-to-device
    copies overlap the training step. An exception in the thread is raised
    in the consumer; closing the returned generator stops the thread.
    """
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
    items: queue.Queue = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in iterator:
                if not put(transform(item) if transform is not None else item):
                    return
            put(done)
        except BaseException as e:  # handed to the consumer
            put(e)

    thread = threading.Thread(target=work, name="flowjax-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


# --------------------------------------------------------------------------
# Datasets from the config
# --------------------------------------------------------------------------


def _generated_arrays(config: Any, n: int, image_size: int) -> np.ndarray:
    source = config.data.source
    if source == "generated":
        return generated_images(config.seed, n, image_size)
    # flowjax.synthetic.datasets is optional: datasets of the renderer's cartoon faces.
    try:
        from flowjax import synthetic
    except ImportError:
        synthetic = None
    if synthetic is None or not hasattr(synthetic, "make_dataset"):
        raise RuntimeError("config.data.source='synthetic' needs flowjax.synthetic.datasets.make_dataset, "
                           "which this installation lacks; use source='generated'")
    setting = config.data.get("synthetic_setting", "easy")
    return np.asarray(synthetic.make_dataset(config.seed, n, image_size, setting=setting).images)


def make_datasets(config: Any, image_size: int) -> tuple[Any, Any | None]:
    """(train, eval or None) datasets for ``config.data`` (see configs/train.py).

    The data options are checked against the data first
    (:func:`flowjax.training.config_checks.fit_data`: every error names the flag to
    set), and the sizes the config leaves unset (``data.num_eval``,
    ``init_batch_size``) are fitted to it, written into ``config`` and logged. The
    eval dataset is None when the held-out images are fewer than one eval batch.
    """
    plan = config_checks.fit_data(config, image_size)
    d = config.data
    seed, batch, eval_batch = config.seed, config.batch_size, config.eval_batch_size
    if d.source == "folder":
        options = dict(size=image_size, resize=d.resize, alpha=d.alpha, validate=d.validate)
        files, eval_files = plan.files, plan.eval_files
        if eval_files is None:
            kept, held = hold_out(len(files), plan.num_eval, seed)
            files, eval_files = [files[i] for i in kept], [files[i] for i in held]
        train_ds = ImageFolderDataset(files, batch, seed=seed, **options)
        eval_ds = (ImageFolderDataset(eval_files, eval_batch, shuffle=False, **options)
                   if len(eval_files) >= eval_batch else None)
        return train_ds, eval_ds
    images = _generated_arrays(config, d.num_train + plan.num_eval, image_size)
    train_ds = ArrayDataset(images[:d.num_train], batch, seed=seed)
    eval_ds = (ArrayDataset(images[d.num_train:], eval_batch, shuffle=False)
               if plan.num_eval >= eval_batch else None)
    return train_ds, eval_ds
