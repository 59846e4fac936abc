"""Parameter counts and arithmetic cost of a Glow, without allocating anything.

Parameter counts come from ``jax.eval_shape`` of the model's init (shapes
only). The cost is counted analytically per flow step, in multiply-accumulates
(MACs) per image and direction, exactly for the convolutions and matmuls the
implementation runs (elementwise work, under 0.5%, is left out):

* invertible 1x1 conv: ``HW C^2``;
* conditioner: ``HW (9 (C/2 + 1) w + w^2 + 9 (w + 1) n_out)`` with the edge
  indicator channel counted as an input, ``n_out`` = C/2 (additive) or C
  (affine);
* split prior: ``HW 9 (C/2 + 1) C``;
* learned top prior: only its edge-indicator taps (its input is all zeros),
  ``HW 9 2C``: OpenAI's graph runs the full conv, ``HW 9 (2C + 1) 2C``.

For OpenAI's CelebA-HQ model this gives 244.07 GMAC per image (GLOW_SPEC §7:
244.15 GMAC with the full top-prior conv), i.e. about 488 GFLOP.
"""

from __future__ import annotations

from collections import defaultdict

import jax
import numpy as np

from flowjax.models import glow
from flowjax.models.glow import Glow


def _component(path: tuple[str, ...]) -> str:
    """A readable component name for a parameter path."""
    top = path[0]
    if top.startswith("level_"):
        if path[1] == "coupling":
            return f"coupling/{path[2].removesuffix('_actnorm')}"
        return path[1]
    if top.startswith("split_"):
        return "split_priors"
    return "top_prior"


def parameter_counts(model: Glow) -> dict[str, int]:
    """Trainable parameters per component (and ``total``), via ``eval_shape``.

    Components: ``actnorm``, ``invconv``, ``coupling/conv1`` (its ActNorm
    included, as it is the conv's bias), ``coupling/conv2``,
    ``coupling/conv_out``, ``split_priors``, ``top_prior``.
    """
    params = glow.abstract_variables(model)["params"]
    counts: dict[str, int] = defaultdict(int)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = tuple(getattr(p, "key", str(p)) for p in path)
        counts[_component(keys)] += int(np.prod(leaf.shape))
    counts = dict(sorted(counts.items()))
    counts["total"] = sum(counts.values())
    return counts


def macs_per_level(model: Glow) -> list[dict[str, float]]:
    """Per level: MACs per image of one step, of all ``depth`` steps, of its prior."""
    rows = []
    w = model.width
    for level in range(model.n_levels):
        side = model.image_size // 2 ** (level + 1)
        hw = side * side
        c = 4 * model.channels * 2**level
        n_out = c if model.coupling == "affine" else c // 2
        step = hw * (c * c + 9 * (c // 2 + 1) * w + w * w + 9 * (w + 1) * n_out)
        if level < model.n_levels - 1:
            prior = hw * 9 * (c // 2 + 1) * c
        else:
            prior = hw * 9 * 2 * c if model.learn_top else 0
        rows.append({"level": level, "hw": hw, "channels": c, "step": float(step),
                     "steps": float(step * model.depth), "prior": float(prior)})
    return rows


def macs_per_image(model: Glow) -> float:
    """Total MACs per image for one direction (encode or decode)."""
    return float(sum(r["steps"] + r["prior"] for r in macs_per_level(model)))


def flops_per_image(model: Glow) -> float:
    """``2 * macs_per_image``: a MAC is a multiply and an add."""
    return 2.0 * macs_per_image(model)
