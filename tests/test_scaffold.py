"""The experiment scaffold: configs/common.py, flowjax.runs, tools/ (issue 11, item 4)."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from flowjax import models, runs
from flowjax import io as fio
from flowjax.models.glow import Glow
from flowjax.runs import run_dirs
from flowjax.runs.runtime import config_module

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL_CONFIGS = ["transfer", "attributes", "reconstruction", "explore", "celeba256", "train",
                 "synthetic_benchmark"]
# A second name for OpenAI's step: a registered flow step that is not the default.
models.register_flow_step("scaffold_test_step", models.openai_step)


def _parse(*argv: str):
    """The config ``run.py`` would get for these flags (ml_collections' own parsing)."""
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=["run.py", *argv])
    values(["run.py", *argv])
    return values.config


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_config_model_is_the_family_defaults_with_family_and_flow_step(name):
    config = config_module(name, ROOT / "configs" / f"{name}.py").get_config()
    assert config.model.family == "glow" and config.model.flow_step == "openai"
    assert set(config.model) == {"family", *models.model_fields(Glow)}


def test_flow_step_flag_reaches_the_model_built_from_the_config():
    config = _parse("--config=configs/transfer.py:smoke",
                    "--config.model.flow_step=scaffold_test_step")
    assert runs.model_geometry(config).flow_step == "scaffold_test_step"


def test_unknown_flow_step_from_the_command_line_is_refused_with_its_name():
    config = _parse("--config=configs/reconstruction.py:smoke", "--config.model.flow_step=nope")
    with pytest.raises(ValueError, match="'nope'"):
        runs.model_geometry(config)


def test_configs_whose_variants_do_not_combine_refuse_two():
    with pytest.raises(ValueError, match=r"give one variant, got \['tiny', 'demo'\]"):
        config_module("train", ROOT / "configs" / "train.py").get_config("tiny,demo")


def test_celeba256_geometry_is_openai_hyperparameters_once():
    common = config_module("common", ROOT / "configs" / "common.py")
    celeba = config_module("celeba256", ROOT / "configs" / "celeba256.py").get_config()
    train = config_module("train", ROOT / "configs" / "train.py").get_config("celeba256")
    for key, value in common.OPENAI_CELEBA256.items():
        assert celeba.model[key] == train.model[key] == value


def test_write_alpha_row_names_files_by_label_and_records_each_alpha(tmp_path):
    images = np.zeros((2, 4, 4, 3), np.uint8)
    with run_dirs.create_run_dir(tmp_path / "run") as run:
        written = runs.write_alpha_row(run, "grid/a", "face", images, [0.0, 0.5],
                                       ["0.00", "0.50"], {"kind": "test"})
    assert written == {"0.00": "grid/a/0.00/face_0.00.png", "0.50": "grid/a/0.50/face_0.50.png"}
    provenance = fio.read_png_provenance(tmp_path / "run" / written["0.50"])
    assert provenance["alpha"] == "0.5" and provenance["kind"] == "test"


def test_write_alpha_row_refuses_images_and_alphas_of_different_lengths(tmp_path):
    with run_dirs.create_run_dir(tmp_path / "run") as run:
        with pytest.raises(ValueError, match="3 images for 2 alphas"):
            runs.write_alpha_row(run, "grid", "face", np.zeros((3, 4, 4, 3), np.uint8),
                                 [0.0, 1.0], ["0.00", "1.00"], {})


def test_experiment_manifest_has_config_model_record_and_every_timed_block(tmp_path):
    config = _parse("--config=configs/reconstruction.py:smoke")
    exp = runs.Experiment(config, tmp_path / "run")
    with exp.timed("prepare"):
        pass
    with exp.timed("prepare"):
        pass
    exp.model_record = {"checkpoint": None, "random_init": True, "seed": 0}
    with exp.run_dir() as run:
        run.write_text("out.txt", "x")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["timings"]["prepare"]["calls"] == 2
    assert set(manifest["timings"]) == {"prepare", "write"}
    assert manifest["model"] == exp.model_record
    assert manifest["config"]["experiment"] == "reconstruction"


def test_experiment_refuses_an_existing_workdir_before_any_work(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "something").write_text("x")
    with pytest.raises(FileExistsError):
        runs.Experiment(_parse("--config=configs/reconstruction.py:smoke"), tmp_path / "run")


def test_tools_run_as_modules_from_the_repository_root():
    result = subprocess.run([sys.executable, "-m", "tools.benchmark_sweep", "--helpshort"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    # (absl's --helpshort exits with status 1 after printing the flags)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "tools/benchmark_sweep.py:\n  --chunk_size" in result.stdout
