"""Models: the multi-scale image flows, their registry and their checkpoints.

* ``image_flow`` -- :class:`MultiScaleFlow`, what every multi-scale family
  shares (the public API, the geometry, the level loops, ``latent_shapes``);
* ``glow`` -- :class:`Glow` (OpenAI-compatible) and the jitted
  ``encode``/``decode``/``init`` that apply any family;
* ``rosinality`` -- :class:`RosinalityGlow`, rosinality's PyTorch layout;
* ``registry`` -- model families and flow steps by name, ``model_from_config``;
* ``execution`` -- the execution settings (``remat``, ``scan_unroll``,
  ``precision``, ``conditioner_dtype``: how a model runs, not what it is), the
  precision per phase and the 1-D data meshes;
* ``micro_batches`` -- large CPU batches as a loop over cache-sized pieces;
* ``model_stats`` -- parameter counts and arithmetic cost, nothing allocated;
* ``checkpoints`` -- the one module that talks to orbax, with
  ``checksum_record`` (each checkpoint's ``checksums.json``);
* ``errors`` -- :class:`NonFiniteError`, a NaN or inf where a result must be finite.

This package's own names are the registry's (``models.model_from_config``,
``models.register_model``, ``models.register_flow_step``, ...) and the few a
researcher loads a model with.

May import: flowjax.flows, flowjax.io.
"""

from flowjax.flows.steps import (StepConfig, UnknownFlowStepError, flow_step, flow_step_names, openai_step,
                                 register_flow_step)
from flowjax.models.checkpoints import CheckpointError, load_model, save_model
from flowjax.models.errors import NonFiniteError
from flowjax.models.glow import Glow, decode, encode, init
from flowjax.models.image_flow import Encoding, MultiScaleFlow, latent_shapes
from flowjax.models.registry import (DEFAULT_FAMILY, FAMILY_KEY, FlowModel, UnknownArchitectureError,
                                     default_config, execution_config, family_name, model_class,
                                     model_config, model_fields, model_from_config, model_names,
                                     random_variables, register_model)
from flowjax.models.rosinality import RosinalityGlow

__all__ = [
    "MultiScaleFlow", "Encoding", "latent_shapes", "Glow", "RosinalityGlow", "encode", "decode", "init",
    "FAMILY_KEY", "DEFAULT_FAMILY", "FlowModel", "UnknownArchitectureError", "register_model",
    "model_names", "model_class", "family_name", "model_fields", "model_config", "execution_config", "default_config",
    "model_from_config", "random_variables", "load_model", "save_model", "CheckpointError",
    "NonFiniteError", "StepConfig", "UnknownFlowStepError", "register_flow_step", "flow_step",
    "flow_step_names", "openai_step",
]
