"""Experiments: each module has ``main(config, workdir)`` (run by ``run.py``), built on
``flowjax.runs.Experiment``; command-line tools are in ``tools/``."""
