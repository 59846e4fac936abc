"""Benchmark: one compiled sweep call vs Python loops over the grid.

The whole transfer sweep of ``5 expressions x 4 targets x 11 alphas`` (220
images, the repository's alpha grid 0.30..0.50) is decoded three ways:

* ``sweep``: :func:`flowjax.transfer.sweep.transfer_sweep`, one jitted chunk function
  (vmap over the grid points, chunked, sharded over all devices);
* ``loop_alpha``: a Python loop over alphas; per alpha the 20 latents are built
  on the host (numpy) and decoded as one batch with ``glow.decode``;
* ``loop_image``: the seed study's loop, one ``glow.decode`` call per image
  (expression, target, alpha), the latent built on the host.

For each: wall time of the timed run (after a warm-up run that compiles),
images/s, compile time apart (the warm-up minus one timed run), and the
process's peak RSS (``resource.getrusage``: a high-water mark over the whole
process, so it is reported after each phase and grows monotonically).

Two geometries: ``64`` (64x64, 3 levels, depth 8, width 512: celeba256's
``small`` variant) and ``256`` (celeba256's 6-level 256x256 geometry; on a CPU
at reduced depth/width, ``--depth256/--width256``, default depth 2 width 64, said
so in the table). Weights come from ``glow.init``'s data-dependent init on
random images, as in ``tools/benchmark``: the couplings start as identities,
so random latents decode to finite images (fully random weights at width 512
overflow, and the sweeps refuse non-finite output). Decoding cost does not
depend on the weights' values.

    python -m tools.benchmark_sweep --out=runs/benchmark_sweep.json
    python -m tools.benchmark_sweep --sizes=64 --chunk_size=32
    python -m tools.benchmark_sweep --sizes=64 --width64=64   # a quick check

writes JSON and prints a markdown table. Expected on a 2-core CPU: the
one-call sweep is >= 3x faster than ``loop_image`` at 64x64; against
``loop_alpha`` the gain is smaller (both decode batches).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from flowjax import io as fio
from flowjax.models import glow
from flowjax.models.glow import Glow
from flowjax.transfer import latents, sweep
from flowjax.runs import runtime

N_EXPRESSIONS, N_TARGETS = 5, 4
ALPHAS = latents.alpha_grid(0.30, 0.50, 0.02)


# ---- the benchmark ----------------------------------------------------------------

_SIZES = flags.DEFINE_list("sizes", ["64", "256"], "Geometries to time: 64 and/or 256.")
_CHUNK = flags.DEFINE_integer("chunk_size", 44, "Sweep chunk size (grid points per call).")
_DEPTH64 = flags.DEFINE_integer("depth64", 8, "Flow steps per level of the 64x64 model.")
_WIDTH64 = flags.DEFINE_integer("width64", 512, "Coupling width of the 64x64 model.")
_DEPTH256 = flags.DEFINE_integer("depth256", 2, "Flow steps per level of the 256x256 model.")
_WIDTH256 = flags.DEFINE_integer("width256", 64, "Coupling width of the 256x256 model.")
_METHODS = flags.DEFINE_list("modes", ["sweep", "loop_alpha", "loop_image"], "What to time.")
_OUT = flags.DEFINE_string("out", None, "Write the results JSON here.")


def _peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def _problem(model: Glow, seed: int = 0) -> dict[str, Any]:
    d = latents.flat_size(model.latent_shapes)
    rng = np.random.default_rng(seed)
    sources = rng.standard_normal((N_EXPRESSIONS, d)).astype(np.float32)
    stats = lambda n: latents.IdentityStats(  # noqa: E731
        0.3 * rng.standard_normal((n, d)).astype(np.float32),
        rng.uniform(0.5, 1.5, (n, d)).astype(np.float32), 1)
    return {"sources": sources, "source_stats": stats(N_EXPRESSIONS),
            "target_stats": stats(N_TARGETS)}


def _run_sweep(model, variables, p, chunk_size):
    return sweep.transfer_sweep(model, variables, p["sources"], p["source_stats"],
                                p["target_stats"], ALPHAS, method="linear",
                                chunk_size=chunk_size, progress=False)


def _run_loop_alpha(model, variables, p, chunk_size):
    shapes = model.latent_shapes
    s, ss, ts = p["sources"], p["source_stats"], p["target_stats"]
    out = []
    for alpha in ALPHAS:
        flat = np.stack([ts.mean[t] + alpha * (s[e] - ss.mean[e])
                         for e in range(N_EXPRESSIONS) for t in range(N_TARGETS)])
        out.append(np.asarray(glow.decode(model, variables, latents.unflatten(flat, shapes))))
    return out


def _run_loop_image(model, variables, p, chunk_size):
    shapes = model.latent_shapes
    s, ss, ts = p["sources"], p["source_stats"], p["target_stats"]
    out = []
    for e in range(N_EXPRESSIONS):
        for t in range(N_TARGETS):
            for alpha in ALPHAS:
                flat = (ts.mean[t] + alpha * (s[e] - ss.mean[e]))[None]
                out.append(np.asarray(glow.decode(model, variables,
                                                  latents.unflatten(flat, shapes))))
    return out


RUNNERS = {"sweep": _run_sweep, "loop_alpha": _run_loop_alpha, "loop_image": _run_loop_image}


def benchmark(model: Glow, chunk_size: int, modes: list[str], label: str) -> list[dict[str, Any]]:
    """Times every mode on one model; returns one result row per mode."""
    images = jax.random.randint(jax.random.key(0), (8, *model.image_shape), 0, 256)
    variables = glow.init(model, jax.random.key(0), images.astype(jnp.uint8))
    problem = _problem(model)
    n_images = N_EXPRESSIONS * N_TARGETS * len(ALPHAS)
    rows = []
    for mode in modes:
        runner = RUNNERS[mode]
        start = time.perf_counter()
        runner(model, variables, problem, chunk_size)  # compiles
        first = time.perf_counter() - start
        start = time.perf_counter()
        runner(model, variables, problem, chunk_size)
        wall = time.perf_counter() - start
        rows.append({
            "model": label, "mode": mode, "images": n_images, "wall_s": round(wall, 3),
            "images_per_s": round(n_images / wall, 2),
            "compile_s": round(max(first - wall, 0.0), 3),
            "peak_rss_mib": round(_peak_rss_mib(), 1),
            "chunk_size": chunk_size if mode == "sweep" else None,
            "devices": len(jax.devices()),
        })
        print(f"  {label} {mode}: {wall:.2f} s", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a markdown table, with each mode's speedup of the sweep."""
    lines = ["| model | mode | wall (s) | images/s | compile (s) | peak RSS (MiB) | sweep speedup |",
             "|---|---|---:|---:|---:|---:|---:|"]
    sweep_wall = {r["model"]: r["wall_s"] for r in rows if r["mode"] == "sweep"}
    for r in rows:
        speedup = (f"{r['wall_s'] / sweep_wall[r['model']]:.1f}x"
                   if r["model"] in sweep_wall and r["mode"] != "sweep" else "")
        lines.append(f"| {r['model']} | {r['mode']} | {r['wall_s']:.2f} | {r['images_per_s']:.1f} "
                     f"| {r['compile_s']:.2f} | {r['peak_rss_mib']:.0f} | {speedup} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    models = {
        "64": (Glow(image_size=64, n_levels=3, depth=_DEPTH64.value, width=_WIDTH64.value),
               f"64x64, 3 levels, depth {_DEPTH64.value}, width {_WIDTH64.value}"),
        "256": (Glow(image_size=256, n_levels=6, depth=_DEPTH256.value, width=_WIDTH256.value),
                f"256x256, 6 levels, depth {_DEPTH256.value}, width {_WIDTH256.value} "
                "(reduced from 32/512 for the CPU)"),
    }
    unknown = [s for s in _SIZES.value if s not in models]
    bad_modes = [m for m in _METHODS.value if m not in RUNNERS]
    if unknown or bad_modes:
        raise app.UsageError(f"unknown sizes {unknown} (use 64, 256) or modes {bad_modes} "
                             f"(use {sorted(RUNNERS)})")
    rows = []
    for size in _SIZES.value:
        model, label = models[size]
        rows += benchmark(model, _CHUNK.value, _METHODS.value, label)
    result = {"grid": {"expressions": N_EXPRESSIONS, "targets": N_TARGETS, "alphas": list(ALPHAS)},
              "platform": {"backend": jax.default_backend(), "devices": str(jax.devices()),
                           "cpu_count": os.cpu_count()},
              "rows": rows}
    if _OUT.value:
        Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
        fio.atomic_write_json(_OUT.value, result, overwrite=True)
    print(markdown(rows))


if __name__ == "__main__":
    runtime.run(main)
