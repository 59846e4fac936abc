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

VARIANTS = {
    "": {},
    "geometry": dict(depth=2, width=16),
    "small": dict(image_size=64, n_levels=3, depth=8, width=512),
}


def model_config(**overrides) -> ml_collections.ConfigDict:
    """OpenAI's CelebA-HQ hyperparameters as ``Glow`` fields."""
    model = ml_collections.ConfigDict(dict(
        image_size=256, n_levels=6, depth=32, width=512, coupling="additive",
        permutation="invconv", learn_top=True, n_classes=0, n_bits=5, channels=3,
        remat=False, scan_unroll=1, precision="highest",
    ))
    model.update(overrides)
    return model


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or ""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} of configs/celeba256.py; "
                         f"choose one of {sorted(VARIANTS)}")
    config = ml_collections.ConfigDict()
    config.experiment = "model_summary"
    config.model = model_config(**VARIANTS[variant])
    config.batch_size = 1
    return config
