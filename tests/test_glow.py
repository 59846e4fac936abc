"""Specification of the multi-scale Glow: round trips, densities, init, API."""

import importlib.util
import math
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import models
from flowjax.flows import bijectors as bj, permutations as perm
from flowjax.models import glow
from flowjax.models.glow import Glow
from flowjax.transfer import latents
from hlo_text import unconditional_calls  # tests/ is on sys.path

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_config(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _images(n, size, seed=0):
    return jax.random.randint(jax.random.key(seed), (n, size, size, 3), 0, 256).astype(jnp.uint8)


def _perturbed(model, images, seed=0, scale=0.02, y=None):
    """Initialised variables moved off the identity-like init (non-trivial flow)."""
    variables = glow.init(model, jax.random.key(seed), images, y)
    leaves, tree = jax.tree.flatten(variables["params"])
    keys = jax.random.split(jax.random.key(seed + 100), len(leaves))
    leaves = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return {**variables, "params": jax.tree.unflatten(tree, leaves)}


TINY = dict(image_size=16, n_levels=2, depth=2, width=8)
VARIANTS = {
    "additive-invconv-learntop": dict(coupling="additive", permutation="invconv", learn_top=True),
    "affine-invconv-learntop": dict(coupling="affine", permutation="invconv", learn_top=True),
    "additive-lu-learntop": dict(coupling="additive", permutation="invconv_lu", learn_top=True),
    "affine-lu-fixedtop": dict(coupling="affine", permutation="invconv_lu", learn_top=False),
    "additive-shuffle-fixedtop": dict(coupling="additive", permutation="shuffle", learn_top=False),
    "affine-reverse-conditional": dict(coupling="affine", permutation="reverse", n_classes=3),
}


# Two variants cover every kind of step in the default suite (additive and affine
# couplings, a fixed and a conditional prior); the rest compile for ~35 s and run slow.
FAST_VARIANTS = ("additive-shuffle-fixedtop", "affine-reverse-conditional")


@pytest.mark.parametrize("variant", [
    pytest.param(v, marks=() if v in FAST_VARIANTS else pytest.mark.slow) for v in VARIANTS],
    ids=list(VARIANTS))
def test_decode_inverts_encode(variant):
    model = Glow(**TINY, n_bits=8, **VARIANTS[variant])
    x = _images(3, 16)
    y = jnp.array([0, 2, 1]) if model.n_classes else None
    variables = _perturbed(model, x, y=y)
    enc = glow.encode(model, variables, x, None, y)
    x_float = glow.decode(model, variables, enc.eps, y, "eps", False)
    expected = x.astype(jnp.float32) / 256 - 0.5 + 0.5 / 256
    assert float(jnp.max(jnp.abs(x_float - expected))) < 1e-4
    # n_bits=8 with mid-bin noise: the uint8 image comes back exactly.
    np.testing.assert_array_equal(glow.decode(model, variables, enc.eps, y), x)
    # Raw z space round-trips too.
    np.testing.assert_array_equal(glow.decode(model, variables, enc.z, y, "z"), x)


@pytest.mark.parametrize("permutation", ["invconv", pytest.param("invconv_lu", marks=pytest.mark.slow)])
def test_precomputed_inverses_leave_decode_without_factorisations_and_change_no_pixel(
        permutation):
    # Each step inverts its 1x1 conv inside the scan (a LAPACK call per step and
    # call, costly on CPU at small batches); with_inverse_weights computes them
    # once, outside jit, and the compiled decode then runs none (the step's own
    # inversion is left only in the branch taken when its parameters changed),
    # bit for bit the same.
    model = Glow(**TINY, permutation=permutation)
    x = _images(2, 16)
    variables = _perturbed(model, x)
    eps = glow.encode(model, variables, x).eps
    stored = perm.with_inverse_weights(variables)

    def factorisations(v):
        return unconditional_calls(
            jax.jit(lambda v, e: model.apply(v, e, method="decode")).lower(v, eps).compile().as_text())

    assert factorisations(variables) > 0
    assert factorisations(stored) == 0
    np.testing.assert_array_equal(glow.decode(model, stored, eps), glow.decode(model, variables, eps))


@pytest.mark.parametrize("permutation", ["invconv", "invconv_lu"])
def test_stored_inverses_are_not_used_once_the_parameters_change(permutation):
    # A cache that outlived its parameters (a training step, a fine-tune, a loaded
    # update) decoded wrong images with no error.
    model = Glow(**TINY, permutation=permutation)
    x = _images(2, 16)
    old = _perturbed(model, x)
    stored = perm.with_inverse_weights(old)
    new = _perturbed(model, x, seed=7)
    assert not np.array_equal(*(jax.tree.leaves(v["params"])[0] for v in (old, new)))
    eps = glow.encode(model, new, x).eps
    stale = {**stored, "params": new["params"], bj.CONSTANTS: new.get(bj.CONSTANTS, {})}
    np.testing.assert_array_equal(glow.decode(model, stale, eps), glow.decode(model, new, eps))
    # ...and computing them again for the new parameters replaces the old ones.
    fresh = perm.with_inverse_weights(stale)
    np.testing.assert_array_equal(glow.decode(model, fresh, eps), glow.decode(model, new, eps))


def test_five_bit_model_returns_the_image_with_low_bits_zeroed():
    model = Glow(**TINY, n_bits=5)
    x = _images(2, 16, seed=3)
    variables = _perturbed(model, x)
    enc = glow.encode(model, variables, x)
    out = glow.decode(model, variables, enc.eps)
    np.testing.assert_array_equal(out, 8 * (x // 8))


@pytest.mark.slow
def test_celeba_geometry_round_trips_at_256():
    model = Glow(image_size=256, n_levels=6, depth=2, width=8, n_bits=5)
    x = _images(1, 256, seed=5)
    variables = _perturbed(model, x, scale=0.01)
    enc = glow.encode(model, variables, x)
    assert [e.shape[1:] for e in enc.eps] == [
        (128, 128, 6), (64, 64, 12), (32, 32, 24), (16, 16, 48), (8, 8, 96), (4, 4, 384)]
    np.testing.assert_array_equal(glow.decode(model, variables, enc.eps), 8 * (x // 8))


def _continuous_to_flat_eps(model, variables):
    def f(x_flat):
        enc = model.apply(variables, x_flat.reshape(1, *model.image_shape),
                          method=lambda m, x: m._flow(x=x))
        return latents.flatten(enc.eps)[0]
    return f


def test_a_bfloat16_conditioner_keeps_the_round_trip_exact_and_the_parameters_float32():
    model = Glow(image_size=8, n_levels=2, depth=2, width=8, coupling="affine",
                 conditioner_dtype="bfloat16")
    x = _images(2, 8)
    variables = _perturbed(model, x)
    assert {a.dtype for a in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    enc = glow.encode(model, variables, x)
    np.testing.assert_array_equal(glow.decode(model, variables, enc.eps), x // 8 * 8)
    f32 = glow.encode(model.clone(conditioner_dtype="float32"), variables, x)
    assert not np.array_equal(enc.eps[0], f32.eps[0])  # the conditioner did run in bfloat16
    np.testing.assert_allclose(enc.bits_per_dim, f32.bits_per_dim, rtol=1e-2)
    hlo = glow.encode.lower(model, variables, x).as_text()
    assert "bf16" in hlo and "f32" in hlo
    with pytest.raises(ValueError, match="conditioner_dtype must be one of"):
        Glow(image_size=8, n_levels=2, depth=1, width=8, conditioner_dtype="float16")


def test_bits_per_dim_takes_its_dequantisation_noise_explicitly():
    """No silent mid-bin default: published bits/dim are at uniform noise."""
    model = Glow(image_size=4, n_levels=1, depth=1, width=4)
    x = _images(4, 4)
    variables = _perturbed(model, x)
    for method in ("bits_per_dim", "log_prob"):
        with pytest.raises(TypeError, match="noise"):
            model.apply(variables, x, method=method)
    uniform = model.apply(variables, x, jax.random.key(0), method="bits_per_dim")
    mid_bin = model.apply(variables, x, None, method="bits_per_dim")
    np.testing.assert_array_equal(mid_bin, glow.encode(model, variables, x).bits_per_dim)
    assert not np.allclose(uniform, mid_bin)  # two different measures


def test_log_prob_equals_bruteforce_change_of_variables():
    """log p(x) = -D ln(n_bins) + log N(eps(x); 0, I) + log|det d eps/dx|.

    The standardized latent eps(x) is itself a bijection of the image with a
    standard normal density, so this checks every log-determinant and every
    prior term of the model at once, against a float64 Jacobian.
    """
    model = Glow(image_size=4, n_levels=2, depth=2, width=4, coupling="affine", n_bits=5)
    x = _images(1, 4, seed=11)
    variables = _perturbed(model, x, scale=0.05)
    noise = jax.random.uniform(jax.random.key(2), x.shape, minval=0.0, maxval=1 / 32)
    enc = glow.encode(model, variables, x, noise)
    with jax.enable_x64(True):
        v64 = jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a,
                           variables)
        x_cont = (x // 8).astype(jnp.float64) / 32 - 0.5 + noise.astype(jnp.float64)
        # Jitted: run op by op, the many small float64 ops took ~20 s.
        f = jax.jit(_continuous_to_flat_eps(model, v64))
        eps = f(x_cont.reshape(-1))
        _, logdet = jnp.linalg.slogdet(jax.jit(jax.jacfwd(f))(x_cont.reshape(-1)))
        d = eps.size
        expected = (-d * math.log(32) - 0.5 * d * math.log(2 * math.pi)
                    - 0.5 * jnp.sum(eps**2) + logdet)
    np.testing.assert_allclose(float(enc.log_prob[0]), float(expected), rtol=1e-5)
    np.testing.assert_allclose(float(enc.bits_per_dim[0]),
                               -float(expected) / (d * math.log(2)), rtol=1e-5)


def _record_method_outputs(model, variables, x, cls, method_name, stat):
    """Run encode, recording ``stat(inputs, outputs)`` of every ``cls.method``."""
    seen = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, cls) and context.method_name == method_name:
            jax.debug.callback(lambda s: seen.append(np.asarray(s)), stat(args[0], out[0]))
        return out

    with nn.intercept_methods(interceptor):
        jax.block_until_ready(model.apply(variables, x, method=Glow.encode))
    return seen


def test_init_compiles_once_per_model_and_shapes(monkeypatch):
    """A second init of an equal model on images of the same shape reuses the program."""
    traced = []
    real_init = nn.Module.init
    monkeypatch.setattr(Glow, "init", lambda self, *a, **k: traced.append(1) or real_init(
        self, *a, **k), raising=False)
    model = Glow(image_size=4, n_levels=1, depth=1, width=4)
    x = _images(2, 4)
    first = glow.init(model, jax.random.key(0), x)
    second = glow.init(Glow(image_size=4, n_levels=1, depth=1, width=4), jax.random.key(0), x)
    assert len(traced) == 1
    jax.tree.map(np.testing.assert_array_equal, first, second)


def test_after_init_every_actnorm_normalises_the_init_batch():
    model = Glow(**TINY)
    x = _images(16, 16, seed=4)
    variables = glow.init(model, jax.random.key(0), x)
    stats = _record_method_outputs(
        model, variables, x, bj.ActNorm, "forward",
        lambda _, y: jnp.stack([jnp.max(jnp.abs(jnp.mean(y, axis=(0, 1, 2)))),
                                jnp.max(jnp.abs(jnp.std(y, axis=(0, 1, 2)) - 1.0))]))
    # Per step: the step's ActNorm and the conditioner's two.
    assert len(stats) == TINY["n_levels"] * TINY["depth"] * 3
    assert max(float(s[0]) for s in stats) < 1e-3
    assert max(float(s[1]) for s in stats) < 1e-3


def test_at_init_every_affine_coupling_scales_its_second_half_by_sigmoid_two():
    model = Glow(**TINY, coupling="affine")
    x = _images(4, 16, seed=6)
    variables = glow.init(model, jax.random.key(0), x)
    scale = 1.0 / (1.0 + math.exp(-2.0))

    def deviation(z_in, z_out):
        half = z_in.shape[-1] // 2
        return jnp.maximum(jnp.max(jnp.abs(z_out[..., :half] - z_in[..., :half])),
                           jnp.max(jnp.abs(z_out[..., half:] - scale * z_in[..., half:])))

    stats = _record_method_outputs(model, variables, x, bj.Coupling, "forward", deviation)
    assert len(stats) == TINY["n_levels"] * TINY["depth"]
    # The zero-conv outputs exactly 0 at init: shift 0, scale sigmoid(0 + 2).
    assert max(float(s) for s in stats) < 1e-6


def test_at_init_every_additive_coupling_is_the_identity():
    model = Glow(**TINY)
    x = _images(4, 16, seed=6)
    variables = glow.init(model, jax.random.key(0), x)
    diffs = _record_method_outputs(model, variables, x, bj.Coupling, "forward",
                                   lambda z_in, z_out: jnp.max(jnp.abs(z_out - z_in)))
    assert len(diffs) == TINY["n_levels"] * TINY["depth"]
    assert max(float(s) for s in diffs) == 0.0


def test_celeba256_config_has_openai_parameter_count_and_latent_layout():
    config = _load_config("celeba256").get_config()
    model = models.model_from_config(config.model)
    shapes = jax.eval_shape(lambda k, x: model.init(k, x), jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.uint8))
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes["params"]))
    assert n_params == 175_099_620
    assert latents.flat_size(model.latent_shapes) == 196_608
    assert latents.flat_offsets(model.latent_shapes) == [0, 98_304, 147_456, 172_032, 184_320, 190_464]


def test_vmap_of_encode_equals_the_batched_call():
    model = Glow(**TINY)
    x = _images(6, 16, seed=8)
    variables = _perturbed(model, x)
    batched = glow.encode(model, variables, x)
    mapped = jax.vmap(lambda xs: glow.encode(model, variables, xs))(x.reshape(3, 2, 16, 16, 3))
    for a, b in zip(batched.eps, mapped.eps):
        np.testing.assert_allclose(a, b.reshape(a.shape), atol=1e-5)
    np.testing.assert_allclose(batched.log_prob, mapped.log_prob.reshape(-1), rtol=1e-6)


def test_jitted_encode_and_decode_do_not_retrace_for_same_shapes():
    model = Glow(**{**TINY, "depth": 1})
    x = _images(2, 16, seed=9)
    variables = glow.init(model, jax.random.key(0), x)
    enc = glow.encode(model, variables, x)
    glow.decode(model, variables, enc.eps)
    sizes = (glow.encode._cache_size(), glow.decode._cache_size())
    enc = glow.encode(model, variables, _images(2, 16, seed=10))
    glow.decode(model, variables, enc.eps)
    assert (glow.encode._cache_size(), glow.decode._cache_size()) == sizes


def test_sample_scales_the_standardized_noise_with_temperature():
    model = Glow(**TINY, n_bits=8)
    x = _images(2, 16)
    variables = _perturbed(model, x)
    cold = model.apply(variables, jax.random.key(1), 3, 0.0, quantize=False, method=Glow.sample)
    zero_eps = [jnp.zeros((3, *s)) for s in model.latent_shapes]
    np.testing.assert_allclose(cold, glow.decode(model, variables, zero_eps, None, "eps", False),
                               atol=1e-6)
    warm = model.apply(variables, jax.random.key(1), 3, 0.7, method=Glow.sample)
    assert warm.shape == (3, 16, 16, 3) and warm.dtype == jnp.uint8
    assert len(np.unique(np.asarray(warm))) > 10


def test_training_noise_key_makes_encodings_stochastic_and_array_noise_is_used_as_is():
    model = Glow(**TINY, n_bits=8)
    x = _images(1, 16)
    variables = glow.init(model, jax.random.key(0), x)
    a = glow.encode(model, variables, x, jax.random.key(1))
    b = glow.encode(model, variables, x, jax.random.key(2))
    assert float(jnp.max(jnp.abs(a.eps[0] - b.eps[0]))) > 0
    mid = glow.encode(model, variables, x, jnp.full(x.shape, 0.5 / 256, jnp.float32))
    default = glow.encode(model, variables, x)
    np.testing.assert_array_equal(mid.eps[0], default.eps[0])


@pytest.mark.parametrize("images,match", [
    (jnp.zeros((1, 8, 8, 3), jnp.uint8), r"shape \[batch, 16, 16, 3\].*got shape \(1, 8, 8, 3\)"),
    (jnp.zeros((1, 16, 16, 4), jnp.uint8), r"shape \[batch, 16, 16, 3\].*got shape \(1, 16, 16, 4\)"),
    (jnp.zeros((1, 16, 16, 3), jnp.float32), r"must be uint8.*got dtype float32"),
    (jnp.zeros((16, 16, 3), jnp.uint8), r"got shape \(16, 16, 3\)"),
], ids=["wrong-size", "wrong-channels", "wrong-dtype", "missing-batch-axis"])
def test_bad_images_raise_a_value_error_naming_expected_and_actual(images, match):
    model = Glow(**TINY)
    variables = glow.init(model, jax.random.key(0), _images(1, 16))
    with pytest.raises(ValueError, match=match):
        glow.encode(model, variables, images)


def test_image_size_must_divide_by_two_to_the_levels():
    with pytest.raises(ValueError, match=r"divisible by 2\*\*n_levels = 8 \(n_levels=3\), got 20"):
        Glow(image_size=20, n_levels=3)


def test_decode_rejects_latents_of_the_wrong_shape():
    model = Glow(**TINY)
    variables = glow.init(model, jax.random.key(0), _images(1, 16))
    with pytest.raises(ValueError, match=r"latent level 0 must have shape \(1, 8, 8, 6\), got \(1, 8, 8, 5\)"):
        glow.decode(model, variables, [jnp.zeros((1, 8, 8, 5)), jnp.zeros((1, 4, 4, 24))])


def test_model_config_round_trips_and_rejects_unknown_keys():
    model = Glow(**TINY, coupling="affine")
    assert glow.model_from_config(glow.model_config(model)) == model
    with pytest.raises(ValueError, match=r"unknown Glow config keys \['levels'\]"):
        glow.model_from_config({"levels": 3})


def test_execution_settings_are_not_the_models_identity():
    model = Glow(**TINY)
    for setting in ({"remat": True}, {"scan_unroll": 2}, {"precision": "default"},
                    {"conditioner_dtype": "bfloat16"}, {"conv_algorithm": "xla"}):
        other = model.clone(**setting)
        assert models.model_config(other) == models.model_config(model)
        assert models.execution_config(other) != models.execution_config(model)
        # ...but a module is a static argument of every jitted function: they differ there.
        assert other != model and hash(other) != hash(model)
    assert set(models.execution_config(model)) == {"remat", "scan_unroll", "precision",
                                                   "conditioner_dtype", "conv_algorithm"}


def test_a_changed_precision_compiles_its_own_program():
    """jit keys its cache on the module (a static argument), so the same weights run
    at another precision through a new program, never a stale one. An unset
    precision ("auto") runs encode and decode at "highest"."""
    x = _images(1, 16)
    model = Glow(**TINY)
    variables = glow.init(model, jax.random.key(0), x)
    text = {p: glow.encode.lower(model.clone(precision=p), variables, x).as_text()
            for p in ("auto", "highest", "default")}
    assert "HIGHEST" in text["auto"] and text["auto"] == text["highest"]
    assert "HIGHEST" not in text["default"]


def test_the_precision_policy_trains_at_default_and_decodes_at_highest():
    from flowjax.models import execution

    model = Glow(**TINY)
    assert model.precision == "auto"
    assert execution.for_phase(model, "train").precision == "default"
    assert execution.for_phase(model, "decode").precision == "highest"
    assert execution.for_phase(model, "encode").precision == "highest"
    chosen = model.clone(precision="high")  # a configured precision holds in every phase
    assert {execution.for_phase(chosen, p).precision for p in execution.PHASES} == {"high"}
    with pytest.raises(ValueError, match=r"phase must be one of .*got 'sampling'"):
        execution.for_phase(model, "sampling")


def test_labels_are_required_by_a_conditional_glow_and_refused_by_an_unconditional_one():
    x = _images(2, 16)
    conditional = Glow(**TINY, n_classes=3)
    variables = glow.init(conditional, jax.random.key(0), x, jnp.array([0, 1]))
    with pytest.raises(ValueError, match=r"class-conditional \(n_classes=3\): pass labels y"):
        glow.encode(conditional, variables, x)
    plain = Glow(**TINY)
    variables = glow.init(plain, jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"not class-conditional \(n_classes=0\).*pass y=None"):
        glow.encode(plain, variables, x, None, jnp.array([0, 1]))
    eps = glow.encode(plain, variables, x).eps
    with pytest.raises(ValueError, match=r"not class-conditional"):
        glow.decode(plain, variables, eps, jnp.array([0, 1]))
