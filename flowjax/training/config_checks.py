"""The training config checked before any work, each error naming the option to change.

A training run meets its config's mistakes here, not after its workdir exists:
every error says which flag to set (``--config.data.num_eval=N``) and to what.

* :func:`fit_data` -- the data options (``config.data``, the batch sizes)
  against the data itself: the folder's image count and image size, the
  rendered set's size. ``flowjax.training.datasets.make_datasets`` calls it, and
  ``flowjax.training.train.train`` calls that before it creates the workdir.
* :func:`check_run_options` -- the rest (model, optimizer, intervals,
  checkpoints, samples, devices); ``experiments/train.py`` calls it first.

Sizes a config leaves unset (None) fit the data, and the log says what was chosen:

* ``data.num_eval``: :data:`DEFAULT_NUM_EVAL` held-out images, but from a folder
  at most one in :data:`SMALL_FOLDER_HELD_OUT` of its images, and never so many that
  less than one training batch is left (``data.eval_folder`` replaces the split);
* ``init_batch_size`` (the data-dependent ActNorm init batch): :data:`DEFAULT_INIT_BATCH`
  images, or every training image if there are fewer.

The fitted numbers are written into the config, so that training and the
workdir's ``config.json`` use and record them; a number the config sets is
used as it is, or refused with the largest value that fits. A held-out set
smaller than one eval batch is not evaluated (as before); the log says so and
names ``--config.eval_batch_size``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from flowjax import models
from flowjax.io.images import (ALPHA_POLICIES, RESIZE_FILTERS, ImageDataError,
                               list_image_files_recursive, load_image)
from flowjax.training import optimizers

DEFAULT_NUM_EVAL = 512  # held-out images when config.data.num_eval is unset
DEFAULT_INIT_BATCH = 256  # data-dependent init images when config.init_batch_size is unset
SMALL_FOLDER_HELD_OUT = 10  # an unset num_eval holds out at most 1 in 10 of a folder's images
SOURCES = ("folder", "synthetic", "generated")
VALIDATE = ("first", "all")

logger = logging.getLogger(__name__)


def flag(name: str, value: Any = "...") -> str:
    """``--config.<name>=<value>``: how the error names the option to change."""
    return f"--config.{name}={value}"


@dataclasses.dataclass(frozen=True)
class DataPlan:
    """What :func:`fit_data` found and chose.

    ``files``: a folder source's images (None for rendered sources), of which
    ``num_eval`` are held out (``flowjax.training.datasets.hold_out``) unless
    ``eval_files`` (``data.eval_folder``'s) are given; ``num_train`` training
    images; the ``init_batch_size``; the ``notes`` logged.
    """

    files: list[Path] | None
    eval_files: list[Path] | None
    num_train: int
    num_eval: int
    init_batch_size: int
    notes: tuple[str, ...]


def fit_data(config: Any, image_size: int) -> DataPlan:
    """Checks ``config.data`` and the batch sizes against the data, fits the unset sizes.

    Lists the folder (and ``data.eval_folder``) and reads its first image's size;
    raises ValueError (FileNotFoundError for a missing folder) naming the flag to
    set. Writes the fitted ``data.num_eval`` / ``init_batch_size`` into ``config``
    where they were None, and logs each choice and the notes on held-out evaluation.
    """
    d = config.data
    _check_choice("data.source", d.source, SOURCES,
                  "(folder: every PNG/JPEG below --config.data.folder=DIR)")
    for name in ("batch_size", "eval_batch_size"):
        _check_int(name, config[name], 1)
    if d.get("resize") is not None and d.resize not in RESIZE_FILTERS:
        raise ValueError(
            f"config.data.resize={d.resize!r} is not a resampling filter: it names how images "
            f"of another size are resized to the model's size (config.model.image_size="
            f"{image_size}); set {flag('data.resize', 'lanczos')} (or one of "
            f"{sorted(RESIZE_FILTERS)}), and {flag('model.image_size', 'N')} for another size")
    _check_choice("data.alpha", d.alpha, ALPHA_POLICIES)
    _check_choice("data.validate", d.get("validate", "first"), VALIDATE)
    _check_int("data.prefetch", d.get("prefetch", 2), 1)
    if d.get("num_eval") is not None:
        _check_int("data.num_eval", d.num_eval, 0)
    if config.get("init_batch_size") is not None:
        _check_int("init_batch_size", config.init_batch_size, 1)
    notes: list[str] = []
    files = eval_files = None
    if d.source == "folder":
        files, eval_files, num_eval = _fit_folder(config, image_size, notes)
        num_train = len(files) - (0 if eval_files is not None else num_eval)
    else:
        _check_int("data.num_train", d.num_train, config.batch_size,
                   f"at least one batch: config.batch_size={config.batch_size}")
        num_train = d.num_train
        num_eval = DEFAULT_NUM_EVAL if d.get("num_eval") is None else d.num_eval
    init_batch = _fit_init_batch(config, num_train, notes)
    if num_eval < config.eval_batch_size and config.get("eval_every", 1):
        notes.append(
            f"no held-out evaluation: the {num_eval} held-out images are fewer than one eval "
            f"batch (config.eval_batch_size={config.eval_batch_size}); "
            + (f"{flag('eval_batch_size', num_eval)} evaluates them" if num_eval else
               f"{flag('data.num_eval', 'N')} holds some out"))
    if d.get("num_eval") is None and eval_files is None:
        config.data.num_eval = num_eval
    config.init_batch_size = init_batch
    for note in notes:
        logger.warning("%s", note)
    return DataPlan(files, eval_files, num_train, num_eval, init_batch, tuple(notes))


def _fit_folder(config: Any, image_size: int,
                notes: list[str]) -> tuple[list[Path], list[Path] | None, int]:
    """``(files, eval_folder's files or None, held-out count)`` of a folder source."""
    d, batch = config.data, config.batch_size
    if not d.folder:
        raise ValueError(f"config.data.source='folder' needs the folder: set "
                         f"{flag('data.folder', 'DIR')} (every PNG/JPEG below it, recursively)")
    files = _listed("data.folder", d.folder)
    _check_image_size("data.folder", files[0], image_size, d.get("resize"), d.alpha)
    n = len(files)
    if n < batch:
        raise ValueError(
            f"config.data.folder={d.folder!r} has {n} images, fewer than one training batch "
            f"(config.batch_size={batch}); set {flag('batch_size', 'N')} with N <= {n}, or "
            "add images")
    if d.get("eval_folder"):
        eval_files = _listed("data.eval_folder", d.eval_folder)
        _check_image_size("data.eval_folder", eval_files[0], image_size, d.get("resize"),
                          d.alpha)
        return files, eval_files, len(eval_files)
    most = n - batch  # held out at most this many: one training batch stays
    if d.get("num_eval") is None:
        num_eval = min(DEFAULT_NUM_EVAL, n // SMALL_FOLDER_HELD_OUT, most)
        if num_eval < DEFAULT_NUM_EVAL:
            notes.append(
                f"config.data.num_eval unset: holding out {num_eval} of the {n} images in "
                f"config.data.folder (at most 1 in {SMALL_FOLDER_HELD_OUT}, leaving one training "
                f"batch of {batch}; {DEFAULT_NUM_EVAL} from a large folder); "
                f"{flag('data.num_eval', 'N')} sets it, {flag('data.eval_folder', 'DIR')} "
                "gives held-out images")
        return files, None, num_eval
    if d.num_eval > most:
        raise ValueError(
            f"config.data.num_eval={d.num_eval}: cannot hold out {d.num_eval} of the {n} images "
            f"in config.data.folder={d.folder!r} and keep one training batch "
            f"(config.batch_size={batch}); set {flag('data.num_eval', 'N')} with "
            f"0 <= N <= {most}, or give held-out images in {flag('data.eval_folder', 'DIR')}")
    return files, None, d.num_eval


def check_run_options(config: Any, n_devices: int) -> None:
    """The options :func:`fit_data` does not check: model, optimizer, step counts and
    intervals, checkpoints, samples, and batch sizes against ``n_devices`` (the batch
    is split over every device)."""
    try:
        models.model_from_config(config.model)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"config.model: {error}; set {flag('model.<field>')}") from None
    _check_int("num_steps", config.num_steps, 0)
    _check_int("log_every", config.log_every, 1)
    _check_int("skip_nonfinite_steps", config.get("skip_nonfinite_steps", 0), 0,
               "0: stop at the first non-finite step")
    _check_int("eval_every", config.eval_every, 0, "0: no held-out evaluation")
    _check_int("checkpoint.every", config.checkpoint.every, 1)
    _check_int("checkpoint.keep", config.checkpoint.keep, 1)
    _check_int("checkpoint.keep_every", config.checkpoint.get("keep_every") or 0, 0,
               "0: keep only the newest")
    samples = config.get("samples")
    if samples:
        _check_int("samples.n", samples.n, 0, "0: no sample grids")
    optimizer = config.optimizer
    _check_choice("optimizer.name", optimizer.name, optimizers.OPTIMIZERS)
    _check_number("optimizer.learning_rate", optimizer.learning_rate, 0.0, strict=True)
    _check_int("optimizer.warmup_steps", optimizer.warmup_steps, 0)
    _check_number("optimizer.grad_clip_norm", optimizer.get("grad_clip_norm", 0.0), 0.0,
                  what="0: no clipping")
    _check_int("optimizer.decay_start", optimizer.get("decay_start", 0), 0)
    _check_int("optimizer.decay_steps", optimizer.get("decay_steps", 0), 0, "0: no decay")
    _check_number("optimizer.final_lr_fraction", optimizer.get("final_lr_fraction", 0.0), 0.0,
                  most=1.0, what="the decay ends at that fraction of the rate")
    try:
        optimizers.OptimizerSpec.from_config(optimizer)
    except (ValueError, TypeError) as error:
        raise ValueError(f"config.optimizer: {error}; set {flag('optimizer.<field>')}") from None
    check_batch_sizes({"batch_size": config.batch_size,
                       "eval_batch_size": config.eval_batch_size}, n_devices)


def check_batch_sizes(sizes: dict[str, int], n_devices: int) -> None:
    """Each batch is split over every device: its size must be a multiple of
    ``n_devices`` (checked before training, not at the first evaluation)."""
    for name, size in sizes.items():
        _check_int(name, size, 1)
        if size % n_devices:
            fitted = max(n_devices, size // n_devices * n_devices)
            raise ValueError(
                f"config.{name}={size} is split over the {n_devices} devices, so it "
                f"must be a multiple of {n_devices}; set {flag(name, fitted)}")


def _check_number(name: str, value: Any, least: float, strict: bool = False,
                  what: str | None = None, most: float | None = None) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value > least if strict else value >= least) and (most is None or value <= most)
    if not ok:
        bound = "" if most is None else f" and at most {most:g}"
        raise ValueError(f"config.{name}={value!r} must be a number {'>' if strict else '>='} "
                         f"{least:g}{bound}{f' ({what})' if what else ''}; set {flag(name, 'X')}")


def _fit_init_batch(config: Any, num_train: int, notes: list[str]) -> int:
    wanted = config.get("init_batch_size")
    if wanted is None:
        fitted = min(DEFAULT_INIT_BATCH, num_train)
        if fitted < DEFAULT_INIT_BATCH:
            notes.append(
                f"config.init_batch_size unset: the data-dependent init uses all {num_train} "
                f"training images ({DEFAULT_INIT_BATCH} when there are that many); "
                f"{flag('init_batch_size', 'N')} sets it")
        return fitted
    if wanted > num_train:
        raise ValueError(
            f"config.init_batch_size={wanted}: the data-dependent init draws {wanted} distinct "
            f"training images, but there are {num_train}; set "
            f"{flag('init_batch_size', 'N')} with 1 <= N <= {num_train}")
    return wanted


def _listed(name: str, folder: str) -> list[Path]:
    try:
        return list_image_files_recursive(folder)
    except (FileNotFoundError, NotADirectoryError, ImageDataError) as error:
        raise type(error)(f"config.{name}={folder!r}: {error}; set {flag(name, 'DIR')}") from None


def _check_image_size(name: str, first: Path, image_size: int, resize: str | None,
                      alpha: str) -> None:
    """The first image against the model's size: a mismatch names data.resize and
    model.image_size (the io error would name neither)."""
    if resize is not None:
        return
    image, _ = load_image(first, alpha=alpha)
    height, width = image.shape[:2]
    if (height, width) != (image_size, image_size):
        other = f"; or {flag('model.image_size', height)} trains at their size" \
            if height == width else ""
        raise ImageDataError(
            f"config.{name}: {first} is {height}x{width} (HxW), the model's images are "
            f"{image_size}x{image_size} (config.model.image_size); set "
            f"{flag('data.resize', 'lanczos')} to resize them{other}")


def _check_int(name: str, value: Any, least: int, what: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"config.{name}={value!r} must be an int >= {least}"
                         f"{f' ({what})' if what else ''}; set {flag(name, 'N')}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...], hint: str = "") -> None:
    if value not in choices:
        raise ValueError(f"config.{name}={value!r} is not one of {list(choices)}; set "
                         f"{flag(name, choices[0])}{f' {hint}' if hint else ''}")

