"""Batched encode and one-compiled-call decode of whole latent grids.

A transfer sweep decodes ``expressions x targets x alphas`` latents, an
attribute sweep ``images x vectors x alphas``. Rather than a Python loop over
alphas, the grid is cut into chunks of ``chunk_size`` grid points; for each
chunk one jitted function takes the chunk's grid indices, builds the latents
with ``jax.vmap`` over the points (the arithmetic of :mod:`flowjax.transfer.latents`)
and decodes them as one batch. Hence:

* **One compile.** Every chunk has the same shape (the last one is padded
  with repeats of the first grid point and its padding dropped), so the
  jitted function traces once per (model, grid kind, space, chunk and grid
  operand shapes) and is reused by every chunk and every later sweep of that
  shape. The transfer method is a runtime ``lax.switch``, so changing it does
  not recompile.
* **Bounded memory.** Only one chunk's activations are live (plus the next
  chunk, dispatched while the previous one is copied to the host); pick
  ``chunk_size`` for the model (a few images for 256x256 on a CPU).
* **Sharding.** With several devices the chunk's batch axis is sharded over a
  1-D ``jax.sharding.Mesh`` of them (``NamedSharding(mesh, P("batch"))``);
  weights and per-identity statistics are replicated. ``chunk_size`` is rounded
  up to a multiple of the device count. Results equal the single-device ones.
* **Progress.** A bar over chunks (by default when there are more than
  :data:`PROGRESS_MIN_CHUNKS` chunks; a line every few seconds when stderr is
  not a terminal: ``flowjax.io.console``).
* **Non-finite guard.** Each compiled call also returns one flag per grid
  point or image: whether its latent and its (unquantized) image are all
  finite, reduced on the device (no extra host round trip, no retrace).
  Quantizing clips and casts NaN to 0, so a NaN latent would otherwise become
  a black image. Any non-finite point raises :class:`NonFiniteError` naming
  the points (image, expression, target, alpha), the method and the likely
  cause: the weights are checked then (:func:`check_finite_variables`, only
  on this error path), so the error blames them only when they hold NaN or
  inf; with finite weights it names the alphas that overflowed the model (a
  latent moved far outside the range it was trained on) or the inputs. Alphas
  and ``var_eps`` are validated before any compute (``latents.check_alphas``,
  ``latents.check_var_eps``).

Encoding is batched the same way (:func:`encode_images`). Grids are given by
their operands (flat ``[.., D]`` latents in the chosen space), so the sweep
never sees files.

Longer than 400 lines because the chunking, padding, sharding, progress and non-finite
checks are one engine shared by all four sweeps (encode, decode, transfer, attribute).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from flowjax.flows import permutations
from flowjax.io import console
from flowjax.models import execution, glow
from flowjax.models.errors import NonFiniteError
from flowjax.models.glow import Encoding, Glow
from flowjax.transfer import latents as latents_lib

Array = jax.Array
PROGRESS_MIN_CHUNKS = 4
DEFAULT_CHUNK_SIZE = 16
BATCH_AXIS = "batch"
MAX_NAMED_POINTS = 5  # non-finite points named in an error; the rest are counted


class GridShare(NamedTuple):
    """The part of a grid sweep one process decoded (``process_share=True``).

    points: ``[n, 3]`` grid coordinates, e.g. (expression, target, alpha) indices.
    images: ``[n, S, S, C]`` the decoded images at those points, in the same order.
    With one process it is the whole grid; with several (``jax.distributed``),
    the processes' shares are disjoint and together cover the grid, so each
    process can write its own files.
    """

    points: np.ndarray
    images: np.ndarray


# ---- placement ------------------------------------------------------------------


class Placement:
    """Where chunks run: one device, or a 1-D mesh over several (batch-sharded)."""

    def __init__(self, devices: Sequence[jax.Device] | None = None) -> None:
        self.devices = list(devices) if devices is not None else jax.devices()
        if not self.devices:
            raise ValueError("no devices given; pass devices=None to use jax.devices()")
        self.mesh = (execution.data_mesh(BATCH_AXIS, self.devices) if len(self.devices) > 1
                     else None)

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    @property
    def batch_sharding(self) -> NamedSharding | None:
        """Sharding of a chunk's batch axis (None on one device)."""
        return None if self.mesh is None else NamedSharding(self.mesh, PartitionSpec(BATCH_AXIS))

    def replicate(self, tree: Any) -> Any:
        """Puts weights/operands on every device (or the one device)."""
        if self.mesh is None:
            return jax.device_put(tree, self.devices[0])
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    def shard_batch(self, array: np.ndarray) -> Array:
        if self.mesh is None:
            return jax.device_put(array, self.devices[0])
        return jax.device_put(array, self.batch_sharding)

    def chunk_size(self, requested: int, total: int) -> int:
        """``requested`` capped at the grid size, rounded up to the device count."""
        if requested < 1:
            raise ValueError(f"chunk_size must be >= 1, got {requested}")
        size = min(requested, max(total, 1))
        return math.ceil(size / self.n_devices) * self.n_devices


# ---- the chunk loop ---------------------------------------------------------------


def _run_chunks(step: Callable[[Array], Any], total: int, chunk_size: int,
                make_chunk: Callable[[np.ndarray], np.ndarray], placement: Placement,
                progress: bool | None, desc: str, share: bool = False) -> list[Any]:
    """Runs ``step`` on ``make_chunk(idx)`` for padded index chunks covering 0..total-1.

    Returns the per-chunk host outputs (a pytree of numpy arrays each), padding
    removed; with ``share``, ``(indices, output)`` pairs holding only the rows
    this process's devices computed. The next chunk is dispatched before the
    previous one is fetched, so host copies overlap device work.
    """
    size = placement.chunk_size(chunk_size, total)
    n_chunks = math.ceil(total / size)
    show = n_chunks > PROGRESS_MIN_CHUNKS if progress is None else progress
    fetch = _fetch_share if share else _fetch
    outputs: list[Any] = []
    pending: tuple[Any, int, int] | None = None
    with console.progress(n_chunks, desc, "chunk", disable=not show, leave=False) as bar:
        for start in range(0, total, size):
            valid = min(size, total - start)
            idx = np.arange(start, start + size)
            idx[valid:] = 0  # padding repeats grid point 0: same shape, dropped below
            result = step(placement.shard_batch(make_chunk(idx)))
            if pending is not None:
                outputs.append(fetch(*pending))
                bar.update(1)
            pending = (result, start, valid)
        if pending is not None:
            outputs.append(fetch(*pending))
            bar.update(1)
    return outputs


def _to_host(x: Array) -> np.ndarray:
    if x.is_fully_addressable:
        return np.asarray(x)
    # Several processes (jax.distributed): each computed the rows on its own
    # devices; every process gets the whole chunk, so results do not depend on
    # the number of processes.
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _fetch(result: Any, start: int, valid: int) -> Any:
    return jax.tree.map(lambda x: _to_host(x)[:valid], result)


def _fetch_share(result: Any, start: int, valid: int) -> tuple[np.ndarray, Any]:
    """The rows of ``result`` (a pytree of batch-sharded arrays) on this process's devices.

    Returns their global indices and the pytree of those rows, padding dropped.
    """
    def rows(x: Array) -> dict[int, np.ndarray]:
        found = {}
        for shard in x.addressable_shards:
            block, first = np.asarray(shard.data), shard.index[0].start or 0
            for offset in range(len(block)):
                if first + offset < valid:  # padding rows are dropped
                    found[start + first + offset] = block[offset]
        return found

    per_leaf = jax.tree.map(rows, result)
    indices = np.array(sorted(jax.tree.leaves(per_leaf, is_leaf=lambda x: isinstance(x, dict))[0]),
                       np.int64)
    take = lambda found, x: (np.stack([found[i] for i in indices]) if len(indices)  # noqa: E731
                             else np.zeros((0, *x.shape[1:]), x.dtype))
    return indices, jax.tree.map(take, per_leaf, result, is_leaf=lambda x: isinstance(x, dict))


def _concat(outputs: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *outputs)


def _grid_result(outputs: list[Any], grid: tuple[int, ...], share: bool,
                 describe: Callable[[int], str], what: str,
                 hint: str | Callable[[np.ndarray], str]) -> np.ndarray | GridShare:
    """The decoded grid (or this process's share of it), after the non-finite check."""
    if share:
        indices = np.concatenate([i for i, _ in outputs])
        images, finite = _concat([rows for _, rows in outputs])
        _raise_if_nonfinite(finite, what, describe, hint, indices=indices)
        return GridShare(points=np.stack(np.unravel_index(indices, grid), axis=-1), images=images)
    images, finite = _concat(outputs)
    images = images.reshape(*grid, *images.shape[1:])
    _raise_if_nonfinite(finite, what, describe, hint, partial=images)
    return images


def _constrain(x: Any, sharding: NamedSharding | None) -> Any:
    return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)


def _all_finite(x: Array) -> Array:
    """One bool per leading index: are all its entries finite?"""
    return jnp.all(jnp.isfinite(x).reshape(x.shape[0], -1), axis=1)


def _piece(sharding: NamedSharding | None) -> int | None:
    """Cache-sized pieces (flowjax.models.micro_batches) on one device; a chunk sharded over
    several goes whole (a loop over pieces would cut across the shards)."""
    return None if sharding is None else 0


def _decode_flat(model: Glow, variables: Any, flat: Array, space: str, quantize: bool,
                 sharding: NamedSharding | None) -> tuple[Array, Array]:
    """Images of flat latents and, per image, whether latent and image are finite.

    The check is on the float image, before quantizing clips NaN away.
    """
    flat = _constrain(flat, sharding)
    levels = latents_lib.unflatten(flat, model.latent_shapes)
    x = glow.apply_decode(model, variables, levels, None, space, False, _piece(sharding))
    finite = _all_finite(flat) & _all_finite(x)
    return (model.apply({}, x, method="postprocess") if quantize else x), finite


# ---- jitted chunk functions (module level, so their caches persist) -----------------


@functools.partial(jax.jit, static_argnames=("model", "sharding"))
def _encode_chunk(model: Glow, variables: Any, images: Array,
                  sharding: NamedSharding | None = None) -> tuple[Encoding, Array]:
    encoding = glow.apply_encode(model, variables, _constrain(images, sharding),
                                 piece=_piece(sharding))
    finite = jnp.ones(images.shape[0], bool)
    for leaf in jax.tree.leaves(encoding):  # eps, z, log_prob, bits_per_dim
        finite = finite & _all_finite(leaf)
    return encoding, finite


@functools.partial(jax.jit, static_argnames=("model", "space", "quantize", "sharding"))
def _decode_chunk(model: Glow, variables: Any, flat: Array, *, space: str, quantize: bool,
                  sharding: NamedSharding | None = None) -> tuple[Array, Array]:
    return _decode_flat(model, variables, flat, space, quantize, sharding)


def _transfer_latents(method: str, operands: dict[str, Array], index: Array,
                      var_eps: Array) -> Array:
    """The flat latents of a chunk of (expression, target, alpha) grid points."""

    def one(e, t, a):
        source = latents_lib.IdentityStats(operands["source_mean"][e], operands["source_var"][e], 0)
        target = latents_lib.IdentityStats(operands["target_mean"][t], operands["target_var"][t], 0)
        return latents_lib.transfer(method, operands["sources"][e], source, target,
                                    operands["alphas"][a], var_eps)

    return jax.vmap(one)(index[:, 0], index[:, 1], index[:, 2])


@functools.partial(jax.jit, static_argnames=("model", "space", "quantize", "sharding"))
def _transfer_chunk(model: Glow, variables: Any, operands: dict[str, Array], method_index: Array,
                    var_eps: Array, index: Array, *, space: str, quantize: bool,
                    sharding: NamedSharding | None = None) -> tuple[Array, Array]:
    # The method is a runtime switch, not a static argument: one compile serves
    # all of them (comparing methods in one process costs no recompilation).
    index = _constrain(index, sharding)
    branches = [functools.partial(_transfer_latents, m) for m in latents_lib.TRANSFER_METHODS]
    flat = jax.lax.switch(method_index, branches, operands, index, var_eps)
    return _decode_flat(model, variables, flat, space, quantize, sharding)


@functools.partial(jax.jit, static_argnames=("model", "space", "quantize", "sharding"))
def _attribute_chunk(model: Glow, variables: Any, operands: dict[str, Array], index: Array,
                     *, space: str, quantize: bool,
                     sharding: NamedSharding | None = None) -> tuple[Array, Array]:
    index = _constrain(index, sharding)

    def one(i, v, a):
        return latents_lib.manipulate(operands["latents"][i], operands["vectors"][v],
                                      operands["alphas"][a])

    flat = jax.vmap(one)(index[:, 0], index[:, 1], index[:, 2])
    return _decode_flat(model, variables, flat, space, quantize, sharding)


# ---- public API -------------------------------------------------------------------


def _decoder_variables(variables: Any, placement: Placement) -> Any:
    """``variables`` with every 1x1 conv's inverse weight computed once, here, for all the
    chunks a sweep decodes (else each jitted chunk recomputes them: on CPU the LAPACK
    calls cost more than a small batch's convs), placed on the devices."""
    return placement.replicate(permutations.with_inverse_weights(variables))


def _check_flat(name: str, array: Any, model: Glow, ndim: int) -> np.ndarray:
    array = np.asarray(array, np.float32)
    d = latents_lib.flat_size(model.latent_shapes)
    if array.ndim != ndim or array.shape[-1] != d:
        lead = "[n, D]" if ndim == 2 else "[D]"
        raise ValueError(f"{name} must be flat latents {lead} with D = {d} for this model "
                         f"({model.image_size}x{model.image_size}, {model.n_levels} levels); "
                         f"got shape {array.shape}")
    return array


# Beyond this |alpha| a transfer is past the usual grids ([-1, 3]): a non-finite decode
# there (with finite weights) is the alpha overflowing the model.
LARGE_ALPHA = 3.0


def _likely_cause(variables: Any, with_finite_weights: str) -> str:
    """Why a result is non-finite: the weights when they hold NaN or inf (checked here, on
    the error path only), else ``with_finite_weights``."""
    try:
        check_finite_variables(variables)
    except NonFiniteError as err:
        shown = ", ".join(err.points[:3]) + (" ..." if len(err.points) > 3 else "")
        return (f"The model's weights hold NaN or inf ({len(err.points)} parameter array(s): "
                f"{shown}): the checkpoint is damaged or came from a diverged training run; "
                "use an earlier checkpoint or re-export it")
    return with_finite_weights


def _alpha_cause(variables: Any, alphas: np.ndarray, bad_alphas: np.ndarray,
                 inputs: str) -> str:
    """:func:`_likely_cause` for a grid with an alpha axis; ``bad_alphas`` are the alpha
    indices of the non-finite points, ``inputs`` what else the latents are made of."""
    bad_indices = {int(a) for a in bad_alphas}
    bad = sorted({float(alphas[a]) for a in bad_indices}, key=abs)
    if bad and abs(bad[0]) > LARGE_ALPHA:  # every non-finite point has a large alpha
        fine = sorted({float(a) for i, a in enumerate(alphas) if i not in bad_indices})
        decoded = (f" (alpha {', '.join(f'{a:g}' for a in fine)} decoded finite)"
                   if fine else "")
        return _likely_cause(variables, (
            f"The model's weights are finite (checked), so alpha "
            f"{', '.join(f'{a:g}' for a in bad)} overflowed the model{decoded}: it moves the "
            "latent so far outside the range the model was trained on that decoding it "
            f"overflows. Use a smaller |alpha| (the usual grids lie in [-1, {LARGE_ALPHA:g}])"))
    return _likely_cause(variables, (
        "The model's weights are finite (checked), so the latents themselves are the cause: "
        f"check the {inputs} for NaN, inf or values far outside the range the model was "
        "trained on"))


def _raise_if_nonfinite(finite: np.ndarray, what: str, describe: Callable[[int], str],
                        hint: str | Callable[[np.ndarray], str],
                        indices: np.ndarray | None = None, partial: Any = None) -> None:
    """NonFiniteError naming the first few points whose flag is False, if any.

    ``indices`` are the points' global indices when ``finite`` covers only some of
    them (a process's share); ``describe``, a callable ``hint`` (called with the
    non-finite points, only when there are some) and the error's ``points`` use those.
    ``partial``: the whole result, carried by the error (``NonFiniteError.partial``).
    """
    bad = np.flatnonzero(~np.asarray(finite, bool))
    if bad.size == 0:
        return
    if indices is not None:
        bad = np.asarray(indices)[bad]
    named = "; ".join(describe(int(i)) for i in bad[:MAX_NAMED_POINTS])
    more = f"; and {bad.size - MAX_NAMED_POINTS} more" if bad.size > MAX_NAMED_POINTS else ""
    hint = hint(bad) if callable(hint) else hint
    raise NonFiniteError(f"{what}: {bad.size} of {np.size(finite)} are non-finite (NaN or inf): "
                         f"{named}{more}. {hint}", points=bad.tolist(), partial=partial)


def _name(names: Sequence[str] | None, i: int) -> str:
    return f"{i} ({names[i]!r})" if names is not None else str(i)


@jax.jit
def _finite_arrays(arrays: list[Array]) -> Array:
    # One compiled call for the whole tree (eager ops would compile once per shape).
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in arrays])


def check_finite_variables(variables: Any, what: str = "model variables") -> None:
    """Raises NonFiniteError naming every parameter array holding NaN or inf.

    One compiled reduction over all arrays, one host transfer: cheap next to an encode.
    """
    leaves = jax.tree_util.tree_leaves_with_path(variables)
    if not leaves:
        return
    flags = np.asarray(_finite_arrays([leaf for _, leaf in leaves]))
    bad = [jax.tree_util.keystr(path) for (path, _), ok in zip(leaves, flags) if not ok]
    if bad:
        raise NonFiniteError(
            f"{what}: {len(bad)} parameter array(s) hold NaN or inf: {', '.join(bad[:10])}"
            f"{' ...' if len(bad) > 10 else ''}. The checkpoint is damaged or came from a "
            "diverged training run: use an earlier checkpoint or re-export it", points=bad)


def _grid_index(shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    def make(idx: np.ndarray) -> np.ndarray:
        return np.stack(np.unravel_index(idx, shape), axis=-1).astype(np.int32)
    return make


def encode_images(model: Glow, variables: Any, images: np.ndarray, *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE,
                  devices: Sequence[jax.Device] | None = None,
                  progress: bool | None = None,
                  names: Sequence[str] | None = None) -> Encoding:
    """Encodes uint8 images ``[N, S, S, C]`` in padded chunks (deterministic mid-bin).

    Returns an :class:`~flowjax.models.glow.Encoding` of host numpy arrays, in input order.
    Raises :class:`NonFiniteError` naming the images (``names``, e.g. their files)
    whose latents or log-probability are not finite.
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty uint8 batch [N, H, W, C]; got {images.shape}")
    placement = Placement(devices)
    step = functools.partial(_encode_chunk, model, placement.replicate(variables),
                             sharding=placement.batch_sharding)
    outputs = _run_chunks(step, len(images), chunk_size, lambda idx: images[idx], placement,
                          progress, "encode")
    encoding, finite = _concat(outputs)
    _raise_if_nonfinite(finite, "encode: images", lambda i: f"image {_name(names, i)}",
                        lambda bad: _likely_cause(variables, (
                            "The model's weights are finite (checked), so the model itself "
                            "overflows on these images")))
    return encoding


def decode_latents(model: Glow, variables: Any, flat: Any, *, space: str = "eps",
                   quantize: bool = True, chunk_size: int = DEFAULT_CHUNK_SIZE,
                   devices: Sequence[jax.Device] | None = None,
                   progress: bool | None = None,
                   names: Sequence[str] | None = None) -> np.ndarray:
    """Decodes flat latents ``[N, D]`` in padded chunks -> images ``[N, S, S, C]``.

    uint8 with ``quantize=True``, else the float image in [-0.5, 0.5). Raises
    :class:`NonFiniteError` naming the latents (``names``) that are, or decode to,
    non-finite values; its ``partial`` holds every image decoded (those it names are
    undefined), so a caller that can use the rest need not decode again.
    """
    flat = _check_flat("latents", flat, model, 2)
    latents_lib.check_space(space)
    placement = Placement(devices)
    step = functools.partial(_decode_chunk, model, _decoder_variables(variables, placement),
                             space=space, quantize=quantize, sharding=placement.batch_sharding)
    outputs = _run_chunks(step, len(flat), chunk_size, lambda idx: flat[idx], placement,
                          progress, "decode")
    images, finite = _concat(outputs)
    _raise_if_nonfinite(finite, f"decode ({space}): latents", lambda i: f"latent {_name(names, i)}",
                        lambda bad: _likely_cause(variables, (
                            "The model's weights are finite (checked), so these latents are "
                            "non-finite or too far outside the range the model was trained on "
                            "to decode")), partial=images)
    return images


def transfer_sweep(model: Glow, variables: Any, sources: Any,
                   source_stats: latents_lib.IdentityStats,
                   target_stats: latents_lib.IdentityStats, alphas: Sequence[float], *,
                   method: str = "linear", space: str = "eps",
                   var_eps: float = latents_lib.DEFAULT_VARIANCE_EPS, quantize: bool = True,
                   chunk_size: int = DEFAULT_CHUNK_SIZE,
                   devices: Sequence[jax.Device] | None = None,
                   progress: bool | None = None,
                   expression_names: Sequence[str] | None = None,
                   target_names: Sequence[str] | None = None,
                   process_share: bool = False) -> np.ndarray | GridShare:
    """Decodes every ``latents.transfer(method, sources[e], source_e, target_t, alpha)``.

    ``sources`` is ``[E, D]`` flat latents (in ``space``) of the source
    expression images; ``source_stats`` holds per-source ``mean``/``var`` of
    shape ``[E, D]`` (each source's own identity statistics), ``target_stats``
    per-target ``[T, D]``. Returns ``[E, T, A, S, S, C]`` images (uint8, or
    float with ``quantize=False``), equal to decoding alpha by alpha; with
    ``process_share``, only the grid points this process decoded (:class:`GridShare`).
    Alphas and ``var_eps`` are validated first; a non-finite grid point raises
    :class:`NonFiniteError` naming (expression, target, alpha) by ``expression_names``
    and ``target_names`` when given.
    """
    if method not in latents_lib.TRANSFER_METHODS:
        hint = (f"; {method!r} transforms the sources: sweep what latents.prepare_sources "
                "returns (its sources and arithmetic method)"
                if method in latents_lib.SOURCE_METHODS else "")
        raise ValueError(f"unknown transfer method {method!r} for the sweep; choose one of "
                         f"{latents_lib.TRANSFER_METHODS}{hint}")
    latents_lib.check_space(space)
    alphas = latents_lib.check_alphas(alphas)
    var_eps = latents_lib.check_var_eps(var_eps, method)
    operands = {
        "sources": _check_flat("sources", sources, model, 2),
        "source_mean": _check_flat("source_stats.mean", source_stats.mean, model, 2),
        "source_var": _check_flat("source_stats.var", source_stats.var, model, 2),
        "target_mean": _check_flat("target_stats.mean", target_stats.mean, model, 2),
        "target_var": _check_flat("target_stats.var", target_stats.var, model, 2),
        "alphas": alphas,
    }
    n_e, n_t, n_a = len(operands["sources"]), len(operands["target_mean"]), len(operands["alphas"])
    if len(operands["source_mean"]) != n_e or len(operands["source_var"]) != n_e:
        raise ValueError(f"source_stats must have one row per source ({n_e}); got "
                         f"{len(operands['source_mean'])} means, {len(operands['source_var'])} vars")
    if len(operands["target_var"]) != n_t:
        raise ValueError(f"target_stats has {n_t} means but {len(operands['target_var'])} vars")
    if n_a == 0:
        raise ValueError("alphas is empty; give at least one alpha")
    grid = (n_e, n_t, n_a)
    placement = Placement(devices)
    step = functools.partial(
        _transfer_chunk, model, _decoder_variables(variables, placement),
        placement.replicate(operands),
        jnp.int32(latents_lib.TRANSFER_METHODS.index(method)), jnp.float32(var_eps),
        space=space, quantize=quantize,
        sharding=placement.batch_sharding)
    outputs = _run_chunks(step, math.prod(grid), chunk_size, _grid_index(grid), placement,
                          progress, f"transfer ({method}, {space})", share=process_share)

    def describe(i: int) -> str:
        e, t, a = np.unravel_index(i, grid)
        return (f"expression {_name(expression_names, e)}, target {_name(target_names, t)}, "
                f"alpha {float(alphas[a]):g}")

    def hint(bad: np.ndarray) -> str:
        cause = _alpha_cause(variables, alphas, np.unravel_index(bad, grid)[2],
                             "source latents and the identities' statistics")
        if method in latents_lib.VARIANCE_METHODS:
            return (f"Method {method!r} divides by the identities' variance + var_eps "
                    f"(var_eps={var_eps:g}): raise var_eps or give every identity several "
                    f"images. {cause}")
        return cause

    return _grid_result(outputs, grid, process_share, describe,
                        f"transfer sweep ({method}, {space}): grid points", hint)


def attribute_sweep(model: Glow, variables: Any, latents: Any, vectors: Any,
                    alphas: Sequence[float], *, space: str = "eps", quantize: bool = True,
                    chunk_size: int = DEFAULT_CHUNK_SIZE,
                    devices: Sequence[jax.Device] | None = None,
                    progress: bool | None = None,
                    image_names: Sequence[str] | None = None,
                    vector_names: Sequence[str] | None = None,
                    process_share: bool = False) -> np.ndarray | GridShare:
    """Decodes every ``latents[i] + alphas[a] * vectors[v]`` -> ``[I, V, A, S, S, C]``.

    With ``process_share``, only the grid points this process decoded (:class:`GridShare`).
    Alphas are validated first; a non-finite grid point raises :class:`NonFiniteError`
    naming (image, vector, alpha).
    """
    latents_lib.check_space(space)
    alphas = latents_lib.check_alphas(alphas)
    operands = {
        "latents": _check_flat("latents", latents, model, 2),
        "vectors": _check_flat("vectors", vectors, model, 2),
        "alphas": alphas,
    }
    grid = (len(operands["latents"]), len(operands["vectors"]), len(operands["alphas"]))
    if 0 in grid:
        raise ValueError(f"empty attribute grid (images, vectors, alphas) = {grid}")
    placement = Placement(devices)
    step = functools.partial(
        _attribute_chunk, model, _decoder_variables(variables, placement),
        placement.replicate(operands),
        space=space, quantize=quantize, sharding=placement.batch_sharding)
    outputs = _run_chunks(step, math.prod(grid), chunk_size, _grid_index(grid), placement,
                          progress, f"attribute ({space})", share=process_share)

    def describe(i: int) -> str:
        n, v, a = np.unravel_index(i, grid)
        return (f"image {_name(image_names, n)}, vector {_name(vector_names, v)}, "
                f"alpha {float(alphas[a]):g}")

    return _grid_result(outputs, grid, process_share, describe,
                        f"attribute sweep ({space}): grid points",
                        lambda bad: _alpha_cause(variables, alphas,
                                                 np.unravel_index(bad, grid)[2],
                                                 "image latents and the vectors"))
