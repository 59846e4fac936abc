"""The fake detector's part of ``experiments/train_scorers.py``: batches, training, evaluation.

A batch (:func:`detector_batch`) holds ``c.reals`` clean renders (label 0) and
fakes (label 1) of every kind in :data:`KIND_NAMES`: blends of two photos of
one identity and of two identities (weight uniform in ``c.blend_weight``),
splices of the eyes or the mouth band from another photo (of the same
identity for even rows, another for odd ones), and Glow decodes drawn from a
precomputed pool (:func:`glow_pool`). No fake is a transfer (latent or pixel
arithmetic between expressions): those are what the benchmark compares.

Evaluation (:func:`evaluate_detector`) uses batches from a key training never
draws (so identities never seen) and a Glow pool made from other keys; it
reports ROC AUC (fakes against reals), the false-positive rate on reals and
the detection rate of each kind at ``c.threshold`` (fixed, default 0.5, not
tuned on these numbers).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from flowjax.evaluation import fakes
from flowjax.evaluation import synthetic_scorers as ss

KIND_NAMES = ("real", "blend_same_identity", "blend_other_identity", "splice_eyes",
              "splice_mouth", "glow_sample", "glow_noisy_reconstruction")
GLOW_SAMPLE, GLOW_NOISY = KIND_NAMES.index("glow_sample"), KIND_NAMES.index("glow_noisy_reconstruction")


def detector_model(c: Any) -> ss.ScorerCNN:
    return ss.ScorerCNN(features=tuple(c.features), strides=tuple(c.strides), hidden=c.hidden,
                        outputs=1, input_pool=1)


def detector_batch(key: jax.Array, c: Any, strength: float, render_batch: Any
                   ) -> tuple[jax.Array, jax.Array]:
    """uint8 images and their ``KIND_NAMES`` index (0 real) for reals, blends and splices
    (not the Glow fakes). ``render_batch`` is ``train_scorers.render_batch`` (with its
    setting); like it, call this outside a jit."""
    k_real, k_pair, k_w, k_band, k_q = jax.random.split(key, 5)
    m = c.fakes_per_kind
    reals, _, _ = render_batch(k_real, c.reals, 1, strength)
    pairs, _, _ = render_batch(k_pair, 3 * m, 2, strength)
    a, b = pairs[0::2], pairs[1::2]  # a[i], b[i]: one identity in two photos
    b_other = jnp.roll(b, 1, axis=0)  # b_other[i]: another identity
    w = jax.random.uniform(k_w, (2 * m,), minval=c.blend_weight[0], maxval=c.blend_weight[1])
    mouth = jax.random.bernoulli(k_band, 0.5, (m,))
    mask = jnp.where(mouth[:, None, None], fakes.band_mask("mouth", ss.IMAGE_SIZE, c.feather),
                     fakes.band_mask("eyes", ss.IMAGE_SIZE, c.feather))
    same_donor = (jnp.arange(m) % 2 == 0)[:, None, None, None]
    donor = jnp.where(same_donor, b[2 * m:], b_other[2 * m:])
    images = jnp.concatenate([reals, fakes.blend(a[:m], b[:m], w[:m]),
                              fakes.blend(a[m:2 * m], b_other[m:2 * m], w[m:]),
                              fakes.splice(a[2 * m:], donor, mask)])
    kinds = jnp.concatenate([jnp.zeros(c.reals, jnp.int32), jnp.full(m, 1), jnp.full(m, 2),
                             jnp.where(mouth, 4, 3)])
    return _maybe_quantize(k_q, images, c), kinds


def _maybe_quantize(key: jax.Array, images: jax.Array, c: Any) -> jax.Array:
    """A random ``c.quantize_fraction`` of the images at ``c.quantize_bits`` (the Glow's)."""
    pick = jax.random.bernoulli(key, c.quantize_fraction, (len(images),))[:, None, None, None]
    return jnp.where(pick, fakes.quantize(images, c.quantize_bits), images)


def glow_pool(model: Any, variables: Any, key: jax.Array, n: int, c: Any, strength: float,
              render_batch: Any) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Glow fakes (half samples, half noisy reconstructions of fresh renders)
    and their ``KIND_NAMES`` index."""
    k_sample, k_render, k_noise = jax.random.split(key, 3)
    n_sample = n // 2
    samples = fakes.glow_samples(model, variables, k_sample, n_sample, c.glow_temperature)
    renders = np.asarray(render_batch(k_render, n - n_sample, 1, strength)[0])
    noisy = fakes.glow_noisy_reconstructions(model, variables, renders, k_noise, c.glow_latent_noise)
    kinds = np.r_[np.full(n_sample, GLOW_SAMPLE), np.full(n - n_sample, GLOW_NOISY)].astype(np.int32)
    return np.concatenate([samples, noisy]), kinds


def detector_loss(model: ss.ScorerCNN, c: Any) -> Any:
    """``loss(params, key, images, kinds, pool_images, pool_kinds)``: mean binary
    cross-entropy, fake = 1, over the step's ``detector_batch`` and ``c.glow_per_batch``
    Glow fakes drawn from the pool with ``key``."""

    def loss(params, key, images, kinds, pool_images, pool_kinds):
        pick = jax.random.randint(jax.random.fold_in(key, 1), (c.glow_per_batch,), 0,
                                  len(pool_images))
        images = jnp.concatenate([images, pool_images[pick]])
        labels = jnp.concatenate([kinds, pool_kinds[pick]]) > 0
        logits = model.apply(params, images)[:, 0]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32)))

    return loss


def roc_auc(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    scores, is_positive = np.asarray(scores, np.float64), np.asarray(is_positive, bool)
    pos, neg = scores[is_positive], scores[~is_positive]
    if not len(pos) or not len(neg):
        raise ValueError(f"ROC AUC needs positives and negatives; got {len(pos)} and {len(neg)}")
    greater = (pos[:, None] > neg[None]).mean()
    ties = (pos[:, None] == neg[None]).mean()
    return float(greater + 0.5 * ties)


def evaluate_detector(predict_logits: Any, images: np.ndarray, kinds: np.ndarray,
                      threshold: float) -> dict[str, Any]:
    """AUC, false-positive rate on reals and per-kind detection rate at ``threshold``."""
    logits = np.asarray(predict_logits(images), np.float64)[:, 0]
    p_fake = 1.0 / (1.0 + np.exp(-logits))
    flagged = p_fake >= threshold
    real = kinds == 0
    def against_reals(k: int) -> float:
        rows = (kinds == k) | real
        return roc_auc(logits[rows], kinds[rows] > 0)

    per_kind = {name: {"detection_rate": float(flagged[kinds == k].mean()),
                       "auc_against_reals": against_reals(k),
                       "mean_realism": float(ss.realism_from_logits(logits[kinds == k]).mean()),
                       "n_images": int(np.sum(kinds == k))}
                for k, name in enumerate(KIND_NAMES) if k > 0 and np.any(kinds == k)}
    return {
        "threshold": float(threshold),
        "threshold_choice": "fixed (config.detector.threshold), not tuned on held-out data",
        "auc": roc_auc(logits, ~real),
        "false_positive_rate": float(flagged[real].mean()),
        "mean_realism_reals": float(ss.realism_from_logits(logits[real]).mean()),
        "n_reals": int(real.sum()),
        "per_kind": per_kind,
    }


def held_out_set(c: Any, e: Any, strength: float, render_batch: Any, pool: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``e.detector_batches`` batches from keys training never draws, plus the held-out Glow pool."""
    parts = [detector_batch(jax.random.fold_in(jax.random.key(e.detector_seed), i), c, strength,
                            render_batch)
             for i in range(e.detector_batches)]
    images = np.concatenate([np.asarray(p[0]) for p in parts] + [pool[0]])
    kinds = np.concatenate([np.asarray(p[1]) for p in parts] + [pool[1]])
    return images, kinds
