"""What the configs share: one variant parser, the model defaults, the fields of the
experiments that read images with a model.

Configs load this file and one another with ``flowjax.runs.runtime.config_module``
(by file, so a config works however it is started)::

    from flowjax.runs.runtime import config_module
    common = config_module("common", __file__)

* :func:`parse_variants` -- ``:a,b`` applies variants in order; :func:`one_variant`
  for configs whose variants do not combine;
* :func:`model_config` -- ``config.model``: ``family`` ("glow"), ``flow_step``
  ("openai") and every other field at the model class's own default
  (``flowjax.models.default_config``), then the config's overrides;
* :func:`base_config`, :func:`smoke`, :data:`DEMO_CHECKPOINT` -- the fields of
  transfer, attributes, reconstruction and explore, and their smoke set-up;
* :func:`evaluation_config` -- configs/evaluate.py's config, nested in a run that
  scores itself at its end.
"""

import os
from collections.abc import Iterable

import ml_collections
from ml_collections import config_dict

from flowjax import models
from flowjax.runs.runtime import config_module

_HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_CHECKPOINT = os.path.normpath(os.path.join(_HERE, "..", "weights", "demo", "glow"))


def parse_variants(arg: str | None, known: Iterable[str]) -> list[str]:
    """The variant names of ``--config=FILE:a,b`` in order; an unknown one is an error."""
    known = list(known)
    names = [v.strip() for v in (arg or "").split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {sorted(known)}")
    return names


def one_variant(arg: str | None, known: Iterable[str], default: str) -> str:
    """The one variant of a config whose variants do not combine (``default`` if none)."""
    names = parse_variants(arg, known) or [default]
    if len(names) != 1:
        raise ValueError(f"give one variant, got {names}; these variants do not combine")
    return names[0]


# OpenAI's CelebA-HQ Glow (GLOW_SPEC §1, §6): its geometry; the other fields are the defaults.
OPENAI_CELEBA256 = dict(image_size=256, n_levels=6, depth=32, width=512)


def model_config(**overrides) -> ml_collections.ConfigDict:
    """``config.model``: the family's defaults with ``overrides`` (``family`` picks another
    registered family; ``--config.model.flow_step=NAME`` another flow step)."""
    family = overrides.pop("family", models.DEFAULT_FAMILY)
    return ml_collections.ConfigDict(models.default_config(family, **overrides))


def base_config() -> ml_collections.ConfigDict:
    """Fields of the experiments that read images with a model (transfer, attributes,
    reconstruction, explore); docs/configs.md explains them."""
    config = ml_collections.ConfigDict()
    config.checkpoint = config_dict.placeholder(str)  # save_model export or training workdir
    config.model = model_config()  # only for a random init (checkpoint None)
    config.random_init = ml_collections.ConfigDict(dict(enabled=False, seed=0, ddi=True))
    config.space = "eps"
    config.chunk_size = 8
    config.overwrite = False
    config.progress = config_dict.placeholder(bool)  # None: a bar on long runs
    # Align unaligned photos on the way in (flowjax.faces.align; docs/configs.md).
    config.align = False
    config.align_multiple_faces = "largest"  # or "most_confident", "error"
    # A photo with no face (or several under "error" above): "error" stops the run naming it;
    # "skip" leaves it out, logs it and lists it in the manifest (extra.alignment_skipped).
    config.align_failures = "error"
    config.align_detector = "mtcnn"  # "mtcnn", "dlib" (OpenAI's demo; .[faces]) or "module:factory"
    # Passed to the detector factory where set (None: the detector's default).
    config.align_detector_options = ml_collections.ConfigDict(dict(
        min_face_size=config_dict.placeholder(float), min_score=config_dict.placeholder(float)))
    config.data = ml_collections.ConfigDict(dict(
        base_dir=config_dict.placeholder(str),
        resize=config_dict.placeholder(str),  # e.g. "lanczos"; None: sizes must match
        alpha="composite",
        generated=ml_collections.ConfigDict(dict(
            enabled=False, n_identities=3, expressions=("neutral", "smile", "surprise"),
            seed=0)),  # drawn at the model's image size
    ))
    return config


def smoke(config: ml_collections.ConfigDict) -> None:
    """Generated faces and a tiny random-init model: seconds on a CPU."""
    config.data.generated.enabled = True
    config.random_init.enabled = True
    config.model = model_config(image_size=32, n_levels=2, depth=2, width=16)
    config.chunk_size = 8


def evaluation_config(variant: str) -> ml_collections.ConfigDict:
    """configs/evaluate.py's config (scorers, AU set), for scoring the run at its end."""
    return config_module("evaluate", __file__).get_config(variant)
