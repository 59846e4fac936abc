"""Train the synthetic AU scorer, identity embedder and fake detector; evaluate on unseen identities.

``python run.py --config=configs/train_scorers.py --workdir=DIR`` (numbers and
variants in the config's docstring). Every net learns from fresh renders
(``flowjax.synthetic`` in ``config.setting``; new identities, ``"mixed"``
expressions and nuisance every step), so it never sees an image twice and the
data cost no host memory. Each step's batch is rendered by its own compiled
calls before the jitted train step, not inside it: the hard setting's renderer
is fast only as two programs (``flowjax.synthetic.hard.render_jit``), and
traced into a caller's program it draws tens of faces a second.

* AU regressor: Huber loss on the 9 intensities (0-5 scale).
* Fake detector (``config.detector``): binary cross-entropy, clean renders
  against the generic fakes of :mod:`flowjax.evaluation.fakes` (blends,
  splices, Glow decodes; never a transfer, which the benchmark compares).
  Blends and splices are made in the step; the Glow fakes are slow, so a pool
  is decoded once before training (and another, from other keys, for the
  evaluation). Half of every batch, reals and fakes alike, is quantized to
  the Glow's bit depth so that bit depth tells nothing.
* Identity embedder: a supervised contrastive (InfoNCE) loss on cosine
  similarities; each step renders ``identities_per_batch`` new identities,
  ``photos_per_identity`` photos each, and every other photo in the batch is a
  negative. Each photo gets its own random background colour, so the
  embedder cannot tell identities apart by the background alone.

Evaluation uses ``make_dataset`` renders from seeds the training never draws
(identities are continuous random parameters, so they are unseen): the AU mean
absolute error per AU; identity verification on same/different pairs, with the
distance threshold chosen on a validation set and the accuracy measured on a
separate test set of other identities.

Outputs in the workdir: ``scorers/{au,identity,detector}.{npz,json}`` (those
of ``config.nets``; the format of
``flowjax.evaluation.synthetic_scorers``), ``evaluation.json``,
``training_log.csv`` and ``manifest.json``; with ``config.install_dir`` the
scorer files are also written there (replacing what is there).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from flowjax import synthetic
from flowjax import io as fio
from flowjax.runs import run_dirs
from experiments import train_scorers_detector as detector
from flowjax.evaluation import synthetic_scorers as ss

IMAGE_SIZE = ss.IMAGE_SIZE


# ---- data -----------------------------------------------------------------------------


def render_batch(key: jax.Array, n_identities: int, photos_per_identity: int,
                 nuisance_strength: float, random_background: bool = False, setting: str = "easy"
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Fresh renders: ``images`` uint8, ``aus`` [N, 9], identity ``rows`` [N].

    Photo ``i`` shows identity ``i // photos_per_identity`` of this batch.
    ``random_background`` gives every photo its own background colour (the
    renderer ties it to the identity), so an embedder must look at the face.
    ``setting``: ``flowjax.synthetic.SETTINGS``. Traceable, but call it outside
    a jit (see the module docstring).
    """
    k_id, k_expr, k_nz, k_bg = jax.random.split(key, 4)
    n = n_identities * photos_per_identity
    identities = synthetic.sample_identities(k_id, n_identities, setting)
    rows = jnp.repeat(jnp.arange(n_identities), photos_per_identity)
    identities = jax.tree_util.tree_map(lambda a: a[rows], identities)
    if random_background:
        background = synthetic.sample_identities(k_bg, n).background
        if setting == "hard":  # the easy parameters are the hard identity's base
            identities = dataclasses.replace(identities, base=dataclasses.replace(identities.base,
                                                                                  background=background))
        else:
            identities = dataclasses.replace(identities, background=background)
    aus = synthetic.sample_expressions(k_expr, n, "mixed")
    nuisance = synthetic.sample_nuisance(k_nz, n, nuisance_strength, setting)
    return synthetic.render(identities, aus, nuisance, IMAGE_SIZE, setting), aus, rows


# ---- losses and steps -----------------------------------------------------------------


def au_loss(model: ss.ScorerCNN, params: Any, images: jax.Array, aus: jax.Array,
            delta: float) -> jax.Array:
    """Mean Huber loss of the predicted intensities (0-5 scale)."""
    pred = model.apply(params, images)
    return jnp.mean(optax.huber_loss(pred, aus, delta=delta))


def contrastive_loss(embeddings: jax.Array, rows: jax.Array, temperature: float) -> jax.Array:
    """Supervised InfoNCE: each photo against all others, same-identity photos positive."""
    logits = embeddings @ embeddings.T / temperature
    self_mask = jnp.eye(len(rows), dtype=bool)
    logits = jnp.where(self_mask, -jnp.inf, logits)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    positive = (rows[:, None] == rows[None, :]) & ~self_mask
    return -jnp.mean(jnp.sum(jnp.where(positive, log_p, 0.0), axis=-1) / jnp.sum(positive, axis=-1))


def make_optimizer(c: Any) -> optax.GradientTransformation:
    """AdamW with linear warmup and cosine decay to zero over ``c.steps``."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, c.lr, c.warmup, c.steps, end_value=0.0)
    return optax.chain(optax.clip_by_global_norm(1.0),
                       optax.adamw(schedule, weight_decay=c.weight_decay))


def make_step(loss_fn: Callable[..., jax.Array],
              optimizer: optax.GradientTransformation) -> Callable:
    """``step(params, opt_state, key, *arrays) -> (params, opt_state, loss)``, jitted, buffers
    donated; ``arrays`` (the step's rendered batch, then fixed data such as a pool of
    precomputed images) are passed to ``loss_fn(params, key, *arrays)`` as arguments, not
    baked into the program as constants."""

    def step(params, opt_state, key, *arrays):
        loss, grads = jax.value_and_grad(loss_fn)(params, key, *arrays)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def au_model(c: Any) -> ss.ScorerCNN:
    return ss.ScorerCNN(features=tuple(c.features), strides=tuple(c.strides), hidden=c.hidden,
                        outputs=len(synthetic.AU_NAMES), input_pool=c.input_pool)


def identity_model(c: Any) -> ss.ScorerCNN:
    return ss.ScorerCNN(features=tuple(c.features), strides=tuple(c.strides), hidden=c.hidden,
                        outputs=c.embed_dim, input_pool=c.input_pool, normalize=True)


def train(name: str, model: ss.ScorerCNN, c: Any, loss_fn: Callable,
          make_batch: Callable[[jax.Array], tuple], seed: int, log: list[dict[str, Any]],
          progress: bool = True, data: tuple = ()) -> tuple[Any, dict[str, Any]]:
    """Runs ``c.steps`` steps of ``loss_fn(params, key, *make_batch(key), *data)``, each
    batch rendered before its jitted step; returns params and timings."""
    init_key, key = jax.random.split(jax.random.key(seed))
    dummy = jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), jnp.uint8)
    params = model.init(init_key, dummy)
    optimizer = make_optimizer(c)
    opt_state = optimizer.init(params)
    step = make_step(loss_fn, optimizer)
    t0 = time.perf_counter()
    def run_step(params, opt_state, step_key):
        return step(params, opt_state, step_key, *make_batch(step_key), *data)

    params, opt_state, loss = run_step(params, opt_state, jax.random.fold_in(key, 0))
    loss = float(loss)
    compile_s = time.perf_counter() - t0
    t0, running = time.perf_counter(), [loss]
    for i in range(1, c.steps):
        params, opt_state, loss = run_step(params, opt_state, jax.random.fold_in(key, i))
        if i % c.log_every == 0 or i == c.steps - 1:
            running.append(float(loss))
            if not np.isfinite(running[-1]):
                raise FloatingPointError(f"{name}: loss is {running[-1]} at step {i}; lower {name}.lr")
            elapsed = time.perf_counter() - t0
            log.append({"net": name, "step": i, "loss": running[-1], "seconds": round(elapsed, 2)})
            if progress:
                logging.info("%s step %d/%d loss %.4f (%.0f s)", name, i, c.steps, running[-1], elapsed)
    jax.block_until_ready(params)
    train_s = time.perf_counter() - t0
    return params, {"steps": c.steps, "compile_and_first_step_s": round(compile_s, 1),
                    "train_s": round(train_s, 1), "final_loss": running[-1]}


# ---- evaluation -----------------------------------------------------------------------


def evaluate_au(predict: Callable[[np.ndarray], np.ndarray], photos: synthetic.Photos) -> dict[str, Any]:
    """Mean absolute error (0-5 scale) per AU and overall, with predictions clipped to [0, 5]."""
    pred = np.clip(predict(photos.images), 0.0, synthetic.AU_MAX)
    err = np.abs(pred - photos.aus)
    return {"mae": float(err.mean()), "mae_per_au": dict(zip(synthetic.AU_NAMES, map(float, err.mean(0)))),
            "n_images": len(photos.images), "n_identities": int(len(np.unique(photos.identity_ids)))}


def verification_pairs(ids: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_pairs`` same-identity and ``n_pairs`` different-identity index pairs ``(i, j, same)``."""
    rng = np.random.default_rng(seed)
    same_i, same_j, diff_i, diff_j = [], [], [], []
    by_id = [np.flatnonzero(ids == k) for k in np.unique(ids)]
    while len(same_i) < n_pairs:
        group = by_id[rng.integers(len(by_id))]
        i, j = rng.choice(group, 2, replace=False)
        same_i.append(i), same_j.append(j)
    while len(diff_i) < n_pairs:
        i, j = rng.integers(len(ids), size=2)
        if ids[i] != ids[j]:
            diff_i.append(i), diff_j.append(j)
    same = np.r_[np.ones(n_pairs, bool), np.zeros(n_pairs, bool)]
    return np.array(same_i + diff_i), np.array(same_j + diff_j), same


def _pair_distances(e, ids, n_pairs, seed):
    i, j, same = verification_pairs(ids, n_pairs, seed)
    return np.linalg.norm(e[i] - e[j], axis=-1), same


def rank1_identification(e: np.ndarray, ids: np.ndarray) -> float:
    """Fraction of photos whose nearest other photo shows the same identity."""
    d = np.linalg.norm(e[:, None] - e[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(np.mean(ids[np.argmin(d, axis=1)] == ids))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold (same iff distance <= it) with the highest accuracy, and that accuracy."""
    d = np.sort(distances)
    candidates = np.r_[d[0] - 1e-6, (d[:-1] + d[1:]) / 2, d[-1] + 1e-6]
    acc = [np.mean((distances <= t) == same) for t in candidates]
    k = int(np.argmax(acc))
    return float(candidates[k]), float(acc[k])


def evaluate_identity(embed: Callable[[np.ndarray], np.ndarray], val: synthetic.Photos,
                      test: synthetic.Photos, n_pairs: int, seed: int) -> dict[str, Any]:
    """Verification accuracy on ``test`` at the threshold that is best on ``val``.

    Also the test set's rank-1 identification (nearest neighbour among all its
    photos), a harder check than random different-identity pairs.
    """
    e_val, e_test = embed(val.images), embed(test.images)
    d_val, same_val = _pair_distances(e_val, val.identity_ids, n_pairs, seed)
    d_test, same_test = _pair_distances(e_test, test.identity_ids, n_pairs, seed + 1)
    threshold, val_acc = best_threshold(d_val, same_val)
    predicted = d_test <= threshold
    return {
        "threshold": threshold, "val_accuracy": val_acc,
        "test_accuracy": float(np.mean(predicted == same_test)),
        "test_true_accept_rate": float(np.mean(predicted[same_test])),
        "test_false_accept_rate": float(np.mean(predicted[~same_test])),
        "test_mean_distance_same": float(d_test[same_test].mean()),
        "test_mean_distance_different": float(d_test[~same_test].mean()),
        "test_rank1_identification": rank1_identification(e_test, test.identity_ids),
        "pairs_per_split": 2 * n_pairs,
        "identities_val_test": [int(len(np.unique(p.identity_ids))) for p in (val, test)],
    }


def _predictor(model: ss.ScorerCNN, params: Any, batch: int = 256) -> Callable[[np.ndarray], np.ndarray]:
    apply = jax.jit(model.apply)

    def predict(images: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(apply(params, images[i:i + batch]), np.float64)
                               for i in range(0, len(images), batch)])

    return predict


# ---- main -----------------------------------------------------------------------------


def _check_nets(nets: Any) -> None:
    unknown = [n for n in nets if n not in ss.KINDS]
    if unknown or not nets:
        raise ValueError(f"config.nets {list(nets)}: choose one or more of {ss.KINDS}")


def _train_detector(config: Any, strength: float, render: Callable, log: list[dict[str, Any]]
                    ) -> tuple[dict[str, Any], tuple[ss.ScorerCNN, Any]]:
    """Glow pools (training and held-out, from different keys), training, evaluation."""
    from flowjax.models.checkpoints import load_model

    c, e = config.detector, config.eval
    if not c.glow:
        raise ValueError("config.detector.glow is empty: give a Glow export (e.g. weights/demo/glow) "
                         "whose decodes are the detector's Glow fakes")
    glow_dir = Path(c.glow)
    if not glow_dir.is_absolute():  # relative to the repository root, wherever we run from
        glow_dir = Path(__file__).resolve().parents[1] / glow_dir
    glow, glow_variables = load_model(glow_dir)
    t0 = time.perf_counter()
    pool = detector.glow_pool(glow, glow_variables, jax.random.key(config.seed + 2), c.glow_pool,
                              c, strength, render)
    held_pool = detector.glow_pool(glow, glow_variables, jax.random.key(e.detector_seed + 1),
                                   e.detector_glow_pool, c, strength, render)
    pool_s = time.perf_counter() - t0
    logging.info("detector: %d + %d Glow fakes decoded in %.0f s", c.glow_pool, e.detector_glow_pool, pool_s)
    model = detector.detector_model(c)
    params, timing = train("detector", model, c, detector.detector_loss(model, c),
                           lambda key: detector.detector_batch(key, c, strength, render),
                           config.seed + 2, log, config.progress,
                           data=(jnp.asarray(pool[0]), jnp.asarray(pool[1])))
    images, kinds = detector.held_out_set(c, e, strength, render, held_pool)
    result = {**detector.evaluate_detector(_predictor(model, params), images, kinds, c.threshold),
              "training": {**timing, "glow_pool_s": round(pool_s, 1), "glow": str(c.glow),
                           "glow_sha256": fio.sha256_dir(glow_dir)}}
    logging.info("detector held-out: AUC %.3f, false positives %.3f, per kind %s", result["auc"],
                 result["false_positive_rate"],
                 {k: round(v["detection_rate"], 3) for k, v in result["per_kind"].items()})
    return result, (model, params)


def main(config: Any, workdir: str) -> dict[str, Any]:
    strength = float(config.nuisance_strength)
    setting = config.setting
    synthetic.check_setting(setting)
    render = functools.partial(render_batch, setting=setting)
    log: list[dict[str, Any]] = []
    e = config.eval
    _check_nets(config.nets)
    with run_dirs.create_run_dir(workdir, overwrite=config.overwrite) as run:
        run.manifest.set_config(config)
        results: dict[str, Any] = {}
        trained = {}

        if "au" in config.nets:
            a = config.au
            model = au_model(a)

            def au_batch(key):
                images, aus, _ = render(key, a.batch_size, 1, strength)
                return images, aus

            def au_objective(params, key, images, aus):
                return au_loss(model, params, images, aus, a.huber_delta)

            with run.timed("train_au"):
                params, timing = train("au", model, a, au_objective, au_batch, config.seed, log,
                                       config.progress)
            with run.timed("evaluate_au"):
                held_out = synthetic.make_dataset(e.au_seed, e.au_images, IMAGE_SIZE, e.au_identities,
                                                       strength, setting)
                results["au"] = {**evaluate_au(_predictor(model, params), held_out), "training": timing}
            logging.info("AU held-out MAE %.3f %s", results["au"]["mae"], results["au"]["mae_per_au"])
            trained["au"] = (model, params)

        if "identity" in config.nets:
            i = config.identity
            id_model = identity_model(i)

            def id_batch(key):
                images, _, rows = render(key, i.identities_per_batch, i.photos_per_identity, strength,
                                         i.random_background)
                return images, rows

            def id_objective(params, key, images, rows):
                return contrastive_loss(id_model.apply(params, images), rows, i.temperature)

            with run.timed("train_identity"):
                id_params, timing = train("identity", id_model, i, id_objective, id_batch,
                                          config.seed + 1, log, config.progress)
            with run.timed("evaluate_identity"):
                n = e.id_identities * e.id_photos_per_identity
                val = synthetic.make_dataset(e.id_val_seed, n, IMAGE_SIZE, e.id_identities, strength,
                                                  setting)
                test = synthetic.make_dataset(e.id_test_seed, n, IMAGE_SIZE, e.id_identities, strength,
                                                   setting)
                results["identity"] = {**evaluate_identity(_predictor(id_model, id_params), val, test,
                                                           e.id_pairs, e.pair_seed), "training": timing}
            logging.info("identity verification: %s", results["identity"])
            trained["identity"] = (id_model, id_params)

        if "detector" in config.nets:
            with run.timed("detector"):
                results["detector"], trained["detector"] = _train_detector(config, strength, render, log)

        results["nuisance_strength"] = strength
        results["setting"] = setting
        results["eval_seeds"] = {k: e[k] for k in ("au_seed", "id_val_seed", "id_test_seed", "pair_seed",
                                                   "detector_seed")}
        for kind, (m, p) in trained.items():
            record = {"training": {**results[kind]["training"], "config": config[kind].to_dict(),
                                   "seed": config.seed, "nuisance_strength": strength,
                                   "setting": setting},
                      "evaluation": {k: v for k, v in results[kind].items() if k != "training"}}
            ss.save_scorer(run.path / "scorers", kind, m, p, record=record)
            for ext in ("npz", "json"):
                run.record_output(f"scorers/{kind}.{ext}")
            if config.install_dir:
                ss.save_scorer(Path(config.install_dir), kind, m, p, record=record, overwrite=True)
        run.write_json("evaluation.json", results)
        run.write_csv("training_log.csv", log)
    return results
