"""Specification of flowjax.training.train and the training datasets of flowjax.training.datasets.

The training tests share the ``:tiny`` config of configs/train.py, so the
process compiles its initialisation and train step once.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from flowjax import models, synthetic
from flowjax import io as fio
from flowjax.models import checkpoints
from flowjax.training import datasets, optimizers, train

ROOT = Path(__file__).resolve().parents[1]


def _tiny_config(**overrides):
    spec = importlib.util.spec_from_file_location("train_config", ROOT / "configs" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("tiny")
    config.progress = False
    config.update_from_flattened_dict(overrides)
    return config


def _params(workdir):
    return checkpoints.load_model(workdir)[1]["params"]


def _subprocess_env(devices: int = 1) -> dict[str, str]:
    # Level-0 LLVM codegen compiles several times faster; fine for small models.
    flags = f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags, "PYTHONPATH": str(ROOT)}


# --- datasets ---------------------------------------------------------------


def test_array_dataset_batch_depends_only_on_seed_and_step():
    images = datasets.generated_images(0, 10, 4)
    a, b = datasets.ArrayDataset(images, 4, seed=3), datasets.ArrayDataset(images, 4, seed=3)
    np.testing.assert_array_equal(a.batch(7), b.batch(7))
    assert not np.array_equal(a.batch(7), datasets.ArrayDataset(images, 4, seed=4).batch(7))


def test_each_epoch_is_a_new_shuffle_that_drops_the_remainder():
    ds = datasets.ArrayDataset(datasets.generated_images(0, 10, 4), 4, seed=0)
    assert ds.steps_per_epoch == 2
    epoch0 = np.concatenate([ds.indices(0), ds.indices(1)])
    epoch1 = np.concatenate([ds.indices(2), ds.indices(3)])
    assert len(set(epoch0)) == 8 and len(set(epoch1)) == 8  # 2 of 10 dropped per epoch
    assert not np.array_equal(epoch0, epoch1)


def test_process_slices_concatenate_to_the_global_batch():
    ds = datasets.ArrayDataset(datasets.generated_images(0, 12, 4), 6, seed=1)
    parts = [ds.batch(5, process_index=p, process_count=3) for p in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), ds.batch(5))


def test_dataset_smaller_than_a_batch_is_an_error():
    with pytest.raises(fio.ImageDataError, match="3 images, fewer than one batch of 4"):
        datasets.ArrayDataset(datasets.generated_images(0, 3, 4), 4)


def test_image_folder_dataset_finds_images_recursively_and_skips_hidden(tmp_path):
    for rel in ["a/1.png", "a/b/2.png", "3.jpg", ".hidden/4.png", "a/.5.png", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / rel, format="PNG")
    files = fio.list_image_files_recursive(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["3.jpg", "a/1.png", "a/b/2.png"]
    ds = datasets.ImageFolderDataset.from_folder(tmp_path, 2, size=4)
    assert ds.batch(0).shape == (2, 4, 4, 3) and ds.batch(0).dtype == np.uint8


def test_image_folder_dataset_error_names_the_bad_file(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(fio.ImageDataError, match=r"b\.png: size 6x6"):
        datasets.ImageFolderDataset.from_folder(tmp_path, 1, size=4, validate="all")


def test_prefetch_keeps_order_and_reraises_errors_from_its_thread():
    assert list(datasets.prefetch(iter(range(5)), 2, lambda x: x * 10)) == [0, 10, 20, 30, 40]

    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(datasets.prefetch(broken()))


def test_folder_source_holds_out_num_eval_images(tmp_path):
    for i in range(12):
        folder = tmp_path / "faces" / f"person{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(datasets.generated_images(i, 1, 16)[0]).save(folder / f"{i}.png")
    config = _tiny_config(**{"data.source": "folder", "data.folder": str(tmp_path / "faces"),
                             "data.num_eval": 4, "eval_batch_size": 2, "init_batch_size": 8})
    train_ds, eval_ds = datasets.make_datasets(config, 16)
    assert (len(train_ds), len(eval_ds)) == (8, 4)
    assert not set(train_ds.files) & set(eval_ds.files)


def test_synthetic_source_trains_on_the_renderers_faces_and_holds_out_the_last():
    """The default and demo configs' source: flowjax.synthetic's faces, rendered once."""
    config = _tiny_config(**{"data.source": "synthetic", "data.num_train": 6, "data.num_eval": 2,
                             "batch_size": 2, "eval_batch_size": 2, "init_batch_size": 6})
    train_ds, eval_ds = datasets.make_datasets(config, 16)
    faces = synthetic.make_dataset(config.seed, 8, 16).images
    np.testing.assert_array_equal(train_ds.images, faces[:6])
    np.testing.assert_array_equal(eval_ds.images, faces[6:])


# --- training ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The :tiny config trained for its 50 steps (with evaluation and samples)."""
    workdir = tmp_path_factory.mktemp("tiny") / "run"
    config = _tiny_config()
    summary = train.train(config, workdir)
    return config, workdir, summary


def test_bits_per_dim_on_a_fixed_batch_decreases_over_50_steps(tiny_run):
    config, workdir, _ = tiny_run
    model = models.model_from_config(config.model)
    spec = optimizers.OptimizerSpec.from_config(config.optimizer)
    mesh = train.make_mesh()
    dataset, _ = datasets.make_datasets(config, model.image_size)
    initial = train.make_init(model, spec, mesh)(
        jax.random.key(config.seed), dataset.init_batch(config.init_batch_size, config.seed))
    trained = initial.replace(params=_params(workdir))
    batch, key = dataset.batch(0), jax.random.key(123)
    bpd = lambda state: float(train.make_eval_step(model, mesh)(state, batch, key)["bits_per_dim"])
    start, end = bpd(initial), bpd(trained)
    assert end < start - 0.5, (start, end)


def test_training_writes_metrics_config_samples_and_summary(tiny_run):
    config, workdir, summary = tiny_run
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "eval"] == [50]
    # One line per log interval and one where a checkpoint cut it, in order, though
    # each is fetched an interval late.
    boundaries = set(range(config.log_every, 51, config.log_every)) | set(
        range(config.checkpoint.every, 51, config.checkpoint.every))
    assert [x["step"] for x in lines if x["split"] == "train"] == sorted(boundaries)
    assert len(boundaries) > 3
    assert all(np.isfinite(x["bits_per_dim"]) for x in lines)
    assert json.loads((workdir / "config.json").read_text())["num_steps"] == 50
    png = workdir / "samples" / "step_00000050.png"
    assert fio.read_png_provenance(png)["Synthetic"] == "true"
    assert summary["final_step"] == 50 and summary["compile_s"] > 0
    assert summary["steady_images_per_s"] > 0


def test_constants_are_carried_but_not_optimised(tiny_run):
    config, workdir, _ = tiny_run
    model, variables = checkpoints.load_model(workdir)
    spec = optimizers.OptimizerSpec.from_config(config.optimizer)
    dataset, _ = datasets.make_datasets(config, model.image_size)
    initial = train.make_init(model, spec, train.make_mesh())(
        jax.random.key(config.seed), dataset.init_batch(config.init_batch_size, config.seed))
    assert model.permutation == "shuffle" and "constants" in variables
    for a, b in zip(jax.tree.leaves(variables["constants"]), jax.tree.leaves(initial.constants)):
        np.testing.assert_array_equal(a, b)
    assert jax.tree.structure(initial.opt_state[0].mu) == jax.tree.structure(initial.params)


def test_resume_continues_exactly(tmp_path):
    config = _tiny_config(num_steps=10, eval_every=0, **{"checkpoint.every": 5})
    train.train(config, tmp_path / "straight")
    config.num_steps = 5
    train.train(config, tmp_path / "stopped")
    config.num_steps = 10
    resumed = train.train(config, tmp_path / "stopped")
    assert resumed["start_step"] == 5
    assert checkpoints.latest_step(tmp_path / "stopped") == checkpoints.latest_step(
        tmp_path / "straight") == 10
    for a, b in zip(jax.tree.leaves(_params(tmp_path / "straight")),
                    jax.tree.leaves(_params(tmp_path / "stopped"))):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


# The run every execution-setting case resumes: 5 steps at remat off, scan_unroll 1 and
# precision "default" (training's own), and the same run straight through 10 steps.
EXECUTION_START = {"model.remat": False, "model.scan_unroll": 1, "model.precision": "default"}


@pytest.fixture(scope="module")
def stopped_and_straight(tmp_path_factory):
    root = tmp_path_factory.mktemp("execution")
    config = _tiny_config(num_steps=10, eval_every=0, **{"checkpoint.every": 5}, **EXECUTION_START)
    train.train(config, root / "straight")
    config.num_steps = 5
    train.train(config, root / "stopped")
    return root / "stopped", _params(root / "straight")


@pytest.mark.parametrize("field, value, atol", [("remat", True, 0), ("precision", "highest", 0),
                                                pytest.param("scan_unroll", 2, 1e-7,
                                                             marks=pytest.mark.slow)],
                         ids=["remat_on", "precision_highest", "scan_unroll_2"])
def test_resume_after_changing_an_execution_setting_continues_exactly(
        tmp_path, stopped_and_straight, field, value, atol):
    """remat, scan_unroll and precision say how the model runs, not what it is: a run
    resumes across a change of any of them, and the summary records what ran.

    On the CPU, remat and precision end the 10 steps bit for bit where the unchanged
    run does (XLA:CPU computes float32 convs and matmuls the same at every precision).
    Unrolling the scan compiles the steps' conv gradients outside a loop body, where
    XLA:CPU sums them in another order: measured 4.7e-10 at most (1-2 ulp) after 5 steps,
    so 1e-7 here, against up to 3e-3 (the learning rate) that one step moves a parameter."""
    stopped, straight = stopped_and_straight
    workdir = Path(shutil.copytree(stopped, tmp_path / "run"))
    config = _tiny_config(num_steps=10, eval_every=0, **{"checkpoint.every": 5}, **EXECUTION_START)
    config.model[field] = value
    summary = train.train(config, workdir)
    assert summary["start_step"] == 5 and summary["final_step"] == 10
    assert summary["execution"][field] == value
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(_params(workdir)), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=atol)


def test_training_runs_at_the_default_precision_unless_configured(tmp_path):
    """The per-phase policy: an unset precision ("auto") trains at "default" (TF32 on
    Ampere/Hopper GPUs) and decodes the evaluation's samples at "highest"."""
    config = _tiny_config(num_steps=0)
    assert config.model.precision == "auto"
    summary = train.train(config, tmp_path / "auto")
    assert summary["execution"]["precision"] == "default"
    assert summary["execution"]["decode_precision"] == "highest"
    config.model.precision = "highest"
    summary = train.train(config, tmp_path / "highest")
    assert summary["execution"]["precision"] == summary["execution"]["decode_precision"] == "highest"


def test_the_workdir_records_what_the_model_is_not_how_it_ran(tmp_path):
    config = _tiny_config(num_steps=0, **{"model.remat": True, "model.scan_unroll": 2})
    train.train(config, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "model_config.json").read_text())
    assert not {"remat", "scan_unroll", "precision"} & set(saved)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["remat"] is True


def test_resuming_with_another_model_is_refused(tmp_path):
    config = _tiny_config(num_steps=0)
    train.train(config, tmp_path / "run")
    config.model.width = 32
    with pytest.raises(ValueError, match=r"trains a different model: \{'width': \(16, 32\)\}"):
        train.train(config, tmp_path / "run")


def test_resuming_with_another_optimizer_is_refused(tmp_path):
    # adamax's and adam's states have the same tree: only the record tells them apart.
    config = _tiny_config(num_steps=0)
    train.train(config, tmp_path / "run")
    config.optimizer.name = "adam"
    with pytest.raises(ValueError, match="trained with optimizer 'adamax' .* resuming with "
                                         "'adam' .* would misread it"):
        train.train(config, tmp_path / "run")


def test_switching_gradient_clipping_on_when_resuming_is_refused(tmp_path):
    config = _tiny_config(num_steps=0)
    train.train(config, tmp_path / "run")
    config.optimizer.grad_clip_norm = 1.0
    with pytest.raises(ValueError, match=r"grad_clip_norm=0.0\), its checkpoints"):
        train.train(config, tmp_path / "run")


def _flip_a_parameter_byte(step_dir):
    files = [f for f in (step_dir / "variables").rglob("*") if f.is_file()
             and "ocdbt.process_0" in f.parts and f.parent.name == "d"]
    target = max(files, key=lambda f: f.stat().st_size)
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    target.write_bytes(bytes(raw))
    return target


def test_resume_falls_back_to_the_newest_checkpoint_that_verifies(tmp_path, caplog):
    workdir = tmp_path / "run"
    config = _tiny_config(num_steps=4, eval_every=0, **{"checkpoint.every": 2, "checkpoint.keep": 3})
    train.train(config, workdir)
    flipped = _flip_a_parameter_byte(workdir / "checkpoints" / "4")
    config.num_steps = 6
    with caplog.at_level("WARNING", logger="flowjax.training.train"):
        summary = train.train(config, workdir)
    assert summary["start_step"] == 2 and summary["final_step"] == 6
    assert str(flipped) in caplog.text and "resuming from step 2" in caplog.text
    [damaged] = summary["damaged_checkpoints"]
    assert damaged["step"] == 4 and str(flipped) in damaged["error"]
    assert Path(damaged["moved_to"]) == workdir / "damaged_checkpoints" / "4"
    assert (workdir / "damaged_checkpoints" / "4" / "checksums.json").is_file()  # kept
    with checkpoints.TrainCheckpointer(workdir) as ckpt:  # step 4 saved anew, all verify
        assert ckpt.all_steps() == [2, 4, 6]
        assert all(ckpt.verify(step) for step in ckpt.all_steps())


def test_non_finite_error_never_names_a_damaged_checkpoint_as_good(tmp_path):
    workdir = tmp_path / "run"
    config = _tiny_config(num_steps=4, eval_every=0, **{"checkpoint.every": 2, "checkpoint.keep": 3})
    train.train(config, workdir)
    _flip_a_parameter_byte(workdir / "checkpoints" / "4")
    config.num_steps, config.optimizer.learning_rate = 10, 1e30
    with pytest.raises(train.NonFiniteError, match=r"the last good checkpoint is step 2 at "
                                                   r".*checkpoints/2"):
        train.train(config, workdir)


@pytest.fixture
def two_bad_batches(monkeypatch):
    """A loss that is NaN (with NaN gradients) on any batch holding an all-white image,
    and a dataset whose batches 3 and 4 do."""
    real_loss = train.bits_per_dim_loss

    def loss_nan_on_white(model, params, constants, images, noise):
        white = jnp.any(jnp.all(images == 255, axis=(1, 2, 3)))
        return real_loss(model, params, constants, images, noise) * jnp.where(white, jnp.nan, 1.0)

    monkeypatch.setattr(train, "bits_per_dim_loss", loss_nan_on_white)
    train.make_train_step.cache_clear()  # steps compiled with the real loss
    config = _tiny_config(num_steps=8, eval_every=0, log_every=2, **{"checkpoint.every": 8})
    images = datasets.generated_images(0, 8 * config.batch_size, 16)
    images[3 * config.batch_size] = images[4 * config.batch_size] = 255
    yield config, datasets.ArrayDataset(images, config.batch_size, shuffle=False)
    train.make_train_step.cache_clear()


def test_skipped_non_finite_steps_leave_the_state_as_it_was_and_are_logged(tmp_path,
                                                                          two_bad_batches):
    config, dataset = two_bad_batches
    config.skip_nonfinite_steps = 2
    summary = train.train(config, tmp_path / "run", train_dataset=dataset)
    assert summary["final_step"] == 8
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x["skipped_steps"]) for x in lines] == [(2, 0), (4, 1), (6, 1), (8, 0)]
    assert all(np.isfinite(x["bits_per_dim"]) for x in lines)  # means over the updates made
    assert all(np.isfinite(p).all() for p in jax.tree.leaves(_params(tmp_path / "run")))


def test_one_skipped_step_more_than_allowed_stops_training(tmp_path, two_bad_batches):
    config, dataset = two_bad_batches
    config.skip_nonfinite_steps = 1
    with pytest.raises(train.NonFiniteError, match=r"non-finite value at step 4 \(.*\), after 1 "
                                                   r"skipped steps in a row"):
        train.train(config, tmp_path / "run", train_dataset=dataset)


def test_resume_with_every_checkpoint_damaged_is_refused(tmp_path):
    workdir = tmp_path / "run"
    config = _tiny_config(num_steps=2, eval_every=0, **{"checkpoint.every": 2})
    train.train(config, workdir)
    (workdir / "checkpoints" / "2" / "variables" / "_METADATA").unlink()
    config.num_steps = 4
    with pytest.raises(checkpoints.DamagedCheckpointError, match="no checkpoint in .* verifies"):
        train.train(config, workdir)
    assert (workdir / "checkpoints" / "2").is_dir()  # nothing moved or deleted


def test_training_refuses_a_non_empty_folder_that_is_no_workdir(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a training workdir"):
        train.train(_tiny_config(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    config = _tiny_config(num_steps=4, eval_every=0, **{"checkpoint.every": 2})
    train.train(config, workdir)
    good = fio.sha256_dir(workdir / "checkpoints" / "4")
    good_params = _params(workdir)
    config.num_steps = 10
    config.optimizer.learning_rate = 1e30
    with pytest.raises(train.NonFiniteError, match=r"at step \d+ .*the last good checkpoint is "
                       r"step 4 at .*checkpoints/4") as e:
        train.train(config, workdir)
    assert "nothing saved was overwritten" in str(e.value)
    assert checkpoints.latest_step(workdir) == 4
    assert fio.sha256_dir(workdir / "checkpoints" / "4") == good
    for a, b in zip(jax.tree.leaves(_params(workdir)), jax.tree.leaves(good_params)):
        np.testing.assert_array_equal(a, b)


def test_every_random_stream_of_a_seed_sweep_is_its_own():
    """One root per seed, named streams under it: no stream of seed s is a stream
    (or the root) of another seed, as key(seed + 1) for the samples once was."""
    seen = {}
    for seed in range(3):
        root = jax.random.key(seed)
        seen[(seed, "root")] = root
        for name in train.STREAMS:
            seen[(seed, name)] = train.stream(root, name)
    data = {where: tuple(np.asarray(jax.random.key_data(k)).tolist()) for where, k in seen.items()}
    assert len(set(data.values())) == len(data)
    model = models.Glow(image_size=4, n_levels=1, depth=1, width=4)
    images = datasets.generated_images(0, 2, 4)
    state = train.create_train_state(model, optimizers.OptimizerSpec(), jax.random.key(7), images)
    np.testing.assert_array_equal(state.rng, jax.random.key_data(
        train.stream(jax.random.key(7), "train")))


SHARDED_SCRIPT = textwrap.dedent("""
    import json, jax, numpy as np
    from flowjax.models.glow import Glow
    from flowjax.training import datasets, optimizers, train
    model = Glow(image_size=8, n_levels=2, depth=1, width=8, permutation="shuffle")
    spec = optimizers.OptimizerSpec(learning_rate=3e-3)
    images = datasets.generated_images(0, 16, 8)
    init = train.make_init(model, spec, train.make_mesh())
    initial = jax.device_get(init(jax.random.key(0), images))
    results = {}
    for n in (1, 4):
        mesh = train.make_mesh(jax.devices()[:n])
        state = jax.device_put(initial, train.replicated(mesh))
        step = train.make_train_step(model, spec, mesh)
        losses = []
        for i in range(3):
            state, metrics = step(state, images[4 * i:4 * i + 8])
            losses.append(float(metrics["bits_per_dim"]))
        results[n] = (losses, [np.asarray(x) for x in jax.tree.leaves(state.params)],
                      len(state.params["prior"]["W"].sharding.device_set))
    (l1, p1, d1), (l4, p4, d4) = results[1], results[4]
    # A held-out batch the 4 devices cannot share is refused before any work.
    import importlib.util, pathlib, sys, tempfile
    spec = importlib.util.spec_from_file_location("train_config", sys.argv[1])
    config_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config_module)
    config = config_module.get_config("tiny")
    config.update_from_flattened_dict({"batch_size": 8, "eval_batch_size": 6, "progress": False})
    workdir = pathlib.Path(tempfile.mkdtemp()) / "run"
    try:
        train.train(config, workdir, mesh=train.make_mesh())
        refusal = None
    except ValueError as e:
        refusal = str(e)
    print(json.dumps({"devices": [d1, d4], "loss_diff": max(abs(a - b) for a, b in zip(l1, l4)),
                      "param_diff": max(float(abs(a - b).max()) for a, b in zip(p1, p4)),
                      "axis_types": [t.name for t in train.make_mesh().axis_types],
                      "refusal": refusal, "workdir_made": workdir.exists()}))
""")


def test_sharded_step_on_4_devices_matches_one_device():  # a fresh process: ~15 s
    out = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, str(ROOT / "configs" / "train.py")],
                         capture_output=True, text=True, env=_subprocess_env(devices=4),
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == [1, 4]  # parameters replicated on every device
    assert result["loss_diff"] < 1e-5 and result["param_diff"] < 1e-5, result
    assert result["axis_types"] == ["Auto"]  # jax.make_mesh, shardings given at jit's boundaries
    assert result["refusal"] == ("config.eval_batch_size=6 is split over the 4 devices, so it must "
                                 "be a multiple of 4; set --config.eval_batch_size=4")
    assert not result["workdir_made"]


def test_run_py_trains_the_tiny_config(tmp_path):  # a fresh process: ~15 s
    workdir = tmp_path / "run"
    command = [sys.executable, "run.py", "--config=configs/train.py:tiny", f"--workdir={workdir}",
               "--config.num_steps=4", "--config.eval_every=0", "--config.checkpoint.every=2"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         env=_subprocess_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["final_step"] == 4 and checkpoints.latest_step(workdir) == 4
    assert "bits_per_dim" in json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
