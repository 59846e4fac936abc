"""Reconstruction of unseen faces: encode -> decode, PSNR and max error per image.

The thesis claims that Glow reconstructs faces outside its training set
perfectly. A flow is invertible, so the claim is exact at the model's n_bits:
``decode(encode(x))`` should equal the n_bits-quantized input bit for bit
(``psnr_model_bits = inf``, ``max_error_model_bits = 0``) up to float error in
the inverse (``max_float_error``, in units of the [-0.5, 0.5) image). Against
the original 8-bit image the error is the quantization's, at most
``256 / 2**n_bits - 1`` (7 for 5 bits, PSNR around 40 dB).

Commands::

    python run.py --config=configs/reconstruction.py:smoke --workdir=/tmp/recon-smoke
    python run.py --config=configs/reconstruction.py --config.checkpoint=CKPT \\
        --config.data.images='heldout/*.png' --workdir=runs/reconstruction

Variants: ``smoke`` (generated faces, random-init 32x32 Glow with DDI).

Expected (``:smoke``, ~10-20 s): 9 images, all exact at 5 bits
(``summary.all_exact_at_model_bits = true``, max_float_error ~1e-6), max
8-bit error <= 7; ``reconstruction.csv``, ``reconstruction.json``,
``reconstructions/*.png``, ``manifest.json``.
"""

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = common.base_config()
    config.experiment = "reconstruction"
    config.data.images = config_dict.placeholder(str)  # folder, image or glob
    config.write_images = True  # the reconstructions as PNGs
    for name in common.parse_variants(arg, ("smoke",)):
        if name == "smoke":
            common.smoke(config)
            config.data.images = "*/*.png"
    return config
