"""weights/convert_openai.py: OpenAI's frozen CelebA-HQ Glow graph -> flowjax checkpoint.

The fixtures are GraphDefs written with OpenAI's naming and layout as
GLOW_SPEC.md §4.2-4.3 states it, independently of the converter's naming
table: the weight names and shapes are spelled out here from the spec.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from flowjax.convert import graphdef as gd
from flowjax.convert.graphdef_reader import parse_graphdef
from flowjax.convert.graphdef_writer import serialize_graphdef, write_graphdef
from flowjax.models import glow

ROOT = Path(__file__).resolve().parents[1]


def _load_converter():
    spec = importlib.util.spec_from_file_location("convert_openai", ROOT / "weights" / "convert_openai.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


convert_openai = _load_converter()
ConversionError = convert_openai.ConversionError

SMALL = dict(image_size=16, n_levels=2, depth=2, width=8)
CELEBA = dict(image_size=256, n_levels=6, depth=32, width=512)


# ---- the fixture: OpenAI's names and shapes, from GLOW_SPEC §4.2 ---------------


def openai_weight_shapes(image_size: int, n_levels: int, depth: int, width: int) -> dict[str, tuple]:
    """Every float tensor of OpenAI's Glow (additive, invconv, learned top prior)."""
    shapes = {}
    for i in range(n_levels):
        c = 12 * 2**i
        for k in range(depth):
            step = f"model/{i}/{k}/"
            shapes.update({
                step + "actnorm_center/b": (1, 1, 1, c),
                step + "actnorm_scale/logs": (1, 1, 1, c),
                step + "invconv/W": (c, c),
                step + "f1/l_1/W": (3, 3, c // 2 + 1, width),
                step + "f1/l_1/actnorm_center/b": (1, 1, 1, width),
                step + "f1/l_1/actnorm_scale/logs": (1, 1, 1, width),
                step + "f1/l_2/W": (1, 1, width, width),
                step + "f1/l_2/actnorm_center/b": (1, 1, 1, width),
                step + "f1/l_2/actnorm_scale/logs": (1, 1, 1, width),
                step + "f1/l_last/W": (3, 3, width + 1, c // 2),
                step + "f1/l_last/b": (1, 1, 1, c // 2),
                step + "f1/l_last/logs": (1, c // 2),
            })
        if i < n_levels - 1:
            shapes.update({
                f"model/pool{i}/conv/W": (3, 3, c // 2 + 1, c),
                f"model/pool{i}/conv/b": (1, 1, 1, c),
                f"model/pool{i}/conv/logs": (1, c),
            })
    top = 12 * 2 ** (n_levels - 1)
    shapes.update({
        "model/prior/p/W": (3, 3, 2 * top + 1, 2 * top),
        "model/prior/p/b": (1, 1, 1, 2 * top),
        "model/prior/p/logs": (1, 2 * top),
    })
    return shapes


def random_weights(shapes: dict[str, tuple], seed: int = 0) -> dict[str, np.ndarray]:
    """Small random values that keep the flow well conditioned."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in shapes.items():
        if name.endswith("invconv/W"):
            value = np.linalg.qr(rng.normal(size=shape))[0]
        elif name.endswith("logs"):
            value = rng.normal(0.0, 0.02, shape)
        elif name.endswith("/b"):
            value = rng.normal(0.0, 0.05, shape)
        else:
            value = rng.normal(0.0, 0.05 if "l_1" in name or "l_2" in name else 0.01, shape)
        weights[name] = value.astype(np.float32)
    return weights


def edge_indicator(size: int) -> np.ndarray:
    pad = np.ones((1, size + 2, size + 2, 1), np.float32)
    pad[:, 1:-1, 1:-1, :] = 0.0
    return pad


def openai_graph(weights: dict[str, gd.Tensor | np.ndarray], image_size: int,
                 n_levels: int) -> gd.GraphDef:
    """A frozen-graph look-alike: inputs, weight Consts with their ``/read``
    Identities, edge-pad indicators, int and scalar Consts, and ops wiring
    them to OpenAI's output names."""
    s = image_size
    nodes = [
        gd.placeholder_node("input/image", gd.DT_UINT8, (-1, s, s, 3)),
        gd.placeholder_node("input/downsampled_image", gd.DT_UINT8, (-1, s // 2, s // 2, 3)),
        gd.placeholder_node("input/label", gd.DT_INT32, (-1,)),
        gd.op_node("model/Cast", "Cast", ["input/image"]),
        gd.const_node("model/truediv/y", np.float32(8.0)),
        gd.op_node("model/truediv", "RealDiv", ["model/Cast", "model/truediv/y"]),
    ]
    level_input = "model/truediv"
    decoder_inputs = []
    for i in range(n_levels):
        size = s // 2 ** (i + 1)
        step = f"model/{i}/0/f1/l_1/"
        nodes += [
            gd.const_node(step + "Const", edge_indicator(size)),
            gd.const_node(step + "Pad/paddings",
                          gd.Tensor.from_numpy(np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),
                                               as_values=True)),
            gd.const_node(f"model/{i}/0/actnorm_scale/mul/y", np.float32(3.0)),
            gd.op_node(step + "Pad", "Pad", [level_input, step + "Pad/paddings"]),
        ]
        reads = [step + "Pad", step + "Const", f"model/{i}/0/actnorm_scale/mul/y"]
        for name in weights:
            if name.startswith((f"model/{i}/", f"model/pool{i}/")):
                reads.append(name + "/read")
        level_input = f"model/{i}/flow"
        nodes.append(gd.op_node(level_input, "AddN", reads))
        if i < n_levels - 1:
            nodes.append(gd.op_node(f"model/pool{i}/truediv_1", "RealDiv", [level_input]))
        decoder_inputs.append("Placeholder" + (f"_{i}" if i else ""))
        nodes.append(gd.placeholder_node(decoder_inputs[-1], gd.DT_FLOAT, (-1, 4, 4, 12)))
    prior_reads = [name + "/read" for name in weights if name.startswith("model/prior/")]
    nodes.append(gd.op_node("model/truediv_4", "RealDiv", [level_input, *prior_reads]))
    nodes.append(gd.op_node("model_1/Cast_1", "Cast", [*decoder_inputs, "model/prior/p/W/read"],
                            gd.DT_UINT8))
    for name, value in weights.items():
        nodes.append(gd.const_node(name, value))
        nodes.append(gd.op_node(name + "/read", "Identity", [name]))
    return gd.GraphDef(node=nodes, producer=26)


def add_nodes(graph: gd.GraphDef, *nodes: gd.NodeDef) -> gd.GraphDef:
    return gd.GraphDef(node=[*graph.node, *nodes], producer=graph.producer)


def without(graph: gd.GraphDef, name: str) -> gd.GraphDef:
    return gd.GraphDef(node=[n for n in graph.node if n.name != name], producer=graph.producer)


def replaced(graph: gd.GraphDef, name: str, value: np.ndarray) -> gd.GraphDef:
    return gd.GraphDef(node=[gd.const_node(name, value) if n.name == name else n for n in graph.node],
                       producer=graph.producer)


@pytest.fixture(scope="module")
def small_model() -> glow.Glow:
    return glow.Glow(**SMALL)


@pytest.fixture(scope="module")
def small_weights() -> dict[str, np.ndarray]:
    return random_weights(openai_weight_shapes(**SMALL))


@pytest.fixture(scope="module")
def small_graph(small_weights) -> gd.GraphDef:
    return openai_graph(small_weights, SMALL["image_size"], SMALL["n_levels"])


@pytest.fixture(scope="module")
def small_conversion(small_graph, small_model):
    return convert_openai.convert_graph(small_graph, small_model, source="fixture.pb")


def convert(graph, model, **kwargs):
    return convert_openai.convert_graph(graph, model, source="fixture.pb", **kwargs)


# ---- the naming table ------------------------------------------------------------


@pytest.mark.parametrize("geometry", [SMALL, CELEBA], ids=["small", "celeba256"])
def test_expected_names_and_shapes_are_the_specs(geometry):
    specs = convert_openai.expected_weights(glow.Glow(**geometry))
    derived = {name: spec.stored_shape for spec in specs for name in spec.names}
    assert derived == openai_weight_shapes(**geometry)


def test_celeba256_expects_2322_tensors():
    specs = convert_openai.expected_weights(glow.Glow(**CELEBA))
    assert sum(len(spec.names) for spec in specs) == 2322


def test_shuffle_permutation_has_no_openai_names():
    with pytest.raises(ConversionError, match="constants/level_0/invconv/indices"):
        convert_openai.expected_weights(glow.Glow(**SMALL, permutation="shuffle"))


# ---- a successful conversion -----------------------------------------------------


@pytest.mark.parametrize("name, path, index, shape", [
    ("model/1/0/f1/l_1/W", ("level_1", "coupling", "conv1", "W"), 0, (3, 3, 13, 8)),
    ("model/0/1/actnorm_scale/logs", ("level_0", "actnorm", "logs"), 1, (12,)),
    ("model/0/1/invconv/W", ("level_0", "invconv", "W"), 1, (12, 12)),
    ("model/1/1/f1/l_last/logs", ("level_1", "coupling", "conv_out", "logs"), 1, (12,)),
    ("model/0/0/f1/l_2/actnorm_center/b", ("level_0", "coupling", "conv2_actnorm", "b"), 0, (8,)),
    ("model/pool0/conv/b", ("split_0", "conv", "b"), None, (12,)),
    ("model/prior/p/W", ("prior", "W"), None, (3, 3, 49, 48)),
    ("model/prior/p/logs", ("prior", "logs"), None, (48,)),
])
def test_converted_leaf_equals_the_graph_tensor(small_conversion, small_weights, name, path, index,
                                                shape):
    # b/logs are squeezed to [C]; kernels keep their stored (HWIO) shape
    variables, _ = small_conversion
    leaf = variables["params"]
    for key in path:
        leaf = leaf[key]
    if index is not None:
        leaf = leaf[index]
    assert leaf.shape == shape
    np.testing.assert_array_equal(leaf, small_weights[name].reshape(shape))


def test_converted_tree_has_the_models_shapes(small_conversion, small_model):
    variables, _ = small_conversion
    images = jax.ShapeDtypeStruct((1, 16, 16, 3), np.uint8)
    abstract = jax.eval_shape(lambda x: glow.init(small_model, jax.random.key(0), x), images)
    assert jax.tree.map(lambda a: a.shape, variables) == jax.tree.map(lambda a: a.shape, abstract)
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(variables))


def test_report_counts_tensors_and_parameters(small_conversion, small_weights):
    _, report = small_conversion
    assert report.tensor_count == len(small_weights)
    assert report.total_parameters == sum(w.size for w in small_weights.values())


def test_report_lists_edge_pad_indicators_and_skipped_consts(small_conversion):
    _, report = small_conversion
    assert report.edge_pad_indicators == {"model/0/0/f1/l_1/Const": [1, 10, 10, 1],
                                          "model/1/0/f1/l_1/Const": [1, 6, 6, 1]}
    # model/truediv/y and two actnorm_scale/mul/y; the two Pad/paddings
    assert report.skipped["scalar_float_consts"] == 3
    assert report.skipped["non_float_consts"] == 2


def test_report_records_inputs_and_outputs(small_conversion):
    _, report = small_conversion
    assert {"name": "input/image", "dtype": "DT_UINT8", "shape": [-1, 16, 16, 3]} in report.inputs
    assert report.outputs == ["model/pool0/truediv_1", "model/truediv_4", "model_1/Cast_1"]
    assert report.downsampled_image == {"present": True, "consumers": [], "reaches_outputs": []}


def test_single_value_fill_tensors_are_expanded(small_weights, small_model):
    weights = dict(small_weights)
    weights["model/1/1/f1/l_2/W"] = gd.Tensor.filled(gd.DT_FLOAT, (1, 1, 8, 8), 0.125)
    variables, _ = convert(openai_graph(weights, 16, 2), small_model)
    np.testing.assert_array_equal(variables["params"]["level_1"]["coupling"]["conv2"]["W"][1],
                                  np.full((1, 1, 8, 8), 0.125, np.float32))


def test_celeba256_geometry_converts_to_175099620_parameters():
    # One float_val per tensor keeps the fixture a few hundred KB; the converter
    # still expands all 700 MB. Each tensor's value encodes its name's position.
    shapes = openai_weight_shapes(**CELEBA)
    fills = {name: float(n) for n, name in enumerate(shapes)}
    weights = {name: gd.Tensor.filled(gd.DT_FLOAT, shape, fills[name]) for name, shape in shapes.items()}
    graph = parse_graphdef(serialize_graphdef(openai_graph(weights, 256, 6)))
    variables, report = convert(graph, glow.Glow(**CELEBA))
    params = variables["params"]
    assert report.total_parameters == 175_099_620
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == 175_099_620
    assert report.tensor_count == 2322
    conv2 = params["level_5"]["coupling"]["conv2"]["W"]
    assert conv2.shape == (32, 1, 1, 512, 512)
    assert (conv2[31] == fills["model/5/31/f1/l_2/W"]).all()
    assert (params["prior"]["W"] == fills["model/prior/p/W"]).all()


# ---- writing the checkpoint --------------------------------------------------------


@pytest.fixture(scope="module")
def converted_dir(tmp_path_factory, small_graph, small_model):
    folder = tmp_path_factory.mktemp("convert")
    graph_path = folder / "graph_unoptimized.pb"
    write_graphdef(graph_path, small_graph)
    out = folder / "celeba_small"
    manifest = convert_openai.convert_file(graph_path, out, small_model)
    return graph_path, out, manifest


def test_checkpoint_loads_the_converted_model(converted_dir, small_model, small_weights):
    from flowjax.models import checkpoints

    _, out, _ = converted_dir
    model, variables = checkpoints.load_model(out)
    assert model == small_model
    np.testing.assert_array_equal(variables["params"]["level_1"]["coupling"]["conv1"]["W"][0],
                                  small_weights["model/1/0/f1/l_1/W"])


def test_converted_model_round_trips_images(converted_dir):
    from flowjax.models import checkpoints

    model, variables = checkpoints.load_model(converted_dir[1])
    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    encoding = glow.encode(model, variables, images)
    assert np.isfinite(np.asarray(encoding.bits_per_dim)).all()
    decoded = np.asarray(glow.decode(model, variables, encoding.eps))
    np.testing.assert_array_equal(decoded, images // 8 * 8)


def test_manifest_records_source_checksum_and_counts(converted_dir, small_weights):
    graph_path, out, manifest = converted_dir
    assert manifest["source"]["sha256"] == hashlib.sha256(graph_path.read_bytes()).hexdigest()
    assert manifest["source"]["bytes"] == graph_path.stat().st_size
    assert manifest["tensor_count"] == len(small_weights)
    assert manifest["total_parameters"] == sum(w.size for w in small_weights.values())
    assert manifest["model_config"] == glow.model_config(glow.Glow(**SMALL))
    stored = json.loads((out / "metadata.json").read_text())
    assert stored["openai_conversion"]["source"]["sha256"] == manifest["source"]["sha256"]


def test_existing_output_directory_is_refused(converted_dir, small_model):
    graph_path, out, _ = converted_dir
    with pytest.raises(FileExistsError, match=str(out)):
        convert_openai.convert_file(graph_path, out, small_model)


def test_command_line_converts_with_config_overrides(converted_dir, tmp_path):
    graph_path, _, manifest = converted_dir
    out = tmp_path / "cli"
    overrides = [f"--config.model.{key}={value}" for key, value in SMALL.items()]
    result = subprocess.run(
        [sys.executable, str(ROOT / "weights" / "convert_openai.py"), f"--graph={graph_path}",
         f"--out={out}", *overrides],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote" in result.stdout and manifest["source"]["sha256"] in result.stdout
    stored = json.loads((out / "metadata.json").read_text())["openai_conversion"]
    assert stored["total_parameters"] == manifest["total_parameters"]


# ---- refusals: every problem names the node -----------------------------------------


def test_missing_tensor_is_named(small_graph, small_model):
    with pytest.raises(ConversionError, match=r"missing.*\n.*model/1/1/f1/l_2/W \(shape \[1, 1, 8, 8\]\)"):
        convert(without(small_graph, "model/1/1/f1/l_2/W"), small_model)


def test_wrong_shape_is_named_with_expected_and_actual(small_graph, small_model):
    graph = replaced(small_graph, "model/0/1/invconv/W", np.eye(6, dtype=np.float32))
    with pytest.raises(ConversionError,
                       match=r"model/0/1/invconv/W has shape \[6, 6\], expected \[12, 12\]"):
        convert(graph, small_model)


def test_error_names_the_source_file(small_graph, small_model):
    with pytest.raises(ConversionError, match="^fixture.pb: cannot convert"):
        convert(without(small_graph, "model/prior/p/b"), small_model)


def test_unexpected_float_const_is_named(small_graph, small_model):
    graph = add_nodes(small_graph, gd.const_node("model/0/0/f1/l_1/mystery",
                                                 np.ones((3, 3), np.float32)))
    with pytest.raises(ConversionError, match=r"unknown.*\n.*model/0/0/f1/l_1/mystery DT_FLOAT \[3, 3\]"):
        convert(graph, small_model)


def test_weight_named_scalar_is_not_skipped(small_graph, small_model):
    graph = add_nodes(small_graph, gd.const_node("model/classifier/b", np.zeros((1,), np.float32)))
    with pytest.raises(ConversionError, match="model/classifier/b .*ycond classifier"):
        convert(graph, small_model)


def test_indicator_shaped_const_with_other_values_is_unknown(small_graph, small_model):
    graph = add_nodes(small_graph, gd.const_node("model/1/1/f1/l_1/Const",
                                                 np.zeros((1, 6, 6, 1), np.float32)))
    with pytest.raises(ConversionError, match=r"model/1/1/f1/l_1/Const DT_FLOAT \[1, 6, 6, 1\]"):
        convert(graph, small_model)


def test_explicitly_skipped_const_is_recorded(small_graph, small_model):
    graph = add_nodes(small_graph, gd.const_node("model/extra", np.ones((4,), np.float32)))
    _, report = convert(graph, small_model, skip_consts=["model/extra"])
    assert report.skipped["explicitly_skipped"] == ["model/extra"]


@pytest.mark.parametrize("name", ["model/nonexistent", "model/0/0/invconv/W"])
def test_skip_const_must_name_a_non_weight_const(small_graph, small_model, name):
    with pytest.raises(ConversionError, match=f"skip_const.*\n.*{name}"):
        convert(small_graph, small_model, skip_consts=[name])


def test_extra_invertible_layer_is_refused(small_graph, small_model):
    graph = add_nodes(small_graph, gd.const_node("model/1/invconv/W", np.eye(24, dtype=np.float32)))
    with pytest.raises(ConversionError, match=r"extra_invertible.*\n.*model/1/invconv/W \[24, 24\]"):
        convert(graph, small_model)


def test_lu_variables_are_refused_for_a_plain_invconv_config(small_graph, small_model):
    graph = add_nodes(small_graph, gd.const_node("model/0/0/invconv/L", np.eye(12, dtype=np.float32)))
    with pytest.raises(ConversionError, match=r"lu: .*invconv_lu.*\n.*model/0/0/invconv/L"):
        convert(graph, small_model)


def test_lu_variables_convert_for_an_lu_config(small_weights):
    model = glow.Glow(**SMALL, permutation="invconv_lu")
    rng = np.random.default_rng(2)
    weights = {n: w for n, w in small_weights.items() if not n.endswith("invconv/W")}
    for i, c in enumerate((12, 24)):
        for k in range(2):
            for part, shape in (("P", (c, c)), ("L", (c, c)), ("U", (c, c)), ("sign_S", (c,)),
                                ("log_S", (c,))):
                weights[f"model/{i}/{k}/invconv/{part}"] = rng.normal(size=shape).astype(np.float32)
    variables, _ = convert(openai_graph(weights, 16, 2), model)
    np.testing.assert_array_equal(variables["constants"]["level_1"]["invconv"]["P"][1],
                                  weights["model/1/1/invconv/P"])
    np.testing.assert_array_equal(variables["params"]["level_0"]["invconv"]["log_S"][0],
                                  weights["model/0/0/invconv/log_S"])


def test_random_uniform_in_the_encoder_is_refused(small_graph, small_model):
    graph = add_nodes(small_graph, gd.op_node("model/random_uniform/RandomUniform", "RandomUniform",
                                              ["model/Cast"]))
    with pytest.raises(ConversionError,
                       match=r"random_uniform.*\n.*model/random_uniform/RandomUniform \(RandomUniform\)"):
        convert(graph, small_model)


def test_allow_random_uniform_makes_it_a_warning(small_graph, small_model):
    graph = add_nodes(small_graph, gd.op_node("model/random_uniform/RandomUniform", "RandomUniform",
                                              ["model/Cast"]))
    _, report = convert(graph, small_model, allow=["random_uniform"])
    assert report.random_ops == ["model/random_uniform/RandomUniform (RandomUniform)"]
    assert any("model/random_uniform/RandomUniform" in w for w in report.warnings)


def test_random_op_under_the_encoders_name_scope_is_refused(small_graph, small_model):
    # The public code builds its encoder under model_4/ (the variables stay under model/).
    graph = add_nodes(small_graph, gd.op_node("model_4/random_uniform/RandomUniform",
                                              "RandomUniform", ["model_4/Shape"]))
    with pytest.raises(ConversionError,
                       match=r"random_uniform.*\n.*model_4/random_uniform/RandomUniform"):
        convert(graph, small_model)


def test_downsampled_image_reaching_the_outputs_is_one_problem(small_graph, small_model):
    graph = add_nodes(small_graph,
                      gd.op_node("model/Cast_xd", "Cast", ["input/downsampled_image"]),
                      gd.op_node("model/truediv_xd", "RealDiv", ["model/Cast_xd", "model/truediv/y"]))
    with pytest.raises(ConversionError, match=r"; 1 problem\(s\):"):
        convert(graph, small_model)


def test_consumer_of_downsampled_image_is_refused(small_graph, small_model):
    graph = add_nodes(small_graph,
                      gd.op_node("model/Cast_xd", "Cast", ["input/downsampled_image"]),
                      gd.op_node("model/truediv_xd", "RealDiv", ["model/Cast_xd", "model/truediv/y"]))
    with pytest.raises(ConversionError, match=r"downsampled_image.*\n.*model/Cast_xd \(Cast\), "
                                              r"it reaches the outputs model/truediv_xd"):
        convert(graph, small_model)


def test_allow_downsampled_image_records_the_trace(small_graph, small_model):
    graph = add_nodes(small_graph, gd.op_node("model/Shape_xd", "Shape", ["input/downsampled_image"]))
    _, report = convert(graph, small_model, allow=["downsampled_image"])
    assert report.downsampled_image["consumers"] == ["model/Shape_xd (Shape)"]
    assert report.warnings and "model/Shape_xd" in report.warnings[0]


def test_not_frozen_variable_is_refused(small_graph, small_model):
    graph = add_nodes(without(small_graph, "model/prior/p/b"),
                      gd.NodeDef("model/prior/p/b", "VariableV2"))
    with pytest.raises(ConversionError, match=r"not_const.*\n.*model/prior/p/b is a VariableV2 node"):
        convert(graph, small_model)


def test_non_float32_weight_is_refused(small_graph, small_model, small_weights):
    graph = replaced(small_graph, "model/prior/p/b", small_weights["model/prior/p/b"].astype(np.float64))
    with pytest.raises(ConversionError, match=r"model/prior/p/b is DT_DOUBLE, expected DT_FLOAT"):
        convert(graph, small_model)


def test_non_finite_weight_is_refused(small_graph, small_model, small_weights):
    value = small_weights["model/0/1/f1/l_last/b"].copy()
    value[0, 0, 0, 2] = np.nan
    with pytest.raises(ConversionError, match=r"non_finite.*\n.*model/0/1/f1/l_last/b"):
        convert(replaced(small_graph, "model/0/1/f1/l_last/b", value), small_model)


def test_config_of_another_geometry_reports_missing_and_unknown(small_graph):
    with pytest.raises(ConversionError, match=r"(?s)missing.*model/0/2/.*unknown.*"):
        convert(small_graph, glow.Glow(**{**SMALL, "depth": 3, "n_levels": 1}))


# ---- cross-check with graph_optimized.pb ---------------------------------------------


def test_cross_check_counts_identical_changed_and_absent_names(small_conversion, small_model,
                                                               small_weights):
    variables, _ = small_conversion
    weights = dict(small_weights)
    weights["model/0/0/invconv/W"] = weights["model/0/0/invconv/W"] * 2
    weights["model/1/0/invconv/W"] = np.eye(3, dtype=np.float32)
    del weights["model/prior/p/W"]
    optimized = openai_graph(weights, 16, 2)
    summary = convert_openai.cross_check(optimized, small_model, variables)
    assert summary["identical"] == len(small_weights) - 3
    assert summary["examples"] == {"different_values": ["model/0/0/invconv/W"],
                                   "different_shape": ["model/1/0/invconv/W"],
                                   "absent": ["model/prior/p/W"]}


def test_class_embedding_converts_for_a_class_conditional_config(small_weights):
    model = glow.Glow(**SMALL, n_classes=4)
    rng = np.random.default_rng(3)
    weights = dict(small_weights)
    for part, shape in (("W", (4, 48)), ("b", (1, 48)), ("logs", (1, 48))):
        weights[f"model/prior/y_emb/{part}"] = rng.normal(size=shape).astype(np.float32)
    variables, _ = convert(openai_graph(weights, 16, 2), model)
    np.testing.assert_array_equal(variables["params"]["prior"]["y_emb"]["W"], weights["model/prior/y_emb/W"])
    np.testing.assert_array_equal(variables["params"]["prior"]["y_emb"]["logs"],
                                  weights["model/prior/y_emb/logs"][0])


# ---- weights/verify_tf.py (never run here: it needs TensorFlow) -------------------------


def test_verify_tf_script_imports_without_tensorflow_and_finds_the_noise_tensor(small_graph):
    had_tensorflow = "tensorflow" in sys.modules
    spec = importlib.util.spec_from_file_location("verify_tf", ROOT / "weights" / "verify_tf.py")
    verify_tf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(verify_tf)
    assert had_tensorflow or "tensorflow" not in sys.modules
    graph = add_nodes(small_graph,
                      gd.op_node("model/random_uniform/RandomUniform", "RandomUniform", ["model/Cast"]),
                      gd.op_node("model/random_uniform", "AddV2", ["model/random_uniform/RandomUniform"]))
    assert verify_tf.find_noise_tensor(graph) == "model/random_uniform"
    assert verify_tf.find_noise_tensor(small_graph) is None


def test_optimized_graph_differences_are_warnings_in_the_manifest(tmp_path, small_graph,
                                                                  small_model, small_weights):
    weights = {n: w for n, w in small_weights.items() if n != "model/prior/p/W"}
    write_graphdef(tmp_path / "graph_unoptimized.pb", small_graph)
    write_graphdef(tmp_path / "graph_optimized.pb", openai_graph(weights, 16, 2))
    manifest = convert_openai.convert_file(tmp_path / "graph_unoptimized.pb", tmp_path / "out",
                                           small_model,
                                           optimized_graph=tmp_path / "graph_optimized.pb")
    assert manifest["optimized_graph"]["absent"] == 1
    assert manifest["warnings"] == [f"graph_optimized.pb: 1 of {len(small_weights)} weights are "
                                    "absent or differ there (its weights may be folded; see "
                                    "optimized_graph)"]
