"""Training Glow (experiments/train.py): a CPU smoke run, 64x64, and OpenAI's CelebA-HQ run.

Variants (``--config=configs/train.py:<variant>``):
  tiny       16x16, 2 levels, depth 2, width 16, batch 8, 50 steps, on 288
             generated images (``flowjax.training.datasets.generated_images``): a
             CPU smoke run (1 s of training after ~35 s of compilation). It uses
             the ``shuffle`` permutation, whose indices live in the "constants"
             collection, so the smoke run covers that path (``invconv`` trains
             as well: the ``demo`` model below uses it).
  64         (the default) 64x64 faces from ``flowjax.synthetic`` (or
             ``--config.data.source=folder --config.data.folder=DIR``):
             3 levels, depth 16, width 256, additive, invconv, 5 bits, batch 64,
             OpenAI's optimizer with 200 warmup steps.
  demo       the shipped demo model (weights/demo/glow): 64x64, 3 levels,
             depth 8, width 64, on 24,000 faces from flowjax.synthetic, batch
             32, Adam 1e-3 with 100 warmup steps, 1,250 steps. Measured here
             (2-core CPU shared with other jobs): 58 min at a median 13.8
             images/s; train bits/dim 3.21 (step 25) -> 1.19 (step 1250),
             held-out 1.33 (step 500) and 1.21 (step 1000). On the idle CPU
             (``--config.num_steps=100``, 266 s wall): rendering and init
             ~75 s, compile 29 s, then 1.62 s per step (19.8 images/s), so
             the full run takes about 36 min (1,250 x 1.62 s + setup). Then
             ``python -m tools.export_model --workdir=W --out=DIR``.
  reference_hard
             issue #29's reference Glow for the hard synthetic faces: 64x64, 3
             levels, depth 8, width 96, affine coupling, on 48,000 hard renders,
             batch 32, Adam 1e-3 (cosine decay over the last 2,500 steps), 6,500
             steps (about 5 h on the 2-core CPU, run in
             resumed pieces: the workdir resumes from its latest checkpoint).
  celeba256  OpenAI's CelebA-HQ hyperparameters (GLOW_SPEC §1, §6): 6 levels,
             depth 32, width 512, additive, invconv, learned top, 5 bits; global
             batch 40 (OpenAI: 1 image on each of 40 GPUs), OpenAI's Adamax with
             lr 1e-3, beta2 0.95, about 200 warmup iterations, no decay;
             rematerialised flow steps (OpenAI used gradient checkpointing).
             Needs ``--config.data.folder`` (aligned 256x256 faces).

Run (the workdir resumes from its latest checkpoint if it exists)::

    python run.py --config=configs/train.py:tiny --workdir=/tmp/glow-tiny

Expected for ``:tiny`` (measured with the command above on the shared 2-core
CPU, jax 0.10.2, default XLA flags): train bits/dim 5.18 at step 0 -> 3.78 at
step 49 (mean of steps 40-49: 3.99), held-out 3.94; data-dependent init 13 s
and train-step compilation 19 s (both mostly XLA compile time), then 0.016 s
per steady-state step (about 500 images/s); ``summary.json`` in the workdir has
these numbers. The tests run the same config with
``--xla_backend_optimization_level=0`` (tests/conftest.py): faster
compilation, but about 0.3 s per step, because the backward pass of a
convolution inside ``nn.scan`` compiles to slow code at that level.

Your own folder of aligned faces (PNG/JPEG, searched recursively), e.g. with the
demo model's settings::

    python run.py --config=configs/train.py:demo --config.data.source=folder \
      --config.data.folder=DIR --workdir=runs/train-mine

Images of another size need ``--config.data.resize=lanczos`` (or
``--config.model.image_size=N``). Left unset, the held-out set
(``data.num_eval``: 512) and the init batch (``init_batch_size``: 256) shrink
to fit a small folder (at most 1 in 10 images held out, one training batch
left), and the log says what was chosen; a number you set is used as it is or
refused naming the largest that fits. Every config error names the flag to
change and comes before the workdir is created (flowjax.training.config_checks).

Data sources, the model fields (``--config.model.flow_step=...``), the execution
settings a run may change on resume (``remat``, ``scan_unroll``, ``precision``:
training runs an unset precision at "default", its sample grids at "highest")
and multi-host training: docs/configs.md.
"""

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)

VARIANTS = ("tiny", "64", "celeba256", "demo", "demo_hard", "reference_hard")


def _base() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "train"
    config.seed = 0
    config.distributed = False
    config.progress = True
    config.model = common.model_config(image_size=64, n_levels=3, depth=16, width=256)
    config.data = ml_collections.ConfigDict(dict(
        source="synthetic", folder=config_dict.placeholder(str),
        eval_folder=config_dict.placeholder(str), resize=config_dict.placeholder(str),
        alpha="composite", validate="first", num_train=20_000, prefetch=2,
        synthetic_setting="easy"))  # source="synthetic": flowjax.synthetic.SETTINGS
    # Held-out images and the data-dependent init batch; None fits the data (512 and 256,
    # fewer for a small folder; flowjax.training.config_checks), and the log says so.
    config.data.num_eval = config_dict.placeholder(int)
    config.batch_size = 64
    config.init_batch_size = config_dict.placeholder(int)
    config.eval_batch_size = 64
    config.num_steps = 100_000
    config.optimizer = ml_collections.ConfigDict(dict(
        name="openai_adamax", learning_rate=1e-3, warmup_steps=200, b1=0.9, b2=0.95, eps=1e-8,
        grad_clip_norm=0.0, decay_start=0, decay_steps=0, final_lr_fraction=0.0))
    # flowjax.training.optimizers.OptimizerSpec (names: OPTIMIZERS); decay_steps 0: no decay
    # Steps in a row whose loss, gradient or new parameters are not finite that are
    # skipped (no update, logged) before training stops; 0 stops at the first.
    config.skip_nonfinite_steps = 0
    config.log_every = 50
    config.eval_every = 2_000
    config.checkpoint = ml_collections.ConfigDict(dict(every=1_000, keep=3, keep_every=0,
                                                       async_save=True))
    config.samples = ml_collections.ConfigDict(dict(n=8, temperatures=(0.5, 0.7, 0.9, 1.0)))
    return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = common.one_variant(arg, VARIANTS, "64")
    config = _base()
    if variant == "tiny":
        config.model.update(image_size=16, n_levels=2, depth=2, width=16, permutation="shuffle")
        config.data.update(source="generated", num_train=256, num_eval=32)
        config.batch_size = 8
        config.init_batch_size = 32
        config.eval_batch_size = 16
        config.num_steps = 50
        config.optimizer.update(name="adamax", learning_rate=3e-3, warmup_steps=5, b2=0.999)
        config.log_every = 10
        config.eval_every = 50
        config.checkpoint.update(every=25, keep=2)
        config.samples.update(n=4, temperatures=(0.5, 0.7, 1.0))
    elif variant in ("demo", "demo_hard"):
        # The shipped demo model (weights/demo/glow): small enough to train on
        # a 2-core CPU in well under an hour; steps unrolled (see Glow.scan_unroll).
        config.model.update(image_size=64, n_levels=3, depth=8, width=64, scan_unroll=8)
        config.data.update(source="synthetic", num_train=24_000)  # 512 held out
        config.batch_size = 32  # the init batch: 256 images
        config.eval_batch_size = 128
        config.num_steps = 1_250  # 40,000 images: 1.7 passes over the 24,000 renders
        config.optimizer.update(name="adam", learning_rate=1e-3, warmup_steps=100)
        config.log_every = 25
        config.eval_every = 500
        config.checkpoint.update(every=250, keep=2)
        config.samples.update(n=8, temperatures=(0.0, 0.5, 0.7, 1.0))
        if variant == "demo_hard":  # the same model and schedule on the hard synthetic faces
            config.data.synthetic_setting = "hard"
    elif variant == "reference_hard":
        # Issue #29's reference model for the hard faces, trained in resumed pieces on
        # the CPU: affine coupling, width 96 (demo: additive, 64), twice the renders,
        # 6,500 steps. Probed on the idle 2-core CPU (30 steps, batch 32): 2.7 s per
        # step (width 64 affine 1.5 s, width 128 additive 2.6 s), 26 s compilation.
        config.model.update(image_size=64, n_levels=3, depth=8, width=96, coupling="affine",
                            scan_unroll=8)
        config.data.update(source="synthetic", num_train=48_000, synthetic_setting="hard")
        config.batch_size = 32
        config.eval_batch_size = 128
        config.num_steps = 6_500
        # Constant rate to step 4,000, then a cosine decay to 5% by the last step. The run
        # began with 8,000 steps and no decay; the decay and the shorter schedule came at
        # step ~1,800 (the rate before 4,000 is the same), when held-out bits/dim
        # (1.505, 1.387, 1.346 at steps 500, 1,000, 1,500) pointed to about 1.25 by 6,500.
        config.optimizer.update(name="adam", learning_rate=1e-3, warmup_steps=200,
                                decay_start=4_000, decay_steps=2_500, final_lr_fraction=0.05)
        config.skip_nonfinite_steps = 5  # a rare affine blow-up skips its step, not the run
        config.log_every = 50
        config.eval_every = 500
        config.checkpoint.update(every=250, keep=2, keep_every=2_000)
        config.samples.update(n=8, temperatures=(0.0, 0.5, 0.7, 1.0))
    elif variant == "celeba256":
        config.model.update(**common.OPENAI_CELEBA256, remat=True)
        config.data.update(source="folder", num_eval=3_000)
        config.batch_size = 40
        config.init_batch_size = 40
        config.eval_batch_size = 40
        config.num_steps = 1_000_000
        config.optimizer.update(warmup_steps=200)
        config.log_every = 100
        config.eval_every = 5_000
        config.checkpoint.update(every=2_000, keep=3, keep_every=50_000)
        config.samples.update(n=6)
    return config
