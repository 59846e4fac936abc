"""Ground-truth benchmark of expression transfer on the synthetic study.

Compares Glow transfer in eps space, in raw z space, the same arithmetic in
pixel space, no transfer (the target's mean face) and the oracle (the target
rendered with the source expression), for every method (``linear``, ``half``,
``variance``, ``std_rescale``), over one alpha grid; see
experiments/synthetic_benchmark.py for the outputs and
flowjax/evaluation/ground_truth.py for the definitions. The study and the
model are those of configs/transfer.py's demo (the shipped demo Glow, 5
targets x 20 photos, 5 source expressions of one actor, seed 0).

Commands::

    python run.py --config=configs/synthetic_benchmark.py --workdir=runs/synthetic-benchmark
    # seconds: a tiny random-init Glow, 5 methods, 3 alphas (tests the plumbing only)
    python run.py --config=configs/synthetic_benchmark.py:smoke --workdir=/tmp/sb-smoke
    # the hard synthetic setting (flowjax.synthetic.hard): needs a Glow and
    # scorers trained on it in weights/demo/hard/{glow,scorers}
    python run.py --config=configs/synthetic_benchmark.py:hard --workdir=runs/synthetic-benchmark-hard
    # the expression moved onto each target's first photo, not its mean face
    python run.py --config=configs/synthetic_benchmark.py:photo --workdir=runs/synthetic-benchmark-photo
    # one benchmark per study seed (0, 1, 2) and target mode (mean face, photo) and their
    # pooled verdict: summary.json, verdict.md (experiments/synthetic_benchmark_verdict.py);
    # with :hard for that setting
    python run.py --config=configs/synthetic_benchmark.py:verdict --workdir=runs/benchmark-verdict

The table it printed on the project's CPU is committed in
docs/synthetic_benchmark.md.

Alphas: 0 to 3 in steps of 0.1 for every method: the best alpha by AU error
often lies above 1 (overshoot), and ``half`` needs twice the linear alpha.

Protocol (experiments/synthetic_benchmark.py): the study has 2 x
``study.n_identities`` targets, the first half validation, the second test;
per (space, method, expression) alpha is chosen on the validation targets and
the test targets are reported at it.

``identity_slack`` 0.1: every method is held to the same identity level when
its alpha is chosen: a validation mean d(target) of at most
``d_t + 0.1 * (d_s - d_t)``, where ``d_t`` and ``d_s`` are the distances of the
target's own decoded mean face (the ``none`` reference) to the target's and to
the source actor's centroid on the validation targets
(``alpha_choice.identity_cap_from_slack``): a transfer may drift a tenth of the
way from the target's mean face towards the source actor. A fraction, not a
distance, because the two settings' identity embedders have different scales
(measured: the cap came out at 0.659 on easy and 0.778 on hard). ``None`` removes the cap (the unconstrained table is written either way).

``subspace_rank`` 9: the synthetic faces move along 9 Action Units
(``flowjax.synthetic.AU_NAMES``), so 9 principal directions of the actor's 20
photos' displacements could hold every expression were the AUs linear in the
latent, and the remaining 10 directions are mostly nuisance (pose, light,
noise) that a transfer should not carry; at most the number of photos.
"""

import os

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    from flowjax.transfer.latents import alpha_grid

    demo = config_module("transfer", __file__).get_config()
    config = ml_collections.ConfigDict()
    config.experiment = "synthetic_benchmark"
    config.checkpoint = demo.checkpoint
    config.model = demo.model  # only for a random init (config.checkpoint None)
    config.random_init = demo.random_init
    config.study = demo.data.synthetic  # the demo's study, one definition
    del config.study["enabled"]
    config.scorers_dir = config_dict.placeholder(str)  # None: weights/demo/scorers
    config.methods = ("linear", "half", "variance", "std_rescale", "fine", "top", "subspace")
    # Method "levels": one weight per latent level of the model (level 0 first); e.g.
    # (1.0, 1.0, 0.0) is "fine" on a 3-level Glow. Unused by the other methods.
    config.level_weights = ()
    config.subspace_rank = 9  # latents.DEFAULT_SUBSPACE_RANK: one direction per synthetic AU
    # How far (a fraction of the way to the source actor) a transfer's validation mean
    # d(target) may drift when its alpha is chosen (None: no cap); see the docstring.
    config.identity_slack = 0.1
    # What receives the expression: "mean" (each target's decoded mean face, the thesis')
    # or "photo" (each target's photo target_photo, in its own pose and light).
    config.target = "mean"
    config.target_photo = 0
    config.spaces = ("eps", "z", "pixel")
    config.alphas = alpha_grid(0.0, 3.0, 0.1)
    config.var_eps = demo.var_eps
    config.au_threshold = demo.evaluation.action_units.threshold
    config.chunk_size = 32
    config.figures = True
    config.overwrite = False
    config.progress = config_dict.placeholder(bool)
    for variant in common.parse_variants(arg, ["smoke", "hard", "verdict", "photo"]):
        if variant == "verdict":
            # One benchmark per study seed and target mode, pooled into summary.json and
            # verdict.md (experiments/synthetic_benchmark_verdict.py).
            config.experiment = "synthetic_benchmark_verdict"
            config.study_seeds = (0, 1, 2)
            config.target_modes = ("mean", "photo")
            continue
        if variant == "photo":
            config.target = "photo"
            continue
        if variant == "hard":
            # The hard synthetic setting, scored by a Glow and scorers trained on it.
            config.study.setting = "hard"
            hard_weights = os.path.join(os.path.dirname(common.DEMO_CHECKPOINT), "hard")  # weights/demo/hard
            config.checkpoint = os.path.join(hard_weights, "glow")
            config.scorers_dir = os.path.join(hard_weights, "scorers")
            continue
        config.checkpoint = None
        config.random_init.enabled = True
        config.model = common.model_config(image_size=64, n_levels=2, depth=1, width=8)
        config.methods = ("linear", "half", "fine", "levels", "subspace")
        config.level_weights = (1.0, 0.5)  # the smoke model's 2 levels
        config.subspace_rank = 3
        config.alphas = (0.0, 0.5, 1.0)
        # 2 validation + 2 test targets x 6 photos, 3 expressions: the plumbing only.
        config.study.n_identities, config.study.photos_per_identity = 2, 6
        config.study.n_expressions = 3
    return config
