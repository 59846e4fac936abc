"""OpenAI's own Glow code, frozen by TensorFlow, against flowjax's converter and Glow.

The fixture ``tests/fixtures/openai_glow_32`` (``tests/fixtures/README.md``) is a 32x32 Glow
built by openai/glow's ``model.py`` and exported in two forms: the published
demo graph's (``glow_demo_form.pb``: ``model/random_uniform``, decoder
``Placeholder*`` -> ``model_1/Cast_1``) and the public code's own
(``openai_public_graph.pb``: encoder scope ``model_4/``, decoder ``dec_eps_<i>``
-> ``model_5/Cast_1``), plus a variant whose noise is ``random_uniform / n_bins``.
The weights are TF variables named ``model/...`` in every form, so one naming
table converts them all; each form samples dequantisation noise, so each needs
``allow=["random_uniform"]`` (``--allow_random_uniform``).

Tolerances (measured at this commit in brackets): eps 2e-5 absolute [4.5e-6];
objective 1e-6 relative, ~0.012 nats at 1.2e4 nats [3.2e-7: float32 spacing
there is 1e-3]; bits/dim 1e-5 [1.7e-6]; decoded uint8 values: at most 1 in 1,000
differ, each by exactly one 5-bit bin (8) [1 of 12,288 on the encoded eps, 0 on
the random eps]: TensorFlow inverts W in float32, flowjax in float64.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from flowjax.convert import graphdef as gd
from flowjax.convert.graphdef_reader import parse_graphdef
from flowjax.models import glow
from flowjax.transfer import latents

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "openai_glow_32"
FORMS = ("glow_demo_form.pb", "openai_public_graph.pb", "glow_demo_form_noise_div.pb")
SAMPLERS = {"glow_demo_form.pb": "model/random_uniform/RandomUniform",
            "openai_public_graph.pb": "model_4/random_uniform/RandomUniform",
            "glow_demo_form_noise_div.pb": "model/random_uniform/RandomUniform"}
# build_info.json's hyperparameters: 32x32, n_levels 3, depth 3, width 32, additive, invconv.
MODEL = glow.Glow(image_size=32, n_levels=3, depth=3, width=32)

EPS_ATOL = 2e-5
OBJECTIVE_RTOL = 1e-6
BPD_ATOL = 1e-5
MAX_DIFFERING_FRACTION = 1e-3


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "weights" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


convert_openai = _load("convert_openai")


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE / "reference_tf.npz", allow_pickle=False) as r:
        return {k: r[k] for k in r.files}


@pytest.fixture(scope="module")
def graphs():
    return {form: parse_graphdef((FIXTURE / form).read_bytes(), source=form,
                                 attr_ops=convert_openai.ATTR_OPS) for form in FORMS}


@pytest.fixture(scope="module")
def conversions(graphs):
    return {form: convert_openai.convert_graph(graph, MODEL, source=form, allow=["random_uniform"])
            for form, graph in graphs.items()}


@pytest.fixture(scope="module")
def variables(conversions):
    return conversions["glow_demo_form.pb"][0]


@pytest.fixture(scope="module")
def encoding(variables, reference):
    return glow.encode(MODEL, variables, reference["images"], reference["noise"])


@pytest.mark.parametrize("form", FORMS)
def test_each_form_is_refused_for_its_noise_sampler_without_the_allow_option(graphs, form):
    with pytest.raises(convert_openai.ConversionError,
                       match=rf"1 problem\(s\):\n.*random_uniform.*\n"
                             rf"\s+{SAMPLERS[form]} \(RandomUniform\)$"):
        convert_openai.convert_graph(graphs[form], MODEL, source=form)


@pytest.mark.parametrize("form", FORMS)
def test_each_form_converts_every_weight_with_its_sampler_recorded(conversions, form):
    _, report = conversions[form]
    assert (report.tensor_count, report.total_parameters) == (117, 184134)  # build_info.json
    assert report.random_ops == [f"{SAMPLERS[form]} (RandomUniform)"]


@pytest.mark.parametrize("form", FORMS[1:])
def test_every_form_holds_the_same_weights(conversions, variables, form):
    same = jax.tree.map(np.array_equal, conversions[form][0], variables)
    assert all(jax.tree.leaves(same))


def test_eps_match_tensorflow(encoding, reference):
    for i in range(3):
        np.testing.assert_allclose(np.asarray(encoding.eps[i]), reference[f"tf_eps_{i}"], rtol=0,
                                   atol=EPS_ATOL, err_msg=f"level {i}")


def test_objective_and_bits_per_dim_match_tensorflow(encoding, reference):
    objective = reference["tf_objective"].astype(np.float64)
    np.testing.assert_allclose(np.asarray(encoding.log_prob), objective, rtol=OBJECTIVE_RTOL, atol=0)
    np.testing.assert_allclose(np.asarray(encoding.bits_per_dim),
                               -objective / (MODEL.num_dims * math.log(2)), rtol=0, atol=BPD_ATOL)


def assert_decodes_match(ours: np.ndarray, theirs: np.ndarray) -> None:
    differ = ours != theirs
    assert differ.mean() <= MAX_DIFFERING_FRACTION, f"{differ.sum()} of {differ.size} values differ"
    np.testing.assert_array_equal(np.abs(ours[differ].astype(int) - theirs[differ]), 8)


def test_decode_of_tensorflows_eps_matches_tensorflow(variables, reference):
    eps = [reference[f"tf_eps_{i}"] for i in range(3)]
    assert_decodes_match(np.asarray(glow.decode(MODEL, variables, eps)), reference["tf_decoded"])


@pytest.mark.parametrize("temperature", ["0.7", "1.0"])
def test_decode_of_random_flat_eps_matches_tensorflow(variables, reference, temperature):
    eps = latents.unflatten(reference[f"random_eps_T{temperature}"], MODEL.latent_shapes)
    assert_decodes_match(np.asarray(glow.decode(MODEL, variables, eps)),
                         reference[f"tf_decoded_random_T{temperature}"])


# ---- weights/verify_tf.py: what it feeds and fetches, found by structure --------------------

verify_tf = _load("verify_tf")
NOISE = {"glow_demo_form.pb": "model/random_uniform",
         "openai_public_graph.pb": "model_4/random_uniform",
         "glow_demo_form_noise_div.pb": "model/truediv_2"}  # random_uniform(0, 1) / n_bins
EPS = {"glow_demo_form.pb": ["model/pool0/truediv_1", "model/pool1/truediv_1", "model/truediv_3"],
       "openai_public_graph.pb": ["model_4/pool0/truediv_1", "model_4/pool1/truediv_1",
                                  "model_4/truediv_3"],
       "glow_demo_form_noise_div.pb": ["model/pool0/truediv_1", "model/pool1/truediv_1",
                                       "model/truediv_4"]}
DECODER = {"glow_demo_form.pb": (["Placeholder", "Placeholder_1", "Placeholder_2"], "model_1/Cast_1"),
           "openai_public_graph.pb": (["dec_eps_0", "dec_eps_1", "dec_eps_2"], "model_5/Cast_1"),
           "glow_demo_form_noise_div.pb": (["Placeholder", "Placeholder_1", "Placeholder_2"],
                                           "model_1/Cast_1")}


@pytest.mark.parametrize("form", FORMS)
def test_verify_tf_finds_the_noise_the_encoder_adds(graphs, form):
    assert verify_tf.find_noise_tensor(graphs[form]) == NOISE[form]


def test_verify_tf_finds_tf2s_sampler_naming():
    graph = gd.GraphDef(node=[
        gd.placeholder_node("input/image", gd.DT_UINT8, (-1, 4, 4, 3)),
        gd.op_node("model/Cast", "Cast", ["input/image"]),
        gd.op_node("model/random_uniform/RandomUniform", "RandomUniform", ["model/Shape"]),
        gd.const_node("model/random_uniform/Mul/y", np.float32(1 / 32)),
        gd.op_node("model/random_uniform/Mul", "Mul", ["model/random_uniform/RandomUniform",
                                                       "model/random_uniform/Mul/y"]),
        gd.op_node("model/add", "AddV2", ["model/Cast", "model/random_uniform/Mul"]),
    ])
    assert verify_tf.find_noise_tensor(graph) == "model/random_uniform/Mul"


@pytest.mark.parametrize("form", FORMS)
def test_verify_tf_finds_the_eps_and_the_decoder(graphs, form):
    assert verify_tf.find_eps_tensors(graphs[form]) == EPS[form]
    assert verify_tf.find_decoder(graphs[form]) == DECODER[form]


@pytest.fixture(scope="module")
def tensorflow():
    return pytest.importorskip(
        "tensorflow", reason="weights/verify_tf.py runs OpenAI's graph in TensorFlow, which is not "
        "installed here (pip install tensorflow-cpu; CI does not install it)")


@pytest.fixture(scope="module")
def converted_dirs(tmp_path_factory, tensorflow):
    folder = tmp_path_factory.mktemp("openai_fixture")
    for form in FORMS:
        convert_openai.convert_file(FIXTURE / form, folder / form, MODEL, allow=["random_uniform"])
    return folder


@pytest.mark.parametrize("form", FORMS)
def test_verify_tf_passes_on_every_form(converted_dirs, reference, form):
    report, _ = verify_tf.verify(FIXTURE / form, converted_dirs / form, reference["images"])
    assert (report["noise_tensor"], report["eps_names"]) == (NOISE[form], EPS[form])
    assert report["passed"], report


def test_verify_tf_refuses_a_noise_tensor_of_the_wrong_range(converted_dirs, reference):
    form = "glow_demo_form_noise_div.pb"  # model/random_uniform holds U[0, 1) there
    with pytest.raises(verify_tf.GraphStructureError,
                       match=r"noise tensor model/random_uniform holds values in \[[^]]*, 0\.9"):
        verify_tf.verify(FIXTURE / form, converted_dirs / form, reference["images"],
                         noise_tensor="model/random_uniform")
