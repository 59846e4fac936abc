"""Shared pytest configuration."""

import os

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The test suite is dominated by XLA compile time, not by compute: LLVM's
# backend optimisations make compiling PRNG-heavy programs (every model init)
# several times slower on the CPU, for nothing the tests measure. Convs and
# matmuls still run as optimised library calls.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer than a few seconds; deselect with -m 'not slow'")


def pytest_sessionstart(session):
    # run.py turns on JAX's persistent compilation cache (default: the user's
    # ~/.cache). Subprocess runs of the tests share one cache folder of the
    # session instead, so the suite leaves nothing in the home folder and the
    # later runs of a program reuse the first one's compiles.
    from flowjax.runs import runtime
    if runtime.CACHE_ENV not in os.environ:
        folder = session.config._tmp_path_factory.mktemp("xla-compilation-cache")  # noqa: SLF001
        os.environ[runtime.CACHE_ENV] = str(folder)


# ---- a headless Chromium for the browser tests (tests/test_viewer.py, test_explore.py) ----
# Debian's chromium driven by Playwright for Python; Playwright's own browser
# download is never used. FLOWJAX_CHROMIUM names another binary.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]


def _chromium_path():
    import shutil

    return os.environ.get("FLOWJAX_CHROMIUM") or shutil.which("chromium")



@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session; skipped with the reason when absent."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    path = _chromium_path()
    if not path:
        pytest.skip("no chromium binary (apt-get install chromium, or set FLOWJAX_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def save_screenshot(tmp_path):
    """``save_screenshot(tab, name, what)``: a screenshot of a Playwright page, written with
    flowjax.io's PNG writer (labelled synthetic: it shows generated faces) into docs/ when
    FLOWJAX_UPDATE_SCREENSHOTS=1, else into the test's tmp_path; returns the pixels.

    ``full_page=True`` takes the whole page (as wide as the viewport, as tall as the
    page), so nothing in the docs' pictures is cut at an edge; ``clip`` a region."""
    import io
    import pathlib

    import numpy as np
    from PIL import Image

    from flowjax import io as fio

    folder = (pathlib.Path(__file__).resolve().parents[1] / "docs"
              if os.environ.get("FLOWJAX_UPDATE_SCREENSHOTS") else tmp_path)

    def save(tab, name: str, what: str, clip: dict | None = None,
             full_page: bool = False) -> np.ndarray:
        shot = tab.screenshot(clip=clip, full_page=full_page)
        pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
        fio.write_png(folder / name, pixels, {"screenshot": what}, overwrite=True)
        return pixels

    return save
