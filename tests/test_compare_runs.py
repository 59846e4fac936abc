"""tools/compare_runs: two runs are the same when their PNGs decode to the same pixels."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from flowjax import io as fio
from tools import compare_runs

ROOT = Path(__file__).resolve().parents[1]
FACE = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)


def _run(root: Path, face: np.ndarray, provenance: dict) -> Path:
    for folder in ("transfer/smile", "means", "strips"):
        (root / folder).mkdir(parents=True)
    fio.write_png(root / "transfer" / "smile" / "a.png", face, provenance)
    fio.write_png(root / "means" / "id00.png", FACE, provenance)
    return root


def test_equal_pixels_with_different_provenance_are_the_same_run(tmp_path):
    before = _run(tmp_path / "before", FACE, {"run": "before"})
    after = _run(tmp_path / "after", FACE, {"run": "after"})
    assert (before / "means" / "id00.png").read_bytes() != (after / "means" / "id00.png").read_bytes()
    assert compare_runs.compare(before, after) == ({"means": [1, 1], "transfer": [1, 1]}, [])


def test_one_changed_pixel_and_a_missing_image_are_named_and_fail_the_command(tmp_path):
    changed = FACE.copy()
    changed[0, 0, 0] += 1
    before = _run(tmp_path / "before", FACE, {})
    after = _run(tmp_path / "after", changed, {})
    fio.write_png(before / "strips" / "s.png", FACE)
    counts, problems = compare_runs.compare(before, after)
    assert counts == {"means": [1, 1], "transfer": [1, 0]}
    assert problems == [f"strips/s.png is only in {before}", "transfer/smile/a.png: pixels differ"]
    out = subprocess.run([sys.executable, "-m", "tools.compare_runs", f"--before={before}", f"--after={after}"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1 and "differs: transfer/smile/a.png: pixels differ" in out.stdout
