"""Train the synthetic scorers (experiments/train_scorers.py): AU regressor, identity embedder, fake detector.

The synthetic stand-ins for OpenFace and facenet (``evaluation.backend
"synthetic"``, ``flowjax/evaluation/synthetic_scorers.py``), trained on
``flowjax.synthetic`` renders at 64x64 with nuisance on. The shipped weights
(``weights/demo/scorers/``) come from::

    python run.py --config=configs/train_scorers.py --workdir=runs/train_scorers \\
        --config.install_dir=weights/demo/scorers

Variants (``--config=configs/train_scorers.py:<variant>``): ``default`` (the
shipped weights), ``hard`` (the hard setting's scorers, ``weights/demo/hard/scorers``;
numbers in weights/demo/README.md) and ``smoke`` (a few steps of each net and
small evaluation sets, to check the pipeline in about a minute; its numbers
mean nothing).

Measured with the command above (shared 2-core CPU with a Glow training job
running, jax 0.10.2; held-out = renders of identities never seen in training,
nuisance strength 1; ``evaluation.json`` in the workdir); two runs gave the
same numbers:

  AU regressor (430,505 parameters, 1.7 MB): 4000 steps x 32 renders (128k
  images), 552 s. MAE on 2000 renders of 200 unseen identities, 0-5 scale:
  mean 0.228; AU01 0.212, AU02 0.154, AU04 0.233, AU06 0.181, AU12 0.268,
  AU15 0.330, AU25 0.365, AU26 0.170, AU45 0.135. The mouth AUs are the
  hardest, probably because in the renderer AU12/AU15 both move the mouth
  corners and AU25/AU26 both open the mouth, so some combinations look alike.
  Identity embedder (205,008 parameters, 0.8 MB, 64-d): 400 steps x 128
  renders (32 identities x 4 photos), 82 s. Verification accuracy 99.3 % on
  4000 test pairs (200 unseen identities; threshold 0.621 chosen on 4000
  validation pairs of 200 other identities, where it scored 99.6 %); true
  accept 99.5 %, false accept 0.95 %; mean distance 0.25 same, 1.39
  different; rank-1 identification among the 1000 test photos 99.0 %.
  Wall time of the whole command 11 min 21 s (about 9 s compilation per net,
  14 s evaluation).

Issue targets: AU MAE < 0.3, verification accuracy > 95 %.

Fake detector (``--config.nets='("detector",)'`` trains only it; the shipped
one came from that, 2026-12-02, same machine under load): 93,873
parameters (0.4 MB), 1400 steps x 48 images (24 clean renders, 18 blends
and splices, 6 of 384 precomputed demo-Glow decodes), 296 s training + 20 s
Glow pools, about 6 min in all. Held out (384 clean renders and fakes from
keys training never draws, 256 Glow decodes from other keys), threshold fixed
at 0.5 (not tuned): ROC AUC 0.918 (fakes against reals), false positives
3.6 %; detection rate per kind: blend of one identity 100 %, of two 94.8 %,
eyes splice 93.8 %, mouth splice 83.3 %, Glow sample 99.2 %, Glow noisy
reconstruction 25.0 % (eps noise std 0.2-0.6 leaves most of them looking
clean: AUC 0.69 for that kind alone). 600 steps gave AUC 0.871.

"""

import ml_collections
from ml_collections import config_dict

from flowjax.runs.runtime import config_module

common = config_module("common", __file__)

VARIANTS = ("default", "smoke", "hard")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = common.one_variant(arg, VARIANTS, "default")
    config = ml_collections.ConfigDict()
    config.experiment = "train_scorers"
    config.seed = 0
    config.nuisance_strength = 1.0
    # Rendering setting of the training renders and the evaluation sets
    # (flowjax.synthetic.SETTINGS); "hard" for weights/demo/hard/scorers.
    config.setting = "easy"
    config.overwrite = False
    config.progress = True
    # Also write the scorer files here (replacing them), e.g. weights/demo/scorers.
    config.install_dir = config_dict.placeholder(str)
    # Which nets to train (and install): any of "au", "identity", "detector".
    config.nets = ("au", "identity", "detector")
    # Full resolution with early strides; the flattened 8x8 map keeps where
    # features are, which is what an AU is. The last conv narrows to 32
    # channels to keep the dense layer (and the shipped file) small.
    config.au = ml_collections.ConfigDict(dict(
        features=(32, 64, 64, 128, 32), strides=(2, 2, 1, 2, 1), hidden=128, input_pool=1,
        batch_size=32, steps=4000, lr=2e-3, warmup=100, weight_decay=1e-4, huber_delta=1.0,
        log_every=100))
    # Identity needs less detail: the input is average-pooled to 32x32.
    config.identity = ml_collections.ConfigDict(dict(
        features=(32, 64, 64, 16), strides=(2, 2, 1, 1), hidden=128, embed_dim=64, input_pool=2,
        identities_per_batch=32, photos_per_identity=4, random_background=True, temperature=0.1,
        steps=400, lr=2e-3, warmup=40, weight_decay=1e-4, log_every=50))
    # The fake detector (experiments/train_scorers_detector.py): per batch `reals`
    # clean renders against `fakes_per_kind` blends of one identity, of two, and
    # splices (eyes or mouth band), plus `glow_per_batch` Glow fakes drawn from a
    # pool of `glow_pool` decodes of `glow` (random eps at a temperature in
    # `glow_temperature`, and real renders' eps plus noise of std in
    # `glow_latent_noise`). Full resolution first: ghost outlines are thin.
    config.detector = ml_collections.ConfigDict(dict(
        features=(16, 32, 32, 32, 16), strides=(1, 2, 2, 2, 1), hidden=64,
        reals=24, fakes_per_kind=6, glow_per_batch=6, blend_weight=(0.25, 0.75), feather=3.0,
        quantize_bits=5, quantize_fraction=0.5,
        glow="weights/demo/glow", glow_pool=384, glow_temperature=(0.6, 1.0),
        glow_latent_noise=(0.2, 0.6), threshold=0.5,
        steps=1400, lr=2e-3, warmup=100, weight_decay=1e-4, log_every=50))
    config.eval = ml_collections.ConfigDict(dict(
        au_seed=10_001, au_images=2000, au_identities=200,
        id_val_seed=10_002, id_test_seed=10_003, id_identities=200, id_photos_per_identity=5,
        id_pairs=2000, pair_seed=0,
        detector_seed=10_004, detector_batches=16, detector_glow_pool=256))
    if variant == "hard":
        # weights/demo/hard/scorers: the hard setting's renders, Glow fakes from the
        # Glow trained on them, and longer training: pose, light, texture and
        # backgrounds make AUs and fakes harder to read (at the easy steps the held-out
        # AU MAE was 0.53 with the loss still falling).
        config.setting = "hard"
        config.au.steps = 10_000  # at 4,000 the held-out MAE was 0.53
        config.detector.glow = "weights/demo/hard/glow"
        config.detector.steps = 4000  # at 1,400 the held-out ROC AUC was 0.890
    if variant == "smoke":
        config.au.update(steps=20, warmup=5, log_every=10)
        config.identity.update(steps=20, warmup=5, log_every=10)
        config.detector.update(steps=10, warmup=2, log_every=5, glow_pool=8, reals=8, fakes_per_kind=2,
                               glow_per_batch=2)
        config.eval.update(au_images=64, au_identities=8, id_identities=8, id_photos_per_identity=4,
                           id_pairs=50, detector_batches=1, detector_glow_pool=4)
    return config
