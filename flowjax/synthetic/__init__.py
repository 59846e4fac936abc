"""Synthetic cartoon faces with known identity and expression.

A vectorized, deterministic renderer of frontal cartoon faces. It serves two
purposes: the shipped demo dataset (a small Glow trains on it on the CPU) and
the ground truth for scoring expression transfer, since every image comes with
its identity id and its Action Unit (AU) intensities.

Geometry. Everything is drawn in *face coordinates*: x to the right, y down,
the face centre at the origin and the canvas spanning [-1, 1] when there is no
nuisance (so face and canvas coordinates then coincide and ``au_region_mask``
can name pixels). The parts are drawn as antialiased signed distances,
composited back to front over the background, by ``drawing``.

Expressions use the FACS intensity scale 0..5 with OpenFace's AU names, in the
order of ``AU_NAMES``. Each AU moves only its own parts, linearly in intensity:

======  ======================  =============================================
AU      name                    drawn as
======  ======================  =============================================
AU01    inner brow raiser       inner brow ends up
AU02    outer brow raiser       outer brow ends up
AU04    brow lowerer            brows down and together, furrows between them
AU06    cheek raiser            cheeks up and flushed, lower lids up, crease
AU12    lip corner puller       mouth corners up, mouth slightly wider
AU15    lip corner depressor    mouth corners down
AU25    lips part               lips apart, upper teeth show
AU26    jaw drop                mouth opens vertically, chin lower
AU45    blink                   upper lids close
======  ======================  =============================================

Locality (with nuisance off): AU01/02/04 change only ``au_region_mask``'s brow
band, AU06 only the cheeks and lower lids, AU45 only the eyes, AU12/15/25 only
the mouth box and AU26 only the lower face (mouth, chin, jaw line).

Arrays. ``render`` is pure ``jax.numpy``, one jitted, vmapped call per batch
(it also works inside a caller's ``jit``), and returns a ``jax.Array``; the
dataset and study builders (``make_dataset``, ``make_study``) return host
``numpy`` arrays. Images are NHWC
``uint8`` RGB.
Randomness comes only from explicit seeds and keys; pixel noise is a hash of
each image's own seed, so an image does not depend on the batch around it.

Settings (``SETTINGS``, the ``setting`` argument of the samplers, ``render``
and the dataset and study builders): ``"easy"`` (the default) is the renderer
described above; ``"hard"`` adds 3-D head pose, Lambertian lighting, skin
texture, patterned backgrounds, hair styles and glasses, so that pixel-space
averages ghost (``hard``; its identities and nuisance are ``HardIdentity``
and ``HardNuisance``, which wrap the easy ones).

Modules (this package re-exports their public names; ``hard``'s samplers are
reached with ``setting="hard"``):

* ``factors`` -- the AUs, prototypes, identity ranges and parameter types;
* ``easy`` and ``hard`` -- each setting's samplers and pixels; ``drawing`` --
  the face layout, signed-distance parts, compositing and pixel noise;
* ``renderer`` -- the samplers and ``render`` for either setting, with their checks;
* ``datasets`` -- training data and expression-transfer studies with their ground truth;
* ``clips`` -- video clips with AU trajectories, and the reenactment scene with its exact
  answers (reached through the module);
* ``files`` -- the faces written as PNG files (SYNTHETIC TEST DATA).

May import: flowjax.io (otherwise jax and numpy only).
"""

from flowjax.synthetic.datasets import Photos, Study, make_dataset, make_study
from flowjax.synthetic.easy import au_region_mask
from flowjax.synthetic.factors import (AU_MAX, AU_NAMES, EXPRESSION_STRENGTHS, IDENTITY_COLORS,
                                       IDENTITY_RANGES, PROTOTYPES, SETTINGS, IdentityParams, Nuisance,
                                       check_setting, check_size, prototype_aus, sample_expressions)
from flowjax.synthetic.files import (GENERATED_EXPRESSIONS, SOURCE_IDENTITY, write_generated_faces,
                                     write_synthetic_study)
from flowjax.synthetic.hard import HardIdentity, HardNuisance
from flowjax.synthetic.renderer import no_nuisance, render, sample_identities, sample_nuisance

__all__ = [
    "SETTINGS", "AU_NAMES", "AU_MAX", "PROTOTYPES", "EXPRESSION_STRENGTHS", "IDENTITY_RANGES",
    "IDENTITY_COLORS", "IdentityParams", "Nuisance", "HardIdentity", "HardNuisance", "check_setting",
    "check_size", "sample_identities", "prototype_aus", "sample_expressions", "no_nuisance",
    "sample_nuisance", "render", "au_region_mask", "Photos", "Study", "make_dataset", "make_study",
    "GENERATED_EXPRESSIONS", "SOURCE_IDENTITY", "write_generated_faces", "write_synthetic_study",
]
