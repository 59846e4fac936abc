"""Do two run directories hold the same images? Compares decoded pixels, not files.

    python -m tools.compare_runs --before=runs/old --after=runs/new

Every PNG below ``--before`` must exist below ``--after`` (and the reverse)
with the same decoded pixel array; the files themselves may differ, since a
PNG's provenance text names the flowjax version and the run's paths. Prints one
line per top-level folder (``transfer``, ``strips``, ...) and exits 1 when any
image is missing or differs. This is how a change that must not move a pixel
(a refactoring, a dependency upgrade) is shown not to.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from absl import app, flags

from flowjax.runs import runtime
from PIL import Image

_BEFORE = flags.DEFINE_string("before", None, "The reference run directory.", required=True)
_AFTER = flags.DEFINE_string("after", None, "The run directory to compare with it.", required=True)


def compare(before: str | Path, after: str | Path) -> tuple[dict[str, list[int]], list[str]]:
    """``({folder: [images, identical]}, problems)`` for the PNGs of two run directories."""
    before, after = Path(before), Path(after)
    names = {p.relative_to(before) for p in before.rglob("*.png")}
    other = {p.relative_to(after) for p in after.rglob("*.png")}
    problems = [f"{rel} is only in {before}" for rel in sorted(names - other)]
    problems += [f"{rel} is only in {after}" for rel in sorted(other - names)]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for rel in sorted(names & other):
        a, b = (np.asarray(Image.open(root / rel)) for root in (before, after))
        same = a.shape == b.shape and np.array_equal(a, b)
        folder = counts[rel.parts[0] if len(rel.parts) > 1 else "."]
        folder[0] += 1
        folder[1] += same
        if not same:
            problems.append(f"{rel}: pixels differ" if a.shape == b.shape else
                            f"{rel}: shape {a.shape} against {b.shape}")
    return dict(counts), problems


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    counts, problems = compare(_BEFORE.value, _AFTER.value)
    for folder, (n, same) in sorted(counts.items()):
        print(f"{folder:12s} {n:4d} PNGs, {same:4d} with identical pixels")
    for problem in problems:
        print("differs:", problem)
    total = sum(n for n, _ in counts.values())
    print(f"{total} PNGs compared; " + (f"{len(problems)} problems" if problems else "all identical"))
    return 1 if problems else 0


if __name__ == "__main__":
    runtime.run(main)
