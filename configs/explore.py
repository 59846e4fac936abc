"""The live editor: ``python run.py --config=configs/explore.py [--workdir=DIR]``.

Serves http://127.0.0.1:8050/ (loopback only unless ``--config.allow_remote``)
with a checkpoint loaded (default: the shipped demo Glow, ``weights/demo/glow``,
64x64 faces): upload a photo (``align`` detects and aligns it with
``flowjax.faces.align``, offered where a face detector loads: dlib when
installed, ``.[faces]``, else MTCNN; otherwise it must be an aligned face of the model's size),
move it along attribute directions, transfer an expression of the source
identity onto a target with an alpha slider, mix two faces. Each edit is one
jitted decode; every PNG served or saved carries flowjax's provenance labels.
"save" writes the served PNG to ``<workdir>/saved/``; the workdir's
``manifest.json`` is written when the server stops (Ctrl-C).

Commands::

    # the demo Glow on the synthetic study (faces id00..id04 and the actor
    # "source" with smile, surprise, anger, sadness, blink):
    python run.py --config=configs/explore.py --workdir=/tmp/explore

    # a random-init 32x32 model on generated faces, for trying the page:
    python run.py --config=configs/explore.py:smoke --workdir=/tmp/explore-smoke

    # your checkpoint and photos (root/<identity>/*.png, aligned faces), OpenAI's
    # attribute vectors for a CelebA-HQ model:
    python run.py --config=configs/explore.py --config.checkpoint=CKPT \\
        --config.data.identities=faces/ --config.source=actor \\
        --config.expressions='("smile","frown")' --config.vectors=z_manipulate.npy

Expected (measured on the project's 2 CPU cores while other jobs ran): the page
answers after 40 s at load average ~6, 120 s at ~13 (default; rendering and
encoding the study, compiling one encode and one decode), or 49 s at ~13
(``:smoke``); each edit then takes 0.01-0.7 s. Stop it with Ctrl-C (or SIGTERM): ``manifest.json`` is written.

Fields: docs/configs.md.
"""

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = common.base_config()
    config.experiment = "explore"
    config.checkpoint = common.DEMO_CHECKPOINT
    config.host, config.port, config.allow_remote = "127.0.0.1", 8050, False
    # The page's "align" option (flowjax.app.align_choice): "auto" takes dlib when it loads,
    # else MTCNN, else offers none and says why; a name or "module:factory" takes only that.
    config.align_detector = "auto"
    config.data.synthetic = ml_collections.ConfigDict(dict(
        enabled=True, seed=0, n_identities=5, photos_per_identity=8, n_expressions=5,
        nuisance_strength=1.0, setting="easy"))  # setting: flowjax.synthetic.SETTINGS
    config.data.identities = config_dict.placeholder(str)
    config.source = config_dict.placeholder(str)
    config.expressions = ()
    config.attributes = ml_collections.ConfigDict()
    config.vectors = config_dict.placeholder(str)
    config.vector_names = ("Smiling", "Age", "Narrow_Eyes", "Blond_Hair", "Beard")
    config.limits = ml_collections.ConfigDict(dict(
        max_upload_mb=8.0, max_pixels=4096 * 4096, requests_per_minute=600, max_uploads=32))
    for name in common.parse_variants(arg, ["smoke"]):
        if name == "smoke":
            common.smoke(config)
            config.checkpoint = None
            config.data.synthetic.enabled = False
            config.source = "id00"
            config.random_init.ddi = False  # random weights: no init to compile
            config.model = common.model_config(image_size=32, n_levels=2, depth=2, width=16)
    return config
