"""Experiments: each module has ``main(config, workdir)`` and writes its tables."""
