"""Encode/decode throughput of a Glow, as a fraction of the device's matmul peak.

    python -m tools.benchmark --config=configs/celeba256.py:small \
        --batch_sizes=1,8,32 --json=bench.json

In one run it measures (1) the device's float32 matmul peak with a large
jitted ``jnp.matmul`` at full precision (best of 10 calls), then (2) for every batch size and
precision: compile time of encode and decode (apart; decode gets the 1x1 convs'
inverses computed once per model, as flowjax's sweeps do), steady-state images/s
(median of ``--repeats`` timed calls after a warm-up), achieved FLOP/s from
``model_stats.flops_per_image`` and its fraction of the matmul peak, XLA's
buffer-assignment memory estimate, and the reconstruction error (max |x - x'|
of the float image, and whether the uint8 image came back exactly). Encode
and decode are flowjax's batched entry points (``glow.apply_encode`` /
``apply_decode``), which on a CPU run a large batch in cache-sized pieces
(``flowjax.models.micro_batches``); ``--pieces=auto,whole`` times both that and the
batch in one piece, for a same-run ratio (``--pieces=2,4,8`` fixes the size). It prints
a markdown table (the one committed to docs/benchmarks.md) and writes JSON.
A batch size that does not fit is reported as such, not skipped silently.

``--checkpoint=DIR`` times a checkpoint's model and trained weights instead of
a config's model at its data-dependent init (where every coupling is still the
identity), on synthetic faces at its size (``flowjax.synthetic``, seed 0): the
round trip at each ``--precisions`` entry is then the one transfer decodes::

    python -m tools.benchmark --checkpoint=weights/demo/glow --batch_sizes=8 \
        --precisions=highest,high,default

``--profile`` prints instead a per-layer breakdown of one encode and one decode
per batch size (time, share, FLOPs and % of the same run's matmul peak per layer
kind; each layer jitted and timed alone on its real input shape: how, and the
limits, in ``tools/profile_layers.py``)::

    python -m tools.benchmark --config=configs/celeba256.py:small --profile --batch_sizes=1,8
"""

from __future__ import annotations

import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from flowjax import models, synthetic
from flowjax.flows import permutations
from flowjax.models import checkpoints, glow, micro_batches, model_stats
from flowjax.runs import runtime
from tools import profile_layers

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config with a `model` field.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A save_model export or training workdir "
                                  "to time with its weights, on synthetic faces (instead of "
                                  "--config's model at its init, on random images).")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to time.")
_PRECISIONS = flags.DEFINE_list("precisions", ["highest"], "Glow precisions to time.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per measurement (median).")
_MATMUL_SIZE = flags.DEFINE_integer("matmul_size", 0, "Matmul peak size N (0: 2048 CPU, 8192 GPU).")
# How a batch is cut: "auto", flowjax's default for the backend (cache-sized pieces
# on a CPU, flowjax.models.micro_batches), "whole", one piece, or N images per piece.
PIECE_MODES = {"auto": None, "whole": 0}
_PIECES = flags.DEFINE_list("pieces", ["auto"], "Batch cutting to time: auto, whole or a "
                            "number of images per piece; several give same-run ratios.")


def piece_mode(mode: str) -> int | None:
    """``--pieces`` entry -> ``glow.apply_encode``'s ``piece`` (None: the default)."""
    if mode in PIECE_MODES:
        return PIECE_MODES[mode]
    if mode.isdigit() and int(mode) > 0:
        return int(mode)
    raise app.UsageError(f"--pieces: {mode!r} is not auto, whole or a positive number of images")
_JSON = flags.DEFINE_string("json", None, "Write the results as JSON to this file.")
_PROFILE = flags.DEFINE_bool("profile", False, "Print a per-layer breakdown of one encode and "
                             "one decode per batch size instead (tools/profile_layers.py).")


def _median_seconds(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_flops(n: int, repeats: int = 10) -> float:
    """Float32 FLOP/s of an n x n matmul at full precision: the best of
    ``repeats`` timed calls (a peak, so the fastest call, not the median)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST))
    jax.block_until_ready(f(a, b))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a, b))
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def _memory_bytes(compiled) -> int | None:
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return int(analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
               + analysis.output_size_in_bytes)


def _timed_compile(jitted, *args):
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - start


def benchmark_model(model: glow.Glow, batch_size: int, repeats: int, peak: float,
                    piece: int | None = None, variables=None) -> dict:
    """One row; ``variables`` (a checkpoint's) are timed on synthetic faces, else the
    model's data-dependent init on random images."""
    key = jax.random.key(0)
    if variables is None:
        images = jax.random.randint(key, (batch_size, *model.image_shape), 0, 256).astype(jnp.uint8)
        variables = glow.init(model, key, images)
    else:
        images = jnp.asarray(synthetic.make_dataset(0, batch_size, model.image_size).images)
    # Decoding as flowjax's sweeps do it: the 1x1 convs' inverses computed once per
    # model, not in every decode call (flowjax.transfer.sweep._decoder_variables).
    decode_variables = permutations.with_inverse_weights(variables)
    # flowjax's batched entry points: on a CPU a large batch runs in cache-sized
    # pieces (flowjax.models.micro_batches) unless ``piece`` is 0 (whole).
    encode = jax.jit(lambda v, x: glow.apply_encode(model, v, x, piece=piece).eps)
    decode = jax.jit(lambda v, eps: glow.apply_decode(model, v, eps, None, "eps", False, piece))
    enc_compiled, enc_compile_s = _timed_compile(encode, variables, images)
    eps = enc_compiled(variables, images)
    dec_compiled, dec_compile_s = _timed_compile(decode, decode_variables, eps)
    enc_s = _median_seconds(lambda: enc_compiled(variables, images), repeats)
    dec_s = _median_seconds(lambda: dec_compiled(decode_variables, eps), repeats)
    x_float = dec_compiled(decode_variables, eps)
    target = (images >> (8 - model.n_bits)).astype(jnp.float32) / model.n_bins - 0.5 \
        + 0.5 / model.n_bins
    flops = model_stats.flops_per_image(model) * batch_size
    drop = 8 - model.n_bits  # the low bits an n_bits model cannot represent
    return {
        "batch_size": batch_size, "precision": model.precision,
        "piece": micro_batches.piece_size(model, batch_size, piece),
        "encode_compile_s": enc_compile_s, "decode_compile_s": dec_compile_s,
        "encode_images_per_s": batch_size / enc_s, "decode_images_per_s": batch_size / dec_s,
        "encode_fraction_of_peak": flops / enc_s / peak,
        "decode_fraction_of_peak": flops / dec_s / peak,
        "encode_memory_bytes": _memory_bytes(enc_compiled),
        "decode_memory_bytes": _memory_bytes(dec_compiled),
        "max_abs_reconstruction_error": float(jnp.max(jnp.abs(x_float - target))),
        "uint8_exact": bool(jnp.all(model.postprocess(x_float) == (images >> drop) << drop)),
    }


def format_table(results: dict) -> str:
    lines = [
        f"Device: {results['device']}; matmul peak (f32, {results['matmul_size']}^2, HIGHEST): "
        f"{results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s; model: {results['flops_per_image'] / 1e9:.2f} "
        f"GFLOP per image and direction.", "",
        "| batch | pieces of | precision | encode img/s | decode img/s | encode % peak | decode % peak "
        "| compile enc/dec (s) | memory enc (MiB) | max abs err | uint8 exact |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["runs"]:
        if "error" in r:
            lines.append(f"| {r['batch_size']} | {_pieces(r)} | {r['precision']} | {r['error']} ||||||||")
            continue
        mem = r["encode_memory_bytes"]
        lines.append(
            f"| {r['batch_size']} | {_pieces(r)} | {r['precision']} | {r['encode_images_per_s']:.3g} "
            f"| {r['decode_images_per_s']:.3g} | {100 * r['encode_fraction_of_peak']:.0f}% "
            f"| {100 * r['decode_fraction_of_peak']:.0f}% "
            f"| {r['encode_compile_s']:.1f} / {r['decode_compile_s']:.1f} "
            f"| {'n/a' if mem is None else f'{mem / 2**20:.0f}'} "
            f"| {r['max_abs_reconstruction_error']:.1e} | {r['uint8_exact']} |")
    return "\n".join(lines)


def _pieces(row: dict) -> str:
    return "whole" if row["piece"] >= row["batch_size"] else str(row["piece"])


def run(config, batch_sizes, precisions, repeats, matmul_size=0, pieces=("auto",),
        checkpoint=None) -> dict:
    """The rows of ``config.model`` at its init, or of ``checkpoint``'s model and weights."""
    device = jax.devices()[0]
    n = matmul_size or (8192 if device.platform == "gpu" else 2048)
    variables = None
    if checkpoint:
        loaded, variables = checkpoints.load_model(checkpoint)
        model_config = {**models.model_config(loaded), **models.execution_config(loaded)}
    else:
        model_config = dict(config.model)
    results = {
        "device": f"{device.platform}: {device.device_kind} x{jax.device_count()} "
                  f"({platform.processor() or platform.machine()})",
        "matmul_size": n, "matmul_peak_flops": matmul_peak_flops(n),
        "model": model_config, "checkpoint": checkpoint, "runs": [],
    }
    for precision in precisions:
        model = models.model_from_config({**model_config, "precision": precision})
        results["flops_per_image"] = model_stats.flops_per_image(model)
        for batch_size in batch_sizes:
            for mode in pieces:
                piece = piece_mode(mode)
                try:
                    row = benchmark_model(model, batch_size, repeats, results["matmul_peak_flops"],
                                          piece, variables)
                except Exception as err:  # noqa: BLE001 -- an OOM is a result to report
                    if ("RESOURCE_EXHAUSTED" not in str(err)
                            and "out of memory" not in str(err).lower()):
                        raise
                    row = {"batch_size": batch_size, "precision": precision,
                           "piece": micro_batches.piece_size(model, batch_size, piece),
                           "error": "out of memory"}
                results["runs"].append(row)
                print(format_table({**results, "runs": [row]}).splitlines()[-1], flush=True)
    return results


def run_profile(config, batch_sizes, precisions, repeats, matmul_size=0) -> None:
    n = matmul_size or (8192 if jax.devices()[0].platform == "gpu" else 2048)
    peak = matmul_peak_flops(n)
    for precision in precisions:
        model = models.model_from_config({**dict(config.model), "precision": precision})
        for batch_size in batch_sizes:
            result = profile_layers.profile(model, batch_size, repeats, _median_seconds)
            print(f"precision {precision}\n" + profile_layers.format_profile(result, batch_size, peak),
                  flush=True)


def main(argv):
    del argv
    if (_CONFIG.value is None) == (_CHECKPOINT.value is None):
        raise app.UsageError("give one of --config (a model at its init) and --checkpoint")
    if _PROFILE.value:
        if _CHECKPOINT.value:
            raise app.UsageError("--profile times --config's model; it takes no --checkpoint")
        run_profile(_CONFIG.value, [int(b) for b in _BATCH_SIZES.value], _PRECISIONS.value,
                    _REPEATS.value, _MATMUL_SIZE.value)
        return
    for mode in _PIECES.value:
        piece_mode(mode)  # refuses a bad entry before anything runs
    results = run(_CONFIG.value, [int(b) for b in _BATCH_SIZES.value], _PRECISIONS.value,
                  _REPEATS.value, _MATMUL_SIZE.value, _PIECES.value, _CHECKPOINT.value)
    print(format_table(results))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    runtime.run(main)
