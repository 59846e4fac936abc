"""Evaluate an expression-transfer run: identity distances, AU errors, best alpha.

Reads a finished ``experiments/transfer.py`` run directory and writes tables,
figures and ``report.md`` (layout: ``flowjax/evaluation/pipeline.py``).

Where the output goes (one rule):

* ``config.run_dir`` unset: the workdir IS the transfer run; the evaluation is
  written in place to ``<workdir>/<config.out_subdir>`` (``evaluation/``)::

    python experiments/evaluate.py --config=configs/evaluate.py --workdir=RUN

* ``config.run_dir`` set: the workdir is the output directory::

    python run.py --config=configs/evaluate.py --config.run_dir=RUN --workdir=OUT

* ``config.study`` set (a study spec, ``docs/study_format.md``): any study,
  e.g. images made by another tool with OpenFace and facenet already run on
  them; the workdir is the output directory::

    python run.py --config=configs/evaluate.py:study --config.study=SPEC --workdir=OUT

  The ``study`` variant reads precomputed OpenFace CSVs and identity
  distances (``precomputed`` backends) and also writes the published
  layout's tables (``tables/published/``); override either backend as usual
  (``--config.identity.backend=none`` for an AU-only evaluation).

The transfer outputs are never overwritten: an output that contains the run,
or lies in one of its output folders, is refused; an existing evaluation is
replaced only with ``--config.overwrite=True``.

Backends (facenet, dlib, OpenFace, precomputed, synthetic, fake, your own) and their
options: docs/configs.md.

Variants (``:a,b``): ``study`` (precomputed scorers, published tables; needs
``--config.study``), ``synthetic`` (the synthetic CNN scorers and fake
detector), ``fake``
(the test-only fake scorers and fake detector), ``active`` (AU set = the AUs
each source activates), ``fixed_crop`` (facenet with the fixed crop).

Expected (``:fake`` on the ``configs/transfer.py:smoke`` run, ~5 s): under
``RUN/evaluation/``: ``report.md``, ``evaluation.json``, ``tables/scores.csv``
(18 rows: 3 expressions x 2 targets x 3 alphas), ``tables/best_alpha.csv``
(6 pairs), ``tables/general_trend.csv`` (neutral, smile, surprise, all),
``tables/per_alpha.csv`` (12 rows: neutral, smile, surprise, all x 3 alphas),
per expression ``identity_distances.csv`` (rows id01_source, id01_target,
id02_source, id02_target; columns 0.00, 0.50, 1.00, source, target) and
``action_units.csv`` (9 rows, 17 AUs), 3 + 3 + 6 figures, ``figures/per_alpha.png`` and
``manifest.json``. With a random-init model the numbers test the pipeline only.

Expected (``:study`` on the test suite's study in the published layout, 2
expressions x 2 targets x 3 alphas, ~20 s on 2 busy cores), made and run by::

    python -c "import sys; sys.path.insert(0, 'tests'); import test_study as t; \
    from pathlib import Path; t.make_published_study(Path('/tmp/s/study')); \
    t.study.write_spec('/tmp/s/study.json', {**t.SPEC, 'root': 'study'})"
    python run.py --config=configs/evaluate.py:study --config.study=/tmp/s/study.json \
        --workdir=/tmp/s/out

``tables/general_trend.csv`` row ``all``: 4 pairs, mean best alpha 0.36, mean
AU error 1.2034375, mean distance to the target mean 0.960925; and
``tables/published/`` (likeliness and AU tables per expression).
"""

import ast
import re
import sys

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

VARIANTS = {
    "study": {"identity.backend": "precomputed", "action_units.backend": "precomputed",
              "published_tables": True},
    "synthetic": {"identity.backend": "synthetic", "action_units.backend": "synthetic",
                  "detector.backend": "synthetic"},
    "fake": {"identity.backend": "fake", "action_units.backend": "fake",
             "detector.backend": "fake"},
    "active": {"action_units.aus": "active"},
    "fixed_crop": {"identity.facenet.crop": "fixed"},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "evaluate"
    config.run_dir = config_dict.placeholder(str)  # None: evaluate the workdir in place
    config.study = config_dict.placeholder(str)  # a study spec (docs/study_format.md)
    config.out_subdir = "evaluation"
    config.overwrite = False
    config.figures = True
    config.published_tables = False  # also write tables/published/ (the published layout)

    config.identity = ml_collections.ConfigDict()
    config.identity.backend = "facenet"
    config.identity.facenet = ml_collections.ConfigDict(dict(
        weights="vggface2", weights_path=config_dict.placeholder(str),
        expected_sha256=config_dict.placeholder(str), download=True,
        crop="auto", margin=14, device=config_dict.placeholder(str), batch_size=32,
        random_weights=False, seed=0))  # random_weights: tests only
    config.identity.dlib = ml_collections.ConfigDict(dict(crop="auto", upsample=1, num_jitters=0))
    # Where facenet's or dlib's detector finds no face: "crop" embeds the fixed box (the
    # default), "nan" makes that image's distances NaN; scores.csv says which per image.
    config.identity.fallback = "crop"
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

    for name in config_module("common", __file__).parse_variants(arg, VARIANTS):
        for key, value in VARIANTS[name].items():
            *path, last = key.split(".")
            node = config
            for part in path:
                node = node[part]
            node[last] = value
    add_command_line_options(config, sys.argv)
    return config


_OPTION_FLAG = re.compile(r"--config\.((?:[A-Za-z_]\w*\.)*)options\.([A-Za-z_]\w*)(?:=(.*))?")


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a plain string, e.g. a path


def add_command_line_options(config: ml_collections.ConfigDict, argv: list[str]) -> None:
    """Declares the ``<section>.options.KEY`` that ``argv`` sets, so a custom
    backend's options can be given on the command line (ml_collections refuses
    keys the config does not have); the flag itself then sets the value."""
    for i, arg in enumerate(argv):
        match = _OPTION_FLAG.fullmatch(arg)
        if match is None:
            continue
        prefix, key, value = match.groups()
        if value is None:  # "--config.x.options.KEY VALUE"
            value = argv[i + 1] if i + 1 < len(argv) else ""
        parts = prefix.rstrip(".").split(".") if prefix else []
        # The longest tail that is a section here: "evaluation.action_units" (this config
        # nested in configs/transfer.py) resolves to "action_units".
        for start in range(len(parts) + 1):
            node = _section(config, parts[start:])
            if node is not None and isinstance(node.get("options"),
                                               ml_collections.ConfigDict):
                if key not in node.options:
                    node.options[key] = _literal(value)
                break  # ml_collections itself names a section that does not exist


def _section(config: ml_collections.ConfigDict, parts: list[str]):
    node = config
    for part in parts:
        if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
            return None
        node = node[part]
    return node
