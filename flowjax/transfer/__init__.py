"""Latent arithmetic and the compiled sweep: where expressions move between faces.

* ``latents`` -- OpenAI's flat latent layout, identity statistics, attribute
  and expression vectors, the transfer methods and the alpha grid;
* ``sweep`` -- batched encoding, and the one compiled (chunked, sharded)
  decode of a whole grid: expressions x targets x alphas;
* ``reenact`` -- an actor's latent trajectory (reference, smoothing) moved onto
  targets and decoded in one sweep (reached through the module).

May import: flowjax.models, flowjax.flows, flowjax.io.
"""

from flowjax.transfer.latents import (METHODS, TRANSFER_METHODS, IdentityStats, alpha_grid, attribute_vector,
                                      check_alphas, expression_vector, flatten, identity_mean, identity_stats,
                                      manipulate, transfer, unflatten)
from flowjax.transfer.sweep import (GridShare, attribute_sweep, check_finite_variables, decode_latents,
                                    encode_images, transfer_sweep)

__all__ = [
    "flatten", "unflatten", "IdentityStats", "identity_stats", "identity_mean", "attribute_vector",
    "manipulate", "expression_vector", "transfer", "METHODS", "TRANSFER_METHODS", "alpha_grid",
    "check_alphas", "encode_images", "decode_latents", "transfer_sweep", "attribute_sweep", "GridShare",
    "check_finite_variables",
]
