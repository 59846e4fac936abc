"""Expression transfer with Glow (Valenzuela et al., CVPRW 2021).

The source identity's images are the expressions; each is moved onto every
target identity's mean face for every alpha (``flowjax.latents.transfer``), all
decoded in one compiled, chunked sweep (``flowjax.sweep``).

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

Unaligned photos (``--config.align=True``, in all three experiments that take
your photos: transfer, attributes, reconstruction): every photo is detected
and aligned to the model's image size in the layout of OpenAI's CelebA-HQ
Glow (``flowjax.align``: eyes at 0.371/0.629 S across, 0.480 S down) before
anything is written. Photos are read by ``flowjax.data``'s rules (any size,
PNG/JPEG, ``config.data.alpha``); each input's manifest record ends with the
alignment it got (face chosen, eyes moved where, scale, rotation) and the
manifest's ``extra.alignment`` holds the full transforms. Fields:

  align                 False (default): images must already be aligned faces of
                        the model's size (or ``config.data.resize`` them).
                        Refused with generated data and the synthetic study
                        (already aligned renders) and together with
                        ``config.data.resize`` (alignment gives the size).
  align_multiple_faces  several faces in one photo: "largest" (default, the
                        portrait's subject), "most_confident", or "error"; a
                        choice among several is recorded and logged as a
                        warning naming the file and the count. A photo with no
                        face is a ValueError naming it.
  align_detector        "dlib": OpenAI's demo alignment (HOG + 68 landmarks;
                        needs ``pip install -e '.[faces]'``). "mtcnn" (default):
                        facenet-pytorch's MTCNN, which needs a torchvision built
                        for the installed torch: with the CPU torch whose
                        torchvision ops do not register, MTCNN does not import
                        and ``align=True`` fails with
                        ``flowjax.align.mtcnn_import_error()``'s message. Or
                        "module:factory", a function returning a detector
                        (uint8 [H, W, 3] -> boxes [N, 4], scores [N], landmarks
                        [N, 5 or 68, 2]).
  align_detector_options  min_face_size (photo px; MTCNN default 40, dlib 0) and
                        min_score (MTCNN probability, default 0.95; dlib HOG
                        margin, default 0); recorded per photo in the manifest.

Example: ``python run.py --config=configs/transfer.py:repo --config.checkpoint=CKPT
--config.data.identities=photos/ --config.source=actor --config.align=True
--config.evaluation.enabled=False --workdir=runs/transfer-aligned``.

Options: ``config.data.identity_map`` (``{identity: path | [paths]}``, relative
to ``config.data.base_dir``) instead of a root folder; ``config.expressions``
(source image file stems, default all), ``config.targets`` (default all other
identities); ``config.var_eps`` (the eps of the variance methods);
``config.chunk_size`` (grid points per compiled call; 4-8 for 256x256 on a
CPU); ``config.overwrite`` to replace an earlier run.
"""

import importlib.util
import os

import ml_collections
from ml_collections import config_dict

VARIANTS = {
    "repo": dict(method="linear", alphas=("grid", 0.30, 0.50, 0.02)),
    "thesis_half": dict(method="half", alphas=("grid", 0.0, 1.0, 0.1)),
    "variance": dict(method="variance", alphas=(0.25, 0.5, 0.75, 1.0)),
    "std_rescale": dict(method="std_rescale", alphas=("grid", 0.0, 1.0, 0.1)),
    "z": dict(space="z"),
}


def _alphas(spec):
    if spec and spec[0] == "grid":
        from flowjax.latents import alpha_grid

        return alpha_grid(*spec[1:])
    return tuple(spec)


def model_config(**overrides) -> ml_collections.ConfigDict:
    """Glow fields for a random-init model (used only when checkpoint is None)."""
    model = ml_collections.ConfigDict(dict(
        image_size=64, n_levels=3, depth=8, width=512, coupling="additive",
        permutation="invconv", learn_top=True, n_classes=0, n_bits=5, channels=3,
        remat=False, scan_unroll=1, precision="highest"))
    model.update(overrides)
    return model


def base_config() -> ml_collections.ConfigDict:
    """Fields shared with configs/attributes.py and configs/reconstruction.py."""
    config = ml_collections.ConfigDict()
    config.checkpoint = config_dict.placeholder(str)  # save_model export or training workdir
    config.model = model_config()
    config.random_init = ml_collections.ConfigDict(dict(enabled=False, seed=0, ddi=True))
    config.space = "eps"
    config.chunk_size = 8
    config.overwrite = False
    config.progress = config_dict.placeholder(bool)  # None: a bar on long runs
    # Align unaligned photos on the way in (flowjax.align; see the docstring).
    config.align = False
    config.align_multiple_faces = "largest"  # or "most_confident", "error"
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


def parse_variants(arg: str | None, known) -> list[str]:
    names = [v.strip() for v in (arg or "").split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {sorted(known)}")
    return names


_HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_CHECKPOINT = os.path.normpath(os.path.join(_HERE, "..", "weights", "demo", "glow"))


def evaluation_config(variant: str) -> ml_collections.ConfigDict:
    """configs/evaluate.py's config (scorers, AU set), for scoring the run at its end."""
    spec = importlib.util.spec_from_file_location("flowjax_evaluate_config",
                                                  os.path.join(_HERE, "evaluate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config()
    config.experiment = "transfer"
    config.checkpoint = DEMO_CHECKPOINT
    config.data.synthetic = ml_collections.ConfigDict(dict(
        enabled=True, seed=0, n_identities=5, photos_per_identity=20, n_expressions=5,
        nuisance_strength=1.0))
    # Scores at the end of the run (into <workdir>/evaluation/): the synthetic
    # scorers, AU error over the AUs each source expression activates.
    config.evaluation = evaluation_config("synthetic,active")
    config.evaluation.enabled = True
    config.data.identities = config_dict.placeholder(str)  # root/<identity>/*.png
    config.data.identity_map = ml_collections.ConfigDict()  # or {identity: paths}
    config.source = config_dict.placeholder(str)
    config.expressions = ()
    config.targets = ()
    config.method = "linear"
    config.alphas = _alphas(("grid", 0.0, 1.0, 0.1))
    config.var_eps = 1e-3
    config.strips = True
    for name in parse_variants(arg, [*VARIANTS, "smoke"]):
        if name == "smoke":
            smoke(config)
            config.checkpoint = None
            config.data.synthetic.enabled = False
            config.evaluation.enabled = False
            config.source = "id00"
            config.alphas = (0.0, 0.5, 1.0)
            continue
        for key, value in VARIANTS[name].items():
            config[key] = _alphas(value) if key == "alphas" else value
    return config
