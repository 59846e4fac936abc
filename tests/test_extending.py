"""Specification of extending flowjax (docs/extending.md): a user bijector in every
flow step, a registered Glow subclass, a family on MultiScaleFlow, and refusing
architectures nobody registered.

The user code below is the docs' example; each test checks one promise of it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import models
from flowjax.flows.bijectors import per_image_logdet
from flowjax.flows.composition import Chain
from flowjax.flows.steps import StepBijector, StepConfig, openai_step
from flowjax.flows.testing import assert_bijector
from flowjax.models import checkpoints, checksum_record, glow
from flowjax.models.checkpoints import CheckpointError
from flowjax.models.image_flow import MultiScaleFlow
from flowjax.training import datasets, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(image_size=8, n_levels=2, depth=2, width=4, n_bits=5)


# ---- user code (as in docs/extending.md) -----------------------------------------


class ChannelScale(nn.Module):
    """``y = x * exp(s)`` per channel (a learned ``s``, zero at init); log-det H W sum(s)."""

    @nn.compact
    def log_scale(self, x):
        return self.param("s", nn.initializers.zeros, (x.shape[-1],))

    def forward(self, x):
        s = self.log_scale(x)
        return x * jnp.exp(s), per_image_logdet(x.shape[-3] * x.shape[-2] * jnp.sum(s), x)

    def inverse(self, y):
        s = self.log_scale(y)
        return y * jnp.exp(-s), per_image_logdet(-y.shape[-3] * y.shape[-2] * jnp.sum(s), y)

    def output_shape(self, shape):
        return shape

    def input_shape(self, shape):
        return shape


@models.register_flow_step("openai_then_channel_scale")
def openai_then_channel_scale(config: StepConfig) -> Chain:
    """OpenAI's step followed by a ChannelScale (parameters ``level_<i>/channel_scale``)."""
    return Chain((*openai_step(config).steps, ChannelScale(name="channel_scale")))


@dataclasses.dataclass(frozen=True)
class ScalesConfig(StepConfig):
    n_scales: int = 1


@models.register_flow_step("openai_then_n_channel_scales")
def openai_then_n_channel_scales(config: ScalesConfig) -> Chain:
    scales = [ChannelScale(name=f"channel_scale_{i}") for i in range(config.n_scales)]
    return Chain((*openai_step(config).steps, *scales))


@models.register_model("glow_with_channel_scales")
class GlowWithChannelScales(glow.Glow):
    """A Glow whose steps end with ``n_scales`` ChannelScales (a new field)."""

    n_scales: int = 2
    flow_step: str = "openai_then_n_channel_scales"

    def step_config(self) -> ScalesConfig:
        return ScalesConfig(self.width, self.coupling, self.permutation, self.precision,
                            self.n_scales)


# ---- helpers ------------------------------------------------------------------------


def _images(n, seed=0):
    return jax.random.randint(jax.random.key(seed), (n, 8, 8, 3), 0, 256).astype(jnp.uint8)


def _perturbed(model, images):
    variables = glow.init(model, jax.random.key(0), images)
    leaves, tree = jax.tree.flatten(variables["params"])
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return {**variables, "params": jax.tree.unflatten(tree, leaves)}


def _train_config(model_fields, num_steps=3):
    spec = importlib.util.spec_from_file_location("train_config", ROOT / "configs" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("tiny")
    config.model = dict(model_fields)
    config.update(progress=False, num_steps=num_steps, eval_every=0, batch_size=4,
                  init_batch_size=8)
    config.checkpoint.update(every=num_steps, async_save=False)
    config.samples.update(n=0)
    return config


def _assert_identical_latents(model_a, variables_a, model_b, variables_b, images):
    a = glow.encode(model_a, variables_a, images)
    b = glow.encode(model_b, variables_b, images)
    for level_a, level_b in zip(a.eps, b.eps):
        np.testing.assert_array_equal(np.asarray(level_a), np.asarray(level_b))


# ---- the promises -------------------------------------------------------------------


def test_the_user_step_satisfies_the_bijector_contract():
    config = StepConfig(width=4, coupling="affine", permutation="invconv", precision="highest")
    assert_bijector(StepBijector("openai_then_channel_scale", config), (2, 4, 4, 4))


def test_a_user_bijector_in_every_step_gets_its_own_parameters_at_every_level():
    model = glow.Glow(**SMALL, flow_step="openai_then_channel_scale")
    variables = glow.abstract_variables(model)
    for level in range(SMALL["n_levels"]):
        step = variables["params"][f"level_{level}"]
        assert set(step) == {"actnorm", "invconv", "coupling", "channel_scale"}
        assert step["channel_scale"]["s"].shape[0] == SMALL["depth"]  # one per scanned step


@pytest.mark.slow
def test_a_registered_subclass_trains_saves_and_reloads_to_identical_latents(tmp_path):
    """train.train builds the family config.model names; the export rebuilds it."""
    fields = {"family": "glow_with_channel_scales", **SMALL, "permutation": "shuffle"}
    images = datasets.generated_images(0, 16, 8)
    train.train(_train_config(fields), tmp_path / "run",
                train_dataset=datasets.ArrayDataset(images, 4, seed=0))
    trained_model, trained = checkpoints.load_model(tmp_path / "run")
    assert type(trained_model) is GlowWithChannelScales and trained_model.n_scales == 2
    scale = trained["params"]["level_0"]["channel_scale_1"]["s"]
    assert float(jnp.max(jnp.abs(scale))) > 0  # training moved the user bijector

    checkpoints.save_model(tmp_path / "export", trained_model, trained)
    saved = json.loads((tmp_path / "export" / "model_config.json").read_text())
    assert saved["family"] == "glow_with_channel_scales" and saved["n_scales"] == 2
    model, variables = checkpoints.load_model(tmp_path / "export")
    assert model == trained_model
    _assert_identical_latents(trained_model, trained, model, variables, images[:4])


@pytest.mark.slow  # the trained-subclass test above covers the same path by default
def test_a_glow_with_a_user_step_saved_and_reloaded_gives_identical_latents(tmp_path):
    model = glow.Glow(**SMALL, flow_step="openai_then_channel_scale")
    images = _images(4)
    variables = _perturbed(model, images)
    checkpoints.save_model(tmp_path / "export", model, variables)
    loaded_model, loaded = checkpoints.load_model(tmp_path / "export")
    assert loaded_model == model and loaded_model.flow_step == "openai_then_channel_scale"
    _assert_identical_latents(model, variables, loaded_model, loaded, images)


@pytest.fixture(scope="module")
def plain_export(tmp_path_factory):
    """One plain Glow export (model, variables, directory) the refusal tests copy."""
    model = glow.Glow(**SMALL)
    variables = glow.init(model, jax.random.key(0), _images(2))
    out = checkpoints.save_model(tmp_path_factory.mktemp("plain") / "export", model, variables)
    return model, variables, out


def test_saving_an_unregistered_subclass_is_refused_naming_it(tmp_path, plain_export):
    class UnregisteredGlow(glow.Glow):
        pass

    _, variables, _ = plain_export  # same fields, same parameter tree
    with pytest.raises(models.UnknownArchitectureError, match=r"UnregisteredGlow is not a registered"):
        checkpoints.save_model(tmp_path / "export", UnregisteredGlow(**SMALL), variables)
    assert not (tmp_path / "export").exists()


def _export_with_config_edit(tmp_path, plain_export, **edit):
    """A copy whose config has ``edit``, recorded in its checksums.json as the export of a
    later version would have it (an unrecorded edit is refused as damage, before this)."""
    out = Path(shutil.copytree(plain_export[2], tmp_path / "export"))
    path = out / "model_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    checksum_record.write(out, overwrite=True)
    return out


def test_loading_a_checkpoint_of_an_unknown_family_is_refused_with_its_name(tmp_path, plain_export):
    out = _export_with_config_edit(tmp_path, plain_export, family="glow_from_the_future")
    with pytest.raises(CheckpointError, match=r"unknown model family 'glow_from_the_future'"):
        checkpoints.load_model(out)


def test_loading_a_checkpoint_of_an_unknown_flow_step_is_refused_with_its_name(tmp_path,
                                                                              plain_export):
    out = _export_with_config_edit(tmp_path, plain_export, flow_step="step_from_the_future")
    with pytest.raises(CheckpointError, match=r"unknown flow step 'step_from_the_future'"):
        checkpoints.load_model(out)


def test_the_unedited_copy_loads(tmp_path, plain_export):
    """The refusals above come from the edits, not from copying the export."""
    model, _, _ = plain_export
    loaded_model, _ = checkpoints.load_model(_export_with_config_edit(tmp_path, plain_export))
    assert loaded_model == model


def test_a_config_without_family_or_flow_step_is_a_plain_openai_glow():
    """Files written before the registry (e.g. weights/demo/glow) load unchanged."""
    model = checkpoints.read_model_config(ROOT / "weights" / "demo" / "glow")
    assert type(model) is glow.Glow and model.flow_step == "openai"


def test_a_taken_family_name_or_step_name_cannot_be_reregistered_silently():
    with pytest.raises(ValueError, match=r"model family 'glow' is already registered"):
        models.register_model("glow", GlowWithChannelScales)
    with pytest.raises(ValueError, match=r"flow step 'openai' is already registered"):
        models.register_flow_step("openai", openai_then_channel_scale)
    # Registering the same thing again is harmless (re-imported modules).
    assert models.register_model("glow_with_channel_scales", GlowWithChannelScales) \
        is GlowWithChannelScales


def test_a_family_on_multi_scale_flow_must_provide_its_steps_and_priors():
    """MultiScaleFlow gives a family the whole interface but not its own parts."""

    class FlowWithoutParts(MultiScaleFlow):
        image_size: int = 8
        n_levels: int = 2
        depth: int = 1
        width: int = 4
        coupling: str = "additive"
        n_bits: int = 5
        channels: int = 3
        precision: str = "highest"
        n_classes = 0

    with pytest.raises(NotImplementedError, match=r"FlowWithoutParts must define _priors\(\)"):
        FlowWithoutParts().init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.uint8))

    class FlowWithPriorsOnly(FlowWithoutParts):
        def _priors(self):
            return [], lambda batch, y: (0.0, 0.0)

    with pytest.raises(NotImplementedError,
                       match=r"FlowWithPriorsOnly must define _steps\(level, reverse\)"):
        FlowWithPriorsOnly().init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"coupling must be one of \['additive', 'affine'\]"):
        FlowWithoutParts(coupling="additve")
