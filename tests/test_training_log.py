"""flowjax.training.log.LaggedWindows: metrics fetched one log window late."""

import jax.numpy as jnp
import pytest

from flowjax.training import log


def _collect():
    written = []
    return written, lambda window, values: written.append(
        (window.steps, [float(v["loss"]) for v in values]))


def test_a_plain_boundary_writes_the_window_before_the_one_just_dispatched():
    written, write = _collect()
    windows = log.LaggedWindows(write)
    for step in (0, 1):
        windows.add(step, {"loss": jnp.float32(step)})
    windows.boundary()
    assert written == []  # steps 0-1 held: fetching them would wait for step 1 to finish
    for step in (2, 3):
        windows.add(step, {"loss": jnp.float32(step)})
    windows.boundary()
    assert written == [([0, 1], [0.0, 1.0])]
    windows.add(4, {"loss": jnp.float32(4)})
    windows.boundary(everything=True)  # a checkpoint, an evaluation or the end: all of it
    assert written == [([0, 1], [0.0, 1.0]), ([2, 3], [2.0, 3.0]), ([4], [4.0])]
    windows.boundary(everything=True)  # nothing left: nothing written twice
    assert len(written) == 3


def test_an_error_in_writing_a_held_window_is_raised_at_the_next_boundary():
    def refuse(window, values):
        raise FloatingPointError(f"non-finite at step {window.steps[0]}")

    windows = log.LaggedWindows(refuse)
    windows.add(0, {"loss": jnp.float32(jnp.nan)})
    windows.boundary()
    windows.add(1, {"loss": jnp.float32(0)})
    with pytest.raises(FloatingPointError, match="step 0"):
        windows.boundary()
