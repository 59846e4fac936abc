"""Print a Glow's parameter count, latent layout and cost, allocating nothing.

    python experiments/model_summary.py --config=configs/celeba256.py

prints 175,099,620 parameters, a flat latent of 196,608 entries with level
offsets 0, 98304, 147456, 172032, 184320, 190464, and 244.07 GMAC
(488.1 GFLOP) per image and direction. Also runnable as
``python run.py --config=configs/celeba256.py``.
"""

from __future__ import annotations

import json
import os

from absl import app, flags
from ml_collections import config_flags

from flowjax import models
from flowjax.models import glow, model_stats
from flowjax.transfer import latents

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config with a `model` field.")
_JSON = flags.DEFINE_string("json", None, "Also write the summary as JSON to this file.")


def summarize(model: glow.Glow) -> dict:
    shapes = model.latent_shapes
    return {
        "model": glow.model_config(model),
        "parameters": model_stats.parameter_counts(model),
        "latent_shapes": [list(s) for s in shapes],
        "flat_size": latents.flat_size(shapes),
        "flat_offsets": latents.flat_offsets(shapes),
        "macs_per_level": model_stats.macs_per_level(model),
        "macs_per_image": model_stats.macs_per_image(model),
        "flops_per_image": model_stats.flops_per_image(model),
    }


def format_summary(summary: dict) -> str:
    lines = [f"Glow {json.dumps(summary['model'])}", "", "Parameters:"]
    for name, count in summary["parameters"].items():
        lines.append(f"  {name:<20} {count:>15,}")
    lines += ["", "Latents (level: shape, flat offset):"]
    for level, (shape, offset) in enumerate(zip(summary["latent_shapes"], summary["flat_offsets"])):
        lines.append(f"  {level}: {tuple(shape)!s:<18} {offset:>10,}")
    lines.append(f"  flat size: {summary['flat_size']:,}")
    lines += ["", "Cost per image and direction (GMAC): level, K steps, prior"]
    for row in summary["macs_per_level"]:
        lines.append(f"  {row['level']}: {row['steps'] / 1e9:10.3f} {row['prior'] / 1e9:8.3f}")
    lines.append(f"  total: {summary['macs_per_image'] / 1e9:.2f} GMAC = "
                 f"{summary['flops_per_image'] / 1e9:.1f} GFLOP")
    return "\n".join(lines)


def main(config, workdir: str | None = None) -> dict:
    summary = summarize(models.model_from_config(config.model))
    print(format_summary(summary))
    if workdir:
        os.makedirs(workdir, exist_ok=False)
        with open(os.path.join(workdir, "model_summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
    return summary


def _cli(argv):
    del argv
    summary = main(_CONFIG.value)
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(_cli)
