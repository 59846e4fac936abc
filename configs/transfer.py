"""Expression transfer with Glow (Valenzuela et al., CVPRW 2021).

The source identity's images are the expressions; each is moved onto every
target identity's mean face for every alpha (``flowjax.transfer.latents.transfer``), all
decoded in one compiled, chunked sweep (``flowjax.transfer.sweep``).

Commands::

    # the default: the shipped demo Glow (weights/demo/glow) on the synthetic
    # study (5 identities x 20 photos, 5 source expressions of one actor,
    # alphas 0..1), see "Demo" below:
    python run.py --config=configs/transfer.py --workdir=runs/transfer-demo

    # seconds, on generated cartoon faces and a random-init 32x32 Glow:
    python run.py --config=configs/transfer.py:smoke --workdir=/tmp/transfer-smoke

    # the repository's grid on your data (root/<identity>/*.png, aligned faces
    # of the model's size) with a trained checkpoint:
    python run.py --config=configs/transfer.py:repo --config.checkpoint=CKPT \\
        --config.data.identities=faces/ --config.source=actor --workdir=runs/transfer

Demo (no variant, no data given): ``config.data.synthetic`` renders the seed
study's setting with ``flowjax.synthetic`` (known identities and Action Units;
targets ``id00..id04`` with 20 mild photos each, the actor ``source`` with 20
mild photos and the expressions smile, surprise, anger, sadness, blink), writes
it to ``inputs/`` with its ground truth (``inputs/ground_truth.json``) and
transfers with the demo checkpoint. Giving ``config.data.identities`` or
``config.data.identity_map`` replaces the synthetic study with your data. At
the end the run is scored (``config.evaluation``, configs/evaluate.py's
config: ``<workdir>/evaluation/``) with the synthetic scorers, which only
understand flowjax.synthetic faces: with your own data pass
``--config.evaluation.enabled=False`` (then ``experiments/evaluate.py`` with
facenet/OpenFace) or choose those backends here.

Expected (default, measured on the project's idle 2-core CPU): 50-60 s wall;
275 transfer PNGs (5 expressions x 5 targets x 11 alphas), 25 strips, 6 mean
faces, 125 inputs, and ``evaluation/``. Mean over the 25 pairs: AU error
(synthetic scorer, the AUs each source activates) 3.00 at alpha 0, 2.07 at
0.5, 0.50 at 1.0; identity distance to the target mean 0.77 and to the source
mean 1.57 at alpha 1; best alpha 0.94 on average
(``evaluation/tables/general_trend.csv``).

Variants (``:a,b`` applies several, in order):
  repo         ``linear``, alphas 0.30..0.50 step 0.02 (11 values): the
               repository's grid. The default.
  thesis_half  ``half`` (expression vector halved, the thesis' best linear
               result), alphas 0.0..1.0 step 0.1.
  variance     the thesis' variance-normalised formula, alphas 0.25..1.0
               (alpha 1 is the published formula).
  std_rescale  the variance method's scale-preserving variant, alphas 0.0..1.0.
  fine         the expression only in the finer latent levels (weight 0 on the
               top level: ``m_t + alpha * W (s - m_s)``), alphas 0.0..2.0.
  subspace     the expression projected on the top ``subspace_rank`` (9)
               principal directions of the source's images, alphas 0.0..2.0.
               Method ``levels`` takes ``--config.level_weights`` (one per level).
  z            arithmetic in raw z instead of standardized eps.
  smoke        generated faces (3 identities x neutral/smile/surprise, 32x32),
               a random-init Glow (32x32, 2 levels, depth 2, width 16, DDI on
               the inputs), alphas (0, 0.5, 1).

Expected (``:smoke``, ~10-20 s on 2 CPU cores, most of it compiling): the 3
images of source id00 (neutral, smile, surprise) x 2 targets (id01, id02) x 3
alphas = 18 transfer PNGs, 6 strips, 3 mean faces, the 9 generated inputs
under ``inputs/``, ``transfer.json`` and ``manifest.json``; the manifest's
model entry says RANDOM INIT. With a checkpoint, alpha 0 shows each target's mean face and
larger alphas carry more of the source's expression.

Fields, options and the alignment of unaligned photos (``--config.align=True``):
docs/configs.md.
"""

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)

VARIANTS = {
    "repo": dict(method="linear", alphas=("grid", 0.30, 0.50, 0.02)),
    "thesis_half": dict(method="half", alphas=("grid", 0.0, 1.0, 0.1)),
    "variance": dict(method="variance", alphas=(0.25, 0.5, 0.75, 1.0)),
    "std_rescale": dict(method="std_rescale", alphas=("grid", 0.0, 1.0, 0.1)),
    "fine": dict(method="fine", alphas=("grid", 0.0, 2.0, 0.2)),
    "subspace": dict(method="subspace", alphas=("grid", 0.0, 2.0, 0.2)),
    "z": dict(space="z"),
}


def _alphas(spec):
    if spec and spec[0] == "grid":
        from flowjax.transfer.latents import alpha_grid

        return alpha_grid(*spec[1:])
    return tuple(spec)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = common.base_config()
    config.experiment = "transfer"
    config.checkpoint = common.DEMO_CHECKPOINT
    config.data.synthetic = ml_collections.ConfigDict(dict(
        enabled=True, seed=0, n_identities=5, photos_per_identity=20, n_expressions=5,
        nuisance_strength=1.0, setting="easy"))  # setting: flowjax.synthetic.SETTINGS
    # Scores at the end of the run (into <workdir>/evaluation/): the synthetic
    # scorers, AU error over the AUs each source expression activates.
    config.evaluation = common.evaluation_config("synthetic,active")
    config.evaluation.enabled = True
    config.data.identities = config_dict.placeholder(str)  # root/<identity>/*.png
    config.data.identity_map = ml_collections.ConfigDict()  # or {identity: paths}
    config.source = config_dict.placeholder(str)
    config.expressions = ()
    config.targets = ()
    # Where the expression goes: "mean" (each target's decoded mean face, the thesis'
    # choice) or "photos" (each of the target's own photos: z_photo + alpha (s - m_s)).
    config.target = "mean"
    config.method = "linear"
    config.alphas = _alphas(("grid", 0.0, 1.0, 0.1))
    config.var_eps = 1e-3
    config.level_weights = ()  # method "levels": one weight per latent level, level 0 first
    config.subspace_rank = 9  # method "subspace": principal directions kept (<= source images)
    config.strips = True
    for name in common.parse_variants(arg, [*VARIANTS, "smoke"]):
        if name == "smoke":
            common.smoke(config)
            config.checkpoint = None
            config.data.synthetic.enabled = False
            config.evaluation.enabled = False
            config.source = "id00"
            config.alphas = (0.0, 0.5, 1.0)
            continue
        for key, value in VARIANTS[name].items():
            config[key] = _alphas(value) if key == "alphas" else value
    return config
