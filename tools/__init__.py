"""Command-line tools, apart from the experiments: ``main(argv)`` scripts run from the
repository root as modules, ``python -m tools.<name> --flags`` (the root is then importable,
so no path set-up is needed).

* ``benchmark`` -- encode/decode throughput of a configured model (docs/benchmarks.md);
* ``benchmark_sweep`` -- one compiled transfer sweep against Python loops (docs/benchmarks.md);
* ``export_model`` -- a training workdir's latest checkpoint as a model export;
* ``fetch_model`` -- OpenAI's CelebA-HQ Glow in one command: download (resumable), verify,
  convert and check (weights/README.md);
* ``measure_faces`` -- timings of the real-face components (dlib, MTCNN) on sample photos.

Experiments (``main(config, workdir)``, run by ``run.py``) live in ``experiments/``.
"""
