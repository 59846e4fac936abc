"""Specification of flowjax.training.optimizers: the warmup schedule, OpenAI's Adamax,
gradient clipping and the optimizer spec built from ``config.optimizer``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flowjax.training import optimizers


def test_warmup_is_linear_and_moves_from_the_first_step():
    schedule = optimizers.warmup_schedule(1e-3, 4)
    np.testing.assert_allclose([schedule(c) for c in range(6)],
                               [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3], rtol=1e-6)


def test_openai_adamax_matches_its_formula():
    grads = [np.array([0.5, -2.0]), np.array([-1.0, 0.25]), np.array([0.1, 0.1])]
    lr, b1, b2, eps = 0.1, 0.9, 0.95, 1e-8
    opt = optimizers.openai_adamax(lr, b1, b2, eps)
    params = jnp.zeros(2)
    state = opt.init(params)
    m, u, expected = np.zeros(2), np.zeros(2), np.zeros(2)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g))
        expected = expected - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (u + eps)
        updates, state = opt.update(jnp.asarray(g, jnp.float32), state)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params, expected, rtol=1e-5)


def test_gradient_clipping_bounds_the_global_norm_the_optimizer_sees():
    grads, params = {"w": jnp.full(3, 10.0)}, {"w": jnp.zeros(3)}
    first_moment_norm = {}
    for clip in (0.0, 1.0):
        opt = optimizers.OptimizerSpec(name="adam", b1=0.9, grad_clip_norm=clip).build()
        _, state = opt.update(grads, opt.init(params), params)
        adam_state = state[-1][0] if clip else state[0]
        first_moment_norm[clip] = float(np.linalg.norm(adam_state.mu["w"]))
    # after one step mu = (1 - b1) * gradient
    np.testing.assert_allclose(first_moment_norm[1.0], 0.1, rtol=1e-5)
    np.testing.assert_allclose(first_moment_norm[0.0], 0.1 * np.sqrt(300), rtol=1e-5)


def test_unknown_optimizer_is_an_error():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        optimizers.OptimizerSpec(name="sgd")


def test_cosine_decay_holds_the_rate_then_halves_it_midway_and_ends_at_the_fraction():
    spec = optimizers.OptimizerSpec(name="adam", learning_rate=1e-3, warmup_steps=2,
                                    decay_start=10, decay_steps=20, final_lr_fraction=0.1)
    rate = [float(spec.schedule(c)) for c in (0, 1, 9, 10, 20, 30, 100)]
    # warmup, full rate up to the decay's start, halfway down at its middle, the floor after
    np.testing.assert_allclose(rate, [5e-4, 1e-3, 1e-3, 1e-3, 5.5e-4, 1e-4, 1e-4], rtol=1e-5)


def test_no_decay_by_default_and_a_bad_decay_is_refused():
    spec = optimizers.OptimizerSpec(learning_rate=1e-3)
    assert float(spec.schedule(10**6)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="final_lr_fraction"):
        optimizers.OptimizerSpec(decay_steps=10, final_lr_fraction=1.5)
