"""Attribute manipulation with Glow: ``z + alpha * v`` (Kingma & Dhariwal 2018, §5).

The direction ``v`` comes either from labelled images,
``v = vector_scale * (mean(z | positive) - mean(z | negative))``, or from a
saved vector file: OpenAI's ``z_manipulate.npy`` (40 CelebA attributes, picked
by name, e.g. ``--config.attribute=Smiling``) or a single flat vector ``[D]``
(as this experiment saves under ``vectors/``).

Commands::

    # seconds, on generated cartoon faces (smile - neutral) and a random-init Glow:
    python run.py --config=configs/attributes.py:smoke --workdir=/tmp/attributes-smoke

    # from labelled folders (paths, folders or globs; aligned faces):
    python run.py --config=configs/attributes.py --config.checkpoint=CKPT \\
        --config.attribute=smile --config.data.positive='smiling/' \\
        --config.data.negative='neutral/' --config.data.images='test/*.png' --workdir=runs/smile

    # OpenAI's CelebA-HQ model and vectors (OpenAI's demo scale 1.6 is already in the file):
    python run.py --config=configs/attributes.py:openai --config.checkpoint=CKPT \\
        --config.vectors=z_manipulate.npy --config.attribute=Smiling \\
        --config.data.images='faces/*.png' --workdir=runs/openai-smiling

Variants (``:a,b``):
  openai  vectors from ``config.vectors`` with OpenAI's demo edits (Beard,
          Age, Narrow_Eyes x1.2), alphas -1..1 around the demo's 0.66.
  z       arithmetic in raw z (not with OpenAI's vectors: they are eps-space).
  smoke   generated faces: positive ``*/smile.png``, negative
          ``*/neutral.png``, edits the neutral faces; random-init Glow (DDI).

Expected (``:smoke``, ~10-20 s on 2 CPU cores): 3 images x 3 alphas (-1, 0,
1) = 9 PNGs under ``attributes/smile/``, 3 strips, ``vectors/smile.npy``
(float32 [3072]) with ``vectors/smile.json``, ``attributes.json`` and
``manifest.json`` (model: RANDOM INIT). With a trained model, alpha 0 is the
reconstruction and positive alphas add the attribute.
"""

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)

VARIANTS = ("openai", "z", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = common.base_config()
    config.experiment = "attributes"
    config.attribute = "attribute"  # its name: output folder, and the row of a vector file
    config.vectors = config_dict.placeholder(str)  # .npy; None: compute from positive/negative
    config.demo_edits = False  # OpenAI's demo edits of z_manipulate.npy
    config.vector_scale = 1.0  # OpenAI's demo used 1.6 (flowjax.transfer.latents.OPENAI_VECTOR_SCALE)
    config.alphas = (-1.0, -0.5, 0.0, 0.5, 1.0)
    config.strips = True
    # Each a folder, an image file or a glob; relative to data.base_dir when set.
    config.data.images = config_dict.placeholder(str)
    config.data.positive = config_dict.placeholder(str)
    config.data.negative = config_dict.placeholder(str)
    for name in common.parse_variants(arg, VARIANTS):
        if name == "openai":
            config.model = common.model_config(**common.OPENAI_CELEBA256)
            config.attribute = "Smiling"
            config.demo_edits = True
            config.alphas = (-1.0, -0.66, -0.33, 0.0, 0.33, 0.66, 1.0)
        elif name == "z":
            config.space = "z"
        elif name == "smoke":
            common.smoke(config)
            config.attribute = "smile"
            config.data.generated.expressions = ("neutral", "smile")
            config.data.positive = "*/smile.png"
            config.data.negative = "*/neutral.png"
            config.data.images = "*/neutral.png"
            config.alphas = (-1.0, 0.0, 1.0)
    return config
