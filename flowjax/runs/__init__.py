"""Running an experiment: the scaffold, run directories and manifests, names, the runtime.

* ``experiment`` -- :class:`Experiment`, what every ``main(config, workdir)``
  shares: the workdir check, the model, the run directory with its manifest,
  timings;
* ``inputs`` -- the configured images, at the model's size or aligned on the
  way in (photos that cannot be aligned: an error, or left out and listed);
* ``run_dirs`` -- run directories written in a staging folder and committed
  whole, and ``manifest.json`` (config, versions, input checksums, outputs);
* ``names`` -- config paths resolved, file-safe image and alpha labels;
* ``runtime`` -- process set-up shared by every entry point: errors as one
  line, the compilation cache, multi-host start, config files by name.

The scaffold's names (``runs.Experiment``, ``runs.load_images``, ...) load on
first use: ``runtime`` is imported by ``run.py`` before JAX's multi-host start
and by every config file, which must not pull in the models, orbax and the
face aligners with it.

May import: flowjax.transfer, flowjax.models, flowjax.faces, flowjax.synthetic,
flowjax.io.
"""

from flowjax import lazy_exports

_EXPERIMENT = ("Experiment", "RANDOM_MODEL_WARNING", "model_geometry", "load_model", "encode_sets",
               "model_label", "check_workdir", "config_paths", "record_inputs",
               "write_configured_faces", "write_alpha_row")
_INPUTS = ("check_alignment", "load_images", "load_identities", "record_alignment",
           "skipped_photos")
__all__ = [*_EXPERIMENT, *_INPUTS]
__getattr__, __dir__ = lazy_exports(__name__, {
    **{name: "flowjax.runs.experiment" for name in _EXPERIMENT},
    **{name: "flowjax.runs.inputs" for name in _INPUTS}})
