"""Evaluate an expression-transfer run: identity distances, AU errors, best alpha.

Reads a finished ``experiments/transfer.py`` run directory and writes tables,
figures and ``report.md`` (layout: ``flowjax/evaluation/pipeline.py``).

Where the output goes (one rule):

* ``config.run_dir`` unset: the workdir IS the transfer run; the evaluation is
  written in place to ``<workdir>/<config.out_subdir>`` (``evaluation/``)::

    python experiments/evaluate.py --config=configs/evaluate.py --workdir=RUN

* ``config.run_dir`` set: the workdir is the output directory::

    python run.py --config=configs/evaluate.py --config.run_dir=RUN --workdir=OUT

The transfer outputs are never overwritten: an output that contains the run,
or lies in one of its output folders, is refused; an existing evaluation is
replaced only with ``--config.overwrite=True``.

Backends (``flowjax/evaluation/scorers.py``):
  identity.backend      ``facenet`` (default; weights from facenet-pytorch's
                        cache, see identity.facenet.*), ``dlib`` (dlib's ResNet,
                        offline with the .[faces] extra; same person below 0.6;
                        see identity.dlib.*), ``synthetic``, ``fake``
  action_units.backend  ``openface`` (default; FaceLandmarkImg from
                        action_units.openface.binary or
                        $FLOWJAX_OPENFACE_BIN),
                        ``synthetic``, ``fake``, ``none``
  detector.backend      ``none`` (default), ``fake``
  ``fake`` backends are deterministic pixel statistics FOR TESTS ONLY.

Variants (``:a,b``): ``synthetic`` (the synthetic CNN scorers), ``fake``
(the test-only fake scorers and fake detector), ``active`` (AU set = the AUs
each source activates), ``fixed_crop`` (facenet with the fixed crop).

Expected (``:fake`` on the ``configs/transfer.py:smoke`` run, ~5 s): under
``RUN/evaluation/``: ``report.md``, ``evaluation.json``, ``tables/scores.csv``
(18 rows: 3 expressions x 2 targets x 3 alphas), ``tables/best_alpha.csv``
(6 pairs), ``tables/general_trend.csv`` (neutral, smile, surprise, all),
per expression ``identity_distances.csv`` (rows id01_source, id01_target,
id02_source, id02_target; columns 0.00, 0.50, 1.00, source, target) and
``action_units.csv`` (9 rows, 17 AUs), 3 + 3 + 6 figures and
``manifest.json``. With a random-init model the numbers test the pipeline only.
"""

import ml_collections
from ml_collections import config_dict

VARIANTS = {
    "synthetic": {"identity.backend": "synthetic", "action_units.backend": "synthetic"},
    "fake": {"identity.backend": "fake", "action_units.backend": "fake",
             "detector.backend": "fake"},
    "active": {"action_units.aus": "active"},
    "fixed_crop": {"identity.facenet.crop": "fixed"},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "evaluate"
    config.run_dir = config_dict.placeholder(str)  # None: evaluate the workdir in place
    config.out_subdir = "evaluation"
    config.overwrite = False
    config.figures = True

    config.identity = ml_collections.ConfigDict()
    config.identity.backend = "facenet"
    config.identity.facenet = ml_collections.ConfigDict(dict(
        weights="vggface2", weights_path=config_dict.placeholder(str),
        expected_sha256=config_dict.placeholder(str), download=True,
        crop="auto", margin=14, device=config_dict.placeholder(str), batch_size=32,
        random_weights=False, seed=0))  # random_weights: tests only
    config.identity.dlib = ml_collections.ConfigDict(dict(crop="auto", upsample=1, num_jitters=0))
    config.identity.options = ml_collections.ConfigDict()  # kwargs of other backends

    config.action_units = ml_collections.ConfigDict()
    config.action_units.backend = "openface"
    config.action_units.aus = "thesis"  # "thesis" | "active" | "all" | "AU06,AU12,..."
    config.action_units.threshold = 1.0  # activation threshold of aus="active"
    config.action_units.openface = ml_collections.ConfigDict(dict(
        binary=config_dict.placeholder(str), timeout_s=600.0))
    config.action_units.options = ml_collections.ConfigDict()

    config.detector = ml_collections.ConfigDict()
    config.detector.backend = "none"
    config.detector.threshold = 0.5
    config.detector.options = ml_collections.ConfigDict()

    names = [v.strip() for v in (arg or "").split(",") if v.strip()]
    for name in names:
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r} of configs/evaluate.py; choose from "
                             f"{sorted(VARIANTS)}")
        for key, value in VARIANTS[name].items():
            section, *rest = key.split(".")
            node = config[section]
            for part in rest[:-1]:
                node = node[part]
            node[rest[-1]] = value
    return config
