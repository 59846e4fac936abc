"""OpenAI's CelebA-HQ 256x256 Glow (GLOW_SPEC §1, §6), and small CPU variants.

Variants (``--config=configs/celeba256.py:<variant>``):
  (none)   OpenAI's model: 6 levels, depth 32, width 512, additive coupling,
           invconv, learned top prior, 5 bits. 175,099,620 parameters;
           flat latent of 196,608 entries (level offsets 0, 98304, 147456,
           172032, 184320, 190464).
  geometry the same 256x256, 6-level geometry at depth 2 and width 16: for
           tests and timing on the CPU.
  small    64x64, 3 levels, depth 8, width 512, additive: the CPU benchmark
           model of docs/benchmarks.md.

``python experiments/model_summary.py --config=configs/celeba256.py`` prints
the parameter count, latent shapes and offsets, and FLOPs per image.
"""

import ml_collections

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)

VARIANTS = {
    "": {},
    "geometry": dict(depth=2, width=16),
    "small": dict(image_size=64, n_levels=3, depth=8, width=512),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = common.one_variant(arg, VARIANTS, "")
    config = ml_collections.ConfigDict()
    config.experiment = "model_summary"
    config.model = common.model_config(**{**common.OPENAI_CELEBA256, **VARIANTS[variant]})
    config.batch_size = 1
    return config
