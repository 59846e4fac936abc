"""rosinality/glow-pytorch checkpoints in flowjax: weights/convert_rosinality.py and flowjax.models.rosinality.

Two references: the fixture ``tests/fixtures/rosinality_glow_32`` (a state_dict
and the z's, log-densities and decodes rosinality's own code computed), and, for
the variants the fixture does not cover (affine coupling, plain 1x1 convs next
to the LU top block), a small PyTorch forward pass written here from the
fixture README's quirks (NCHW, torch's own convs and padding).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowjax.flows.testing import assert_bijector
from flowjax.models import glow, rosinality
from flowjax.transfer import latents

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "rosinality_glow_32"
FIXTURE_SHA256 = "e49b6660dece5387691bae22315db9e4efa954fa98b07dfcd45d558cc662ef8c"  # its README


def _load_converter():
    spec = importlib.util.spec_from_file_location("convert_rosinality",
                                                  ROOT / "weights" / "convert_rosinality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


convert_rosinality = _load_converter()
ConversionError = convert_rosinality.ConversionError

# Tolerances. The fixture README measured its float32 reference against the
# same model in float64: z 2.7e-6, log_p 2.0e-4 and logdet 6.7e-4 absolute.
# The log-probability (log_p + logdet - D ln n_bins, about -9e3 nats here) is a
# float32 sum of terms in the thousands (log_p ~ -5e3, logdet ~ 6e3, D ln n_bins
# ~ 1.1e4: float32 spacing ~1e-3 there), so it is compared RELATIVELY; z's and
# decodes absolutely.
Z_ATOL = 1e-4
DECODE_ATOL = 1e-4
LOG_PROB_RTOL = 1e-6   # relative to |log_prob| ~ 9e3 nats: within ~1e-2 nats
BPD_ATOL = 1e-4


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, (0, 2, 3, 1))


# ---- the fixture ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE / "reference.npz", allow_pickle=False) as r:
        return {k: r[k] for k in r.files}


@pytest.fixture(scope="module")
def state():
    return convert_rosinality.load_state_dict(FIXTURE / "state_dict.pt")


@pytest.fixture(scope="module")
def converted(state):
    model = convert_rosinality.model_for(convert_rosinality.infer_architecture(state), 32)
    return model, convert_rosinality.convert_state_dict(state, model, "state_dict.pt")


@pytest.fixture(scope="module")
def encoding(converted, reference):
    model, variables = converted
    return glow.encode(model, variables, reference["images_uint8"], nhwc(reference["noise"]))


def test_architecture_is_read_from_the_keys(state):
    assert convert_rosinality.infer_architecture(state) == {
        "in_channel": 3, "n_flow": 2, "n_block": 3, "affine": False, "conv_lu": True, "width": 512}


def test_latent_shapes_are_rosinalitys_z_shapes_in_nhwc(converted, reference):
    model, _ = converted
    assert model.latent_shapes == [nhwc(reference[f"z_{i}"]).shape[1:] for i in range(3)]
    assert model.latent_shapes == latents.latent_shapes(32, 3)


def test_fixture_z_match_pytorch(encoding, reference):
    for i in range(3):
        np.testing.assert_allclose(np.asarray(encoding.z[i]), nhwc(reference[f"z_{i}"]),
                                   rtol=0, atol=Z_ATOL, err_msg=f"level {i}")


def test_fixture_log_density_matches_pytorch(encoding, reference):
    # rosinality's log_p + logdet leave out the dequantisation term -D ln(n_bins)
    # (quirk 10); flowjax's log_prob includes it, as train.py's loss does.
    theirs = (reference["log_p"].astype(np.float64) + reference["logdet_per_sample"]
              - 3 * 32 * 32 * math.log(32))
    np.testing.assert_allclose(np.asarray(encoding.log_prob), theirs, rtol=LOG_PROB_RTOL, atol=0)
    np.testing.assert_allclose(np.asarray(encoding.bits_per_dim), reference["bpd"], rtol=0,
                               atol=BPD_ATOL)


def test_fixture_decode_of_z_matches_reverse_reconstruct(converted, reference):
    model, variables = converted
    x = glow.decode(model, variables, [nhwc(reference[f"z_{i}"]) for i in range(3)], None,
                    "z", False)
    np.testing.assert_allclose(np.asarray(x), nhwc(reference["x_recon"]), rtol=0, atol=DECODE_ATOL)
    # the sampling draws used directly as z (reverse(..., reconstruct=True))
    x = glow.decode(model, variables, [nhwc(reference[f"sample_eps_{i}"]) for i in range(3)],
                    None, "z", False)
    np.testing.assert_allclose(np.asarray(x), nhwc(reference["sample_x_reconstruct"]), rtol=0,
                               atol=DECODE_ATOL)


def test_fixture_decode_of_eps_matches_sampling(converted, reference):
    model, variables = converted
    x = glow.decode(model, variables, [nhwc(reference[f"sample_eps_{i}"]) for i in range(3)],
                    None, "eps", False)
    np.testing.assert_allclose(np.asarray(x), nhwc(reference["sample_x"]), rtol=0, atol=DECODE_ATOL)


def test_encode_decode_round_trips_exactly(converted, reference):
    model, variables = converted
    images = reference["images_uint8"]
    # Mid-bin noise, given as an array so the encode compiled for the fixture is reused.
    mid_bin = np.full(images.shape, 0.5 / model.n_bins, np.float32)
    eps = glow.encode(model, variables, images, mid_bin).eps
    decoded = glow.decode(model, variables, eps, None, "eps", False)
    np.testing.assert_array_equal(np.asarray(model.postprocess(decoded)), images // 8 * 8)


def test_preprocessing_is_train_pys(converted, reference):
    model, _ = converted
    x = model._preprocess(reference["images_uint8"], nhwc(reference["noise"]))
    np.testing.assert_array_equal(np.asarray(x), nhwc(reference["x_float"]))


# ---- the converter's checks (cheap: no model is run) -----------------------------------


def test_data_parallel_prefix_is_stripped(tmp_path, state):
    torch.save({f"module.{k}": torch.from_numpy(v) for k, v in list(state.items())[:3]},
               tmp_path / "dp.pt")
    assert list(convert_rosinality.load_state_dict(tmp_path / "dp.pt")) == list(state)[:3]


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.mark.parametrize("protocol", [2, 4])  # GLOBAL and STACK_GLOBAL opcodes
def test_a_pickle_that_would_run_code_is_refused_and_named_without_advice_to_load_it_unsafely(
        tmp_path, protocol):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"blocks.0.x": _RunsCode()}, protocol=protocol))
    with pytest.raises(ConversionError) as caught:
        convert_rosinality.load_state_dict(path)
    message = str(caught.value)
    assert f"{path} holds pickled code: loading it would call {os.system.__module__}.system" in message
    assert "weights_only=False" not in message and "`weights_only` set to `False`" not in message


def test_pickled_objects_in_a_torch_file_are_refused_by_name(tmp_path):
    torch.save({"blocks.0.x": object()}, tmp_path / "pickle.pt")  # protocol 2 names builtins so
    with pytest.raises(ConversionError, match="holds pickled code: loading it would call __builtin__.object"):
        convert_rosinality.load_state_dict(tmp_path / "pickle.pt")


def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path):
    (tmp_path / "notes.pt").write_text("# notes, not weights\n")
    with pytest.raises(ConversionError, match="notes.pt is not a PyTorch checkpoint"):
        convert_rosinality.load_state_dict(tmp_path / "notes.pt")


def _check(state, model):
    convert_rosinality.check_state_dict(state, model, "ckpt.pt")


def test_missing_and_unknown_keys_are_named(state, converted):
    model, _ = converted
    broken = dict(state)
    del broken["blocks.1.flows.1.coupling.net.2.bias"]
    broken["blocks.1.flows.1.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError, match=r"(?s)missing.*blocks\.1\.flows\.1\.coupling\.net\.2"
                                              r"\.bias \(shape \[512\]\).*unknown.*blocks\.1\.flows"
                                              r"\.1\.extra\.weight \[3\]"):
        _check(broken, model)


def test_wrong_shape_is_named_with_expected_and_actual(state, converted):
    model, _ = converted
    broken = {**state, "blocks.2.prior.scale": np.zeros((1, 48, 1, 1), np.float32)}
    with pytest.raises(ConversionError, match=r"blocks\.2\.prior\.scale has shape \[1, 48, 1, 1\], "
                                              r"expected \[1, 96, 1, 1\]"):
        _check(broken, model)


def test_uninitialized_actnorm_is_refused(state, converted):
    model, _ = converted
    broken = {**state, "blocks.0.flows.1.actnorm.initialized": np.array(0, np.uint8)}
    with pytest.raises(ConversionError, match=r"uninitialized.*\n.*blocks\.0\.flows\.1\.actnorm"):
        _check(broken, model)


def test_non_finite_weight_is_refused(state, converted):
    model, _ = converted
    value = state["blocks.0.flows.0.actnorm.scale"].copy()
    value[0, 3] = np.nan
    with pytest.raises(ConversionError, match=r"non_finite.*\n.*blocks\.0\.flows\.0\.actnorm\.scale"):
        _check({**state, "blocks.0.flows.0.actnorm.scale": value}, model)


def test_lu_buffers_other_than_rosinalitys_constants_are_refused(state, converted):
    model, _ = converted
    broken = {**state, "blocks.1.flows.0.invconv.l_eye": np.zeros((24, 24), np.float32)}
    with pytest.raises(ConversionError, match=r"blocks\.1\.flows\.0\.invconv\.l_eye is not"):
        _check(broken, model)


def test_plain_conv_in_the_last_block_is_refused(state):
    broken = {k: v for k, v in state.items() if not k.startswith("blocks.2.flows.1.invconv.")}
    broken["blocks.2.flows.1.invconv.weight"] = np.eye(48, dtype=np.float32)[:, :, None, None]
    with pytest.raises(ConversionError, match=r"plain in blocks\.2\.flows\.1 "):
        convert_rosinality.infer_architecture(broken)


def test_asserted_constructor_argument_that_differs_is_refused(tmp_path):
    with pytest.raises(ConversionError, match=r"--n_flow=32 given but the file holds n_flow=2"):
        convert_rosinality.convert_file(FIXTURE / "state_dict.pt", tmp_path / "out", 32,
                                        expect={"n_flow": 32})
    assert not (tmp_path / "out").exists()


# ---- variants the fixture lacks: affine coupling, plain convs (quirk 1) ------------------


def random_state_dict(in_channel: int, n_flow: int, n_block: int, affine: bool, conv_lu: bool,
                      width: int, seed: int) -> dict[str, np.ndarray]:
    """A rosinality state_dict with the README's keys and shapes, random non-identity values."""
    rng = np.random.default_rng(seed)

    def normal(*shape, std=0.1):
        return (std * rng.standard_normal(shape)).astype(np.float32)

    state = {}
    c = in_channel
    for b in range(n_block):
        sq = 4 * c
        for k in range(n_flow):
            p = f"blocks.{b}.flows.{k}."
            state[p + "actnorm.loc"] = normal(1, sq, 1, 1)
            sign = rng.choice([-1, 1], (1, sq, 1, 1)).astype(np.float32)  # |scale| in logdet
            state[p + "actnorm.scale"] = (1 + normal(1, sq, 1, 1)) * sign
            state[p + "actnorm.initialized"] = np.array(1, np.uint8)
            if conv_lu or b == n_block - 1:
                perm = np.eye(sq, dtype=np.float32)[rng.permutation(sq)]
                state.update({p + "invconv.w_p": perm, p + "invconv.w_l": normal(sq, sq),
                              p + "invconv.w_u": normal(sq, sq), p + "invconv.w_s": normal(sq),
                              p + "invconv.u_mask": np.triu(np.ones((sq, sq), np.float32), 1),
                              p + "invconv.l_mask": np.tril(np.ones((sq, sq), np.float32), -1),
                              p + "invconv.s_sign": rng.choice([-1.0, 1.0], sq).astype(np.float32),
                              p + "invconv.l_eye": np.eye(sq, dtype=np.float32)})
            else:
                q = np.linalg.qr(rng.standard_normal((sq, sq)))[0] + 0.1 * rng.standard_normal((sq, sq))
                state[p + "invconv.weight"] = q.astype(np.float32)[:, :, None, None]
            out = sq if affine else sq // 2
            state.update({p + "coupling.net.0.weight": normal(width, sq // 2, 3, 3),
                          p + "coupling.net.0.bias": normal(width),
                          p + "coupling.net.2.weight": normal(width, width, 1, 1),
                          p + "coupling.net.2.bias": normal(width),
                          p + "coupling.net.4.scale": normal(1, out, 1, 1),
                          p + "coupling.net.4.conv.weight": normal(out, width, 3, 3),
                          p + "coupling.net.4.conv.bias": normal(out)})
        prior_in, prior_out = (2 * c, 4 * c) if b < n_block - 1 else (4 * c, 8 * c)
        state.update({f"blocks.{b}.prior.scale": normal(1, prior_out, 1, 1),
                      f"blocks.{b}.prior.conv.weight": normal(prior_out, prior_in, 3, 3),
                      f"blocks.{b}.prior.conv.bias": normal(prior_out)})
        c *= 2
    return state


def torch_reference_forward(state, x, n_flow, n_block, affine):
    """rosinality's forward, written from the fixture README's quirks: ``(z_outs, log_p, logdet)``."""
    t = {k: torch.from_numpy(v) for k, v in state.items()}

    def zero_conv(h, prefix):
        h = F.pad(h, [1, 1, 1, 1], value=1.0)
        h = F.conv2d(h, t[prefix + "conv.weight"], t[prefix + "conv.bias"])
        return h * torch.exp(3 * t[prefix + "scale"])

    def log_gauss(z, mean, log_sd):
        terms = -0.5 * math.log(2 * math.pi) - log_sd - 0.5 * (z - mean) ** 2 / torch.exp(2 * log_sd)
        return terms.sum((1, 2, 3))

    z_outs, log_p, logdet = [], 0.0, 0.0
    h = x
    for b in range(n_block):
        bsz, c, hh, ww = h.shape
        h = h.view(bsz, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 3, 5, 2, 4)
        h = h.reshape(bsz, 4 * c, hh // 2, ww // 2)
        area = (hh // 2) * (ww // 2)
        for k in range(n_flow):
            p = f"blocks.{b}.flows.{k}."
            h = t[p + "actnorm.scale"] * (h + t[p + "actnorm.loc"])
            logdet = logdet + area * torch.log(torch.abs(t[p + "actnorm.scale"])).sum()
            if p + "invconv.weight" in t:
                w = t[p + "invconv.weight"]
                logdet = logdet + area * torch.slogdet(w.squeeze().double())[1].float()
            else:
                lower = t[p + "invconv.w_l"] * t[p + "invconv.l_mask"] + t[p + "invconv.l_eye"]
                upper = (t[p + "invconv.w_u"] * t[p + "invconv.u_mask"]
                         + torch.diag(t[p + "invconv.s_sign"] * torch.exp(t[p + "invconv.w_s"])))
                w = (t[p + "invconv.w_p"] @ lower @ upper)[:, :, None, None]
                logdet = logdet + area * t[p + "invconv.w_s"].sum()
            h = F.conv2d(h, w)
            in_a, in_b = h.chunk(2, 1)
            net = F.relu(F.conv2d(in_a, t[p + "coupling.net.0.weight"], t[p + "coupling.net.0.bias"],
                                  padding=1))
            net = F.relu(F.conv2d(net, t[p + "coupling.net.2.weight"], t[p + "coupling.net.2.bias"]))
            net = zero_conv(net, p + "coupling.net.4.")
            if affine:
                log_s, shift = net.chunk(2, 1)
                s = torch.sigmoid(log_s + 2)
                in_b = (in_b + shift) * s
                logdet = logdet + torch.log(s).sum((1, 2, 3))
            else:
                in_b = in_b + net
            h = torch.cat([in_a, in_b], 1)
        if b < n_block - 1:
            h, z = h.chunk(2, 1)
            mean, log_sd = zero_conv(h, f"blocks.{b}.prior.").chunk(2, 1)
        else:
            z = h
            mean, log_sd = zero_conv(torch.zeros_like(h), f"blocks.{b}.prior.").chunk(2, 1)
        log_p = log_p + log_gauss(z, mean, log_sd)
        z_outs.append(z)
    return [z.numpy() for z in z_outs], log_p.numpy(), np.broadcast_to(np.asarray(logdet), (x.shape[0],))


@pytest.fixture(scope="module")
def affine_plain():
    """Affine coupling, conv_lu=False (plain convs in block 0, LU in the last block)."""
    state = random_state_dict(in_channel=3, n_flow=2, n_block=2, affine=True, conv_lu=False,
                              width=8, seed=0)
    model = convert_rosinality.model_for(convert_rosinality.infer_architecture(state), 8)
    return state, model, convert_rosinality.convert_state_dict(state, model)


def test_affine_plain_architecture_is_detected_per_flow(affine_plain):
    state, model, variables = affine_plain
    assert (model.coupling, model.conv_lu) == ("affine", False)
    assert [model.level_uses_lu(b) for b in range(2)] == [False, True]
    assert set(variables["params"]["level_0"]["invconv"]) == {"W"}
    assert set(variables["params"]["level_1"]["invconv"]) == {"L", "U", "log_S"}


def test_affine_plain_model_matches_the_pytorch_forward(affine_plain):
    state, model, variables = affine_plain
    images = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    noise = np.random.default_rng(2).uniform(0, 1 / 32, images.shape).astype(np.float32)
    x = np.transpose(images // 8 / 32 - 0.5 + noise.astype(np.float64), (0, 3, 1, 2))
    # The reference runs in float64: it is the truth flowjax's float32 is measured against.
    state64 = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in state.items()}
    z_ref, log_p, logdet = torch_reference_forward(state64, torch.from_numpy(x), 2, 2, affine=True)
    ours = glow.encode(model, variables, images, noise)
    for i in range(2):
        np.testing.assert_allclose(np.asarray(ours.z[i]), nhwc(z_ref[i]), rtol=0, atol=Z_ATOL)
    np.testing.assert_allclose(np.asarray(ours.log_prob),
                               log_p + logdet - 192 * math.log(32),
                               rtol=LOG_PROB_RTOL, atol=0)
    decoded = glow.decode(model, variables, ours.z, None, "z", False)
    np.testing.assert_allclose(np.asarray(decoded), nhwc(x), rtol=0, atol=DECODE_ATOL)


# ---- the shared image-flow interface (flowjax.models.image_flow) with rosinality's own rules ------


def test_key_noise_is_train_pys_uniform_divided_by_n_bins(affine_plain):
    # train.py adds U[0, 1) / n_bins; the shared preprocessing draws U[0, 1/n_bins),
    # which must be the same bits (n_bins is a power of two).
    _, model, _ = affine_plain
    images = np.random.default_rng(4).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    key = jax.random.key(5)
    train_py = images // 8 / np.float32(32) - np.float32(0.5) + (
        jax.random.uniform(key, images.shape, jnp.float32) / 32)
    np.testing.assert_array_equal(np.asarray(model._preprocess(images, key)), np.asarray(train_py))


def test_labels_are_refused_by_encode_decode_and_sample(affine_plain):
    _, model, variables = affine_plain
    y = jnp.zeros((1,), jnp.int32)
    eps = [jnp.zeros((1, *s), jnp.float32) for s in model.latent_shapes]
    calls = {"encode": lambda: glow.encode(model, variables, np.zeros((1, 8, 8, 3), np.uint8), None, y),
             "decode": lambda: glow.decode(model, variables, eps, y),
             "sample": lambda: model.apply(variables, jax.random.key(0), 1, 0.7, y, method="sample")}
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"not class-conditional: pass y=None"):
            call()
            pytest.fail(f"{name} accepted labels")


def test_bad_images_and_latents_are_named_for_this_family(affine_plain):
    _, model, variables = affine_plain
    with pytest.raises(ValueError, match=r"shape \[batch, 8, 8, 3\] for this RosinalityGlow; "
                                         r"got shape \(1, 3, 8, 8\)"):
        glow.encode(model, variables, np.zeros((1, 3, 8, 8), np.uint8))
    nchw = [jnp.zeros((1, s[2], s[0], s[1]), jnp.float32) for s in model.latent_shapes]
    with pytest.raises(ValueError, match=r"latent level 0 must have shape \(1, 4, 4, 6\), "
                                         r"got \(1, 6, 4, 4\) \(latents are NHWC"):
        glow.decode(model, variables, nchw)


def test_sample_at_temperature_zero_decodes_the_prior_means(affine_plain):
    # temperature scales eps, not the priors' means (train.py's randn * temp)
    _, model, variables = affine_plain
    sample = model.apply(variables, jax.random.key(0), 2, 0.0, None, False, method="sample")
    means = glow.decode(model, variables, [jnp.zeros((2, *s), jnp.float32)
                                           for s in model.latent_shapes], None, "eps", False)
    assert float(jnp.max(jnp.abs(means))) > 0.01  # the random priors are not centred at 0
    np.testing.assert_allclose(np.asarray(sample), np.asarray(means), rtol=0, atol=1e-6)


# ---- the bijector contract (flowjax.flows.testing: round trip, log-dets, brute-force Jacobian) ----


@pytest.mark.slow  # ~10 s each (jacfwd); the fixture and PyTorch comparisons cover the maths
@pytest.mark.parametrize("bijector", [
    rosinality.ScaleActNorm(), rosinality.InvConvLUColumns(),
    rosinality.ColumnCoupling(8, "additive"), rosinality.ColumnCoupling(8, "affine"),
], ids=["actnorm", "invconv_lu", "coupling_additive", "coupling_affine"])
def test_rosinality_bijectors_keep_the_contract(bijector):
    assert_bijector(bijector, (2, 4, 4, 6))


def test_actnorm_with_negative_scales_keeps_the_contract():
    # rosinality's logdet uses log|scale|; a trained scale may change sign.
    variables = {"params": {"loc": jnp.array([0.3, -0.2, 0.1, 0.0]),
                            "scale": jnp.array([-1.5, 0.7, -0.4, 2.0])}}
    assert_bijector(rosinality.ScaleActNorm(), (2, 3, 3, 4), variables=variables, perturb=0.0)


# ---- a model family of its own: saved, reloaded, used by the experiments' sweeps --------


def test_converted_checkpoint_reloads_as_the_rosinality_family(tmp_path, converted):
    from flowjax import models
    from flowjax.models import checkpoints

    model, variables = converted
    manifest = convert_rosinality.convert_file(FIXTURE / "state_dict.pt", tmp_path / "ckpt", 32)
    config = json.loads((tmp_path / "ckpt" / "model_config.json").read_text())
    assert config == {"family": "rosinality", **{k: v for k, v in models.model_config(model).items()
                                                 if k != "family"}}
    loaded, loaded_variables = checkpoints.load_model(tmp_path / "ckpt")
    assert type(loaded) is rosinality.RosinalityGlow and loaded == model
    same = jax.tree.map(np.array_equal, dict(loaded_variables), variables)
    assert all(jax.tree.leaves(same))
    assert manifest["source"]["sha256"] == FIXTURE_SHA256
    # the fixture README's counts: 117 state_dict entries, 2,410,896 parameters
    assert (manifest["state_dict_entries"], manifest["total_parameters"]) == (117, 2_410_896)
    assert checkpoints.load_metadata(tmp_path / "ckpt")["rosinality_conversion"] == json.loads(
        json.dumps(manifest))


def test_sweeps_decode_rosinality_latents_in_flowjaxs_flat_layout(affine_plain):
    from flowjax.transfer import sweep

    _, model, variables = affine_plain
    images = np.random.default_rng(3).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    encoding = sweep.encode_images(model, variables, images)
    flat = np.asarray(latents.flatten(list(encoding.eps)))
    grid = sweep.attribute_sweep(model, variables, flat, np.ones((1, flat.shape[1])), [0.0])
    np.testing.assert_array_equal(grid[:, 0, 0], images // 8 * 8)
