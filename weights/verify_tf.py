"""Check a converted OpenAI Glow against OpenAI's own graph in TensorFlow (GLOW_SPEC §4.6).

Optional, for users who have TensorFlow (1.x, or 2.x through ``tf.compat.v1``);
flowjax itself never needs it and CI never runs this script::

    python weights/verify_tf.py --graph=graph_unoptimized.pb --checkpoint=weights/celeba256 \\
        [--images=aligned_faces/] [--n_images=4] [--out=verify_tf_report.json]

The procedure (§4.6):

1. import ``graph_unoptimized.pb`` with ``tf.compat.v1`` and switch TF32 off
   (on Ampere/Hopper GPUs it degrades the reference itself; or run on CPU);
2. feed the images, ``input/downsampled_image`` = 128 and ``input/label`` = 0;
3. feed the dequantisation noise: the output of the uniform sampler under
   ``model/`` (``model/random_uniform:0`` in the public code; ``--noise_tensor``
   overrides) gets our own ``U ~ U[0, 1/32)``, and flowjax gets the same U;
4. fetch eps_0..eps_5 (``model/pool<i>/truediv_1``, ``model/truediv_4``) and
   any ``--intermediate`` tensors, located by node listing;
5. decode the TF eps through the graph (``Placeholder``..``Placeholder_5`` ->
   ``model_1/Cast_1``) and through flowjax;
6. encode again with ``downsampled_image`` = ``--other_downsampled_value``: if
   the eps change, x_d matters (§4.4.1) and the conversion is incomplete;
7. flowjax runs with ``jax_default_matmul_precision="highest"``.

The report (JSON) gives per-level max |eps_tf - eps_flowjax|, the fraction of
decoded uint8 values that differ (a few flips at bin edges are expected: TF
inverts W in float32, flowjax in float64, §8.13), the x_d check and a verdict.
``--save_arrays`` also writes every fetched array to an ``.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_EPS_NAMES = ("model/pool0/truediv_1", "model/pool1/truediv_1", "model/pool2/truediv_1",
                     "model/pool3/truediv_1", "model/pool4/truediv_1", "model/truediv_4")
DECODER_OUTPUT = "model_1/Cast_1"


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("graph", None, "OpenAI's graph_unoptimized.pb.", required=True)
    flags.DEFINE_string("checkpoint", None, "Directory written by weights/convert_openai.py.",
                        required=True)
    flags.DEFINE_string("images", None, "Folder of aligned 256x256 faces; default: generated "
                        "test images (fine for numerics, not faces).")
    flags.DEFINE_integer("n_images", 4, "How many images to use.")
    flags.DEFINE_integer("seed", 0, "Seed of the noise U (and of generated images).")
    flags.DEFINE_string("noise_tensor", None, "Tensor to feed U into (default: found in the graph).")
    flags.DEFINE_list("eps_names", list(DEFAULT_EPS_NAMES), "Encoder outputs, level 0 first.")
    flags.DEFINE_multi_string("intermediate", [], "Extra tensor names to fetch and save.")
    flags.DEFINE_integer("other_downsampled_value", 0, "Second value of input/downsampled_image.")
    flags.DEFINE_float("eps_atol", 1e-3, "Largest acceptable |eps_tf - eps_flowjax|.")
    flags.DEFINE_float("pixel_tolerance", 1e-3, "Largest acceptable fraction of differing pixels.")
    flags.DEFINE_string("out", "verify_tf_report.json", "Report to write (must not exist).")
    flags.DEFINE_string("save_arrays", None, "Optional .npz for every array fetched.")


def _tensor(name: str) -> str:
    """``import/``-prefixed tensor name (``tf.import_graph_def``'s default)."""
    return name if name.startswith("import/") else f"import/{name if ':' in name else name + ':0'}"


def find_noise_tensor(graph_def: Any) -> str | None:
    """The output of the uniform sampler under ``model/``: for a ``RandomUniform``
    node ``<scope>/RandomUniform``, the node ``<scope>`` (min + (max-min) U)."""
    names = {node.name for node in graph_def.node}
    for node in graph_def.node:
        if node.op == "RandomUniform" and node.name.startswith("model/"):
            scope = node.name.rsplit("/", 1)[0]
            return scope if scope in names else node.name
    return None


def run_tensorflow(graph_path: Path, images: np.ndarray, noise: np.ndarray | None,
                   noise_tensor: str | None, eps_names: list[str], intermediates: list[str],
                   downsampled_values: tuple[int, int]) -> dict[str, Any]:
    """Encode (twice: two x_d values) and decode the TF eps, in TensorFlow."""
    import tensorflow as tf  # lazily: the rest of flowjax never needs TensorFlow

    tf1 = tf.compat.v1
    tf.config.experimental.enable_tensor_float_32_execution(False)
    graph_def = tf1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    names = {node.name for node in graph_def.node}
    noise_tensor = noise_tensor or find_noise_tensor(graph_def)
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def)
    batch, size = images.shape[0], images.shape[1]
    out: dict[str, Any] = {"noise_tensor": noise_tensor}
    with tf1.Session(graph=graph) as sess:
        def encode(x_d_value: int) -> list[np.ndarray]:
            feed = {_tensor("input/image"): images}
            if "input/downsampled_image" in names:
                feed[_tensor("input/downsampled_image")] = np.full(
                    (batch, size // 2, size // 2, 3), x_d_value, np.uint8)
            if "input/label" in names:
                feed[_tensor("input/label")] = np.zeros(batch, np.int32)
            if noise_tensor is not None and noise is not None:
                feed[_tensor(noise_tensor)] = noise
            fetched = sess.run([_tensor(n) for n in eps_names + intermediates], feed)
            out.setdefault("intermediates", dict(zip(intermediates, fetched[len(eps_names):])))
            return fetched[:len(eps_names)]

        out["eps"] = encode(downsampled_values[0])
        out["eps_other_downsampled"] = encode(downsampled_values[1])
        placeholders = ["Placeholder" + (f"_{i}" if i else "") for i in range(len(eps_names))]
        out["decoded"] = sess.run(_tensor(DECODER_OUTPUT),
                                  {_tensor(p): e for p, e in zip(placeholders, out["eps"])})
    return out


def main(argv: list[str]) -> None:
    from absl import flags

    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments {argv[1:]}; all options are --flags")
    flags_ = flags.FLAGS
    out_path = Path(flags_.out)
    if out_path.exists():
        raise SystemExit(f"--out {out_path} already exists; choose a new file")

    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    from flowjax import checkpoints, data, glow
    from flowjax import io as fio

    model, variables = checkpoints.load_model(flags_.checkpoint)
    if flags_.images:
        images = data.load_images(flags_.images, size=model.image_size).images[:flags_.n_images]
    else:
        images = data.generated_images(flags_.seed, flags_.n_images, model.image_size)
    rng = np.random.default_rng(flags_.seed)
    noise = rng.uniform(0.0, 1.0 / model.n_bins, images.shape).astype(np.float32)

    tf_out = run_tensorflow(Path(flags_.graph), images, noise, flags_.noise_tensor,
                            list(flags_.eps_names), list(flags_.intermediate),
                            (128, flags_.other_downsampled_value))
    if tf_out["noise_tensor"] is None:
        print("WARNING: no RandomUniform under model/: the TF encoder's noise is unknown; "
              "flowjax uses the same U anyway", file=sys.stderr)
    ours = glow.encode(model, variables, images, noise)
    eps_diff = [float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(ours.eps, tf_out["eps"])]
    x_d_diff = [float(np.max(np.abs(a - b)))
                for a, b in zip(tf_out["eps"], tf_out["eps_other_downsampled"])]
    decoded = np.asarray(glow.decode(model, variables, [np.asarray(e) for e in tf_out["eps"]]))
    pixel_fraction = float(np.mean(decoded != tf_out["decoded"]))
    checks = {
        "eps_match": max(eps_diff) <= flags_.eps_atol,
        "decode_match": pixel_fraction <= flags_.pixel_tolerance,
        "downsampled_image_unused": max(x_d_diff) == 0.0,
    }
    report = {
        "graph": flags_.graph, "graph_sha256": fio.sha256_file(flags_.graph),
        "checkpoint": flags_.checkpoint, "n_images": int(images.shape[0]),
        "images": flags_.images or f"generated (seed {flags_.seed})",
        "noise_tensor": tf_out["noise_tensor"],
        "eps_max_abs_diff_per_level": eps_diff,
        "eps_change_with_downsampled_image_per_level": x_d_diff,
        "decoded_fraction_of_differing_values": pixel_fraction,
        "checks": checks, "passed": all(checks.values()),
    }
    fio.atomic_write_json(out_path, report)
    if flags_.save_arrays:
        arrays = {"images": images, "noise": noise, "tf_decoded": tf_out["decoded"],
                  "flowjax_decoded": decoded}
        arrays.update({f"tf_eps_{i}": e for i, e in enumerate(tf_out["eps"])})
        arrays.update({f"flowjax_eps_{i}": np.asarray(e) for i, e in enumerate(ours.eps)})
        arrays.update({f"tf_{name.replace('/', '__')}": value
                       for name, value in tf_out["intermediates"].items()})
        with fio.atomic_open(flags_.save_arrays) as f:
            np.savez(f, **arrays)
    print(fio.to_json(report))
    if not report["passed"]:
        raise SystemExit(f"verification FAILED: {checks}; see {out_path}")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
