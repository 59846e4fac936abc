"""Shared pytest configuration."""

import os

# Tests run on the CPU; keep XLA from grabbing every core for one op so that
# the 2-core CI machine stays responsive.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
