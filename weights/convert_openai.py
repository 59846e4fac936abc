"""Convert OpenAI's CelebA-HQ Glow (``graph_unoptimized.pb``) into a flowjax checkpoint.

    python weights/convert_openai.py --graph=graph_unoptimized.pb --out=weights/celeba256 \\
        [--optimized_graph=graph_optimized.pb] [--config=configs/celeba256.py]

The frozen GraphDef is parsed as protobuf (``flowjax.convert.graphdef_reader``; no
TensorFlow, nothing executed). Every weight is a ``Const`` named after its TF
variable (``GLOW_SPEC.md`` §4.2-4.3); :data:`STEP_NAMES`, :data:`SPLIT_NAMES`
and :data:`PRIOR_NAMES` map them one to one onto the flowjax parameter tree.
Which names and shapes to expect comes from the model config (by default
``configs/celeba256.py``'s: 2,322 tensors, 175,099,620 parameters) through
``jax.eval_shape`` of the model's init, so any geometry converts.

Conventions of the result: per-step tensors ``model/<i>/<k>/...`` are stacked
along a leading depth axis (``params["level_<i>"]``); ``b`` and ``logs`` are
squeezed from ``[1,1,1,C]`` / ``[1,C]`` to ``[C]``; ``logs`` stay as stored
(the model multiplies them by 3); kernels stay HWIO as stored.

The converter refuses to guess. Each of these is an error naming the node(s):

* an expected tensor that is missing, not a ``Const``, not float32, of the
  wrong shape, or not finite;
* a float Const the spec does not list (anything but the expected weights,
  the edge-pad indicator arrays ``[1,H+2,W+2,1]`` and one-element scalars),
  including LU-decomposed invconv variables, ``y_emb`` / classifier
  variables and an extra invertible layer ``model/<i>/invconv/W`` (§4.4);
* a random op (``RandomUniform``, ...) anywhere in the graph: OpenAI's
  encoder was stochastic (§4.4.3), under ``model/`` in the demo graph and
  under the encoder's name scope (``model_4/``) in graphs the public code
  builds. ``--allow_random_uniform`` downgrades this to a warning: flowjax's
  encoder takes the dequantisation noise explicitly;
* any consumer of ``input/downsampled_image`` (§4.4.1): the released graph may
  depend on an input flowjax's Glow does not have. Settle it with TensorFlow
  (``weights/verify_tf.py``, §4.6 step 7) before passing
  ``--allow_downsampled_image``.

Int Consts and one-element float Consts (shapes, scalars) are skipped and
counted; ``--skip_const=NAME`` skips one more named Const explicitly (it is
recorded). The output directory is written by ``flowjax.models.checkpoints.save_model``
(model config, variables) with the conversion manifest as its metadata: the
source file's sha256 and size, tensor count, total parameters, the skipped
Consts, the graph's inputs/outputs, the tracing results and all warnings.
``--optimized_graph`` only cross-checks names, shapes and values against
``graph_optimized.pb`` (its weights may be folded: differences are warnings).

Longer than 400 lines because the name table of every OpenAI tensor, the inspection that
refuses to guess and the conversion are one converter, pinned end to end by
tests/test_convert_openai.py.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
import sys
from collections import defaultdict, deque
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flax import traverse_util

from flowjax import __version__, models
from flowjax.convert import graphdef as gd
from flowjax.io import console
from flowjax.convert.graphdef_reader import parse_graphdef
from flowjax.convert.published import MAX_LISTED, ConversionError, listed, source_record
from flowjax.models import checkpoints, glow
from flowjax.models.glow import Glow

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "celeba256.py"

# ---------------------------------------------------------------------------
# The naming table: flowjax path -> OpenAI name (GLOW_SPEC.md §4.2)
# ---------------------------------------------------------------------------

# How a stored tensor's shape relates to the flowjax leaf (per step).
AS_STORED = "as stored"  # kernels (HWIO) and 1x1-conv matrices
BIAS_4D = "[1,1,1,C]"    # actnorm b/logs, conv2d_zeros b: squeezed to [C]
ROW_2D = "[1,C]"         # conv2d_zeros logs, y_emb b/logs: squeezed to [C]

# Under params/constants["level_<i>"] (leading depth axis)  ->  under "model/<i>/<k>/".
STEP_NAMES: dict[str, tuple[str, str]] = {
    "actnorm/b": ("actnorm_center/b", BIAS_4D),
    "actnorm/logs": ("actnorm_scale/logs", BIAS_4D),
    "invconv/W": ("invconv/W", AS_STORED),
    # permutation="invconv_lu" (P and sign_S are in the "constants" collection)
    "invconv/P": ("invconv/P", AS_STORED),
    "invconv/L": ("invconv/L", AS_STORED),
    "invconv/U": ("invconv/U", AS_STORED),
    "invconv/sign_S": ("invconv/sign_S", AS_STORED),
    "invconv/log_S": ("invconv/log_S", AS_STORED),
    "coupling/conv1/W": ("f1/l_1/W", AS_STORED),
    "coupling/conv1_actnorm/b": ("f1/l_1/actnorm_center/b", BIAS_4D),
    "coupling/conv1_actnorm/logs": ("f1/l_1/actnorm_scale/logs", BIAS_4D),
    "coupling/conv2/W": ("f1/l_2/W", AS_STORED),
    "coupling/conv2_actnorm/b": ("f1/l_2/actnorm_center/b", BIAS_4D),
    "coupling/conv2_actnorm/logs": ("f1/l_2/actnorm_scale/logs", BIAS_4D),
    "coupling/conv_out/W": ("f1/l_last/W", AS_STORED),
    "coupling/conv_out/b": ("f1/l_last/b", BIAS_4D),
    "coupling/conv_out/logs": ("f1/l_last/logs", ROW_2D),
}
# Under params["split_<i>"]  ->  under "model/pool<i>/".
SPLIT_NAMES: dict[str, tuple[str, str]] = {
    "conv/W": ("conv/W", AS_STORED),
    "conv/b": ("conv/b", BIAS_4D),
    "conv/logs": ("conv/logs", ROW_2D),
}
# Under params["prior"]  ->  under "model/prior/".
PRIOR_NAMES: dict[str, tuple[str, str]] = {
    "W": ("p/W", AS_STORED),
    "b": ("p/b", BIAS_4D),
    "logs": ("p/logs", ROW_2D),
    # n_classes > 0 (OpenAI's ycond)
    "y_emb/W": ("y_emb/W", AS_STORED),
    "y_emb/b": ("y_emb/b", ROW_2D),
    "y_emb/logs": ("y_emb/logs", ROW_2D),
}

DOWNSAMPLED_IMAGE = "input/downsampled_image"
# The only ops whose attrs the converter reads (the rest need just op and inputs).
ATTR_OPS = ("Const", "Placeholder")
RANDOM_OPS = ("RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal")
# Last name components of TF variables in Glow: a Const so named is a weight.
WEIGHT_SUFFIXES = ("W", "b", "logs", "P", "L", "U", "sign_S", "log_S")
_EXTRA_INVERTIBLE = re.compile(r"^model/\d+/invconv/")
_LU_NAME = re.compile(r"^model/\d+/\d+/invconv/(P|L|U|sign_S|log_S)$")

# Problem kinds, in report order, with what they mean and what to do.
PROBLEMS: dict[str, str] = {
    "missing": "expected by the model config but not in the graph (is --config the "
               "model this graph holds?)",
    "not_const": "expected weights that are not Const nodes (is the graph frozen?)",
    "dtype": "expected weights that are not float32",
    "shape": "expected weights with the wrong shape for this model config",
    "non_finite": "weights holding NaN or Inf",
    "extra_invertible": "an extra invertible 1x1 conv per level (OpenAI's internal "
                        "extra_invertible option, GLOW_SPEC §4.2); flowjax's Glow has none",
    "lu": "LU-decomposed invconv variables, but the model config has permutation="
          "'invconv': convert with --config.model.permutation=invconv_lu",
    "unknown": "float Consts the spec does not list (GLOW_SPEC §4.2-4.3): unknown weights "
               "are not dropped silently; if one is truly not a weight, name it with "
               "--skip_const",
    "random_uniform": "random ops in the encoder (GLOW_SPEC §4.4.3): OpenAI's encoder "
                      "adds fresh noise; flowjax takes the noise explicitly, so "
                      "--allow_random_uniform makes this a warning",
    "downsampled_image": "consumers of input/downsampled_image (GLOW_SPEC §4.4.1): flowjax's "
                         "Glow has no such input; check with weights/verify_tf.py (§4.6 "
                         "step 7) that the eps do not change with it, then pass "
                         "--allow_downsampled_image",
    "skip_const": "names given to --skip_const that are not Consts of the graph",
}
ALLOWABLE = ("random_uniform", "downsampled_image")
_MAX_OUTPUTS = 100


# ---------------------------------------------------------------------------
# Expected weights, derived from the model
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One flowjax leaf and the OpenAI tensors it is made of.

    ``names`` has one entry per flow step for ``level_<i>`` leaves (stacked
    along axis 0 in that order) and one entry otherwise.
    """

    collection: str              # "params" or "constants"
    path: tuple[str, ...]        # e.g. ("level_1", "coupling", "conv1", "W")
    names: tuple[str, ...]       # e.g. ("model/1/0/f1/l_1/W", "model/1/1/f1/l_1/W")
    stored_shape: tuple[int, ...]  # shape of each OpenAI tensor
    shape: tuple[int, ...]         # shape of the flowjax leaf

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def stacked(self) -> bool:
        """Per-step tensors stacked along a leading depth axis."""
        return self.path[0].startswith("level_")


def _stored_shape(layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if layout == AS_STORED:
        return shape
    (c,) = shape
    return (1, 1, 1, c) if layout == BIAS_4D else (1, c)


@functools.lru_cache(maxsize=8)
def expected_weights(model: Glow) -> tuple[WeightSpec, ...]:
    """Every variable of ``model`` with its OpenAI name(s) and stored shape.

    Raises ConversionError when the model has a variable the naming table does
    not cover (e.g. ``permutation="shuffle"``, whose indices OpenAI never stored
    as variables).
    """
    specs = []
    for collection, tree in checkpoints.abstract_variables(model).items():  # jax.eval_shape
        for path, leaf in traverse_util.flatten_dict(tree).items():
            scope, rest = path[0], "/".join(path[1:])
            kind, _, index = scope.rpartition("_")
            table, prefix = {"level": (STEP_NAMES, "model/{i}/{k}/"),
                             "split": (SPLIT_NAMES, "model/pool{i}/")}.get(kind, (None, None))
            if scope == "prior":
                table, prefix = PRIOR_NAMES, "model/prior/"
            if table is None or rest not in table:
                raise ConversionError(
                    f"no OpenAI name for the flowjax variable {collection}/{'/'.join(path)}: "
                    f"a model with {glow.model_config(model)} cannot be converted from OpenAI's "
                    "graph (supported: permutation invconv, invconv_lu or reverse)")
            name, layout = table[rest]
            shape = tuple(leaf.shape)
            if kind == "level":
                names = tuple(prefix.format(i=index, k=k) + name for k in range(shape[0]))
                stored = _stored_shape(layout, shape[1:])
            else:
                names = (prefix.format(i=index) + name,)
                stored = _stored_shape(layout, shape)
            specs.append(WeightSpec(collection, path, names, stored, shape))
    return tuple(specs)


# ---------------------------------------------------------------------------
# Looking at the graph
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ConversionReport:
    """What the converter found; becomes the manifest (``dataclasses.asdict``)."""

    tensor_count: int = 0
    total_parameters: int = 0        # the "params" collection
    total_values: int = 0            # params and constants
    node_count: int = 0
    edge_pad_indicators: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    skipped: dict[str, Any] = dataclasses.field(default_factory=dict)
    inputs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    outputs: list[str] = dataclasses.field(default_factory=list)  # sink nodes (first 100)
    output_count: int = 0
    downsampled_image: dict[str, Any] = dataclasses.field(default_factory=dict)
    random_ops: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "unknown rank" if shape is None else str(list(shape))


def _is_edge_indicator(tensor: gd.Tensor, sizes: Collection[int]) -> bool:
    """[1, H+2, W+2, 1] float32, 1 on the one-pixel ring and 0 inside, at a
    spatial size the model's 3x3 convs run at."""
    shape = tensor.shape
    if (tensor.dtype != gd.DT_FLOAT or shape is None or len(shape) != 4
            or shape[0] != 1 or shape[3] != 1 or shape[1] != shape[2] or shape[1] - 2 not in sizes):
        return False
    expected = np.ones(shape, np.float32)
    expected[:, 1:-1, 1:-1, :] = 0.0
    return bool(np.array_equal(tensor.numpy(), expected))


def _consumers(graph: gd.GraphDef) -> dict[str, list[str]]:
    consumers: dict[str, list[str]] = defaultdict(list)
    for node in graph.node:
        for ref in node.input:
            consumers[gd.input_node_name(ref)].append(node.name)
    return consumers


def _trace_downsampled_image(nodes: Mapping[str, gd.NodeDef], consumers: Mapping[str, list[str]],
                             outputs: Iterable[str]) -> dict[str, Any]:
    """Who consumes x_d, and which outputs (sink nodes) it reaches (§4.5)."""
    if DOWNSAMPLED_IMAGE not in nodes:
        return {"present": False}
    direct = list(dict.fromkeys(consumers.get(DOWNSAMPLED_IMAGE, [])))
    reached, queue = set(), deque(direct)
    while queue:
        name = queue.popleft()
        if name not in reached:
            reached.add(name)
            queue.extend(consumers.get(name, []))
    return {
        "present": True,
        "consumers": [f"{name} ({nodes[name].op})" for name in direct],
        "reaches_outputs": sorted(reached.intersection(outputs)),
    }


def _check_expected(specs: Iterable[WeightSpec], nodes: Mapping[str, gd.NodeDef],
                    problems: dict[str, list[str]]) -> None:
    for spec in specs:
        for name in spec.names:
            node = nodes.get(name)
            if node is None:
                problems["missing"].append(f"{name} (shape {list(spec.stored_shape)})")
            elif node.op != "Const" or node.tensor is None:
                problems["not_const"].append(f"{name} is a {node.op} node")
            elif node.tensor.dtype != gd.DT_FLOAT:
                dtype = gd.DTYPE_NAMES.get(node.tensor.dtype, node.tensor.dtype)
                problems["dtype"].append(f"{name} is {dtype}, expected DT_FLOAT")
            elif node.tensor.shape != spec.stored_shape:
                problems["shape"].append(
                    f"{name} has shape {_shape_text(node.tensor.shape)}, expected "
                    f"{list(spec.stored_shape)} (flowjax {spec.collection}/{'/'.join(spec.path)})")


def _unknown_hint(name: str, tensor: gd.Tensor) -> str:
    if name.startswith("model/prior/y_emb/"):
        rows = tensor.shape[0] if tensor.shape else "?"
        return f" (ycond class embedding of {rows} classes: set --config.model.n_classes={rows})"
    if name.startswith("model/classifier/"):
        return " (OpenAI's ycond classifier; flowjax has none)"
    return ""


def inspect_graph(graph: gd.GraphDef, model: Glow, *,
                  allow: Collection[str] = (), skip_consts: Collection[str] = ()
                  ) -> tuple[dict[str, list[str]], ConversionReport]:
    """Classify every node; return ``(problems by kind, report)`` without
    decoding any weight. Problems of a kind in ``allow`` (see :data:`ALLOWABLE`)
    become warnings in the report."""
    unknown_allow = sorted(set(allow) - set(ALLOWABLE))
    if unknown_allow:
        raise ValueError(f"allow may only hold {ALLOWABLE}, got {unknown_allow}")
    specs = expected_weights(model)
    nodes = graph.by_name()
    consumers = _consumers(graph)
    problems: dict[str, list[str]] = defaultdict(list)
    report = ConversionReport(node_count=len(graph.node))

    _check_expected(specs, nodes, problems)
    expected = {name for spec in specs for name in spec.names}
    sizes = {model.image_size // 2 ** (level + 1) for level in range(model.n_levels)}
    former_variables = {node.name[: -len("/read")] for node in graph.node
                        if node.op == "Identity" and node.name.endswith("/read")}
    scalars = non_float = 0
    for node in graph.node:
        # Any scope: the public code's graphs sample under model_4/ (the
        # encoder's name scope), not model/ (the variables' scope).
        if node.op in RANDOM_OPS:
            problems["random_uniform"].append(f"{node.name} ({node.op})")
        if node.op == "Placeholder":
            dtype, shape = node.attr.get("dtype"), node.attr.get("shape")
            report.inputs.append({
                "name": node.name,
                "dtype": gd.DTYPE_NAMES.get(dtype.value, dtype.value) if dtype else None,
                "shape": None if shape is None or shape.value is None else list(shape.value)})
        if node.op != "Const" or node.name in expected:
            continue
        tensor = node.tensor
        if tensor is None:
            continue
        if node.name in skip_consts:
            continue
        if _EXTRA_INVERTIBLE.match(node.name):
            problems["extra_invertible"].append(f"{node.name} {_shape_text(tensor.shape)}")
            continue
        if _LU_NAME.match(node.name) and model.permutation != "invconv_lu":
            problems["lu"].append(f"{node.name} {_shape_text(tensor.shape)}")
            continue
        weight_named = node.name.rsplit("/", 1)[-1] in WEIGHT_SUFFIXES
        if tensor.dtype not in (gd.DT_FLOAT, gd.DT_DOUBLE, gd.DT_HALF) and not weight_named:
            non_float += 1
            continue
        small = tensor.shape is not None and math.prod(tensor.shape) <= 1
        if small and not weight_named and node.name not in former_variables:
            scalars += 1
        elif not weight_named and _is_edge_indicator(tensor, sizes):
            report.edge_pad_indicators[node.name] = list(tensor.shape)
        else:
            problems["unknown"].append(
                f"{node.name} {gd.DTYPE_NAMES.get(tensor.dtype, tensor.dtype)} "
                f"{_shape_text(tensor.shape)}{_unknown_hint(node.name, tensor)}")

    const_names = {node.name for node in graph.node if node.op == "Const"}
    problems["skip_const"].extend(f"{name} (no such Const)"
                                  for name in sorted(set(skip_consts) - const_names))
    problems["skip_const"].extend(f"{name} (an expected weight)"
                                  for name in sorted(set(skip_consts) & expected))
    report.skipped = {"scalar_float_consts": scalars, "non_float_consts": non_float,
                      "explicitly_skipped": sorted(set(skip_consts) & const_names)}
    outputs = sorted(node.name for node in graph.node if node.name not in consumers
                     and node.op not in ("Const", "NoOp", "Placeholder"))
    report.outputs = outputs[:_MAX_OUTPUTS]
    report.output_count = len(outputs)
    report.downsampled_image = _trace_downsampled_image(nodes, consumers, outputs)
    problems["downsampled_image"].extend(report.downsampled_image.get("consumers", []))
    report.random_ops = list(problems["random_uniform"])

    for kind in ALLOWABLE:
        if problems.get(kind) and kind in allow:
            report.warnings.append(f"allowed {kind}: {_problem_line(kind, problems.pop(kind), report)}"
                                   f" -- {PROBLEMS[kind]}")
    return {k: v for k, v in problems.items() if v}, report


def _problem_line(kind: str, names: list[str], report: ConversionReport | None) -> str:
    """The listed problems of one kind, with what the trace adds (not a problem itself)."""
    line = listed(names)
    reaches = report.downsampled_image.get("reaches_outputs") if report else None
    if kind == "downsampled_image" and reaches:
        line += ", it reaches the outputs " + listed(reaches)
    return line


def _problem_message(source: str, problems: Mapping[str, list[str]],
                     report: ConversionReport | None = None) -> str:
    count = sum(len(v) for v in problems.values())
    lines = [f"{source}: cannot convert to this model config; {count} problem(s):"]
    for kind, help_text in PROBLEMS.items():
        if problems.get(kind):
            lines.append(f"  - {kind}: {help_text}:")
            lines.append(f"      {_problem_line(kind, problems[kind], report)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------


def convert_graph(graph: gd.GraphDef, model: Glow, *, source: str = "<graph>",
                  allow: Collection[str] = (), skip_consts: Collection[str] = ()
                  ) -> tuple[dict[str, Any], ConversionReport]:
    """OpenAI GraphDef -> flowjax ``variables`` (numpy float32 leaves) and report.

    ``source`` names the graph in error messages. Raises :class:`ConversionError`
    listing every problem found (see the module docstring) before decoding any
    weight.
    """
    problems, report = inspect_graph(graph, model, allow=allow, skip_consts=skip_consts)
    if problems:
        raise ConversionError(_problem_message(source, problems, report))
    nodes = graph.by_name()
    flat: dict[str, dict[tuple[str, ...], np.ndarray]] = defaultdict(dict)
    non_finite = []
    for spec in expected_weights(model):
        leaf = np.empty(spec.shape, np.float32)
        parts = leaf if spec.stacked else leaf[None]
        for part, name in zip(parts, spec.names):
            value = nodes[name].tensor.numpy()
            if not np.isfinite(value).all():
                non_finite.append(name)
            part[...] = value.reshape(part.shape)
        flat[spec.collection][spec.path] = leaf
        report.tensor_count += len(spec.names)
        report.total_values += spec.size
        if spec.collection == "params":
            report.total_parameters += spec.size
    if non_finite:
        raise ConversionError(_problem_message(source, {"non_finite": non_finite}))
    variables = {collection: traverse_util.unflatten_dict(leaves) for collection, leaves in flat.items()}
    return variables, report


def cross_check(optimized: gd.GraphDef, model: Glow, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Compare the expected weights with ``graph_optimized.pb``'s Consts of the
    same names: counts of identical, differing-value, other-shape and absent
    names (its weights may be folded or renamed, so this informs, never fails)."""
    nodes = optimized.by_name()
    result: dict[str, list[str]] = {"identical": [], "different_values": [], "different_shape": [],
                                    "absent": []}
    for spec in expected_weights(model):
        leaf = traverse_util.flatten_dict(variables[spec.collection])[spec.path]
        parts = leaf if spec.stacked else leaf[None]
        for part, name in zip(parts, spec.names):
            node = nodes.get(name)
            tensor = node.tensor if node is not None else None
            if tensor is None:
                result["absent"].append(name)
            elif tensor.shape != spec.stored_shape or tensor.dtype != gd.DT_FLOAT:
                result["different_shape"].append(name)
            elif np.array_equal(tensor.numpy().reshape(part.shape), part):
                result["identical"].append(name)
            else:
                result["different_values"].append(name)
    summary: dict[str, Any] = {k: len(v) for k, v in result.items()}
    summary["examples"] = {k: v[:MAX_LISTED] for k, v in result.items() if v and k != "identical"}
    return summary


def convert_file(graph_path: str | Path, out: str | Path, model: Glow, *,
                 optimized_graph: str | Path | None = None, allow: Collection[str] = (),
                 skip_consts: Collection[str] = ()) -> dict[str, Any]:
    """Convert ``graph_path`` and write the checkpoint directory ``out``.

    Returns the manifest (also stored as the checkpoint's metadata). ``out``
    must not exist; it is written atomically by ``checkpoints.save_model``.
    """
    graph_path, out = Path(graph_path), Path(out)
    checkpoints.check_new_export_dir(out, "--out")
    if not graph_path.is_file():
        raise FileNotFoundError(f"--graph {graph_path} does not exist; see weights/README.md "
                                "for where to download graph_unoptimized.pb")
    if optimized_graph is not None and not Path(optimized_graph).is_file():
        raise FileNotFoundError(f"--optimized_graph {optimized_graph} does not exist")
    # OpenAI's graph is 700 MB: say what is happening while it is read (seconds to minutes).
    with console.stage(f"reading {graph_path.name} ({graph_path.stat().st_size / 2**20:.1f} MB)"):
        data = graph_path.read_bytes()
        source = source_record(graph_path, data)
        graph = parse_graphdef(data, source=str(graph_path), attr_ops=ATTR_OPS)
    with console.stage(f"converting the weights of {len(graph.node):,} nodes"):
        variables, report = convert_graph(graph, model, source=str(graph_path), allow=allow,
                                          skip_consts=skip_consts)
    del graph, data  # the variables are copies: free the 700 MB buffer before writing
    manifest: dict[str, Any] = {
        "converter": "weights/convert_openai.py",
        "flowjax_version": __version__,
        "source": source,
        "model_config": glow.model_config(model),
        **dataclasses.asdict(report),
        "allowed": sorted(allow),
        "optimized_graph": None,
    }
    if optimized_graph is not None:
        optimized_graph = Path(optimized_graph)
        opt_data = optimized_graph.read_bytes()
        manifest["optimized_graph"] = {
            "path": str(optimized_graph), "sha256": hashlib.sha256(opt_data).hexdigest(),
            "bytes": len(opt_data),
            **cross_check(parse_graphdef(opt_data, source=str(optimized_graph),
                                         attr_ops=ATTR_OPS), model, variables)}
        del opt_data
        differing = report.tensor_count - manifest["optimized_graph"]["identical"]
        if differing:
            manifest["warnings"].append(
                f"{optimized_graph.name}: {differing} of {report.tensor_count} weights are absent "
                "or differ there (its weights may be folded; see optimized_graph)")
    with console.stage(f"writing {out}"):
        checkpoints.save_model(out, model, variables, metadata={"openai_conversion": manifest})
    return manifest


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _define_flags() -> None:
    """Defined only when run as a script: importing this module defines no flags."""
    from absl import flags
    from ml_collections import config_flags

    flags.DEFINE_string("graph", None, "OpenAI's graph_unoptimized.pb.", required=True)
    flags.DEFINE_string("out", None, "New checkpoint directory to write.", required=True)
    flags.DEFINE_string("optimized_graph", None,
                        "Optional graph_optimized.pb: only cross-checks names and values.")
    flags.DEFINE_bool("allow_random_uniform", False,
                      "Warn (not fail) on random ops (a stochastic encoder: model/random_uniform "
                      "in the demo graph, model_4/random_uniform in the public code's graphs).")
    flags.DEFINE_bool("allow_downsampled_image", False,
                      "Warn (not fail) on consumers of input/downsampled_image; only after "
                      "checking with weights/verify_tf.py that x_d does not change the eps.")
    flags.DEFINE_multi_string("skip_const", [], "Name of one more Const to skip (repeatable).")
    config_flags.DEFINE_config_file("config", str(DEFAULT_CONFIG),
                                    "Config whose .model is the Glow the graph holds.")


def main(argv: list[str]) -> None:
    from absl import app, flags

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    flags_ = flags.FLAGS
    model = models.model_from_config(flags_.config.model)
    allow = [kind for kind in ALLOWABLE if getattr(flags_, f"allow_{kind}")]
    manifest = convert_file(flags_.graph, flags_.out, model,
                            optimized_graph=flags_.optimized_graph, allow=allow,
                            skip_consts=flags_.skip_const)
    print(f"wrote {flags_.out}: {manifest['tensor_count']} tensors, "
          f"{manifest['total_parameters']:,} parameters, source sha256 {manifest['source']['sha256']}")
    for warning in manifest["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)


if __name__ == "__main__":
    from flowjax.runs import runtime

    _define_flags()
    runtime.run(main)
