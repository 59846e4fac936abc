"""Execution settings: how a model runs, never what it is.

A family's dataclass fields are of two kinds. Most are its *identity*
(``image_size``, ``depth``, ``coupling``, ...): they decide the parameters and
the function, and ``model_config.json`` records them, so a checkpoint rebuilds
exactly that model. :data:`EXECUTION_FIELDS` decide only how the same function
of the same parameters is computed:

* ``remat`` -- rematerialise each flow step in the backward pass (memory for
  compute; the gradients are the same);
* ``scan_unroll`` -- flow steps per iteration of each level's ``nn.scan``
  (XLA's CPU backend runs conv gradients in a loop body much slower than
  unrolled; a GPU or TPU keeps 1);
* ``precision`` -- the convs' and matmuls' ``jax.lax.Precision``: ``"highest"``
  (full float32), ``"high"``, ``"default"`` (TF32 on Ampere/Hopper GPUs, bfloat16
  passes on TPUs), or ``"auto"`` (the default): the phase decides
  (:data:`PRECISION_POLICY`);
* ``conditioner_dtype`` -- the dtype of the couplings' conditioner networks
  (``"float32"``, or ``"bfloat16"`` for speed and memory on accelerators): they
  need not be invertible, and the inverse recomputes them from the same input;
* ``conv_algorithm`` -- how the 3x3 convs are computed (``"auto"``: matmul forms
  for narrow shapes on a CPU, where they were measured faster, XLA's convolution
  on GPUs and TPUs; ``"xla"`` or ``"matmul"`` anywhere): the same sums.

They stay fields of the module (Flax's own way: ``nn.Dense(precision=...)``),
so a module is still the whole static argument of every jitted function: two
models differing only in ``remat`` are unequal and hash apart, and jit
compiles each its own program instead of reusing a stale one. What makes them
not identity is where the identity is compared and stored:
:func:`flowjax.models.model_config` (``model_config.json``, the resume check
of ``flowjax.training.train``) leaves them out, and
:func:`flowjax.models.checkpoints.read_model_config` ignores them in files
written before they left it (``weights/demo/glow``'s names ``scan_unroll: 8``:
how that run trained). A loaded model runs at its family's defaults; a run
chooses its own (``config.model.remat=True`` ...) and records them in its
``summary.json`` or manifest (:func:`flowjax.models.execution_config`).

**Precision per phase.** An inverse must hold across hundreds of sequential
steps when decoding: TF32's 10-bit mantissa visibly breaks the round trip
there, so encode and decode (transfer, sampling) run at ``"highest"``.
Training needs no exact inverse, only a gradient, and at ``"highest"`` an
Ampere/Hopper GPU gives up TF32 for the whole run, so it runs at ``"default"``.
A configured precision (anything but ``"auto"``) holds in every phase. On a CPU
XLA computes float32 convs and matmuls the same way at every precision
(docs/benchmarks.md has the measured round trips).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

EXECUTION_FIELDS = ("remat", "scan_unroll", "precision", "conditioner_dtype", "conv_algorithm")
CONDITIONER_DTYPES = ("float32", "bfloat16")
AUTO = "auto"  # a precision left to the phase (PRECISION_POLICY)
# The precision an "auto" model runs at, per phase. "encode" and "decode" are every
# use outside training (transfer, sweeps, sampling, scoring); "train" the training
# loop: its initialisation, steps and held-out bits/dim.
PRECISION_POLICY = {"train": "default", "encode": "highest", "decode": "highest"}
PHASES = tuple(PRECISION_POLICY)

Model = TypeVar("Model")


def resolve_precision(precision: str, phase: str) -> str:
    """The precision a model configured with ``precision`` runs at in ``phase``."""
    if phase not in PRECISION_POLICY:
        raise ValueError(f"phase must be one of {list(PHASES)}, got {phase!r}")
    return PRECISION_POLICY[phase] if precision == AUTO else precision


def for_phase(model: Model, phase: str) -> Model:
    """``model`` as it runs in ``phase``: an ``"auto"`` precision replaced by the
    policy's (a new module, so jit compiles its own program); otherwise ``model``."""
    precision = getattr(model, "precision", None)
    resolved = resolve_precision(precision, phase)
    return model if resolved == precision else model.clone(precision=resolved)



def data_mesh(axis: str, devices: Sequence[Any] | None = None):
    """A 1-D ``jax.sharding.Mesh`` named ``axis`` over ``devices`` (default: all of
    them, every process's).

    Through ``jax.make_mesh``, which orders the devices for the topology's
    collectives (a ring on a TPU; the given order elsewhere). Its axis is ``Auto``:
    shardings are given at ``jax.jit``'s boundaries and XLA propagates them inside,
    as this project's jitted functions expect (``make_mesh``'s own default,
    ``Explicit``, would carry shardings in every array's type).
    """
    import jax  # here, not at the top: the settings above are read without importing jax

    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (axis,), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=devices)
