"""Training Glow: train state, pure jitted steps, the training loop.

* **State.** :class:`TrainState` holds ``params`` (optimised), ``constants``
  (LU permutation/signs, shuffle indices: carried, never optimised: the
  optimizer state covers ``params`` only), ``opt_state``, ``step`` and ``rng``
  (raw key data; step ``s`` uses ``fold_in(rng, s)``, so randomness depends
  only on the step and resumed runs repeat it exactly).
* **Random streams.** Every random number of a run comes from one root,
  ``jax.random.key(config.seed)``, through a named stream (:func:`stream`: the
  parameters' init, the training steps' dequantisation noise, the held-out
  evaluation's noise, the sample grids), so no two streams of one run, or of two
  seeds of a sweep, coincide.
* **Loss.** Mean bits/dim of the batch (GLOW_SPEC §1): the Glow's own
  ``n_bits`` preprocessing, fresh uniform dequantisation noise each step.
* **Steps.** :func:`train_step` and :func:`eval_step` are pure;
  :func:`make_train_step` jits the former with the state donated and the
  batch sharded over a ``jax.sharding.Mesh`` of all devices (parameters
  replicated, ``NamedSharding``; no ``pmap``). Jitted functions are cached per
  (model, optimizer, mesh), so equal configurations compile once per process.
* **Optimizers** (``config.optimizer``): ``flowjax.training.optimizers`` builds them
  from a hashable :class:`~flowjax.training.optimizers.OptimizerSpec`; a resume with
  another optimizer (or with gradient clipping switched) is refused.
* **Non-finite guard.** A NaN/Inf loss, gradient norm or parameter norm stops
  training with :class:`NonFiniteError` naming the step and the newest
  checkpoint that verifies. With ``config.skip_nonfinite_steps=N`` such a step
  is skipped instead (no update; a warning, ``skipped_steps`` in the log line)
  and training stops only at the (N+1)-th in a row. Metrics are checked before every checkpoint, so no checkpoint
  holds state from after a non-finite step, and nothing saved is overwritten.
* **Loop** (:func:`train`): data-dependent ActNorm init on an init batch
  before step 0, or an automatic resume from the workdir's newest checkpoint
  that verifies (``flowjax.models.checkpoints``: newer, damaged steps are moved to
  ``damaged_checkpoints/`` and the log and ``summary.json`` say so; a resume
  with another model or another optimizer is refused, one with other execution
  settings continues);
  metrics to ``metrics.jsonl`` (one line per log interval: ``step`` = updates
  done, ``split``, the interval's means; a ``"resumed"`` line where a run
  continued; fetched one interval late, ``log.LaggedWindows``, so the host never
  waits for the step it just dispatched) and to TensorBoard event files when ``tensorboard`` is
  installed (``flowjax.training.log``); held-out bits/dim and a
  temperature-sample grid PNG (labelled synthetic) at each evaluation;
  compile time and steady-state throughput reported apart in ``summary.json``.
* **Execution settings** (``config.model.remat``, ``scan_unroll``, ``precision``;
  :mod:`flowjax.models.execution`) are how the model runs, not what it is: the
  workdir's ``model_config.json`` leaves them out, so a run resumes under other
  ones (on a GPU after a CPU, with remat switched on for memory), and
  ``summary.json``'s ``execution`` records what each run used. An unset
  precision (``"auto"``) trains at ``"default"`` (TF32 on Ampere/Hopper GPUs)
  and decodes the evaluation's samples at ``"highest"``.
* **Data.** Batches come from ``flowjax.training.datasets`` datasets (built from
  ``config.data`` by its ``make_datasets``) whose batch is a pure function of
  the step (so resuming repeats the data order); each epoch drops the
  remainder of ``len(dataset) / batch_size``.

Multi-host: call ``jax.distributed.initialize()`` before anything else (see
``experiments/train.py``); each process loads its contiguous slice of every
global batch and orbax coordinates the checkpoint writes; only process 0
writes metrics and images.

Longer than 400 lines because the resumable loop (checkpoint cadence, resume from the
newest verified step, the non-finite guard) is written against the exact train state and
steps defined above it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flowjax import models
from flowjax import io as fio
from flowjax.flows.bijectors import CONSTANTS
from flowjax.io import console
from flowjax.models import checkpoints, execution, glow
from flowjax.models.errors import NonFiniteError
from flowjax.models.glow import Glow
from flowjax.training import config_checks, datasets, log
from flowjax.training.optimizers import OptimizerSpec

Array = jax.Array
DATA_AXIS = "data"
SUMMARY_NAME = "summary.json"
CONFIG_NAME = "config.json"
SAMPLES_DIR = "samples"

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# Random streams
# --------------------------------------------------------------------------

# Each stream's number is part of what a seed means: never renumber one (runs would
# no longer repeat), only add new names.
STREAMS = {"init": 1, "train": 2, "eval": 3, "samples": 4}


def stream(root: Array, name: str) -> Array:
    """The key of stream ``name`` (:data:`STREAMS`) under ``root``, a run's
    ``jax.random.key(config.seed)``."""
    return jax.random.fold_in(root, STREAMS[name])


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------


@flax.struct.dataclass
class TrainState:
    """Everything training needs to continue exactly (a pytree)."""

    step: Array  # int32 [], number of updates done
    params: Any
    constants: Any  # {} for models without a "constants" collection
    opt_state: Any
    rng: Array  # uint32 raw key data (jax.random.key_data)

    @property
    def variables(self) -> dict[str, Any]:
        """The model's variables, as ``Module.apply`` takes them."""
        return {"params": self.params, CONSTANTS: self.constants} if self.constants else {
            "params": self.params}


# --------------------------------------------------------------------------
# Pure steps
# --------------------------------------------------------------------------


def _check_model(model: Glow) -> None:
    if model.n_classes:
        raise NotImplementedError("class-conditional training (n_classes > 0) is not supported: "
                                  "the datasets carry no labels; set model.n_classes = 0")


def create_train_state(model: Glow, optimizer: OptimizerSpec, key: Array,
                       init_images: Array) -> TrainState:
    """Step-0 state: data-dependent init (``glow.init``) on ``init_images``; ``key``
    is the run's root (its ``"init"`` and ``"train"`` streams are used)."""
    _check_model(model)
    init_key, rng = stream(key, "init"), stream(key, "train")
    variables = dict(glow.init(model, init_key, init_images))
    params = variables.pop("params")
    constants = variables.pop(CONSTANTS, {})
    return TrainState(step=jnp.zeros([], jnp.int32), params=params, constants=constants,
                      opt_state=optimizer.build().init(params), rng=jax.random.key_data(rng))


def bits_per_dim_loss(model: Glow, params: Any, constants: Any, images: Array,
                      noise: Any) -> Array:
    """Mean bits/dim of ``images`` (``noise``: a key, an array, or None for mid-bin)."""
    variables = {"params": params, CONSTANTS: constants} if constants else {"params": params}
    return model.apply(variables, images, noise, method="bits_per_dim").mean()


def global_norm(tree: Any) -> Array:
    """sqrt of the sum of squares of every leaf (float32: inf once it overflows)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def train_step(model: Glow, optimizer: OptimizerSpec, state: TrainState, batch: Array,
               skip_nonfinite: bool = False) -> tuple[TrainState, dict[str, Array]]:
    """One update on a uint8 batch; metrics are those of the step's input state.

    With ``skip_nonfinite`` an update whose loss, gradient or new parameters are
    not finite is not applied (parameters and optimizer state stay as they were,
    the step and its batch go by) and ``metrics["skipped"]`` is 1; the training
    loop decides how many such steps in a row it accepts. (Not
    ``optax.apply_if_finite``: its counters would change the optimizer state's
    tree, so a workdir could not switch skipping on or off, nor old checkpoints
    take it up.)
    """
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    loss, grads = jax.value_and_grad(bits_per_dim_loss, argnums=1)(
        model, state.params, state.constants, batch, key)
    updates, opt_state = optimizer.build().update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "bits_per_dim": loss,
        "grad_norm": global_norm(grads),
        "param_norm": global_norm(params),  # of the new params: overflows to inf with them
        "learning_rate": jnp.asarray(optimizer.schedule(state.step), jnp.float32),
    }
    if skip_nonfinite:
        finite = jnp.isfinite(loss) & jnp.isfinite(metrics["grad_norm"]) & jnp.isfinite(
            metrics["param_norm"])
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
        params, opt_state = keep(params, state.params), keep(opt_state, state.opt_state)
        metrics["param_norm"] = global_norm(params)  # of the parameters kept
        metrics["skipped"] = jnp.where(finite, 0.0, 1.0).astype(jnp.float32)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(model: Glow, state: TrainState, batch: Array, key: Array) -> dict[str, Array]:
    """Held-out bits/dim of a batch (dequantisation noise from ``key``)."""
    return {"bits_per_dim": bits_per_dim_loss(model, state.params, state.constants, batch, key)}


def make_mesh(devices: Any = None) -> Mesh:
    """A 1-D data-parallel mesh over ``devices`` (default: all, every process;
    :func:`flowjax.models.execution.data_mesh`)."""
    return execution.data_mesh(DATA_AXIS, devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


@functools.lru_cache(maxsize=None)
def make_train_step(model: Glow, optimizer: OptimizerSpec, mesh: Mesh,
                    skip_nonfinite: bool = False) -> Callable[
        [TrainState, Array], tuple[TrainState, dict[str, Array]]]:
    """``train_step(state, batch) -> (state, metrics)``, jitted, state donated.

    The state is replicated over ``mesh``, the batch split along its first
    axis; the loss is the mean over the global batch, so the result does not
    depend on the number of devices.
    """
    return jax.jit(functools.partial(train_step, model, optimizer,
                                     skip_nonfinite=skip_nonfinite), donate_argnums=0,
                   in_shardings=(replicated(mesh), batch_sharding(mesh)),
                   out_shardings=(replicated(mesh), replicated(mesh)))


@functools.lru_cache(maxsize=None)
def make_eval_step(model: Glow, mesh: Mesh) -> Callable[..., dict[str, Array]]:
    """Jitted :func:`eval_step` (state replicated, batch sharded)."""
    return jax.jit(functools.partial(eval_step, model),
                   in_shardings=(replicated(mesh), batch_sharding(mesh), replicated(mesh)),
                   out_shardings=replicated(mesh))


@functools.lru_cache(maxsize=None)
def make_init(model: Glow, optimizer: OptimizerSpec,
              mesh: Mesh) -> Callable[[Array, Any], TrainState]:
    """Jitted :func:`create_train_state`, its output replicated over ``mesh``.

    Every process passes the same init images, so the DDI agrees everywhere.
    """
    return jax.jit(functools.partial(create_train_state, model, optimizer),
                   out_shardings=replicated(mesh))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _sample(model: Glow, variables: Any, key: Array, n: int, temperature: Array) -> Array:
    return model.apply(variables, key, n, temperature, method="sample")


def sample_grid(model: Glow, variables: Any, key: Array, n: int,
                temperatures: tuple[float, ...]) -> np.ndarray:
    """uint8 grid: one labelled row of ``n`` samples per temperature (same noise per row).

    Images smaller than 64 pixels are enlarged (nearest neighbour) so the
    labels fit.
    """
    zoom = max(1, -(-64 // model.image_size))
    rows = []
    for t in temperatures:
        images = _to_host(_sample(model, variables, key, n, jnp.float32(t)))
        images = images.repeat(zoom, axis=1).repeat(zoom, axis=2)
        rows.append(fio.make_strip(list(images), [f"T={t:g}"] + [""] * (n - 1)))
    return np.concatenate(rows, axis=0)


def _to_host(x: Array) -> np.ndarray:
    """A replicated (possibly multi-host) array as numpy."""
    return np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x)


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


def _prepare_workdir(workdir: Path, model: Glow, config: Any, is_main: bool) -> None:
    """Checks a resumed workdir holds the same model; writes config.json once."""
    model_path = workdir / checkpoints.MODEL_CONFIG_NAME
    if workdir.is_dir() and any(workdir.iterdir()) and not model_path.is_file():
        raise FileExistsError(f"workdir {workdir} is not empty and is not a training workdir (no "
                              f"{checkpoints.MODEL_CONFIG_NAME}); choose a new or empty workdir")
    if model_path.is_file():
        # What the model is, not how it runs: other execution settings may resume.
        saved = models.model_config(checkpoints.read_model_config(workdir))
        requested = models.model_config(model)
        if saved != requested:
            differ = {k: (v, requested.get(k)) for k, v in saved.items() if requested.get(k) != v}
            raise ValueError(f"workdir {workdir} trains a different model: {differ} (saved, "
                             "requested); resume with the same config.model or use a new workdir")
    config_path = workdir / CONFIG_NAME
    if model_path.is_file() and config_path.is_file():
        _check_same_optimizer(config_path, OptimizerSpec.from_config(config.optimizer))
    if not is_main:
        return
    workdir.mkdir(parents=True, exist_ok=True)
    if not model_path.is_file():
        checkpoints.write_model_config(workdir, model, record=True)
    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    if not config_path.is_file():
        fio.atomic_write_json(config_path, config_dict)
    elif json.loads(config_path.read_text()) != json.loads(fio.to_json(config_dict)):
        # Resumed with a changed config (e.g. more steps): keep both.
        fio.atomic_write_json(workdir / f"config.resumed-{time.strftime('%Y%m%d-%H%M%S')}.json",
                              config_dict)


def _check_same_optimizer(config_path: Path, requested: OptimizerSpec) -> None:
    """Refuses to resume optimizer state written by another optimizer.

    adam's and adamax's states have the same tree (count, mu, nu), so no shape
    check notices the swap; nu means a different thing in each. Gradient
    clipping on/off changes the tree. Other fields (learning rate, warmup,
    betas, clip norm) may change between runs.
    """
    try:
        saved_config = json.loads(config_path.read_text(encoding="utf-8"))
        saved = OptimizerSpec.from_config(saved_config["optimizer"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{config_path} does not give the optimizer this workdir was trained "
                         f"with ({type(e).__name__}: {e}); it is damaged. Resume only with "
                         "a readable config.json, or use a new workdir.") from e
    if (saved.name, bool(saved.grad_clip_norm)) != (requested.name, bool(requested.grad_clip_norm)):
        raise ValueError(
            f"workdir {config_path.parent} was trained with optimizer {saved.name!r} "
            f"(grad_clip_norm={saved.grad_clip_norm}), its checkpoints hold that optimizer's "
            f"state; resuming with {requested.name!r} (grad_clip_norm="
            f"{requested.grad_clip_norm}) would misread it. Resume with "
            f"config.optimizer.name={saved.name!r} and gradient clipping "
            f"{'on' if saved.grad_clip_norm else 'off'}, or use a new workdir.")


def _abstract_state(model: Glow, optimizer: OptimizerSpec, mesh: Mesh,
                    init_shape: tuple) -> TrainState:
    shapes = jax.eval_shape(functools.partial(create_train_state, model, optimizer),
                            jax.random.key(0), jax.ShapeDtypeStruct(init_shape, jnp.uint8))
    sharding = replicated(mesh)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def _split_state(state: TrainState) -> tuple[dict[str, Any], dict[str, Any]]:
    return state.variables, {"step": state.step, "opt_state": state.opt_state, "rng": state.rng}


def _join_state(variables: Mapping[str, Any], rest: Mapping[str, Any]) -> TrainState:
    return TrainState(step=rest["step"], params=variables["params"],
                      constants=variables.get(CONSTANTS, {}), opt_state=rest["opt_state"],
                      rng=rest["rng"])


def _is_finite(values: Mapping[str, float]) -> bool:
    return all(math.isfinite(float(v)) for v in values.values())


def _non_finite_error(step: int, values: Mapping[str, float],
                      ckpt: checkpoints.TrainCheckpointer,
                      skipped_before: int | None = None) -> NonFiniteError:
    ckpt.wait()  # a background save of an earlier, good step completes first
    good = _newest_verified_step(ckpt)
    where = (f"the last good checkpoint is step {good} at {ckpt.step_path(good)}"
             if good is not None else "no checkpoint that verifies had been saved yet")
    shown = ", ".join(f"{k}={float(v):.4g}" for k, v in values.items())
    skipped = ("" if skipped_before is None else
               f", after {skipped_before} skipped steps in a row, as many as "
               "config.skip_nonfinite_steps allows")
    return NonFiniteError(
        f"non-finite value at step {step} (the update from step {step} to {step + 1}: "
        f"{shown}){skipped}; "
        f"training stopped, nothing saved was overwritten, and {where}. Lower "
        "optimizer.learning_rate or add optimizer.warmup_steps (or change "
        "optimizer.grad_clip_norm if clipping was on; or let config.skip_nonfinite_steps "
        "skip a few bad steps), then train again in the same workdir to resume from that "
        "checkpoint; switching clipping on needs a new workdir.")


def _newest_verified_step(ckpt: checkpoints.TrainCheckpointer) -> int | None:
    for step in reversed(ckpt.all_steps()):
        try:
            ckpt.verify(step)
        except checkpoints.DamagedCheckpointError:
            continue
        return step
    return None


def train(config: Any, workdir: str | Path, *, train_dataset: Any = None,
          eval_dataset: Any = None, mesh: Mesh | None = None) -> dict[str, Any]:
    """Trains (or resumes) ``config`` in ``workdir``; returns the run summary.

    ``train_dataset`` / ``eval_dataset`` override the config's data source
    (anything with ``batch(step, process_index, process_count)``,
    ``steps_per_epoch``, ``image_shape`` and ``init_batch``, e.g.
    :class:`flowjax.training.datasets.ArrayDataset`).
    """
    workdir = Path(workdir)
    configured = models.model_from_config(config.model)  # any registered family
    model = execution.for_phase(configured, "train")  # an "auto" precision is training's
    sample_model = execution.for_phase(configured, "decode")
    _check_model(model)
    optimizer = OptimizerSpec.from_config(config.optimizer)
    mesh = mesh or make_mesh()
    n_devices, process, n_processes = mesh.devices.size, jax.process_index(), jax.process_count()
    is_main = process == 0
    if train_dataset is None:
        train_dataset, eval_dataset = datasets.make_datasets(config, model.image_size)
    config_checks.check_batch_sizes({"batch_size": config.batch_size, **(
        {"eval_batch_size": eval_dataset.batch_size} if eval_dataset is not None else {})},
        n_devices)
    if tuple(train_dataset.image_shape) != model.image_shape:
        raise ValueError(f"dataset images are {tuple(train_dataset.image_shape)}, the model "
                         f"expects {model.image_shape}; set config.model.image_size")
    _prepare_workdir(workdir, model, config, is_main)
    num_steps = int(config.num_steps)
    ckpt = checkpoints.TrainCheckpointer(workdir, keep=config.checkpoint.keep,
                                         keep_every=config.checkpoint.get("keep_every") or None,
                                         async_save=config.checkpoint.get("async_save", True))
    writer = log.MetricWriter(workdir, enabled=is_main)
    summary: dict[str, Any] = {"workdir": str(workdir), "devices": n_devices,
                               "processes": n_processes, "batch_size": config.batch_size,
                               "execution": {**models.execution_config(model), "decode_precision":
                                             getattr(sample_model, "precision", None)}}
    try:
        state, summary["start_step"] = _initial_state(config, model, optimizer, mesh, ckpt,
                                                      train_dataset, summary)
        if summary["start_step"]:
            # Lines an interrupted run logged after this checkpoint stay above the marker.
            writer.write(summary["start_step"], "resumed", {})
        _loop(config, model, sample_model, optimizer, mesh, ckpt, writer, state, train_dataset,
              eval_dataset, workdir, num_steps, summary)
    finally:
        ckpt.wait()
        ckpt.close()
        writer.close()
    if is_main:
        fio.atomic_write_json(workdir / SUMMARY_NAME, summary, overwrite=True)
    return summary


def _initial_state(config, model, optimizer, mesh, ckpt, dataset,
                   summary) -> tuple[TrainState, int]:
    init_shape = (config.init_batch_size, *model.image_shape)
    steps = ckpt.all_steps()
    t0 = time.perf_counter()
    if not steps:
        images = dataset.init_batch(config.init_batch_size, config.seed)
        state = make_init(model, optimizer, mesh)(jax.random.key(config.seed), images)
        jax.block_until_ready(state)
        summary["init_s"] = time.perf_counter() - t0
        return state, 0
    variables, rest = _split_state(_abstract_state(model, optimizer, mesh, init_shape))
    damaged: list[tuple[int, checkpoints.DamagedCheckpointError]] = []
    for step in reversed(steps):  # newest first; a mismatch (not damage) is raised at once
        try:
            state = _join_state(*ckpt.restore(step, variables, rest))
        except checkpoints.DamagedCheckpointError as e:
            logger.warning("checkpoint step %d does not verify: %s", step, e)
            damaged.append((step, e))
            continue
        break
    else:
        shown = "; ".join(f"step {s}: {e}" for s, e in damaged)
        raise checkpoints.DamagedCheckpointError(
            f"no checkpoint in {ckpt.directory} verifies ({shown}). Restore the checkpoints "
            "from a copy, or move the folder away to train from scratch.")
    summary["restore_s"] = time.perf_counter() - t0
    summary["restored_from"] = str(ckpt.step_path(step))
    if damaged:
        # Set aside (not deleted): the run will save these steps again.
        summary["damaged_checkpoints"] = [
            {"step": s, "moved_to": str(ckpt.set_aside(s)), "error": str(e)} for s, e in damaged]
        logger.warning("resuming from step %d, the newest checkpoint that verifies; damaged "
                       "newer steps moved to %s", step,
                       ", ".join(d["moved_to"] for d in summary["damaged_checkpoints"]))
    return state, step


def _loop(config, model, sample_model, optimizer, mesh, ckpt, writer, state, train_ds, eval_ds,
          workdir, num_steps, summary) -> None:
    process, n_processes = jax.process_index(), jax.process_count()
    start = int(summary["start_step"])
    if start >= num_steps:
        summary.update(steps_run=0, final_step=start)
        return
    global_shape = (config.batch_size, *model.image_shape)
    to_device = lambda local: jax.make_array_from_process_local_data(
        batch_sharding(mesh), local, global_shape)
    batches = datasets.prefetch(train_ds.iterate(start, num_steps, process, n_processes),
                                     config.data.get("prefetch", 2), to_device)
    t0 = time.perf_counter()
    batch_spec = jax.ShapeDtypeStruct(global_shape, jnp.uint8, sharding=batch_sharding(mesh))
    max_skipped = int(config.get("skip_nonfinite_steps", 0))
    step_fn = make_train_step(model, optimizer, mesh, max_skipped > 0).lower(
        state, batch_spec).compile()
    summary["compile_s"] = time.perf_counter() - t0
    log_every, eval_every = config.log_every, config.eval_every
    ckpt_every = config.checkpoint.every
    timing = {"loop_start": time.perf_counter(), "first_done": None, "pauses": 0.0}
    first_values: dict[str, float] = {}
    last_values: dict[str, float] = {}

    skipped_in_a_row = 0

    def write_window(window: log.Window, fetched: list[dict[str, Any]]) -> None:
        """Stops on a non-finite metric (or on more skipped steps in a row than
        config.skip_nonfinite_steps), else logs the window's means over the steps
        that updated, with the number skipped."""
        nonlocal skipped_in_a_row
        host = []
        for s, values in zip(window.steps, fetched):
            values = {k: float(v) for k, v in values.items()}
            if values.pop("skipped", 0.0):
                skipped_in_a_row += 1
                if skipped_in_a_row > max_skipped:
                    raise _non_finite_error(s, values, ckpt, skipped_in_a_row - 1)
                logger.warning("step %d skipped: non-finite %s", s, ", ".join(
                    k for k, v in values.items() if not math.isfinite(v)))
                continue
            skipped_in_a_row = 0
            if not _is_finite(values):
                raise _non_finite_error(s, values, ckpt)
            host.append(values)
        mean = {k: float(np.mean([h[k] for h in host])) for k in host[0]} if host else {}
        if host:
            if not first_values:
                first_values.update(host[0])
            last_values.update(host[-1])
        if max_skipped:
            mean["skipped_steps"] = len(window.steps) - len(host)
        mean["images_per_s"] = len(window.steps) * config.batch_size / max(window.seconds, 1e-9)
        writer.write(window.steps[-1] + 1, "train", mean)
        bar.set_postfix(bpd=f"{mean.get('bits_per_dim', math.nan):.3f}",
                        img_s=f"{mean['images_per_s']:.1f}")

    windows = log.LaggedWindows(write_window)

    bar = console.progress(num_steps, "train", "step", initial=start,
                           disable=not config.get("progress", True) or process != 0)
    try:
        step = start
        for batch in batches:
            state, metrics = step_fn(state, batch)
            windows.add(step, metrics)
            step += 1
            bar.update(1)
            if timing["first_done"] is None:  # the first run also pays one-off costs
                jax.block_until_ready(state.step)
                timing["first_done"] = time.perf_counter()
            boundary = step == num_steps
            do_eval = bool(eval_every) and eval_ds is not None and (
                step % eval_every == 0 or boundary)
            do_ckpt = step % ckpt_every == 0 or boundary
            if boundary or do_eval or do_ckpt:
                windows.boundary(everything=True)  # a checkpoint holds only finite state
            elif step % log_every == 0:
                windows.boundary()
            t_pause = time.perf_counter()
            if do_ckpt:
                ckpt.save(step, *_split_state(state))
            if do_eval:
                _evaluate(config, model, sample_model, mesh, state, eval_ds, writer, workdir,
                          step)
            if do_ckpt or do_eval:
                timing["pauses"] += time.perf_counter() - t_pause
                windows.restart_clock()
        jax.block_until_ready(state.step)
    finally:
        bar.close()
        batches.close()
    t_end, steps_run = time.perf_counter(), num_steps - start
    steady_s = t_end - timing["first_done"] - timing["pauses"]
    summary.update(
        first_step_s=timing["first_done"] - timing["loop_start"],
        steady_step_s=steady_s / (steps_run - 1) if steps_run > 1 else None,
        steady_images_per_s=((steps_run - 1) * config.batch_size / steady_s
                             if steps_run > 1 else None),
    )
    summary.update(steps_run=steps_run, final_step=num_steps, first_train_metrics=first_values,
                   last_train_metrics=last_values, checkpoint=str(ckpt.step_path(num_steps)))


def _evaluate(config, model, sample_model, mesh, state, eval_ds, writer, workdir,
              step) -> None:
    process, n_processes = jax.process_index(), jax.process_count()
    global_shape = (eval_ds.batch_size, *model.image_shape)
    key = stream(jax.random.key(config.seed), "eval")  # the same noise at every evaluation
    eval_fn = make_eval_step(model, mesh)
    values = []
    for i in range(eval_ds.steps_per_epoch):
        local = eval_ds.batch(i, process, n_processes)
        batch = jax.make_array_from_process_local_data(batch_sharding(mesh), local, global_shape)
        values.append(eval_fn(state, batch, jax.random.fold_in(key, i))["bits_per_dim"])
    bpd = float(np.mean([_to_host(v) for v in values]))
    if not math.isfinite(bpd):
        raise NonFiniteError(f"non-finite held-out bits/dim at step {step}")
    writer.write(step, "eval", {"bits_per_dim": bpd})
    samples = config.get("samples")
    if samples and samples.n and process == 0:
        key = stream(jax.random.key(config.seed), "samples")
        grid = sample_grid(sample_model, state.variables, key, samples.n,
                           tuple(samples.temperatures))
        (workdir / SAMPLES_DIR).mkdir(exist_ok=True)
        fio.write_png(workdir / SAMPLES_DIR / f"step_{step:08d}.png", grid, {
            "method": "Glow temperature samples (rows: temperature)", "step": step,
            "temperatures": list(samples.temperatures), "model": models.model_config(model)},
            overwrite=True)

