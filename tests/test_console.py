"""Progress output: a bar on a terminal, a few plain lines in a log file (flowjax.io.console)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tqdm.auto import tqdm

from flowjax.io import console


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_a_line_per_interval_and_one_at_the_end_never_a_carriage_return():
    clock, log = FakeClock(), io.StringIO()
    with console.LineProgress(100, "transfer", "chunk", stream=log, interval_s=10.0,
                              clock=clock) as bar:
        for _ in range(100):
            clock.now += 0.5  # 50 s in all: a line at 10, 20, 30, 40, 50 s
            bar.update(1)
        bar.set_postfix(bpd="3.210")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 6, lines
    assert lines[0].startswith("transfer: 20/100 chunk, 10.0 s, 2.00 chunk/s")
    assert lines[-1] == "transfer: 100/100 chunk done, 50.0 s, 2.00 chunk/s, bpd=3.210"


def test_a_resumed_count_reports_the_rate_of_this_run_only():
    clock, log = FakeClock(), io.StringIO()
    bar = console.LineProgress(10, "train", "step", initial=6, stream=log, clock=clock)
    clock.now = 2.0
    bar.update(4)
    bar.close()
    bar.close()  # closing twice writes once
    assert log.getvalue() == "train: 10/10 step done, 2.0 s, 2.00 step/s\n"


def test_progress_draws_a_bar_on_a_terminal_and_lines_elsewhere():
    assert isinstance(console.progress(3, "x", stream=Terminal()), tqdm)
    assert isinstance(console.progress(3, "x", stream=io.StringIO()), console.LineProgress)
    quiet = io.StringIO()
    with console.progress(3, "x", stream=quiet, disable=True) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_stage_says_when_it_starts_and_how_long_it_took_but_not_done_after_an_error():
    log = io.StringIO()
    with console.stage("reading graph.pb (1 MB)", stream=log):
        pass
    first, second = log.getvalue().splitlines()
    assert first == "reading graph.pb (1 MB)..."
    assert second.startswith("reading graph.pb (1 MB): done in ")
    failed = io.StringIO()
    with pytest.raises(ValueError), console.stage("parsing", stream=failed):
        raise ValueError("bad graph")
    assert failed.getvalue() == "parsing...\n"


def test_a_redirected_sweep_writes_plain_lines(capsys):
    from flowjax.models import glow, random_variables
    from flowjax.transfer import sweep

    model = glow.Glow(image_size=8, n_levels=2, depth=2, width=8)
    images = np.zeros((6, 8, 8, 3), np.uint8)
    sweep.encode_images(model, random_variables(model, seed=1), images, chunk_size=2,
                        progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines()[-1].startswith("encode: 3/3 chunk done"), err
