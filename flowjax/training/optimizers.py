"""Optimizers for training Glow, described by a hashable :class:`OptimizerSpec`.

``"adamax"`` (optax), ``"adam"`` (optax) and ``"openai_adamax"`` (OpenAI's
variant, GLOW_SPEC §6), each after an optional global-norm gradient clip, with
a linear warmup ``lr * min(1, (count + 1) / warmup_steps)`` (the first step
already moves, unlike OpenAI's ramp from exactly 0) and, only when
``decay_steps`` is set, a cosine decay to ``final_lr_fraction * lr`` over
``decay_steps`` steps from step ``decay_start`` (OpenAI never decays; a long run
on a small machine gains its last bits/dim from it). The schedule keeps no
state, so a resumed run may add or change the decay.

OpenAI's Adamax differs from optax's in two ways, both reproduced by
``"openai_adamax"``: its step is ``lr * sqrt(1 - b2^t) / (1 - b1^t) *
m / (u + eps)`` (an Adam-style ``sqrt(1 - b2^t)`` factor that optax's
Adamax lacks: early steps are smaller, an extra implicit warmup), and eps
is added after the max (optax uses ``max(b2 u, |g| + eps)``). OpenAI's
Polyak average is not kept (it never used it for evaluation or saving).

``flowjax.training.train`` builds the optimizer from ``config.optimizer``
(:meth:`OptimizerSpec.from_config`); the spec is hashable, so jitted train
steps are cached per spec.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
OPTIMIZERS = ("adamax", "openai_adamax", "adam")


def warmup_schedule(learning_rate: float, warmup_steps: int) -> optax.Schedule:
    """``lr * min(1, (count + 1) / warmup_steps)``; constant when ``warmup_steps == 0``."""
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if warmup_steps == 0:
        return optax.constant_schedule(learning_rate)
    return lambda count: learning_rate * jnp.minimum(1.0, (count + 1) / warmup_steps)


def cosine_decay_factor(decay_start: int, decay_steps: int,
                        final_fraction: float) -> optax.Schedule:
    """1 before ``decay_start``, then half a cosine down to ``final_fraction`` over
    ``decay_steps`` steps, ``final_fraction`` after; 1 throughout when ``decay_steps``
    is 0."""
    if decay_start < 0 or decay_steps < 0 or not 0 <= final_fraction <= 1:
        raise ValueError(f"need decay_start >= 0, decay_steps >= 0 and 0 <= final_lr_fraction "
                         f"<= 1, got {decay_start}, {decay_steps}, {final_fraction}")
    if decay_steps == 0:
        return lambda count: jnp.ones([], jnp.float32)

    def factor(count):
        progress = jnp.clip((count - decay_start) / decay_steps, 0.0, 1.0)
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + jnp.cos(jnp.pi * progress))

    return factor


class OpenAIAdamaxState(NamedTuple):
    count: Array
    mu: Any
    nu: Any


def openai_adamax(learning_rate: float | optax.Schedule, b1: float = 0.9, b2: float = 0.95,
                  eps: float = 1e-8) -> optax.GradientTransformation:
    """OpenAI Glow's Adamax (``optim.py``; see the module docstring for the differences).

    ``m = b1 m + (1 - b1) g``; ``u = max(b2 u, |g|)``;
    ``update = -lr_t sqrt(1 - b2^t) / (1 - b1^t) * m / (u + eps)`` with t = count + 1.
    """
    schedule = learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)

    def init(params: Any) -> OpenAIAdamaxState:
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)
        return OpenAIAdamaxState(jnp.zeros([], jnp.int32), zeros(), zeros())

    def update(grads: Any, state: OpenAIAdamaxState,
               params: Any = None) -> tuple[Any, OpenAIAdamaxState]:
        del params
        t = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda u, g: jnp.maximum(b2 * u, jnp.abs(g)), state.nu, grads)
        tf = t.astype(jnp.float32)
        step_size = schedule(state.count) * jnp.sqrt(1 - b2**tf) / (1 - b1**tf)
        updates = jax.tree.map(lambda m, u: -step_size * m / (u + eps), mu, nu)
        return updates, OpenAIAdamaxState(t, mu, nu)

    return optax.GradientTransformation(init, update)


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """A hashable optimizer description (so jitted steps are cached per spec)."""

    name: str = "adamax"
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    grad_clip_norm: float = 0.0  # global norm; 0 = off
    decay_start: int = 0  # the step a cosine decay starts at
    decay_steps: int = 0  # its length; 0 = no decay (OpenAI's constant rate)
    final_lr_fraction: float = 0.0  # the rate it ends at, as a fraction of learning_rate

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}")
        if not self.learning_rate > 0 or self.grad_clip_norm < 0:
            raise ValueError(f"need learning_rate > 0 and grad_clip_norm >= 0, got "
                             f"{self.learning_rate} and {self.grad_clip_norm}")
        cosine_decay_factor(self.decay_start, self.decay_steps, self.final_lr_fraction)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OptimizerSpec:
        config = dict(config)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(f"unknown optimizer config keys {unknown}; valid: {sorted(fields)}")
        return cls(**config)

    @property
    def schedule(self) -> optax.Schedule:
        warmup = warmup_schedule(self.learning_rate, self.warmup_steps)
        if not self.decay_steps:
            return warmup
        decay = cosine_decay_factor(self.decay_start, self.decay_steps, self.final_lr_fraction)
        return lambda count: warmup(count) * decay(count)

    def build(self) -> optax.GradientTransformation:
        if self.name == "adam":
            core = optax.adam(self.schedule, self.b1, self.b2, self.eps)
        elif self.name == "adamax":
            core = optax.adamax(self.schedule, self.b1, self.b2, self.eps)
        else:
            core = openai_adamax(self.schedule, self.b1, self.b2, self.eps)
        if self.grad_clip_norm:
            return optax.chain(optax.clip_by_global_norm(self.grad_clip_norm), core)
        return core
