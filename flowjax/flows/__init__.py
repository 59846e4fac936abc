"""Bijectors: the contract and the library every flow here is built from.

One contract (:class:`Bijector`: ``forward(x) -> (y, logdet)``,
``inverse(y) -> (x, logdet)``, per-image float32 logdets) and the bijectors
that follow it, as pure functions with thin Flax modules owning the
parameters:

* ``layers`` -- the convolutions and numeric settings the bijectors share;
* ``bijectors`` -- the contract, ActNorm, squeeze, additive/affine coupling;
* ``permutations`` -- invertible 1x1 convs (plain and LU), reverse, shuffle;
* ``composition`` -- :class:`Chain` (applied in list order) and :class:`Inverse`;
* ``priors`` -- the split and top priors (diagonal Gaussians from zero-convs);
* ``steps`` -- flow-step definitions by name (``openai_step`` and your own);
* ``testing`` -- :func:`assert_bijector`, the contract as a reusable test.

May import: nothing of flowjax (jax, flax and numpy only).
"""

from flowjax.flows.bijectors import (COUPLINGS, ActNorm, Bijector, Coupling, Squeeze, additive_coupling,
                                     affine_coupling, squeeze2d, unsqueeze2d)
from flowjax.flows.composition import Chain, Inverse
from flowjax.flows.layers import EdgeConv, ZeroConv
from flowjax.flows.permutations import PERMUTATIONS, InvConv, InvConvLU, Reverse, Shuffle
from flowjax.flows.priors import SplitPrior, TopPrior
from flowjax.flows.steps import StepConfig, flow_step, flow_step_names, openai_step, register_flow_step
from flowjax.flows.testing import assert_bijector

__all__ = [
    "Bijector", "ActNorm", "Coupling", "Squeeze", "COUPLINGS", "additive_coupling", "affine_coupling",
    "squeeze2d", "unsqueeze2d", "Chain", "Inverse", "EdgeConv", "ZeroConv", "PERMUTATIONS", "InvConv",
    "InvConvLU", "Reverse", "Shuffle", "SplitPrior", "TopPrior", "StepConfig", "flow_step",
    "flow_step_names", "openai_step", "register_flow_step", "assert_bijector",
]
