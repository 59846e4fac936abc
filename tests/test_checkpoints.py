"""Specification of flowjax.models.checkpoints: model exports, training checkpoints, load_model."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import models
from flowjax import io as fio
from flowjax.models import checkpoints, checksum_record, glow
from flowjax.models.checkpoints import CheckpointError
from flowjax.models.glow import Glow

# Small, with a "constants" collection (shuffle indices) and a split prior.
MODEL = Glow(image_size=8, n_levels=2, depth=1, width=8, permutation="shuffle")
IMAGES = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
DEMO = Path(__file__).resolve().parents[1] / "weights" / "demo" / "glow"


@pytest.fixture(scope="module")
def variables():
    return glow.init(MODEL, jax.random.key(0), IMAGES)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _training_workdir(path, variables, steps=(3, 7)):
    """A workdir as training leaves it: model_config.json (+ its checksums.json) and
    checkpoints/<step>/."""
    path.mkdir()
    checkpoints.write_model_config(path, MODEL, record=True)
    with checkpoints.TrainCheckpointer(path, keep=5) as ckpt:
        for step in steps:
            shifted = jax.tree.map(lambda p: p + step / 100, variables["params"])
            ckpt.save(step, {**variables, "params": shifted},
                      {"step": jnp.int32(step), "rng": jnp.zeros(2, jnp.uint32)})
    return path


def test_save_model_writes_config_metadata_and_variables(tmp_path, variables):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables, metadata={"source": "test"})
    assert json.loads((out / "model_config.json").read_text()) == models.model_config(MODEL)
    assert checkpoints.load_metadata(out) == {"source": "test"}
    assert (out / "variables").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no temporary left behind


def test_export_alone_rebuilds_the_model_and_encodes_and_decodes(tmp_path, variables):
    checkpoints.save_model(tmp_path / "export", MODEL, variables)
    model, loaded = checkpoints.load_model(tmp_path / "export")
    assert model == MODEL
    _assert_trees_equal(loaded, variables)
    enc = glow.encode(model, loaded, IMAGES)
    np.testing.assert_array_equal(np.asarray(glow.decode(model, loaded, enc.eps)), IMAGES // 8 * 8)


def test_training_workdir_loads_its_latest_checkpoint(tmp_path, variables, caplog):
    workdir = _training_workdir(tmp_path / "run", variables, steps=(3, 7))
    with caplog.at_level("INFO", logger="flowjax.models.checkpoints"):
        model, loaded = checkpoints.load_model(workdir)
    # a workdir that is still training moves on: the log says which step was read
    assert f"loaded {workdir} at its newest checkpoint, step 7" in caplog.text
    assert model == MODEL
    expected = jax.tree.map(lambda p: p + 7 / 100, variables["params"])
    _assert_trees_equal(loaded["params"], expected)
    _assert_trees_equal(loaded["constants"], variables["constants"])
    enc = glow.encode(model, loaded, IMAGES)
    assert np.all(np.isfinite(np.asarray(enc.bits_per_dim)))


def test_a_checkpoint_saved_with_one_execution_setting_loads_with_another(tmp_path, variables):
    """remat, scan_unroll and precision are not the model: the export does not record
    them, the load gives the family's defaults, and any other setting runs the weights."""
    saved_with = MODEL.clone(remat=True, scan_unroll=2, precision="default")
    out = checkpoints.save_model(tmp_path / "export", saved_with.clone(
        conditioner_dtype="bfloat16", conv_algorithm="xla"), variables)
    assert not {"remat", "scan_unroll", "precision", "conditioner_dtype", "conv_algorithm"} & set(
        json.loads((out / "model_config.json").read_text()))
    model, loaded = checkpoints.load_model(out)
    assert model == MODEL and models.model_config(model) == models.model_config(saved_with)
    expected = glow.encode(saved_with, variables, IMAGES).eps
    for setting in ({}, {"remat": True}, {"scan_unroll": 2}, {"precision": "high"},
                    {"conv_algorithm": "xla"}):
        for a, b in zip(glow.encode(model.clone(**setting), loaded, IMAGES).eps, expected):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_an_old_model_config_with_execution_settings_still_loads(tmp_path, variables):
    """Configs written before the settings left model_config.json (weights/demo/glow's,
    covered by its checksums.json) keep loading: the settings in them are ignored."""
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    old = {**glow.model_config(MODEL), "remat": True, "scan_unroll": 4, "precision": "default"}
    (out / "model_config.json").write_text(json.dumps(old))
    checksum_record.write(out, overwrite=True)  # recorded, as the old export recorded it
    model, loaded = checkpoints.load_model(out)
    assert model == MODEL
    _assert_trees_equal(loaded, variables)
    demo = json.loads((DEMO / "model_config.json").read_text())
    assert demo["scan_unroll"] == 8 and demo["precision"] == "highest"  # as shipped
    assert checkpoints.verify_checksums(DEMO)
    assert checkpoints.read_model_config(DEMO) == Glow(
        image_size=64, n_levels=3, depth=8, width=64)


def _edit_config_unrecorded(out, config):
    """Replaces an export's config as an export saved before records covered it would
    have it (its record lists only variables/), so the load gets past the checksums."""
    (out / "model_config.json").write_text(json.dumps(config))
    record = json.loads((out / "checksums.json").read_text())
    record["files"] = {k: v for k, v in record["files"].items() if k.startswith("variables/")}
    (out / "checksums.json").write_text(json.dumps(record))


def test_wrong_shape_parameter_fails_naming_it(tmp_path, variables):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    _edit_config_unrecorded(out, glow.model_config(MODEL) | {"width": 16})
    message = r"level_0/coupling/conv1/W has shape \(1, 3, 3, 7, 8\) .* expects \(1, 3, 3, 7, 16\)"
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoints.load_model(out)
    assert str(out / "variables") in str(e.value)


def test_missing_collection_fails_naming_the_parameter(tmp_path, variables):
    shuffle_free = Glow(image_size=8, n_levels=2, depth=1, width=8, permutation="reverse")
    out = checkpoints.save_model(tmp_path / "export", shuffle_free,
                                 {"params": variables["params"]})
    _edit_config_unrecorded(out, glow.model_config(MODEL))
    with pytest.raises(CheckpointError, match="constants/level_0/invconv/indices is missing"):
        checkpoints.load_model(out)


def test_save_model_refuses_an_existing_directory(tmp_path, variables):
    (tmp_path / "export").mkdir()
    with pytest.raises(FileExistsError, match="never replaces"):
        checkpoints.save_model(tmp_path / "export", MODEL, variables)


def test_save_model_with_mismatched_variables_writes_nothing(tmp_path, variables):
    other = Glow(image_size=8, n_levels=2, depth=1, width=4, permutation="shuffle")
    with pytest.raises(CheckpointError, match="conv1/W"):
        checkpoints.save_model(tmp_path / "export", other, variables)
    assert list(tmp_path.iterdir()) == []


def test_load_model_rejects_a_folder_that_is_no_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="neither a save_model export"):
        checkpoints.load_model(tmp_path)


def test_checkpointer_keeps_the_latest_n_steps(tmp_path, variables):
    with checkpoints.TrainCheckpointer(tmp_path, keep=2) as ckpt:
        for step in (1, 2, 3, 4):
            ckpt.save(step, variables, {"step": jnp.int32(step)})
        ckpt.wait()
        assert ckpt.all_steps() == [3, 4]
    assert checkpoints.latest_step(tmp_path) == 4


def test_checkpointer_refuses_to_overwrite_a_saved_step(tmp_path, variables):
    with checkpoints.TrainCheckpointer(tmp_path, keep=2) as ckpt:
        ckpt.save(1, variables, {"step": jnp.int32(1)})
        ckpt.wait()
        before = fio.sha256_dir(ckpt.step_path(1))
        with pytest.raises(FileExistsError, match="already exists"):
            ckpt.save(1, variables, {"step": jnp.int32(2)})
        assert fio.sha256_dir(ckpt.step_path(1)) == before


def test_checkpointer_restore_checks_the_training_state_shapes(tmp_path, variables):
    with checkpoints.TrainCheckpointer(tmp_path) as ckpt:
        ckpt.save(1, variables, {"rng": jnp.zeros(2, jnp.uint32)})
        ckpt.wait()
        abstract = checkpoints.abstract_variables(MODEL)
        with pytest.raises(CheckpointError, match=r"training state entry rng has shape \(2,\)"):
            ckpt.restore(1, abstract, {"rng": jax.ShapeDtypeStruct((4,), jnp.uint32)})


# --- integrity: checksums.json, damaged files --------------------------------------------


def _largest_array_file(folder):
    """The biggest file of orbax's array store under ``folder`` (the parameters' bytes)."""
    files = [f for f in folder.rglob("*") if f.is_file() and "ocdbt.process_0" in f.parts
             and f.parent.name == "d"]
    return max(files, key=lambda f: f.stat().st_size)


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


DAMAGES = {
    "flipped byte in an array file": lambda d: _flip_a_byte(_largest_array_file(d)),
    "truncated array file": lambda d: _truncate(_largest_array_file(d)),
    "missing _METADATA": lambda d: (d / "_METADATA").unlink() or d / "_METADATA",
    "truncated _METADATA": lambda d: _truncate(d / "_METADATA"),
    "flipped byte in _sharding": lambda d: _flip_a_byte(d / "_sharding"),
}


def test_save_model_records_the_checksum_of_every_file(tmp_path, variables):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    record = json.loads((out / "checksums.json").read_text())
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                   if p.is_file() and p.name != "checksums.json")
    assert {"model_config.json", "metadata.json"} <= set(files)
    assert sorted(record["files"]) == files
    some = files[0]
    assert record["files"][some] == {"sha256": fio.sha256_file(out / some),
                                     "bytes": (out / some).stat().st_size}
    assert checkpoints.verify_checksums(out) is True


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_export_is_a_checkpoint_error_naming_the_file(tmp_path, variables, damage):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    damaged = damage(out / "variables")
    with pytest.raises(checkpoints.DamagedCheckpointError, match="is damaged") as e:
        checkpoints.load_model(out)
    assert isinstance(e.value, CheckpointError) and str(damaged) in str(e.value)


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_training_step_is_a_checkpoint_error_naming_the_file(tmp_path, variables,
                                                                     damage):
    workdir = _training_workdir(tmp_path / "run", variables)
    damaged = damage(workdir / "checkpoints" / "7" / "variables")
    with pytest.raises(checkpoints.DamagedCheckpointError, match=str(damaged)):
        checkpoints.load_model(workdir)
    with checkpoints.TrainCheckpointer(workdir) as ckpt:
        with pytest.raises(checkpoints.DamagedCheckpointError, match=str(damaged)):
            ckpt.restore(7, checkpoints.abstract_variables(MODEL), {})


def test_empty_step_folder_is_a_checkpoint_error_naming_it(tmp_path, variables):
    workdir = _training_workdir(tmp_path / "run", variables)
    step = workdir / "checkpoints" / "7"
    for path in sorted(step.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    with pytest.raises(checkpoints.DamagedCheckpointError, match=f"{step} has no checksums.json"):
        checkpoints.load_model(workdir)


def test_step_without_checksums_is_damaged_only_when_an_older_step_has_them(tmp_path, variables):
    workdir = _training_workdir(tmp_path / "run", variables, steps=(3, 7))
    with checkpoints.TrainCheckpointer(workdir) as ckpt:
        record_7 = (ckpt.step_path(7) / "checksums.json").read_bytes()
        (ckpt.step_path(7) / "checksums.json").unlink()  # a save cut short before its record
        with pytest.raises(checkpoints.DamagedCheckpointError, match="older steps .* have one"):
            ckpt.verify(7)
        (ckpt.step_path(7) / "checksums.json").write_bytes(record_7)
        (ckpt.step_path(3) / "checksums.json").unlink()  # as written before records existed
        assert ckpt.verify(3) is False and ckpt.verify(7) is True  # 3 loads unverified
        (ckpt.step_path(7) / "checksums.json").unlink()
        assert ckpt.verify(7) is False  # no step has a record: an old workdir
        state = {"step": jax.ShapeDtypeStruct((), jnp.int32),
                 "rng": jax.ShapeDtypeStruct((2,), jnp.uint32)}
        restored, rest = ckpt.restore(7, checkpoints.abstract_variables(MODEL), state)
    assert int(rest["step"]) == 7
    _assert_trees_equal(restored["constants"], variables["constants"])


def test_damaged_checksum_record_is_named(tmp_path, variables):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    _truncate(out / "checksums.json")
    with pytest.raises(checkpoints.DamagedCheckpointError, match=f"{out}/checksums.json is damaged"):
        checkpoints.load_model(out)


def test_training_steps_get_their_checksums_once_the_background_save_finished(tmp_path,
                                                                                variables):
    with checkpoints.TrainCheckpointer(tmp_path, keep=3, async_save=True) as ckpt:
        ckpt.save(1, variables, {"step": jnp.int32(1)})
        ckpt.save(2, variables, {"step": jnp.int32(2)})
        assert (ckpt.step_path(1) / "checksums.json").is_file()  # recorded before saving step 2
        ckpt.wait()
        assert ckpt.verify(1) and ckpt.verify(2)
    record = json.loads((tmp_path / "checkpoints" / "2" / "checksums.json").read_text())
    assert {"_CHECKPOINT_METADATA", "variables/_METADATA", "train_state/_METADATA"} <= set(
        record["files"])


def test_a_step_is_hashed_off_the_caller_thread_while_training_goes_on(tmp_path, variables,
                                                                         monkeypatch):
    """save() returns while the record is being written; wait() returns once it is."""
    started, release, threads = threading.Event(), threading.Event(), []
    real_write = checksum_record.write

    def slow_write(directory, *args, **kwargs):
        threads.append(threading.current_thread())
        started.set()
        release.wait(timeout=30)  # a synchronous save would sit here for 30 s
        return real_write(directory, *args, **kwargs)

    monkeypatch.setattr(checksum_record, "write", slow_write)
    with checkpoints.TrainCheckpointer(tmp_path, keep=3) as ckpt:
        t0 = time.perf_counter()
        ckpt.save(1, variables, {"step": jnp.int32(1)})
        assert time.perf_counter() - t0 < 20
        assert started.wait(timeout=20)  # hashing began on another thread ...
        assert threads == [t for t in threads if t is not threading.main_thread()]
        assert not (ckpt.step_path(1) / "checksums.json").exists()  # ... and is still going
        release.set()
        ckpt.wait()
        assert (ckpt.step_path(1) / "checksums.json").is_file()
        assert ckpt.verify(1)


def test_the_next_save_starts_only_after_the_previous_record(tmp_path, variables, monkeypatch):
    """With keep=1 the next save deletes the previous step: it must not be mid-hash."""
    with checkpoints.TrainCheckpointer(tmp_path, keep=1) as ckpt:
        real_save, seen = ckpt._manager.save, []

        def save_checking_records(step, *args, **kwargs):
            seen.append((step, (ckpt.step_path(step - 1) / "checksums.json").is_file()))
            return real_save(step, *args, **kwargs)

        monkeypatch.setattr(ckpt._manager, "save", save_checking_records)
        for step in (1, 2, 3):
            ckpt.save(step, variables, {"step": jnp.int32(step)})
        ckpt.wait()
        assert seen == [(1, False), (2, True), (3, True)]  # no step 0; then each previous record
        assert ckpt.all_steps() == [3] and ckpt.verify(3)


def test_a_record_that_cannot_be_written_stops_the_next_save_naming_the_step(tmp_path, variables,
                                                                            monkeypatch):
    def full_disk(directory, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checksum_record, "write", full_disk)
    ckpt = checkpoints.TrainCheckpointer(tmp_path, keep=3)
    ckpt.save(1, variables, {"step": jnp.int32(1)})
    with pytest.raises(OSError, match=r"checksums of checkpoint .*checkpoints/1: No space left"):
        ckpt.save(2, variables, {"step": jnp.int32(2)})
    ckpt.close()


def test_export_without_checksums_still_loads_unverified(tmp_path, variables, caplog):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    (out / "checksums.json").unlink()  # as exports written before the record existed
    with caplog.at_level("WARNING", logger="flowjax.models.checkpoints"):
        _, loaded = checkpoints.load_model(out)
    _assert_trees_equal(loaded, variables)
    assert "has no checksums.json: loading it unverified" in caplog.text


def test_damaged_export_without_checksums_is_still_a_checkpoint_error(tmp_path, variables):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    (out / "checksums.json").unlink()
    _truncate(out / "variables" / "_METADATA")
    with pytest.raises(checkpoints.DamagedCheckpointError, match=str(out / "variables")):
        checkpoints.load_model(out)


def _copy_of_the_demo_with_n_bits(tmp_path, n_bits):
    """The issue's edit: one digit of the text, so the file keeps its size."""
    out = Path(shutil.copytree(DEMO, tmp_path / "glow"))
    text = (out / "model_config.json").read_text()
    assert text.count('"n_bits": 5') == 1
    (out / "model_config.json").write_text(text.replace('"n_bits": 5', f'"n_bits": {n_bits}'))
    return out


def test_edited_model_config_is_a_checkpoint_error_naming_it(tmp_path):
    # n_bits 5 -> 8 keeps every parameter's shape: without the config's checksum the
    # same weights load into another model and give other pixels (issue #27).
    out = _copy_of_the_demo_with_n_bits(tmp_path, 8)
    with pytest.raises(checkpoints.DamagedCheckpointError,
                       match=rf"{out}/model_config.json has sha256 .* \(its bytes changed\)"
                             r".*an edited one builds a different model"):
        checkpoints.load_model(out)
    with pytest.raises(CheckpointError, match=f"{out}/model_config.json has sha256"):
        checkpoints.read_model_config(out)  # what the experiments read before the weights


def test_edited_model_config_of_a_training_workdir_is_named(tmp_path, variables):
    workdir = _training_workdir(tmp_path / "run", variables, steps=(3,))
    config = json.loads((workdir / "model_config.json").read_text())
    (workdir / "model_config.json").write_text(json.dumps({**config, "n_bits": 5}))
    with pytest.raises(checkpoints.DamagedCheckpointError,
                       match=f"{workdir}/model_config.json has .*an edited one"):
        checkpoints.load_model(workdir)


def test_old_record_without_the_config_loads_with_a_warning(tmp_path, variables, caplog):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    _edit_config_unrecorded(out, glow.model_config(MODEL))  # the same config, unrecorded
    with caplog.at_level("WARNING", logger="flowjax.models.checkpoints"):
        model, loaded = checkpoints.load_model(out)
    assert model == MODEL
    _assert_trees_equal(loaded, variables)
    assert "no checksums.json covers its model_config.json" in caplog.text
    assert checkpoints.verify_checksums(out) is True  # its arrays still verify


def test_old_workdir_without_a_config_record_loads_with_a_warning(tmp_path, variables, caplog):
    workdir = _training_workdir(tmp_path / "run", variables, steps=(3,))
    (workdir / "checksums.json").unlink()  # as training wrote workdirs before
    with caplog.at_level("WARNING", logger="flowjax.models.checkpoints"):
        model, _ = checkpoints.load_model(workdir)
    assert model == MODEL
    assert "no checksums.json covers its model_config.json" in caplog.text
    checkpoints.add_checksums(workdir)
    caplog.clear()
    with caplog.at_level("WARNING", logger="flowjax.models.checkpoints"):
        checkpoints.load_model(workdir)
    assert "no checksums.json" not in caplog.text


def test_add_checksums_extends_an_old_record_to_the_config_after_verifying_it(tmp_path,
                                                                              variables):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    _edit_config_unrecorded(out, glow.model_config(MODEL))
    flipped = _flip_a_byte(_largest_array_file(out / "variables"))
    with pytest.raises(checkpoints.DamagedCheckpointError, match=str(flipped)):
        checkpoints.add_checksums(out)  # a damaged array is never re-recorded as good
    _flip_a_byte(flipped)  # undone
    checkpoints.add_checksums(out)
    assert "model_config.json" in json.loads((out / "checksums.json").read_text())["files"]
    with pytest.raises(FileExistsError, match="covers model_config.json"):
        checkpoints.add_checksums(out)


def test_add_checksums_makes_an_old_export_verifiable(tmp_path, variables):
    out = checkpoints.save_model(tmp_path / "export", MODEL, variables)
    (out / "checksums.json").unlink()
    checkpoints.add_checksums(out)
    flipped = _flip_a_byte(_largest_array_file(out / "variables"))
    with pytest.raises(checkpoints.DamagedCheckpointError, match=str(flipped)):
        checkpoints.load_model(out)
    with pytest.raises(FileExistsError):
        checkpoints.add_checksums(out)


@pytest.mark.parametrize("demo", [DEMO, DEMO.parent / "hard" / "glow"], ids=["easy", "hard"])
def test_shipped_demo_checkpoint_verifies_and_loads(demo, caplog):
    assert checkpoints.verify_checksums(demo) is True
    with caplog.at_level("WARNING", logger="flowjax.models.checkpoints"):
        model, loaded = checkpoints.load_model(demo)
    assert model.image_size == 64 and "params" in loaded
    record = json.loads((demo / "checksums.json").read_text())
    assert {"model_config.json", "metadata.json"} <= set(record["files"])
    assert caplog.text == ""  # every file verified, nothing loaded unverified
