"""Specification of training on your own small folder (``configs/train.py:demo
--config.data.source=folder``): every config error names the flag to change and
comes before the workdir exists; the held-out set and the init batch, left unset,
fit the folder and the log says so.

The config is ``:demo``'s (its data sizes unset, as a user meets them) with the
``:tiny`` model (16x16) so the one training run compiles in seconds; the folder
holds 20 generated 16x16 images.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from experiments import train as train_experiment
from flowjax.training import config_checks, datasets

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 20


def _configs():
    spec = importlib.util.spec_from_file_location("train_config", ROOT / "configs" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    for i, image in enumerate(datasets.generated_images(0, N_IMAGES, 16)):
        (root / f"person{i % 4}").mkdir(exist_ok=True)
        Image.fromarray(image).save(root / f"person{i % 4}" / f"{i:02d}.png")
    return root


def _demo_config(folder: Path, **overrides):
    module = _configs()
    config = module.get_config("demo")
    config.model = module.get_config("tiny").model  # 16x16: compiles in seconds
    config.data.source = "folder"
    config.data.folder = str(folder)
    config.batch_size = 8
    config.progress = False
    config.update_from_flattened_dict(overrides)
    return config


def _refused(config, workdir: Path, error, match: str) -> None:
    with pytest.raises(error, match=match):
        train_experiment.main(config, str(workdir))
    assert not workdir.exists()


def test_the_demo_config_leaves_held_out_and_init_sizes_to_fit_the_data():
    config = _configs().get_config("demo")
    assert config.data.num_eval is None and config.init_batch_size is None


def test_holding_out_more_than_the_folder_names_num_eval_before_the_workdir(folder, tmp_path):
    _refused(_demo_config(folder, **{"data.num_eval": 512}), tmp_path / "run", ValueError,
             r"config.data.num_eval=512: cannot hold out 512 of the 20 images .* set "
             r"--config.data.num_eval=N with 0 <= N <= 12, or give held-out images in "
             r"--config.data.eval_folder=DIR")


def test_a_size_given_as_resize_names_the_filter_before_the_workdir(folder, tmp_path):
    _refused(_demo_config(folder, **{"data.resize": "64"}), tmp_path / "run", ValueError,
             r"config.data.resize='64' is not a resampling filter: .* set "
             r"--config.data.resize=lanczos .* --config.model.image_size=N for another size")


def test_an_init_batch_larger_than_the_training_images_names_init_batch_size(folder, tmp_path):
    _refused(_demo_config(folder, init_batch_size=256), tmp_path / "run", ValueError,
             r"config.init_batch_size=256: .* there are 18; set --config.init_batch_size=N "
             r"with 1 <= N <= 18")


def test_a_batch_larger_than_the_folder_names_batch_size(folder, tmp_path):
    _refused(_demo_config(folder, batch_size=32), tmp_path / "run", ValueError,
             r"has 20 images, fewer than one training batch \(config.batch_size=32\); set "
             r"--config.batch_size=N with N <= 20")


def test_images_of_another_size_name_resize_and_image_size(folder, tmp_path):
    config = _demo_config(folder, **{"model.image_size": 32})
    _refused(config, tmp_path / "run", ValueError,
             r"config.data.folder: .*00.png is 16x16 \(HxW\), the model's images are 32x32 .* "
             r"set --config.data.resize=lanczos to resize them; or "
             r"--config.model.image_size=16 trains at their size")


def test_a_missing_folder_names_data_folder(tmp_path):
    _refused(_demo_config(tmp_path / "nowhere"), tmp_path / "run", FileNotFoundError,
             r"config.data.folder=.*nowhere.*does not exist.*set --config.data.folder=DIR")


@pytest.mark.parametrize("field, value, match", [
    ("log_every", 0, r"config.log_every=0 must be an int >= 1; set --config.log_every=N"),
    ("checkpoint.every", 0, r"set --config.checkpoint.every=N"),
    ("data.prefetch", 0, r"set --config.data.prefetch=N"),
    ("optimizer.name", "sgd", r"config.optimizer.name='sgd' is not one of .* set "
                              r"--config.optimizer.name=adamax"),
    ("optimizer.warmup_steps", -1, r"set --config.optimizer.warmup_steps=N"),
    ("optimizer.decay_steps", -5, r"set --config.optimizer.decay_steps=N"),
    ("optimizer.final_lr_fraction", 2.0, r"at most 1 .*set --config.optimizer.final_lr_fraction"),
], ids=["log_every", "checkpoint_every", "prefetch", "optimizer_name", "warmup_steps",
        "decay_steps", "final_lr_fraction"])
def test_other_options_name_their_flag_before_the_workdir(folder, tmp_path, field, value,
                                                          match):
    _refused(_demo_config(folder, **{field: value}), tmp_path / "run", ValueError, match)


def test_left_unset_the_sizes_fit_a_small_folder_and_it_trains(folder, tmp_path, caplog):
    workdir = tmp_path / "run"
    config = _demo_config(folder, num_steps=2)
    with caplog.at_level(logging.WARNING, logger=config_checks.__name__):
        summary = train_experiment.main(config, str(workdir))
    assert summary["final_step"] == 2 and summary["steps_run"] == 2
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["data"]["num_eval"] == N_IMAGES // config_checks.SMALL_FOLDER_HELD_OUT == 2
    assert saved["init_batch_size"] == N_IMAGES - 2
    assert "config.data.num_eval unset: holding out 2 of the 20 images" in caplog.text
    assert "config.init_batch_size unset: the data-dependent init uses all 18" in caplog.text
    assert "no held-out evaluation: the 2 held-out images are fewer than one eval batch " \
           "(config.eval_batch_size=128); --config.eval_batch_size=2 evaluates them" in caplog.text


def test_rendered_data_keeps_the_default_sizes():
    assert config_checks.DEFAULT_NUM_EVAL == 512 and config_checks.DEFAULT_INIT_BATCH == 256
    config = _configs().get_config("64")
    config.data.source = "generated"
    config.data.num_train = 300
    plan = config_checks.fit_data(config, 64)
    assert (plan.num_eval, plan.init_batch_size, plan.notes) == (512, 256, ())
    assert (config.data.num_eval, config.init_batch_size) == (512, 256)
