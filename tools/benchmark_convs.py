"""The narrow 3x3 convs, per shape vs XLA's convolution, timed in one run.

    python -m tools.benchmark_convs --batch_sizes=1,8,16,32 --repeats=5

``flowjax.flows.layers`` computes a 3x3 conv with far fewer output than input channels
(the zero convs, 512 -> 6) as one matmul plus shifted adds, and one with far
fewer input channels (the couplings' first conv, 6 -> 512) as im2col + matmul.
This tool times, in one process and alternating rounds (so machine load hits both
alike), (1) the two conv shapes alone, as GFLOP/s and a fraction of the same
run's matmul peak, and (2) encode and decode of celeba256's ``small`` model
(64x64, 3 levels, depth 8, width 512) with XLA's convolution everywhere
(``layers.NARROW_RATIO`` out of reach) and with the per-shape choice. Decode
gets the 1x1 convs' inverses computed once per model, as flowjax's sweeps do
(``flowjax.transfer.sweep._decoder_variables``). Prints
markdown tables (committed in docs/benchmarks.md). Weights are random.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from flowjax.flows import layers, permutations
from flowjax.models import glow, model_stats, random_variables
from flowjax.models.glow import Glow
from flowjax.runs import runtime
from tools.benchmark import matmul_peak_flops

# --batch_sizes and --repeats are tools.benchmark's flags (defined on its import).
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Alternating rounds of the two implementations.")

MODES = {"xla_conv": 10**9, "per_shape": layers.NARROW_RATIO}
HIGHEST = jax.lax.Precision.HIGHEST


def _median_s(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _with_ratio(ratio: int, build):
    """Traces ``build()``'s function with ``layers.NARROW_RATIO = ratio`` (read at trace time)."""
    saved, layers.NARROW_RATIO = layers.NARROW_RATIO, ratio
    try:
        return build()
    finally:
        layers.NARROW_RATIO = saved


def conv_rows(peak: float, repeats: int, rounds: int) -> list[str]:
    rng = np.random.default_rng(0)
    rows = []
    for cin, cout, size, batch in ((512, 6, 32, 16), (6, 512, 32, 16)):
        x = jnp.asarray(rng.normal(size=(batch, size, size, cin)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(3, 3, cin, cout)) * 0.05, jnp.float32)
        flops = 2 * batch * size * size * 9 * cin * cout
        best = {m: float("inf") for m in MODES}
        for _ in range(rounds):
            for mode, ratio in MODES.items():
                fn = _with_ratio(ratio, lambda: jax.jit(
                    lambda x, w: layers._conv_same(x, w, HIGHEST)).lower(x, w).compile())
                best[mode] = min(best[mode], _median_s(fn, x, w, repeats=repeats))
        cells = [f"{flops / best[m] / 1e9:.0f} GFLOP/s ({flops / best[m] / peak:.0%})" for m in MODES]
        rows.append(f"| {cin} -> {cout}, {size}x{size}, batch {batch} | {cells[0]} | {cells[1]} "
                    f"| {best['xla_conv'] / best['per_shape']:.2f}x |")
    return rows


def model_rows(peak: float, batch_sizes: list[int], repeats: int, rounds: int) -> list[str]:
    model = Glow(image_size=64, n_levels=3, depth=8, width=512)
    variables = random_variables(model, seed=0)
    flops = model_stats.flops_per_image(model)
    rows = []
    for batch in batch_sizes:
        images = np.random.default_rng(batch).integers(0, 256, (batch, 64, 64, 3), np.uint8)
        eps = glow.encode(model, variables, images).eps
        # Decoding as the sweeps do it: inverses of the 1x1 convs computed once per model.
        decode_variables = permutations.with_inverse_weights(variables)
        best = {(m, d): float("inf") for m in MODES for d in ("encode", "decode")}
        for _ in range(rounds):
            for mode, ratio in MODES.items():
                enc = _with_ratio(ratio, lambda: jax.jit(
                    lambda v, x: model.apply(v, x, method="encode")).lower(variables, images)
                    .compile())
                dec = _with_ratio(ratio, lambda: jax.jit(
                    lambda v, e: model.apply(v, e, method="decode")).lower(decode_variables, eps)
                    .compile())
                best[mode, "encode"] = min(best[mode, "encode"],
                                           _median_s(enc, variables, images, repeats=repeats))
                best[mode, "decode"] = min(best[mode, "decode"],
                                           _median_s(dec, decode_variables, eps, repeats=repeats))
        cells = []
        for d in ("encode", "decode"):
            old, new = batch / best["xla_conv", d], batch / best["per_shape", d]
            cells.append(f"{old:.1f} ({old * flops / peak:.0%}) | {new:.1f} "
                         f"({new * flops / peak:.0%}) | {new / old:.2f}x")
        rows.append(f"| {batch} | {cells[0]} | {cells[1]} |")
    return rows


def main(argv: list[str]) -> None:
    del argv
    peak = matmul_peak_flops(2048)
    print(f"matmul peak (f32, 2048^2, HIGHEST, best of 10): {peak / 1e9:.1f} GFLOP/s; "
          f"{jax.devices()[0].device_kind}")
    print("\n| conv (3x3) | XLA conv | per shape | speed-up |\n|---|---:|---:|---:|")
    repeats = flags.FLAGS.repeats
    print("\n".join(conv_rows(peak, repeats, _ROUNDS.value)))
    print("\n| batch | encode img/s, XLA conv (% peak) | per shape | speed-up "
          "| decode img/s, XLA conv (% peak) | per shape | speed-up |\n"
          "|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(model_rows(peak, [int(b) for b in flags.FLAGS.batch_sizes], repeats,
                               _ROUNDS.value)))


if __name__ == "__main__":
    runtime.run(main)
