"""Check a converted OpenAI Glow against OpenAI's own graph in TensorFlow (GLOW_SPEC §4.6).

Optional, for users who have TensorFlow (1.x, or 2.x through ``tf.compat.v1``;
``pip install tensorflow-cpu`` is enough); flowjax itself never needs it and
CI never installs it::

    python weights/verify_tf.py --graph=graph_unoptimized.pb --checkpoint=weights/celeba256 \\
        [--images=aligned_faces/] [--n_images=4] [--out=verify_tf_report.json]

The procedure (§4.6):

1. import the graph with ``tf.compat.v1`` and switch TF32 off (on
   Ampere/Hopper GPUs it degrades the reference itself; or run on CPU);
2. feed the images, ``input/label`` = 0 and, if the graph has it,
   ``input/downsampled_image`` = 128;
3. feed the dequantisation noise: the tensor is found by STRUCTURE
   (:func:`find_noise_tensor`: from the ``RandomUniform`` op down through the
   elementwise ops that only combine it with constants, to the last one
   before it meets the image), so ``random_uniform(0, 1/n_bins)`` (the public
   code, ``model/random_uniform``), ``random_uniform(0, 1) / n_bins`` (the
   scaled ``model/truediv_2``) and TF 2's ``random_uniform/Mul`` naming all
   get our ``U ~ U[0, 1/n_bins)``. Its range is checked in TensorFlow
   before anything is compared: a tensor that does not hold values in
   ``[0, 1/n_bins)`` is an error naming it (``--noise_tensor`` overrides);
4. fetch the eps (:func:`find_eps_tensors`: ``<scope>/pool<i>/truediv_1`` and
   the top ``<scope>/truediv_<k>`` dividing by an ``Exp``, in the scope that
   reads ``input/image``: ``model/`` in the demo graph, ``model_4/`` in the
   public code's; ``--eps_names`` overrides) and any ``--intermediate`` tensors;
5. decode the TF eps through the graph (:func:`find_decoder`: its eps inputs
   are the placeholders other than ``input/*`` -- ``Placeholder``,
   ``Placeholder_1``... in the demo graph, ``dec_eps_<i>`` in the public
   code's -- and its output the one uint8 ``Cast`` they reach with no consumer,
   ``model_1/Cast_1`` / ``model_5/Cast_1``; ``--decoder_inputs`` and
   ``--decoder_output`` override), feeding label and downsampled image too
   (the top prior takes its batch size from the label), and through flowjax;
6. encode again with ``downsampled_image`` = ``--other_downsampled_value``: if
   the eps change, x_d matters (§4.4.1) and the conversion is incomplete;
7. flowjax runs with ``jax_default_matmul_precision="highest"``.

The report (JSON) gives the tensors used, per-level max |eps_tf - eps_flowjax|,
the fraction of decoded uint8 values that differ (a few flips at bin edges are
expected: TF inverts W in float32, flowjax in float64, §8.13), the x_d check
and a verdict. ``--save_arrays`` also writes every fetched array to an ``.npz``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

# Ops the dequantisation noise passes through while only constants join it.
NOISE_CHAIN_OPS = ("Mul", "Add", "AddV2", "Sub", "RealDiv", "Cast", "Identity")
SOURCE_OPS = ("Placeholder", "PlaceholderWithDefault", "RandomUniform", "RandomUniformInt",
              "RandomStandardNormal", "TruncatedNormal", "VariableV2", "VarHandleOp")
IMAGE_INPUT, LABEL_INPUT, DOWNSAMPLED_INPUT = "input/image", "input/label", "input/downsampled_image"


class GraphStructureError(ValueError):
    """The graph does not have the structure the verification relies on."""


def _node_input(ref: str) -> str | None:
    """The producing node of a data input (None for a ``^control`` input)."""
    return None if ref.startswith("^") else ref.rsplit(":", 1)[0]


def _index(graph_def: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    nodes = {node.name: node for node in graph_def.node}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph_def.node:
        for ref in node.input:
            if (name := _node_input(ref)) is not None:
                consumers[name].append(node)
    return nodes, consumers


def _constant_valued(name: str, nodes: dict[str, Any], memo: dict[str, bool]) -> bool:
    """Computed from Consts only (e.g. ``random_uniform/sub`` = max - min)."""
    if name not in memo:
        node = nodes.get(name)
        memo[name] = False  # cycles (none in a GraphDef) end here
        inputs = [n for ref in node.input if (n := _node_input(ref))] if node is not None else []
        memo[name] = node is not None and (node.op == "Const" or (
            node.op not in SOURCE_OPS and bool(inputs)
            and all(_constant_valued(n, nodes, memo) for n in inputs)))
    return memo[name]


def find_noise_tensor(graph_def: Any) -> str | None:
    """The dequantisation noise as the encoder adds it to the image, found by structure.

    Starts at the graph's one ``RandomUniform`` op and follows its single
    consumer while that is an elementwise op whose other inputs are constant
    (the ``* (max - min)``, ``+ min`` and any ``/ n_bins``); returns the last
    such node's name, or None when the graph samples nothing. Several
    samplers are an error naming them (pass ``--noise_tensor``).
    """
    nodes, consumers = _index(graph_def)
    samplers = [node.name for node in graph_def.node if node.op == "RandomUniform"]
    if not samplers:
        return None
    if len(samplers) > 1:
        raise GraphStructureError(f"the graph has {len(samplers)} RandomUniform ops ({samplers}); "
                                  "name the noise tensor with --noise_tensor")
    current, memo = samplers[0], {}
    while len(consumers[current]) == 1:
        node = consumers[current][0]
        others = [n for ref in node.input if (n := _node_input(ref)) and n != current]
        if node.op not in NOISE_CHAIN_OPS or not all(_constant_valued(n, nodes, memo) for n in others):
            break
        current = node.name
    return current


def _encoder_scope(graph_def: Any) -> str:
    _, consumers = _index(graph_def)
    scopes = sorted({node.name.split("/", 1)[0] for node in consumers[IMAGE_INPUT] if "/" in node.name})
    if len(scopes) != 1:
        raise GraphStructureError(f"{IMAGE_INPUT} is read in scopes {scopes}, expected one encoder "
                                  "scope; give --eps_names")
    return scopes[0]


def find_eps_tensors(graph_def: Any) -> list[str]:
    """The encoder's eps, level 0 first: ``<scope>/pool<i>/truediv_1`` for the
    splits and, for the top, the one RealDiv directly in ``<scope>/`` whose
    divisor is an ``Exp`` (``truediv_3`` in the public code, ``truediv_4`` in
    the published demo graph, which scales its noise with one more truediv)."""
    nodes, _ = _index(graph_def)
    scope = _encoder_scope(graph_def)
    pool = re.compile(rf"^{re.escape(scope)}/pool(\d+)/truediv_1$")
    splits = sorted((int(m.group(1)), name) for name in nodes if (m := pool.match(name)))
    if [i for i, _ in splits] != list(range(len(splits))):
        raise GraphStructureError(f"split eps {[n for _, n in splits]} are not pool0..poolN; "
                                  "give --eps_names")
    top = [node.name for node in graph_def.node
           if node.op == "RealDiv" and re.fullmatch(rf"{re.escape(scope)}/[^/]+", node.name)
           and len(node.input) == 2 and getattr(nodes.get(_node_input(node.input[1]) or ""), "op", "")
           == "Exp"]
    if len(top) != 1:
        raise GraphStructureError(f"expected one top eps (a RealDiv by an Exp directly in {scope}/), "
                                  f"found {top}; give --eps_names")
    return [name for _, name in splits] + top


def find_decoder(graph_def: Any) -> tuple[list[str], str]:
    """``(eps inputs level 0 first, uint8 output)`` of the decoder, by structure."""
    nodes, consumers = _index(graph_def)
    # Not input/* (image, label, x_d, learning rate) and not the sampling
    # temperature the public code's unfrozen graphs take as ``eps_std``.
    inputs = [node.name for node in graph_def.node if node.op == "Placeholder"
              and not node.name.startswith("input/") and node.name != "eps_std"]

    def number(name: str) -> int:
        match = re.search(r"_(\d+)$", name)
        return int(match.group(1)) if match else 0

    inputs.sort(key=number)
    reached, queue = set(), list(inputs)
    while queue:
        for node in consumers[queue.pop()]:
            if node.name not in reached:
                reached.add(node.name)
                queue.append(node.name)
    outputs = sorted(name for name in reached if nodes[name].op == "Cast" and not consumers[name])
    if not inputs or len(outputs) != 1:
        raise GraphStructureError(f"decoder not found: inputs {inputs}, uint8 sinks {outputs}; "
                                  "give --decoder_inputs and --decoder_output")
    return inputs, outputs[0]


def _tensor(name: str) -> str:
    """``import/``-prefixed tensor name (``tf.import_graph_def``'s default)."""
    return name if name.startswith("import/") else f"import/{name if ':' in name else name + ':0'}"


def run_tensorflow(graph_path: Path, images: np.ndarray, noise: np.ndarray, n_bins: int, *,
                   noise_tensor: str | None = None, eps_names: list[str] | None = None,
                   decoder_inputs: list[str] | None = None, decoder_output: str | None = None,
                   intermediates: tuple[str, ...] = (),
                   downsampled_values: tuple[int, int] = (128, 0)) -> dict[str, Any]:
    """Encode (twice: two x_d values) and decode the TF eps, in TensorFlow."""
    import tensorflow as tf  # lazily: the rest of flowjax never needs TensorFlow

    tf1 = tf.compat.v1
    tf.config.experimental.enable_tensor_float_32_execution(False)
    graph_def = tf1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    names = {node.name for node in graph_def.node}
    noise_tensor = noise_tensor or find_noise_tensor(graph_def)
    eps_names = list(eps_names or find_eps_tensors(graph_def))
    if not decoder_inputs or not decoder_output:
        found_inputs, found_output = find_decoder(graph_def)
        decoder_inputs, decoder_output = decoder_inputs or found_inputs, decoder_output or found_output
    if len(decoder_inputs) != len(eps_names):
        raise GraphStructureError(f"{len(eps_names)} eps {eps_names} but {len(decoder_inputs)} "
                                  f"decoder inputs {decoder_inputs}")
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def)
    batch, size = images.shape[0], images.shape[1]

    def side_inputs(x_d_value: int) -> dict[str, np.ndarray]:
        """Label (the top prior's batch size comes from it) and x_d, for both directions."""
        feed = {}
        if LABEL_INPUT in names:
            feed[_tensor(LABEL_INPUT)] = np.zeros(batch, np.int32)
        if DOWNSAMPLED_INPUT in names:
            feed[_tensor(DOWNSAMPLED_INPUT)] = np.full((batch, size // 2, size // 2, 3), x_d_value,
                                                       np.uint8)
        return feed

    out: dict[str, Any] = {"downsampled_image_in_graph": DOWNSAMPLED_INPUT in names,
                           "noise_tensor": noise_tensor, "eps_names": eps_names,
                           "decoder_inputs": list(decoder_inputs), "decoder_output": decoder_output}
    with tf1.Session(graph=graph) as sess:
        if noise_tensor is not None:
            natural = sess.run(_tensor(noise_tensor),
                               {_tensor(IMAGE_INPUT): images, **side_inputs(downsampled_values[0])})
            low, high = float(natural.min()), float(natural.max())
            out["noise_natural_range"] = [low, high]
            if natural.shape != images.shape or low < 0.0 or high >= 1.0 / n_bins:
                raise GraphStructureError(
                    f"{graph_path}: noise tensor {noise_tensor} holds values in [{low}, {high}] of "
                    f"shape {natural.shape}, expected U[0, 1/{n_bins}) of shape {images.shape}: it is "
                    "not the noise the encoder adds; name the right one with --noise_tensor")

        def encode(x_d_value: int) -> list[np.ndarray]:
            feed = {_tensor(IMAGE_INPUT): images, **side_inputs(x_d_value)}
            if noise_tensor is not None:
                feed[_tensor(noise_tensor)] = noise
            fetched = sess.run([_tensor(n) for n in eps_names + list(intermediates)], feed)
            out.setdefault("intermediates", dict(zip(intermediates, fetched[len(eps_names):])))
            return fetched[:len(eps_names)]

        out["eps"] = encode(downsampled_values[0])
        out["eps_other_downsampled"] = encode(downsampled_values[1])
        feed = {_tensor(p): e for p, e in zip(decoder_inputs, out["eps"])}
        feed.update(side_inputs(downsampled_values[0]))
        out["decoded"] = sess.run(_tensor(decoder_output), feed)
    return out


def verify(graph: str | Path, checkpoint: str | Path, images: np.ndarray, *, seed: int = 0,
           eps_atol: float = 1e-3, pixel_tolerance: float = 1e-3, **tf_options: Any
           ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """TensorFlow vs flowjax on ``images``: ``(report, arrays)``; ``report["passed"]``."""
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    from flowjax import io as fio
    from flowjax.models import checkpoints, glow

    model, variables = checkpoints.load_model(checkpoint)
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.0, 1.0 / model.n_bins, images.shape).astype(np.float32)
    tf_out = run_tensorflow(Path(graph), images, noise, model.n_bins, **tf_options)
    ours = glow.encode(model, variables, images, noise)
    eps_diff = [float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(ours.eps, tf_out["eps"])]
    x_d_diff = [float(np.max(np.abs(a - b)))
                for a, b in zip(tf_out["eps"], tf_out["eps_other_downsampled"])]
    decoded = np.asarray(glow.decode(model, variables, [np.asarray(e) for e in tf_out["eps"]]))
    pixel_fraction = float(np.mean(decoded != tf_out["decoded"]))
    checks = {
        "eps_match": max(eps_diff) <= eps_atol,
        "decode_match": pixel_fraction <= pixel_tolerance,
        "downsampled_image_unused": max(x_d_diff) == 0.0,
    }
    report = {
        "graph": str(graph), "graph_sha256": fio.sha256_file(graph), "checkpoint": str(checkpoint),
        "n_images": int(images.shape[0]),
        **{k: tf_out[k] for k in ("noise_tensor", "noise_natural_range", "eps_names",
                                  "decoder_inputs", "decoder_output") if k in tf_out},
        "eps_max_abs_diff_per_level": eps_diff,
        "downsampled_image_in_graph": tf_out["downsampled_image_in_graph"],
        "eps_change_with_downsampled_image_per_level": x_d_diff,
        "decoded_fraction_of_differing_values": pixel_fraction,
        "checks": checks, "passed": all(checks.values()),
    }
    arrays = {"images": images, "noise": noise, "tf_decoded": tf_out["decoded"],
              "flowjax_decoded": decoded}
    arrays.update({f"tf_eps_{i}": e for i, e in enumerate(tf_out["eps"])})
    arrays.update({f"flowjax_eps_{i}": np.asarray(e) for i, e in enumerate(ours.eps)})
    arrays.update({f"tf_{name.replace('/', '__')}": value
                   for name, value in tf_out["intermediates"].items()})
    return report, arrays


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("graph", None, "OpenAI's graph_unoptimized.pb.", required=True)
    flags.DEFINE_string("checkpoint", None, "Directory written by weights/convert_openai.py.",
                        required=True)
    flags.DEFINE_string("images", None, "Folder of aligned faces at the model's size; default: "
                        "generated test images (fine for numerics, not faces).")
    flags.DEFINE_integer("n_images", 4, "How many images to use.")
    flags.DEFINE_integer("seed", 0, "Seed of the noise U (and of generated images).")
    flags.DEFINE_string("noise_tensor", None, "Tensor to feed U into (default: found by structure).")
    flags.DEFINE_list("eps_names", None, "Encoder outputs, level 0 first (default: found by structure).")
    flags.DEFINE_list("decoder_inputs", None, "Decoder eps inputs, level 0 first (default: found).")
    flags.DEFINE_string("decoder_output", None, "Decoder uint8 output (default: found).")
    flags.DEFINE_multi_string("intermediate", [], "Extra tensor names to fetch and save.")
    flags.DEFINE_integer("other_downsampled_value", 0, "Second value of input/downsampled_image.")
    flags.DEFINE_float("eps_atol", 1e-3, "Largest acceptable |eps_tf - eps_flowjax|.")
    flags.DEFINE_float("pixel_tolerance", 1e-3, "Largest acceptable fraction of differing pixels.")
    flags.DEFINE_string("out", "verify_tf_report.json", "Report to write (must not exist).")
    flags.DEFINE_string("save_arrays", None, "Optional .npz for every array fetched.")


def main(argv: list[str]) -> None:
    from absl import app, flags

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    f = flags.FLAGS
    out_path = Path(f.out)
    if out_path.exists():
        raise FileExistsError(f"--out {out_path} already exists; choose a new file")
    from flowjax import io as fio
    from flowjax.models import checkpoints
    from flowjax.training import datasets

    size = checkpoints.read_model_config(f.checkpoint).image_size
    if f.images:
        images = fio.load_images(f.images, size=size).images[:f.n_images]
    else:
        images = datasets.generated_images(f.seed, f.n_images, size)
    report, arrays = verify(
        f.graph, f.checkpoint, images, seed=f.seed, eps_atol=f.eps_atol,
        pixel_tolerance=f.pixel_tolerance, noise_tensor=f.noise_tensor, eps_names=f.eps_names,
        decoder_inputs=f.decoder_inputs, decoder_output=f.decoder_output,
        intermediates=tuple(f.intermediate), downsampled_values=(128, f.other_downsampled_value))
    report["images"] = f.images or f"generated (seed {f.seed})"
    fio.atomic_write_json(out_path, report)
    if f.save_arrays:
        with fio.atomic_open(f.save_arrays) as handle:
            np.savez(handle, **arrays)
    print(fio.to_json(report))
    if not report["passed"]:
        raise SystemExit(f"verification FAILED: {report['checks']}; see {out_path}")


if __name__ == "__main__":
    from flowjax.runs import runtime

    _define_flags()
    runtime.run(main)
