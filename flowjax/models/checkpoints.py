"""Checkpoints: the one module that talks to orbax.

Two layouts, one reader (:func:`load_model`):

* **Model export** (:func:`save_model`)::

      <directory>/model_config.json   registry.model_config(model): {"family", fields...}
                                      (what the model is; not remat, scan_unroll, precision)
      <directory>/metadata.json       the caller's metadata ({} when none)
      <directory>/variables/          orbax StandardSave of {"params"[, "constants"]}

  Written into a hidden temporary sibling and renamed into place, so the
  directory either does not exist or is complete. An existing directory is
  never replaced.

* **Training workdir** (:class:`TrainCheckpointer`, used by ``flowjax.training.train``)::

      <workdir>/model_config.json
      <workdir>/checkpoints/<step>/variables/     {"params"[, "constants"]}
      <workdir>/checkpoints/<step>/train_state/   {"step", "opt_state", "rng"}

  An ``ocp.CheckpointManager`` with a ``LatestN`` preservation policy (plus an
  optional ``EveryNSteps`` one); orbax writes each step into a temporary
  folder and renames it when complete, so a crash leaves the previous steps
  intact. Each step's ``variables/`` has exactly the export layout, so a model
  loads from either with the same code.

**Integrity.** Both layouts carry ``checksums.json``: the sha256 and size of
every file of the checkpoint, written once the save is complete. An export's
record lists all its files (``model_config.json``, ``metadata.json`` and
``variables/``); a training step's lists its whole folder, and the workdir's
own ``<workdir>/checksums.json`` its ``model_config.json``, which every step
shares. Loading verifies them first, so a flipped byte, a truncated or missing
file, an empty step or an edited ``model_config.json`` (which would build a
different model around the same weights, e.g. another ``n_bits``) is a
:class:`DamagedCheckpointError` naming the file, never a silently different
model or a raw orbax/TensorStore error. A checkpoint without the record
(written before it existed) still loads, unverified, and a damaged one then
still gets a :class:`DamagedCheckpointError` (naming the folder) where orbax
notices. A record written before records covered the config (it lists only
``variables/``; or a workdir without its own record) still verifies what it
lists, and the load warns that the config is unverified: nothing can prove an
old checkpoint's config. ``add_checksums(directory)`` records every file of a
checkpoint you trust (after verifying what an old record lists). In a
training workdir a step without a record is damaged when an older step has
one (its save was interrupted before the record was written). Training's resume falls
back to the newest step that verifies (``flowjax.training.train``).

Restores go against ``jax.eval_shape`` of the model's initialisation, after
comparing the stored tree with it: a missing, unexpected or wrong-shaped
parameter is a :class:`CheckpointError` that names the parameter path, the
expected and stored shapes, and the checkpoint folder.

Single-process for exports; the training checkpointer is multi-host safe
(orbax coordinates the processes).

Longer than 400 lines because every orbax call lives here, so an orbax upgrade touches
one file: the export, the training checkpointer, their checksums and the structural
checks of what they restore.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import jax
import numpy as np
import orbax.checkpoint as ocp

from flowjax import io as fio
from flowjax.flows.bijectors import CONSTANTS
from flowjax.models import checksum_record, execution, glow, registry
from flowjax.models.glow import Glow

PathLike = Union[str, "os.PathLike[str]"]

MODEL_CONFIG_NAME = "model_config.json"
METADATA_NAME = "metadata.json"
VARIABLES_DIR = "variables"
TRAIN_STATE_DIR = "train_state"
CHECKPOINTS_DIR = "checkpoints"
CHECKSUMS_NAME = checksum_record.RECORD_NAME
DAMAGED_DIR = "damaged_checkpoints"  # <workdir>/damaged_checkpoints/<step>: set aside on resume
COLLECTIONS = ("params", CONSTANTS)

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not match the model."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint's files are damaged (checksum, size, missing, unreadable): not a mismatch."""


# --------------------------------------------------------------------------
# Integrity record (checksums.json, see flowjax.models.checksum_record)
# --------------------------------------------------------------------------


def add_checksums(directory: PathLike) -> Path:
    """Writes ``checksums.json`` covering every file of a checkpoint saved before records did.

    * A :func:`save_model` export without a record: all its files, as they are now.
    * An export whose record lists only ``variables/`` (written before records covered
      ``model_config.json`` and ``metadata.json``): what it lists is verified first
      (:class:`DamagedCheckpointError` if it does not), then all files are recorded.
    * A training workdir without ``<workdir>/checksums.json``: its ``model_config.json``
      (each step keeps its own record).

    Run it only on a checkpoint you trust: a file nothing recorded (the config of an
    old checkpoint) is recorded as it is now. An export's config must still describe
    a model its variables fit (:class:`CheckpointError` naming the parameters if not).
    Refuses (FileExistsError) a checkpoint whose record covers its config already.
    """
    directory = Path(directory)
    if (directory / VARIABLES_DIR).is_dir():
        covered: tuple[str, ...] = ()  # every file
    elif (directory / CHECKPOINTS_DIR).is_dir():
        covered = (MODEL_CONFIG_NAME,)
    else:
        raise CheckpointError(f"{directory} is neither a save_model export (no {VARIABLES_DIR}/) "
                              f"nor a training workdir (no {CHECKPOINTS_DIR}/)")
    names = _listed(directory)
    if names is not None and MODEL_CONFIG_NAME in names:
        raise FileExistsError(f"{directory / CHECKSUMS_NAME} already exists and covers "
                              f"{MODEL_CONFIG_NAME}")
    if names is not None:
        verify_checksums(directory)  # the old record's files must still be what it recorded
    model = read_model_config(directory)
    if not covered:
        path = (directory / VARIABLES_DIR).absolute()
        with ocp.StandardCheckpointer() as checkpointer, _reading(path, names is not None):
            check_tree(_tree_of(checkpointer.metadata(path).item_metadata, path),
                       abstract_variables(model), path)
    return checksum_record.write(directory, covered, overwrite=names is not None)


def verify_checksums(directory: PathLike) -> bool:
    """Checks every file ``<directory>/checksums.json`` lists; False when there is no record.

    Raises :class:`DamagedCheckpointError` naming each missing, resized or
    changed file (or an unreadable record).
    """
    try:
        return checksum_record.verify(directory)
    except checksum_record.ChecksumError as e:
        raise DamagedCheckpointError(
            f"checkpoint {e}. Restore it from a copy, or use another checkpoint.") from e


def _listed(directory: Path) -> frozenset[str] | None:
    """The files ``<directory>/checksums.json`` lists (None: no record)."""
    try:
        return checksum_record.listed(directory)
    except checksum_record.ChecksumError as e:
        raise DamagedCheckpointError(
            f"checkpoint {e}. Restore it from a copy, or use another checkpoint.") from e


def _verify_model_config(directory: Path) -> bool:
    """Checks ``model_config.json`` against ``<directory>/checksums.json``: True when the
    record lists it and it matches, False when no record lists it (an old checkpoint)."""
    names = _listed(directory)
    if names is None or MODEL_CONFIG_NAME not in names:
        return False
    try:
        return checksum_record.verify(directory, only=(MODEL_CONFIG_NAME,))
    except checksum_record.ChecksumError as e:
        raise DamagedCheckpointError(
            f"checkpoint {e}. {MODEL_CONFIG_NAME} must describe the model the weights were "
            "saved for: an edited one builds a different model around the same weights. "
            "Restore it from a copy, or use another checkpoint.") from e


@contextlib.contextmanager
def _reading(path: Path, verified: bool):
    """Turns whatever orbax/TensorStore raise on a damaged checkpoint into a
    DamagedCheckpointError naming ``path`` (a CheckpointError passes as is)."""
    try:
        yield
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - orbax/TensorStore raise many types on bad files
        record = ("although its checksums verify" if verified else
                  f"it has no {CHECKSUMS_NAME}, so the damaged file cannot be named")
        raise DamagedCheckpointError(
            f"cannot read the checkpoint {path} ({type(e).__name__}: {str(e)[:300]}); it is "
            f"damaged or incomplete ({record}). Restore it from a copy, or use another "
            "checkpoint.") from e


# --------------------------------------------------------------------------
# Model config and variables
# --------------------------------------------------------------------------


def write_model_config(directory: PathLike, model: Glow, *, overwrite: bool = False,
                       record: bool = False) -> Path:
    """Writes ``<directory>/model_config.json`` (atomically) and returns its path.

    It records the model's registered family and its fields
    (:func:`flowjax.models.model_config`); an unregistered class is refused.
    ``record=True`` (a training workdir) also writes ``<directory>/checksums.json``
    covering it; an export's record is written by :func:`save_model`.
    """
    path = Path(directory) / MODEL_CONFIG_NAME
    fio.atomic_write_json(path, registry.model_config(model), overwrite=overwrite)
    if record:
        checksum_record.write(directory, (MODEL_CONFIG_NAME,), overwrite=overwrite)
    return path


def read_model_config(directory: PathLike) -> Glow:
    """The model described by ``<directory>/model_config.json``: exactly its family's class.

    The file is checked against ``<directory>/checksums.json`` first when that
    lists it (an edited config is a :class:`DamagedCheckpointError` naming it).
    A file without ``"family"`` (written before the registry) is a Glow; a
    family or flow step nobody registered is a :class:`CheckpointError` naming it.
    Execution settings in a file written before they left it (``weights/demo/glow``'s
    ``scan_unroll``) said how that run executed: they are ignored, and the model
    has its family's defaults (:mod:`flowjax.models.execution`).
    """
    return _read_model_config(Path(directory))[0]


def _read_model_config(directory: Path) -> tuple[Glow, bool]:
    """:func:`read_model_config` and whether a record verified the file."""
    path = directory / MODEL_CONFIG_NAME
    verified = path.is_file() and _verify_model_config(directory)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} does not exist; a checkpoint directory needs the model config "
            "written by save_model or by training") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the file is corrupt") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object of model fields, "
                              f"got {type(config).__name__}")
    family = config.get(registry.FAMILY_KEY, registry.DEFAULT_FAMILY)
    identity = {k: v for k, v in config.items() if k not in execution.EXECUTION_FIELDS}
    try:
        return registry.model_from_config(identity), verified
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot build the {family!r} model it describes: {e}") from e


def variable_collections(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The collections a checkpoint stores: "params" and a non-empty "constants"."""
    if "params" not in variables:
        raise ValueError(f"variables must hold a 'params' collection; got {sorted(variables)}")
    unknown = sorted(set(variables) - set(COLLECTIONS))
    if unknown:
        raise ValueError(f"unexpected variable collections {unknown}; expected {list(COLLECTIONS)}")
    out = {"params": variables["params"]}
    if variables.get(CONSTANTS):
        out[CONSTANTS] = variables[CONSTANTS]
    return out


def abstract_variables(model: Glow) -> dict[str, Any]:
    """Shapes and dtypes of the collections a checkpoint of ``model`` stores."""
    return variable_collections(glow.abstract_variables(model))


def _path_name(path: tuple) -> str:
    def name(k: Any) -> str:
        for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey (NamedTuple), SequenceKey
            if hasattr(k, attr):
                return str(getattr(k, attr))
        return str(k)

    return "/".join(name(k) for k in path)


def _leaves_by_path(tree: Any) -> dict[str, Any]:
    return {_path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_tree(stored: Any, expected: Any, where: Path, what: str = "parameter") -> None:
    """Raises CheckpointError naming every leaf of ``stored`` that does not fit ``expected``.

    Both trees hold objects with ``shape`` and ``dtype`` (orbax ArrayMetadata,
    ShapeDtypeStruct, arrays).
    """
    have, want = _leaves_by_path(stored), _leaves_by_path(expected)
    problems = []
    for name in sorted(set(want) - set(have)):
        problems.append(f"{what} {name} is missing (expected shape {tuple(want[name].shape)})")
    for name in sorted(set(have) - set(want)):
        problems.append(f"{what} {name} is not in the model "
                        f"(stored shape {tuple(have[name].shape)})")
    for name in sorted(set(want) & set(have)):
        w, h = want[name], have[name]
        if tuple(w.shape) != tuple(h.shape):
            problems.append(f"{what} {name} has shape {tuple(h.shape)} in the checkpoint, "
                            f"the model expects {tuple(w.shape)}")
        elif np.dtype(w.dtype) != np.dtype(h.dtype):
            problems.append(f"{what} {name} has dtype {np.dtype(h.dtype)} in the checkpoint, "
                            f"the model expects {np.dtype(w.dtype)}")
    if problems:
        more = f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        shown = "; ".join(problems[:8]) + more
        raise CheckpointError(
            f"checkpoint {where} does not match the model: {shown}. Check that "
            f"{MODEL_CONFIG_NAME} describes the model these weights were trained for.")


def _tree_of(metadata: Any, path: Path) -> Any:
    """The stored tree of an item's metadata (None when orbax found no ``_METADATA``)."""
    tree = getattr(metadata, "tree", None)
    if tree is None:
        raise DamagedCheckpointError(f"checkpoint {path} has no readable _METADATA; it is "
                                     "damaged or incomplete")
    return tree


def restore_variables(path: PathLike, model: Glow, *, verified: bool = False) -> dict[str, Any]:
    """Restores a ``variables/`` folder for ``model`` (checked against its shapes).

    Checksums are verified by the callers (:func:`load_model`), which know
    where the record is; ``verified`` only words the error of an unreadable one.
    """
    path = Path(path).absolute()
    if not path.is_dir():
        raise CheckpointError(f"checkpoint variables folder {path} does not exist")
    expected = abstract_variables(model)
    with ocp.StandardCheckpointer() as checkpointer, _reading(path, verified):
        check_tree(_tree_of(checkpointer.metadata(path).item_metadata, path), expected, path)
        return dict(checkpointer.restore(path, expected))


# --------------------------------------------------------------------------
# Model export
# --------------------------------------------------------------------------


def check_new_export_dir(directory: PathLike, what: str = "checkpoint directory") -> Path:
    """Refuses, before any work, an export directory that exists or whose folder does not.

    ``what`` names the directory in the error (a converter passes its ``--out`` flag).
    """
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"{what} {directory} already exists; a checkpoint export never "
                              "replaces a checkpoint. Choose a new directory or delete the old one.")
    if not directory.parent.is_dir():
        raise FileNotFoundError(f"cannot save {what} {directory}: its folder {directory.parent} "
                                "does not exist; create it first")
    return directory


def save_model(directory: PathLike, model: Glow, variables: Mapping[str, Any], *,
               metadata: Mapping[str, Any] | None = None) -> Path:
    """Exports ``model`` and its ``variables`` to a new ``directory`` (see module docstring).

    Refuses an existing directory; atomic (temporary sibling, then rename);
    ``checksums.json`` records every file (config, metadata, variables).
    Returns the directory's path.
    """
    directory = check_new_export_dir(directory)
    stored = variable_collections(variables)
    check_tree(stored, abstract_variables(model), directory)
    metadata_text = fio.to_json(dict(metadata or {}))  # serialise before writing anything
    tmp = directory.absolute().with_name(f".{directory.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        write_model_config(tmp, model)
        fio.atomic_write_text(tmp / METADATA_NAME, metadata_text + "\n")
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(tmp / VARIABLES_DIR, stored)
            checkpointer.wait_until_finished()
        checksum_record.write(tmp)
        if directory.exists():  # appeared while we were writing
            raise FileExistsError(f"{directory} appeared while saving; not replacing it")
        os.rename(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_metadata(directory: PathLike) -> dict[str, Any]:
    """The ``metadata`` a :func:`save_model` export was written with."""
    path = Path(directory) / METADATA_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} does not exist; is {directory} a save_model export?") from None


def load_model(directory: PathLike) -> tuple[Glow, dict[str, Any]]:
    """``(model, variables)`` from a :func:`save_model` export or a training workdir.

    A workdir gives its latest checkpoint. Checksums are verified first (see
    the module docstring): a damaged checkpoint is a :class:`DamagedCheckpointError`
    naming the file. The variables are host-local arrays on the default
    device; ``glow.encode(model, variables, images)`` works on them directly.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist; check the path")
    if (directory / VARIABLES_DIR).is_dir():
        model, config_verified = _read_model_config(directory)
        verified = verify_checksums(directory)
        if not verified:
            logger.warning("%s has no %s: loading it unverified (flowjax.models.checkpoints."
                           "add_checksums records one for an export you trust)",
                           directory, CHECKSUMS_NAME)
        elif not config_verified:
            _warn_unverified_config(directory)
        return model, restore_variables(directory / VARIABLES_DIR, model, verified=verified)
    if (directory / CHECKPOINTS_DIR).is_dir():
        model, config_verified = _read_model_config(directory)
        if not config_verified:
            _warn_unverified_config(directory)
        manager = _read_only_manager(directory)
        with contextlib.closing(manager):
            step = manager.latest_step()
            if step is None:
                raise CheckpointError(
                    f"training workdir {directory} has no finished checkpoint in "
                    f"{directory / CHECKPOINTS_DIR}; train longer or pick another run")
            step_dir = directory / CHECKPOINTS_DIR / str(step)
            verified = _verify_step(step_dir, manager.all_steps())
            path = step_dir / VARIABLES_DIR
            expected = abstract_variables(model)
            with _reading(path, verified):
                stored = manager.item_metadata(step).get(VARIABLES_DIR)
                check_tree(_tree_of(stored, path), expected, path)
                restored = manager.restore(step, args=ocp.args.Composite(
                    **{VARIABLES_DIR: ocp.args.StandardRestore(expected)}))
        # A workdir's newest step moves while it trains: say which one was read.
        logger.info("loaded %s at its newest checkpoint, step %d", directory, step)
        return model, dict(restored[VARIABLES_DIR])
    raise CheckpointError(
        f"{directory} is neither a save_model export ({MODEL_CONFIG_NAME} + {VARIABLES_DIR}/) "
        f"nor a training workdir ({MODEL_CONFIG_NAME} + {CHECKPOINTS_DIR}/)")


def _warn_unverified_config(directory: Path) -> None:
    logger.warning("%s: no %s covers its %s (saved before records covered the config), so "
                   "the model its weights are built into is unverified "
                   "(flowjax.models.checkpoints.add_checksums records it for a checkpoint you "
                   "trust)", directory, CHECKSUMS_NAME, MODEL_CONFIG_NAME)


def _verify_step(step_dir: Path, all_steps: Any) -> bool:
    """Verifies a training step. A step without a record is damaged when an older
    step has one (it was saved by this code, and its save did not finish); when
    none has, it was written before records existed and loads unverified."""
    if verify_checksums(step_dir):
        return True
    older = [step_dir.parent / str(s) / CHECKSUMS_NAME for s in all_steps
             if s < int(step_dir.name)]
    if any(path.is_file() for path in older):
        raise DamagedCheckpointError(
            f"checkpoint {step_dir} has no {CHECKSUMS_NAME} although older steps of "
            f"{step_dir.parent} have one: its save did not finish (or the file was deleted)")
    return False


# --------------------------------------------------------------------------
# Training checkpoints
# --------------------------------------------------------------------------


def _item_handlers() -> dict[str, ocp.CheckpointHandler]:
    # Declared up front so a fresh manager can read metadata before any save.
    return {VARIABLES_DIR: ocp.StandardCheckpointHandler(),
            TRAIN_STATE_DIR: ocp.StandardCheckpointHandler()}


def _read_only_manager(workdir: PathLike) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        (Path(workdir) / CHECKPOINTS_DIR).absolute(), item_handlers=_item_handlers(),
        options=ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0))


def latest_step(workdir: PathLike) -> int | None:
    """The newest finished checkpoint step of a training workdir (None if none)."""
    if not (Path(workdir) / CHECKPOINTS_DIR).is_dir():
        return None
    with contextlib.closing(_read_only_manager(workdir)) as manager:
        return manager.latest_step()


class TrainCheckpointer:
    """Saves and restores training state in ``<workdir>/checkpoints``.

    ``keep`` newest steps are kept (``LatestN``); with ``keep_every=k`` every
    step divisible by k is kept too. ``async_save`` lets orbax write in the
    background (device arrays are copied to the host before ``save`` returns,
    so the caller may donate them); :meth:`wait` or :meth:`close` finishes it.

    Each step's ``checksums.json`` is written by a recorder thread once orbax has
    finished writing it: hashing a step (about 2 GB at celeba256 with Adamax
    moments) overlaps the training steps that follow instead of stalling them.
    Anything that reads or saves steps (the next :meth:`save`, :meth:`verify`,
    :meth:`restore`, ...) first waits for that record, so the retention policy
    never deletes a step being hashed and a step is never judged unrecorded
    while its record is being written; a failed record is raised there, on the
    caller's thread.
    """

    def __init__(self, workdir: PathLike, *, keep: int = 3, keep_every: int | None = None,
                 async_save: bool = True):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        policies = [ocp.checkpoint_managers.LatestN(keep)]
        if keep_every:
            policies.append(ocp.checkpoint_managers.EveryNSteps(keep_every))
        policy = (policies[0] if len(policies) == 1
                  else ocp.checkpoint_managers.AnyPreservationPolicy(policies))
        self.directory = (Path(workdir) / CHECKPOINTS_DIR).absolute()
        # One thread, so records are written in the order of the saves.
        self._recorder = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="flowjax-checksums")
        self._recording: concurrent.futures.Future | None = None  # the newest save's record
        self._manager = ocp.CheckpointManager(
            self.directory, item_handlers=_item_handlers(),
            options=ocp.CheckpointManagerOptions(
                preservation_policy=policy, enable_async_checkpointing=async_save, create=True),
        )

    def latest_step(self) -> int | None:
        self._finish_recording()
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        self._finish_recording()
        return sorted(self._manager.all_steps())

    def step_path(self, step: int) -> Path:
        return self.directory / str(step)

    def save(self, step: int, variables: Mapping[str, Any], train_state: Mapping[str, Any]) -> None:
        """Saves step ``step``; refuses to replace an existing one.

        Its ``checksums.json`` is written by the recorder thread once the
        (background) save has finished; the previous step's record is complete
        before this save starts.
        """
        self._finish_recording()
        if step in self._manager.all_steps():
            raise FileExistsError(f"checkpoint {self.step_path(step)} already exists; "
                                  "not overwriting a saved step")
        saved = self._manager.save(step, args=ocp.args.Composite(**{
            VARIABLES_DIR: ocp.args.StandardSave(variable_collections(variables)),
            TRAIN_STATE_DIR: ocp.args.StandardSave(dict(train_state)),
        }), force=True)
        if not saved:
            raise RuntimeError(f"orbax declined to save step {step} in {self.directory}")
        self._recording = self._recorder.submit(self._record, step)

    def _record(self, step: int) -> None:
        """On the recorder thread: waits for orbax to finish writing ``step``, then
        writes its checksums.json (process 0 only)."""
        self._manager.wait_until_finished()
        path = self.step_path(step)
        if jax.process_index() == 0 and path.is_dir():
            try:
                checksum_record.write(path)
            except OSError as e:
                raise OSError(e.errno, f"could not write the checksums of checkpoint {path}: "
                              f"{e.strerror or e}") from e

    def _finish_recording(self) -> None:
        """Waits for the newest save's record; raises its error here if it failed."""
        recording, self._recording = self._recording, None
        if recording is not None:
            recording.result()

    def verify(self, step: int) -> bool:
        """Verifies step ``step`` (see :func:`verify_checksums`); False: saved without a record."""
        self._finish_recording()
        return _verify_step(self.step_path(step), self._manager.all_steps())

    def set_aside(self, step: int) -> Path:
        """Moves a damaged step to ``<workdir>/damaged_checkpoints/`` (kept for inspection,
        out of the way of a new save of that step) and returns its new path."""
        self._finish_recording()
        target = self.directory.parent / DAMAGED_DIR / str(step)
        if jax.process_index() == 0:
            target.parent.mkdir(exist_ok=True)
            n = 1
            while target.exists():
                target, n = target.with_name(f"{step}-{n}"), n + 1
            os.rename(self.step_path(step), target)
        if jax.process_count() > 1:
            ocp.multihost.sync_global_processes(f"flowjax_set_aside_{step}")
        self._manager.reload()
        return target

    def restore(self, step: int, abstract_variables: Mapping[str, Any],
                abstract_train_state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restores step ``step`` onto the shardings of the abstract trees.

        Verifies its checksums first: :class:`DamagedCheckpointError` for
        damaged files, :class:`CheckpointError` for trees that do not match.
        """
        path = self.step_path(step)
        verified = self.verify(step)
        with _reading(path, verified):
            stored = self._manager.item_metadata(step)
            check_tree(_tree_of(stored.get(VARIABLES_DIR), path / VARIABLES_DIR),
                       dict(abstract_variables), path / VARIABLES_DIR)
            check_tree(_tree_of(stored.get(TRAIN_STATE_DIR), path / TRAIN_STATE_DIR),
                       dict(abstract_train_state), path / TRAIN_STATE_DIR,
                       what="training state entry")
            restored = self._manager.restore(step, args=ocp.args.Composite(**{
                VARIABLES_DIR: ocp.args.StandardRestore(dict(abstract_variables)),
                TRAIN_STATE_DIR: ocp.args.StandardRestore(dict(abstract_train_state)),
            }))
        return dict(restored[VARIABLES_DIR]), dict(restored[TRAIN_STATE_DIR])

    def wait(self) -> None:
        """Blocks until a background save has finished (and its checksums are written)."""
        self._manager.wait_until_finished()
        self._finish_recording()

    def close(self) -> None:
        try:
            self._finish_recording()
        finally:
            self._recorder.shutdown()
            self._manager.close()

    def __enter__(self) -> TrainCheckpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

