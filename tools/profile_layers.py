"""Per-layer breakdown of one encode and one decode (``tools.benchmark --profile``).

    python -m tools.benchmark --config=configs/celeba256.py:small --profile --batch_sizes=1,8

How it is measured: every layer kind of a level (the flow step's ActNorm, 1x1
invconv, the coupling's first 3x3 conv, its 1x1 conv and its zero conv, the
coupling's split/add/concat; per level the split prior or the top prior, and
the squeeze/split) is its own jitted function, built from the same functions
the model runs (``flowjax.flows.layers``, ``flowjax.flows.bijectors``,
``flowjax.flows.permutations``, ``flowjax.flows.priors``), timed on an input of the shape
it sees in the model (median of ``repeats`` calls after a warm-up), and
multiplied by how often one pass runs it (``depth`` for the steps' layers).
Each row gives its time, its share of the parts' sum,
its FLOPs (``flowjax.models.model_stats``' count: the edge indicator is an input
channel, so the rows' FLOPs sum to ``flops_per_image``) and FLOP/s over the
same run's matmul peak. The whole model's encode and decode (one jitted call
each) are timed too, beside the parts' sum. A batch runs as flowjax runs it: on
a CPU a large one in cache-sized pieces (``flowjax.models.micro_batches``), so the
layers are timed on a piece and counted once per piece. Weights are random (``N(0, 0.05^2)``,
1x1 invconvs orthogonal): timings do not depend on values.

Limits: a layer timed alone pays one dispatch (tens of microseconds: it matters
for batch-1 rows of small layers), writes its output to memory and reads its
input from wherever the previous call left it, and XLA cannot fuse it with its
neighbours (the real graph fuses each ActNorm + ReLU into the conv before
it, which is why those are timed with their conv, and the ActNorm of the step
into the invconv's matmul). So the parts' sum is not the model's time; the gap
is reported. Decode runs as flowjax's sweeps run it, with the 1x1 convs'
inverses computed once per model (``permutations.with_inverse_weights``), so
neither the parts nor the whole include them. Only OpenAI's flow step with the ``invconv`` or ``invconv_lu``
permutation is profiled.
"""

from __future__ import annotations

from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np

from flowjax.flows import bijectors, layers, permutations, priors
from flowjax.models import glow, micro_batches, model_stats, random_variables

KINDS = ("actnorm", "invconv", "coupling first conv (3x3, +actnorm, relu)",
         "coupling 1x1 conv (+actnorm, relu)", "coupling zero conv (3x3)",
         "coupling split/add/concat", "priors' zero convs", "squeeze/split")


def _check(model: glow.Glow) -> None:
    if model.flow_step != "openai" or model.permutation not in ("invconv", "invconv_lu"):
        raise ValueError(
            "--profile covers OpenAI's flow step with permutation 'invconv' or 'invconv_lu'; "
            f"got flow_step={model.flow_step!r}, permutation={model.permutation!r} "
            "(set model.flow_step / model.permutation in the config)")


def _level_layers(model: glow.Glow, level: int, batch: int, decode: bool, rng):
    """[(kind, fn, args, runs per pass, MACs per image per run)] for one level."""
    side = model.image_size // 2 ** (level + 1)
    c, w = 4 * model.channels * 2**level, model.width
    hw, half = side * side, c // 2
    n_out = c if model.coupling == "affine" else half
    precision = layers.get_precision(model.precision)

    def normal(*shape, scale=0.05):
        return jnp.asarray(rng.normal(size=shape) * scale, jnp.float32)

    x, z1, hidden = normal(batch, side, side, c, scale=1), normal(batch, side, side, half, scale=1), \
        jax.nn.relu(normal(batch, side, side, w, scale=1))
    bias, logs = normal(c), normal(c)
    invconv_w = jnp.linalg.qr(normal(c, c))[0]
    conv1_w, conv2_w = normal(3, 3, half + 1, w), normal(1, 1, w, w)
    out_w, out_b, out_logs = normal(3, 3, w + 1, n_out), normal(n_out), normal(n_out)
    act_b, act_logs = normal(w), normal(w)
    coupling = bijectors.COUPLINGS[model.coupling]

    def first_conv(z1, k, b, lg):
        return jax.nn.relu(bijectors.actnorm_forward(layers.edge_padded_conv(z1, k, precision), b, lg)[0])

    def one_by_one(h, k, b, lg):
        return jax.nn.relu(bijectors.actnorm_forward(layers.conv1x1(h, k, precision), b, lg)[0])

    def combine(x, h):
        a, b = bijectors.split_channels(x)
        return jnp.concatenate([a, coupling(b, h, decode)[0]], axis=-1)

    actnorm = bijectors.actnorm_inverse if decode else bijectors.actnorm_forward
    rows = [
        ("actnorm", lambda x, b, lg: actnorm(x, b, lg)[0], (x, bias, logs), model.depth, 0),
        ("invconv", lambda x, k: permutations.channel_mix(x, k, precision), (x, invconv_w),
         model.depth, hw * c * c),
        (KINDS[2], first_conv, (z1, conv1_w, act_b, act_logs), model.depth, hw * 9 * (half + 1) * w),
        (KINDS[3], one_by_one, (hidden, conv2_w, act_b, act_logs), model.depth, hw * w * w),
        (KINDS[4], lambda h, k, b, lg: layers.zero_conv(h, k, b, lg, precision),
         (hidden, out_w, out_b, out_logs), model.depth, hw * 9 * (w + 1) * n_out),
        ("coupling split/add/concat", combine, (x, normal(batch, side, side, n_out)), model.depth, 0),
    ]
    if level < model.n_levels - 1:
        prior_w, prior_b, prior_logs = normal(3, 3, half + 1, c), normal(c), normal(c)

        def split_prior(z1, z2, k, b, lg):
            h = layers.zero_conv(z1, k, b, lg, precision)
            mean, log_std = h[..., 0::2], h[..., 1::2]
            return (priors.unstandardize if decode else priors.standardize)(z2, mean, log_std)

        rows.append(("priors' zero convs", split_prior, (z1, z1, prior_w, prior_b, prior_logs), 1,
                     hw * 9 * (half + 1) * c))
        # Encode squeezes the kept half; decode unsqueezes the coarser level's output.
        squeezed = (normal(batch, side // 2, side // 2, 2 * c) if decode
                    else normal(batch, side, side, half))
        rows.append(("squeeze/split", bijectors.unsqueeze2d if decode else bijectors.squeeze2d,
                     (squeezed,), 1, 0))
    elif model.learn_top:
        top_w, top_b, top_logs = normal(3, 3, 1, 2 * c), normal(2 * c), normal(2 * c)

        def top_prior(k, b, lg):
            h = (layers.edge_bias(side, side, k, precision) + b) * jnp.exp(layers.LOGSCALE_FACTOR * lg)
            return jnp.broadcast_to(h, (batch, side, side, 2 * c))

        rows.append(("priors' zero convs", top_prior, (top_w, top_b, top_logs), 1, hw * 9 * 2 * c))
    return rows


def profile(model: glow.Glow, batch: int, repeats: int, median_seconds) -> dict:
    """Per direction: seconds and FLOPs per pass by kind (and by (kind, level)), and
    the whole model's time (see the module docstring for how and its limits).
    ``median_seconds(fn, repeats)``: tools.benchmark's timer (one warm-up call)."""

    def timed(fn, args):
        return median_seconds(lambda: fn(*args), repeats)

    _check(model)
    rng = np.random.default_rng(0)
    result = {}
    images = jnp.asarray(rng.integers(0, 256, (batch, *model.image_shape)), jnp.uint8)
    variables = random_variables(model, seed=0)
    eps = glow.encode(model, variables, images).eps
    whole = {
        "encode": (jax.jit(lambda v, x: glow.apply_encode(model, v, x).eps), (variables, images)),
        "decode": (jax.jit(lambda v, e: glow.apply_decode(model, v, e, None, "eps", False)),
                   (permutations.with_inverse_weights(variables), eps)),
    }
    piece = micro_batches.piece_size(model, batch)
    pieces = -(-batch // piece)
    for direction in ("encode", "decode"):
        decode = direction == "decode"
        seconds, flops = defaultdict(float), defaultdict(float)
        for level in range(model.n_levels):
            for kind, fn, args, runs, macs in _level_layers(model, level, piece, decode, rng):
                s, f = runs * pieces * timed(jax.jit(fn), args), runs * 2.0 * macs * batch
                for key in (kind, (kind, level)):  # per kind, and per kind and level
                    seconds[key] += s
                    flops[key] += f
        # The image's squeeze on encode, the last unsqueeze on decode.
        first = jnp.zeros((piece, *model.image_shape) if not decode else
                          (piece, model.image_size // 2, model.image_size // 2, 4 * model.channels))
        seconds["squeeze/split"] += pieces * timed(
            jax.jit(bijectors.unsqueeze2d if decode else bijectors.squeeze2d), (first,))
        fn, args = whole[direction]
        result[direction] = {"seconds": dict(seconds), "flops": dict(flops), "piece": piece,
                             "whole_s": timed(fn, args),
                             "model_flops": model_stats.flops_per_image(model) * batch}
    return result


def format_profile(result: dict, batch: int, peak: float) -> str:
    lines = []
    for direction, r in result.items():
        total = sum(s for key, s in r["seconds"].items() if isinstance(key, str))
        cut = "" if r["piece"] >= batch else f" in pieces of {r['piece']}"
        lines += [f"{direction}, batch {batch}{cut}: parts' sum {1e3 * total:.1f} ms, whole model "
                  f"{1e3 * r['whole_s']:.1f} ms ({r['model_flops'] / r['whole_s'] / peak:.0%} "
                  f"of peak); matmul peak {peak / 1e9:.1f} GFLOP/s", "",
                  "| layer | ms | share | GFLOP | % peak |", "|---|---:|---:|---:|---:|"]
        levels = sorted({key[1] for key in r["seconds"] if not isinstance(key, str)})
        for kind in KINDS:
            # The coupling's convs also per level (level 0's zero conv is the hot spot).
            keys = [kind] + ([(kind, lv) for lv in levels] if kind in KINDS[2:5] else [])
            for key in keys:
                s, f = r["seconds"].get(key, 0.0), r["flops"].get(key, 0.0)
                name = kind if isinstance(key, str) else f"&nbsp;&nbsp;level {key[1]}"
                lines.append(f"| {name} | {1e3 * s:.2f} | {s / total:.0%} | {f / 1e9:.3f} | "
                             + (f"{f / s / peak:.0%} |" if f and s else "- |"))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    from absl import app

    raise app.UsageError("tools.profile_layers is a part of tools.benchmark, not a command: run "
                         "python -m tools.benchmark --config=CONFIG --profile")


if __name__ == "__main__":
    from flowjax.runs import runtime

    runtime.run(main)
